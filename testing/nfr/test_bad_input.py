"""Hostile and malformed input through nginx, from the controller (through
the forwarded HTTPS port, so the rate limit applies): every answer is the
right 4xx as JSON, nothing is a 5xx, and the service stays up.
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

from harness import ROOT
from harness.nfr import healthy, insecure_context


def raw_request(port, payload, read_timeout=15):
    """Send bytes over TLS; return (status, headers+body text) or (None, reason)."""
    ctx = insecure_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.settimeout(read_timeout)
            tls.sendall(payload)
            data = b""
            try:
                while chunk := tls.recv(65536):
                    data += chunk
            except (TimeoutError, ssl.SSLError, ConnectionResetError):
                pass
    text = data.decode("latin-1")
    if not text.startswith("HTTP/1.1 "):
        return None, text
    return int(text[9:12]), text


def body_json(text):
    return json.loads(text.split("\r\n\r\n", 1)[1])


def get(path, extra=b""):
    head = b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    return head + extra + b"\r\n"


@pytest.fixture(autouse=True)
def pace():
    """Stay under the per-address rate limit the forwarded port is subject to."""
    yield
    time.sleep(0.3)


def test_schemathesis_through_nginx(https_port, record, tmp_path):
    report = tmp_path / "junit.xml"
    out = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run",
         os.path.join(ROOT, "docs", "openapi.yaml"),
         "--url", f"https://127.0.0.1:{https_port}", "--tls-verify", "false",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", "30", "--rate-limit", "10/s", "--seed", "1",
         "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, timeout=1800)
    record("bad_input", {"schemathesis_exit_code": out.returncode,
                         "schemathesis_summary": out.stdout.strip().splitlines()[-3:]})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.parametrize("path", [
    b"/customers/..%2f..%2fetc%2fpasswd", b"/../../etc/passwd", b"/customers/%2e%2e/%2e%2e/",
    b"/customers/111/../../app/app.py", b"/customers/%00", b"/customers/111%0d%0aX-Injected:%201",
    b"/%252e%252e/%252e%252e/etc/passwd", b"/customers/" + b"9" * 2000, b"/.git/config",
    b"/app/app.py", b"/customers;jsessionid=1",
])
def test_encoded_and_traversal_paths_get_json_4xx(https_port, path):
    status, text = raw_request(https_port, get(path))
    assert status is not None and 400 <= status < 500, (path, status, text[:300])
    assert "application/json" in text.split("\r\n\r\n")[0].lower()
    assert "root:" not in text and "import" not in text
    assert "x-injected" not in text.split("\r\n\r\n")[0].lower()


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"TRACE",
                                    b"CONNECT", b"PROPFIND", b"FOO"])
def test_every_non_get_method_gets_json_405(https_port, method):
    request = method + b" /customers HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n" \
        b"Connection: close\r\n\r\n"
    status, text = raw_request(https_port, request)
    assert status == 405, (method, status, text[:300])
    head = text.split("\r\n\r\n")[0].lower()
    assert "application/json" in head and "\r\nallow: get, head" in head, head
    assert body_json(text) == {"error": "Method Not Allowed"}


def test_oversized_header_gets_json_431(https_port):
    status, text = raw_request(https_port, get(b"/customers", b"X-Big: " + b"a" * 16000 + b"\r\n"))
    assert status == 431, text[:300]
    assert body_json(text) == {"error": "Request Header Fields Too Large"}


def test_too_many_headers_get_json_431(https_port):
    # 200 headers of 200 bytes: more than nginx's 4 x 8k header buffers hold
    extra = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(200))
    status, text = raw_request(https_port, get(b"/customers", extra))
    assert status == 431, text[:300]
    assert body_json(text) == {"error": "Request Header Fields Too Large"}


def test_oversized_body_gets_json_413(https_port):
    body = b"x" * 100_000
    request = (b"POST /customers HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
    status, text = raw_request(https_port, request)
    # the method is refused first (nginx's server-level check), before the body is read
    assert status == 405, text[:300]
    get_with_body = get(b"/customers", b"Content-Length: %d\r\n" % len(body))[:-2] + b"\r\n" + body
    status, text = raw_request(https_port, get_with_body)
    assert status == 413, text[:300]
    assert body_json(text) == {"error": "Request Entity Too Large"}


def test_slow_headers_are_cut_off(https_port, record):
    """slowloris: headers trickled in are closed by client_header_timeout (10 s)."""
    ctx = insecure_context()
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"GET /customers HTTP/1.1\r\nHost: localhost\r\n")
            started = time.monotonic()
            closed_after = None
            tls.settimeout(1)
            for i in range(60):
                try:
                    tls.sendall(b"X-Slow-%d: 1\r\n" % i)
                    if tls.recv(1024) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except (ssl.SSLError, OSError):
                    closed_after = time.monotonic() - started
                    break
                time.sleep(1)
    record("bad_input", {"slow_headers_closed_after_s": round(closed_after or -1, 1)})
    assert closed_after is not None and closed_after < 20, closed_after


def test_service_still_up(https_port):
    assert healthy(https_port)
