"""This run's test PKI (never committed: made per run, valid for two days).

    python -m harness.pki image DIR   the image scenario's edge checks
    python -m harness.pki log DIR     the roles' VM's journal shipping

image: two CAs (ca, other-ca) and client certificates web-tier (CN=web-tier,
O=SuperMega Bank, by ca: the allowed caller), intruder (another subject, by
ca), stranger (the allowed subject, by other-ca) and expired (the allowed
subject, by ca, valid until yesterday); each as NAME.pem and NAME.key.

log: a CA (ca.pem), the collector's server certificate for the address the
VM reaches this machine at (10.0.2.2) and loopback (collector.crt/.key),
the VM's client certificate (client.crt/.key), and a stranger CA with a
server certificate of its own (stranger.crt/.key: a collector the VM must
refuse).

Keys are P-256 ECDSA; the directory is made 0700.
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
USAGES = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}


def name(common, org="SuperMega Bank"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def save(directory, stem, key, cert, cert_suffix="pem"):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key_path = os.path.join(directory, f"{stem}.key")
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(directory, f"{stem}.{cert_suffix}"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory, stem):
    """A self-signed CA: (key, certificate), saved as STEM.pem and STEM.key."""
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


def issue(directory, stem, common, ca, usage="client", addresses=(), not_before=None,
          not_after=None, cert_suffix="pem"):
    """A leaf certificate for COMMON, signed by CA (key, cert), for `client`
    or `server` use (a server's IP ADDRESSES as subjectAltNames)."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(name(common)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + DAY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([USAGES[usage]]), critical=False))
    if addresses:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    save(directory, stem, key, cert, cert_suffix)
    return key, cert


def image_pki(directory):
    ca, other = make_ca(directory, "ca"), make_ca(directory, "other-ca")
    issue(directory, "web-tier", "web-tier", ca)
    issue(directory, "intruder", "intruder", ca)
    issue(directory, "stranger", "web-tier", other)
    issue(directory, "expired", "web-tier", ca, not_before=NOW - 3 * DAY, not_after=NOW - DAY)


def log_pki(directory):
    collector = ("10.0.2.2", "127.0.0.1")
    ca = make_ca(directory, "ca")
    issue(directory, "collector", "collector", ca, "server", collector, cert_suffix="crt")
    issue(directory, "client", "client", ca, cert_suffix="crt")
    stranger = make_ca(directory, "stranger-ca")
    issue(directory, "stranger", "stranger", stranger, "server", collector, cert_suffix="crt")


SETS = {"image": image_pki, "log": log_pki}


def main(argv):
    if len(argv) != 2 or argv[0] not in SETS:
        raise SystemExit(__doc__)
    os.makedirs(argv[1], mode=0o700, exist_ok=True)
    SETS[argv[0]](argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
