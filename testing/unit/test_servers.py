"""The app runs as supplied (`python app/app.py` on :5000) and under gunicorn.

These start real server processes on loopback and talk HTTP to them, so they
catch what the in-process test client cannot: import paths, the WSGI entry
point, the port, and that no debugger is ever exposed.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from harness import ROOT

BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_until_serving(proc, url, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return fetch(url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not serving after {timeout}s")


@pytest.fixture
def server():
    procs = []

    def start(argv, url):
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        wait_until_serving(proc, url)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_supplied_entry_point_serves_on_5000(server):
    base = "http://127.0.0.1:5000"
    server([sys.executable, "app/app.py"], base + "/healthz")
    status, headers, body = fetch(base + "/customers/111/accounts/1")
    assert status == 200
    assert json.loads(body)["data"]["account_number"] == "11112222"
    status, headers, body = fetch(base + "/customers/foo")
    assert (status, json.loads(body)) == (404, {"error": "Customer foo does not exist"})
    # Debug off: an unknown path is our JSON 404, never Werkzeug's debugger page.
    status, headers, body = fetch(base + "/console")
    assert status == 404 and headers["Content-Type"] == "application/json"


def test_gunicorn_loads_the_wsgi_entry_point(server):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server([os.path.join(BIN, "gunicorn"), "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "app.app:app"], base + "/healthz")
    status, _, body = fetch(base + "/customers")
    assert status == 200 and len(json.loads(body)) == 3
    status, headers, body = fetch(base + "/customers", method="DELETE")
    assert status == 405 and "GET" in headers["Allow"]
    assert json.loads(body) == {"error": "Method Not Allowed"}
