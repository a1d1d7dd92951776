"""Throughput on this machine, natively (no VM, no emulated TLS): the ratios
the in-VM run (testing/nfr/test_performance.py) cannot give, since there
TLS and everything else run under software emulation.

nginx and gunicorn run on loopback from the roles' own templates and
defaults (harness/native.py; only paths and ports are moved), the app as
supplied runs as `python app/app.py`, and wrk measures a, b and c (see
harness/load.py) in interleaved rounds.
Goal: c/a >= 2.5 (the deployment against the supplied server).
`make perf-native`; figures in build/perf-native.json.

c/b is reported, not held to a bound: b is not a ceiling for c. gunicorn
straight from wrk keeps each of the 32 kept-alive connections on one
worker for the whole round, and the split over the CPUs + 1 workers is
whatever accept() gave; behind nginx, each request goes over one of
nginx's upstream connections, which any idle worker accepts. Measured
here on 2026-12-07 (b and c at 32, 12 and 4 connections, 3 interleaved
rounds of 5 s, twice, nothing else running): b's rounds at 12 and 32
connections spread 2,484-4,596 req/s, c's 3,246-4,094; c/b in CI was 1.09
(305e4b5) and 1.16 (d30e58c). So "nginx costs at most 15 %" is not measured by this
test, and is no longer claimed (ADR 0010's amendment).

Five rounds of 6 s, not three of 10 s (the same 30 s per target): single
rounds of c/a spread from 2.39 to 3.25 on this machine, mostly from the
Flask server's round-to-round swings, and the median of three once fell to
2.49 in CI while this machine's 8-round median was 2.60. The median of five
is decided by the middle of the spread rather than by one slow round; the
goals themselves are unchanged.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from harness import ROOT
from harness.load import interleaved, parse_wrk, summarise, wrk_command
from harness.native import NativeStack, wait_until_answers
from harness.vm import unverified_context

RESULTS = os.path.join(ROOT, "build", "perf-native.json")
ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
SECONDS = int(os.environ.get("PERF_SECONDS", "6"))
CONNECTIONS = 32
PORTS = {"a": 5000, "b": 18001, "c": 18443, "http": 18080}
URLS = {"a": f"http://127.0.0.1:{PORTS['a']}", "b": f"http://127.0.0.1:{PORTS['b']}",
        "c": f"https://127.0.0.1:{PORTS['c']}"}
GOALS = {"c_over_a": 2.5}

pytestmark = pytest.mark.skipif(not (shutil.which("nginx") and shutil.which("wrk")),
                                reason="needs nginx and wrk on this machine (make deps)")


@pytest.fixture(scope="module")
def stack():
    """nginx + gunicorn from the roles' config (harness/native.py), and the
    app as supplied beside them (Flask's own server, :5000)."""
    ports = {"https": PORTS["c"], "http": PORTS["http"], "gunicorn": PORTS["b"]}
    extra = json.loads(os.environ.get("PERF_EXTRA_VARS", "{}"))       # experiments
    edge = json.loads(os.environ.get("PERF_EDGE_SETTINGS", "{}"))     # default: a single host
    with socket.socket() as probe:     # a server left on :5000 would be measured instead
        assert probe.connect_ex(("127.0.0.1", PORTS["a"])) != 0, "127.0.0.1:5000 already answers"
    with NativeStack(ports, edge, extra) as native:
        seed, log = native.start("seed", [sys.executable, "app/app.py"], cwd=ROOT)
        wait_until_answers(URLS["a"], seed, log)
        yield native


def test_native_throughput_ratios(stack):
    def measure(target, _round):
        command = wrk_command(URLS[target], CONNECTIONS, SECONDS, tag=f"native-{target}")
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
        return parse_wrk(out.stdout)

    def warm_up(target):
        subprocess.run(["sh", "-c", wrk_command(URLS[target], CONNECTIONS, 3, tag="warm")],
                       capture_output=True, check=True)

    summary = summarise(interleaved(measure, ROUNDS, warm_up))
    summary.update(rounds=ROUNDS, seconds=SECONDS, connections=CONNECTIONS, goals=GOALS,
                   cpus=os.cpu_count())
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(summary, f, indent=1)
    for target in ("a", "b", "c"):
        assert summary[target]["socket_errors"] == 0 and summary[target]["non_2xx_3xx"] == 0, (
            summary[target])
    ratios = summary["ratios"]
    rps = {t: summary[t]["rps"] for t in ("a", "b", "c")}
    for name, goal in GOALS.items():
        assert ratios[name] >= goal, (
            f"{name} = {ratios[name]} (median over {ROUNDS} rounds) is below the goal {goal}; "
            f"per round {ratios['per_round'][name]}; req/s per round {rps}")


@pytest.mark.parametrize("path", [b"/../../etc/passwd", b"/customers/%00"])
def test_native_unparsable_request_line_gets_json_400(stack, path):
    """nginx refuses these before it has read a Host: still its JSON 400, not a
    connection closed by the names check (found by the NFR suite)."""
    ctx = unverified_context()
    with socket.create_connection(("127.0.0.1", PORTS["c"]), timeout=10) as raw, \
            ctx.wrap_socket(raw) as tls:
        tls.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data[:300]
    assert json.loads(body) == {"error": "Bad Request"}
