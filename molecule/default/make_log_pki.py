"""This run's test PKI for the journal's shipping (never committed): a CA,
the collector's certificate (for the address the VM reaches this machine
at, 10.0.2.2, and loopback), the VM's client certificate, and a stranger
CA with a certificate of its own (a collector the VM must refuse).

    make_log_pki.py DIR
"""

import os
import subprocess
import sys


def openssl(*args, cwd):
    subprocess.run(["/usr/bin/openssl", *args], cwd=cwd, check=True,  # noqa: S603 (fixed tool)
                   capture_output=True)


def ca(name, cwd):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", cwd=cwd)


def leaf(name, issuer, extensions, cwd):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
            f"{issuer}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}.crt", cwd=cwd)


def main(out):
    os.makedirs(out, mode=0o700, exist_ok=True)
    server = "subjectAltName=IP:10.0.2.2,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    ca("ca", out)
    leaf("collector", "ca", server, out)
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n", out)
    ca("stranger-ca", out)
    leaf("stranger", "stranger-ca", server, out)


if __name__ == "__main__":
    main(sys.argv[1])
