"""Testinfra suite for a host built by ansible/site.yml.

The same files verify the Molecule VM (molecule/default) and every instance
booted from the baked image (packer/verify): pytest's --hosts and
--ansible-inventory choose the target, nothing here names one.

Requests to the API are made *inside* the host with a small python3 probe
(python3 is on every host Ansible manages), so no test tool is installed on
the host and the emulated NIC is not what is being measured. Bursts that
must arrive together go as HTTP/2 streams on one connection with curl (in
Debian's and Ubuntu's cloud images).
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from stage_times_pytest import pytest_sessionfinish, pytest_sessionstart  # noqa: E402,F401

# The deployment's names (ansible/group_vars/api/main.yml).
API = "supermega-api"
API_ROOT = f"/opt/{API}"
API_CONFIG_DIR = f"/etc/{API}"
API_LOG_DIR = f"/var/log/{API}"
API_SOCKET = f"/run/{API}/gunicorn.sock"

PROBE = r"""
import http.client, json, ssl, sys
spec = json.loads(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def connect():
    if spec["scheme"] == "https":
        return http.client.HTTPSConnection(
            spec["address"], spec["port"], context=ctx, timeout=spec["timeout"],
            source_address=(spec["source"], 0))
    return http.client.HTTPConnection(spec["address"], spec["port"], timeout=spec["timeout"],
                                      source_address=(spec["source"], 0))
results, conn = [], None
for _ in range(spec["repeat"]):
    if conn is None:
        conn = connect()
    try:
        conn.request(spec["method"], spec["path"], body=spec["body"], headers=spec["headers"])
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        results.append({"status": r.status, "body": body,
                        "headers": [[k.lower(), v] for k, v in r.getheaders()]})
        if r.getheader("connection", "").lower() == "close":
            conn.close(); conn = None
    except (OSError, http.client.HTTPException) as e:
        results.append({"status": 0, "headers": [], "body": "", "error": repr(e)})
        conn = None
print(json.dumps(results))
"""

# N requests sent at once as HTTP/2 streams on ONE connection (curl --parallel
# multiplexes), so they reach nginx together rather than at one client's pace
# (a guest starved by other VMs can still spread them over seconds). Prints
# curl's exit code and stderr, and the answers in PROBE's format.
MULTIPLEXED = r"""
import json, subprocess, sys, tempfile
spec = json.loads(sys.argv[1])
MARK = "\n--8<--"
with tempfile.TemporaryDirectory() as d:
    url = "https://%s:%d%s?n=[1-%d]" % (spec["address"], spec["port"], spec["path"], spec["count"])
    out = subprocess.run(
        ["curl", "--no-progress-meter", "--show-error", "--insecure", "--http2",
         "--parallel", "--parallel-max", str(spec["count"]), "--interface", spec["source"],
         "--max-time", str(spec["timeout"]), "--output", d + "/#1",
         "--write-out",
         MARK + "%{http_code} %{http_version} %{filename_effective}\n%{errormsg}\n%{header_json}",
         url], capture_output=True, text=True, check=False)
    results = []
    for record in out.stdout.split(MARK)[1:]:
        first, error, headers = record.split("\n", 2)
        status, version, filename = first.split(" ", 2)
        try:  # curl makes the file when the first body byte arrives
            with open(filename, encoding="utf-8", errors="replace") as f:
                body = f.read()
        except FileNotFoundError:
            body = ""
        results.append({"status": int(status), "http_version": version, "body": body,
                        "error": error or None,
                        "headers": [[k, v] for k, vs in json.loads(headers).items() for v in vs]})
print(json.dumps({"rc": out.returncode, "stderr": out.stderr, "responses": results}))
"""


class Response:
    def __init__(self, raw):
        self.status = raw["status"]
        self.body = raw["body"]
        self.error = raw.get("error")
        self.header_list = raw["headers"]
        self.headers = {}
        for key, value in raw["headers"]:
            self.headers.setdefault(key, value)

    def json(self):
        return json.loads(self.body)

    def all(self, name):
        return [v for k, v in self.header_list if k == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r} {self.error or ''}>"


@pytest.fixture
def http(host):
    """http(path, ...) -> Response, or a list of them with repeat=N (one after another)."""

    def request(path, method="GET", scheme="https", address="127.0.0.1", port=None,
                headers=None, body=None, repeat=1, source="", timeout=15):
        spec = {"path": path, "method": method, "scheme": scheme, "address": address,
                "port": port or (443 if scheme == "https" else 80), "headers": headers or {},
                "body": body, "repeat": repeat, "source": source, "timeout": timeout}
        cmd = host.run("python3 -c %s %s", PROBE, json.dumps(spec))
        assert cmd.rc == 0, cmd.stderr
        responses = [Response(r) for r in json.loads(cmd.stdout)]
        return responses if repeat > 1 else responses[0]

    return request


@pytest.fixture
def simultaneous(host):
    """simultaneous(path, count, address) -> count Responses to GETs sent at once over HTTPS."""

    def request(path, count, address, port=443, timeout=120):
        spec = {"path": path, "count": count, "address": address, "source": address,
                "port": port, "timeout": timeout}
        cmd = host.run("python3 -c %s %s", MULTIPLEXED, json.dumps(spec))
        assert cmd.rc == 0, cmd.stderr
        result = json.loads(cmd.stdout)
        responses = [Response(r) for r in result["responses"]]
        assert result["rc"] == 0 and len(responses) == count, (result["stderr"], responses)
        assert {r["http_version"] for r in result["responses"]} == {"2"}, responses
        return responses

    return request


@pytest.fixture(scope="module")
def primary_address(host):
    """The host's own non-loopback address: requests from it are rate-limited."""
    return host.check_output("ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'")
