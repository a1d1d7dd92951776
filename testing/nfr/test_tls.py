"""TLS against Mozilla's *intermediate* configuration, checked by sslyze.

A CA made for this run signs a certificate for the instance, installed the
way an operator's certificate would be (nginx_tls_source=provided puts the
same two files in place), so that certificate trust is not what fails:
sslyze then checks protocols, cipher suites, curves, HSTS and the
certificate against the profile.
"""

import json
import re
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def test_ca(host, tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"

    def openssl(*args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=SuperMega NFR test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                   "keyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-out", crt, "-extfile", ext)
    host.run_expect([0], "mkdir -p /root/nfr && cp -a /etc/nginx/tls /root/nfr/tls.before")
    host.run_expect([0], f"cat > /etc/nginx/tls/server.crt <<'EOF'\n{crt.read_text()}EOF")
    host.run_expect([0], "umask 077; cat > /etc/nginx/tls/server.key <<'EOF'\n"
                         f"{key.read_text()}EOF")
    host.run_expect([0], "nginx -t -q && systemctl reload nginx")
    yield ca_crt
    host.run_expect([0], "cp -a /root/nfr/tls.before/. /etc/nginx/tls/ && systemctl reload nginx")


def test_sslyze_mozilla_intermediate(test_ca, https_port, record, tmp_path):
    out_json = tmp_path / "sslyze.json"
    out = subprocess.run(
        [sys.executable, "-m", "sslyze", "--mozilla_config", "intermediate",
         "--certinfo_ca_file", str(test_ca), "--json_out", str(out_json),
         f"localhost:{https_port}{{127.0.0.1}}"],
        capture_output=True, text=True, timeout=900)
    summary = [line for line in out.stdout.splitlines() if "compliant" in line.lower()
               or "FAILED" in line or "*" in line][-12:]
    scan = json.loads(out_json.read_text())["server_scan_results"][0]["scan_result"]
    accepted = {
        proto: [c["cipher_suite"]["name"] for c in
                scan[f"{proto}_cipher_suites"]["result"]["accepted_cipher_suites"]]
        for proto in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3")}
    record("tls", {"sslyze_exit_code": out.returncode, "sslyze_summary": summary,
                   "accepted_cipher_suites": accepted,
                   "checked": "protocols, cipher suites, key exchange groups, certificate "
                              "(type, size, validity, trust via the run's CA), HSTS"})
    assert out.returncode == 0, out.stdout[-3000:]
    # sslyze exits 0 also when it could not reach the server at all (no
    # result to check): the verdict line itself must be there, for this server
    assert "Checking results against Mozilla's \"intermediate\" configuration" in out.stdout
    assert re.search(r"^\s+localhost:\d+: OK - Compliant\.$", out.stdout, re.M), \
        out.stdout[-3000:]
    assert "Not compliant" not in out.stdout
    assert not accepted["ssl_2_0"] and not accepted["ssl_3_0"]
    assert not accepted["tls_1_0"] and not accepted["tls_1_1"]
    assert accepted["tls_1_2"] and accepted["tls_1_3"]
