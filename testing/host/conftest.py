"""Testinfra suite for a host built by ansible/site.yml.

The same files verify the Molecule VM (molecule/default) and every instance
booted from the baked image (packer/verify): pytest's --hosts and
--ansible-inventory choose the target, nothing here names one.

Requests to the API are made *inside* the host with a small python3 probe
(python3 is on every host Ansible manages), so no test tool is installed on
the host and the emulated NIC is not what is being measured. Bursts that
must arrive together go as HTTP/2 streams written in one TLS record
(H2_PROBE), so nginx judges them at one instant however slow the guest.
"""

import base64
import json
import shlex
import time

import pytest

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

# HTTP/2 streams from one client, written so that nginx reads each batch of
# requests in ONE read: the connection preface, SETTINGS and the first
# `at_once` HEADERS frames go out in a single TLS write, so nginx runs every
# one of them through its limits in the same event-loop pass, with the same
# clock reading, however slowly the (emulated) guest runs. Then `paced`
# more, one every `interval` s. With `window0`, the client grants no flow-
# control window: nginx sends response headers but no body, so each stream
# stays open (a request in progress) until the client goes away after `hold`
# s. Every stream carries X-Request-ID <tag>-<n>, which nginx logs with its
# status. Prints {"bodies": {n: body}, "ended": [n...]} (stdlib only: runs in the guest).
H2_PROBE = r"""
import json, socket, ssl, struct, sys, time
spec = json.loads(sys.argv[1])
def frame(kind, flags, stream, payload=b""):
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
    return head + struct.pack(">I", stream) + payload
def literal(name, value):   # HPACK literal without indexing, new name, no Huffman
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
def headers(n):
    block = (literal(":method", "GET") + literal(":scheme", "https")
             + literal(":path", spec["path"]) + literal(":authority", spec["authority"])
             + literal("x-request-id", "%s-%03d" % (spec["tag"], n)))
    return frame(1, 0x5, 2 * n - 1, block)      # HEADERS, END_STREAM | END_HEADERS
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
raw = socket.create_connection((spec["address"], spec["port"]), timeout=30,
                               source_address=(spec["source"], 0))
conn = ctx.wrap_socket(raw, server_hostname=spec["authority"])
assert conn.selected_alpn_protocol() == "h2", conn.selected_alpn_protocol()
settings = struct.pack(">HI", 0x4, 0) if spec["window0"] else b""  # INITIAL_WINDOW_SIZE
first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings)
first += b"".join(headers(n) for n in range(1, spec["at_once"] + 1))
conn.sendall(first)
sent = spec["at_once"]
bodies, ended, buf = {}, set(), b""
conn.settimeout(0.2)
deadline = time.monotonic() + spec["timeout"]
next_at = time.monotonic() + spec["interval"]
hold_until = None
while time.monotonic() < deadline:
    if sent < spec["at_once"] + spec["paced"] and time.monotonic() >= next_at:
        sent += 1
        conn.sendall(headers(sent))
        next_at = time.monotonic() + spec["interval"]
    try:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
    except (socket.timeout, ssl.SSLWantReadError):
        pass
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9:9 + length], buf[9 + length:]
        if kind == 4 and not flags & 0x1:               # their SETTINGS: acknowledge
            conn.sendall(frame(4, 0x1, 0))
        elif kind == 0 and stream:                      # DATA
            n = (stream + 1) // 2
            bodies[n] = bodies.get(n, "") + payload.decode("utf-8", "replace")
        if kind in (0, 1) and flags & 0x1 and stream:   # END_STREAM
            ended.add((stream + 1) // 2)
        if kind == 3 and stream:                        # RST_STREAM
            ended.add((stream + 1) // 2)
    total = spec["at_once"] + spec["paced"]
    if sent == total and not spec["window0"] and len(ended) == total:
        break
    if sent == total and spec["window0"]:
        hold_until = hold_until or time.monotonic() + spec["hold"]
        if time.monotonic() >= hold_until:
            break
conn.close()
print(json.dumps({"bodies": bodies, "ended": sorted(ended), "sent": sent}))
"""

# Raw bytes to nginx from inside the host, over TLS (with a chosen server
# name, or none) or plain TCP; prints what came back (base64), "" if the
# connection closed unanswered.
RAW_PROBE = r"""
import base64, json, socket, ssl, sys
spec = json.loads(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", spec["port"]), timeout=15)
if spec["tls"]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(sock, server_hostname=spec["sni"] or None)
sock.sendall(base64.b64decode(spec["payload"]))
data = b""
try:
    while chunk := sock.recv(65536):
        data += chunk
except (OSError, ssl.SSLError):
    pass
print(base64.b64encode(data).decode())
"""


@pytest.fixture
def raw(host):
    """raw(payload, port=443, tls=True, sni=None) -> the bytes nginx answered (b"": closed)."""

    def send(payload, port=443, tls=True, sni=None):
        spec = {"port": port, "tls": tls, "sni": sni,
                "payload": base64.b64encode(payload).decode()}
        cmd = host.run("python3 -c %s %s", RAW_PROBE, json.dumps(spec))
        assert cmd.rc == 0, cmd.stderr
        return base64.b64decode(cmd.stdout.strip())

    return send


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
def h2_streams(host):
    """h2_streams(tag, address, at_once, paced=0, interval=0.1, window0=False, hold=0)
    -> the probe's result, with nginx's logged status of every stream: {n: status}."""

    def run(tag, address, at_once, paced=0, interval=0.1, window0=False, hold=0.0,
            path="/customers", timeout=60):
        spec = {"tag": tag, "address": address, "source": address, "port": 443,
                "authority": address, "path": path, "at_once": at_once, "paced": paced,
                "interval": interval, "window0": window0, "hold": hold, "timeout": timeout}
        cmd = host.run("python3 -c %s %s", H2_PROBE, json.dumps(spec))
        assert cmd.rc == 0, cmd.stderr
        result = json.loads(cmd.stdout)
        result["logged"] = logged_statuses(host, tag)
        return result

    return run


def logged_statuses(host, tag, attempts=20):
    """{n: status} from nginx's JSON access log, for the request ids <tag>-<n>
    (nginx writes a line once a request ends: wait for the count to settle)."""
    seen, previous = {}, -1
    for _ in range(attempts):
        out = host.check_output("grep -F %s /var/log/nginx/access.log || true",
                                f'"request_id":"{tag}-')
        seen = {}
        for line in out.splitlines():
            entry = json.loads(line)
            seen[int(entry["request_id"].rsplit("-", 1)[1])] = entry["status"]
        if seen and len(seen) == previous:
            return seen
        previous = len(seen)
        time.sleep(0.5)
    return seen


@pytest.fixture
def logged(host):
    """logged(text, path=nginx's access log, not_in=None) -> the lines of PATH
    holding TEXT, once they are there (or at once a failure if they went to
    NOT_IN instead): nginx flushes its buffered log every second, so this
    polls inside the host (one SSH call), bounded, instead of sleeping."""

    def wait(text, path="/var/log/nginx/access.log", timeout=15, not_in=None):
        # not_in: a file the line must not go to (it fails at once when it does)
        wrong = (f"grep -qF -- {shlex.quote(text)} {not_in} && exit 2; " if not_in else "")
        out = host.run(f"for i in $(seq {timeout * 10}); do grep -F -- {shlex.quote(text)} "
                       f"{path} && exit 0; {wrong}sleep 0.1; done; exit 1")
        assert out.rc != 2, f"{text!r} went to {not_in}, not to {path}"
        assert out.rc == 0, f"{text!r} not in {path} after {timeout} s"
        return out.stdout.splitlines()

    return wait


@pytest.fixture(scope="module")
def primary_address(host):
    """The host's own non-loopback address: requests from it are rate-limited."""
    return host.check_output("ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'")
