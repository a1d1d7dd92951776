"""Testinfra suite for a host built by ansible/site.yml.

The same files verify the Molecule VM (molecule/default) and every instance
booted from the baked image (packer/verify): pytest's --hosts and
--ansible-inventory choose the target, nothing here names one.

Requests to the API are made *inside* the host with a small python3 probe
(python3 is on every host Ansible manages), so no test tool is installed on
the host and the emulated NIC is not what is being measured.
"""

import json

import pytest

# The deployment's names (ansible/group_vars/api/main.yml).
API = "supermega-api"
API_ROOT = f"/opt/{API}"
API_CONFIG_DIR = f"/etc/{API}"
API_LOG_DIR = f"/var/log/{API}"
API_SOCKET = f"/run/{API}/gunicorn.sock"

PROBE = r"""
import http.client, json, ssl, sys, threading
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
def client(count, results):
    conn = None
    for _ in range(count):
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
# `concurrency` clients on their own connections share `repeat` requests.
n = spec["concurrency"]
shares = [[] for _ in range(n)]
threads = [threading.Thread(target=client, args=(spec["repeat"] // n + (i < spec["repeat"] % n),
                                                 shares[i])) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps([r for share in shares for r in share]))
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
    """http(path, ...) -> Response, or a list of them with repeat=N."""

    def request(path, method="GET", scheme="https", address="127.0.0.1", port=None,
                headers=None, body=None, repeat=1, source="", timeout=15, concurrency=1):
        spec = {"path": path, "method": method, "scheme": scheme, "address": address,
                "port": port or (443 if scheme == "https" else 80), "headers": headers or {},
                "body": body, "repeat": repeat, "source": source, "timeout": timeout,
                "concurrency": concurrency}
        cmd = host.run("python3 -c %s %s", PROBE, json.dumps(spec))
        assert cmd.rc == 0, cmd.stderr
        responses = [Response(r) for r in json.loads(cmd.stdout)]
        return responses if repeat > 1 else responses[0]

    return request


@pytest.fixture(scope="module")
def primary_address(host):
    """The host's own non-loopback address: requests from it are rate-limited."""
    return host.check_output("ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'")
