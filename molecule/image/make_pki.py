#!/usr/bin/env python3
"""This run's test PKI for the image scenario (never committed: made per run).

    make_pki.py DIR

Writes, in DIR (0700): ca and other-ca (two CAs), and client certificates
web-tier (CN=web-tier,O=SuperMega Bank, by ca: the allowed caller), intruder
(another subject, by ca), stranger (the allowed subject, by other-ca) and
expired (the allowed subject, by ca, valid until yesterday); each as
NAME.pem and NAME.key. Uses the `cryptography` package of the project venv.
"""

import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def name(common, org="SuperMega Bank"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def save(directory, stem, key, cert):
    with open(os.path.join(directory, f"{stem}.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(directory, f"{stem}.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory, stem):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name(f"SuperMega test {stem}")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 2 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    save(directory, stem, key, cert)
    return key, cert


def make_client(directory, stem, common, ca, not_before, not_after):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(common)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    save(directory, stem, key, cert)


def main():
    directory = sys.argv[1]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    ca, other = make_ca(directory, "ca"), make_ca(directory, "other-ca")
    make_client(directory, "web-tier", "web-tier", ca, NOW - DAY, NOW + DAY)
    make_client(directory, "intruder", "intruder", ca, NOW - DAY, NOW + DAY)
    make_client(directory, "stranger", "web-tier", other, NOW - DAY, NOW + DAY)
    make_client(directory, "expired", "web-tier", ca, NOW - 3 * DAY, NOW - DAY)


if __name__ == "__main__":
    main()
