"""Throughput on this machine, natively (no VM, no emulated TLS): the ratios
the in-VM run (testing/nfr/test_performance.py) cannot give, since there
TLS and everything else run under software emulation.

nginx and gunicorn run on loopback from the roles' own templates and
defaults (rendered by testing/perf/render.yml; only paths and ports are
moved), the app as supplied runs as `python app/app.py`, and wrk measures
a, b and c (see harness/load.py) in interleaved rounds.
Goals: c/b >= 0.85 (nginx with TLS costs gunicorn at most 15 %) and
c/a >= 2.5. `make perf-native`; figures in build/perf-native.json.

Five rounds of 6 s, not three of 10 s (the same 30 s per target): single
rounds of c/a spread from 2.39 to 3.25 on this machine, mostly from the
Flask server's round-to-round swings, and the median of three once fell to
2.49 in CI while this machine's 8-round median was 2.60. The median of five
is decided by the middle of the spread rather than by one slow round; the
goals themselves are unchanged.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from harness import ROOT
from harness.load import interleaved, parse_wrk, summarise, wrk_command
from harness.processes import terminate
from harness.vm import unverified_context

HERE = os.path.dirname(os.path.abspath(__file__))

BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(ROOT, "build", "perf-native.json")
ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
SECONDS = int(os.environ.get("PERF_SECONDS", "6"))
CONNECTIONS = 32
PORTS = {"a": 5000, "b": 18001, "c": 18443, "http": 18080}
URLS = {"a": f"http://127.0.0.1:{PORTS['a']}", "b": f"http://127.0.0.1:{PORTS['b']}",
        "c": f"https://127.0.0.1:{PORTS['c']}"}
GOALS = {"c_over_b": 0.85, "c_over_a": 2.5}

pytestmark = pytest.mark.skipif(not (shutil.which("nginx") and shutil.which("wrk")),
                                reason="needs nginx and wrk on this machine (make deps)")


def answers(url):
    ctx = unverified_context()
    try:
        with urllib.request.urlopen(url + "/healthz", context=ctx, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until_answers(url, proc, log):
    for _ in range(100):
        if answers(url):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    with open(log) as f:
        pytest.fail(f"{url} never answered: {f.read()[-2000:]}")


def render(out):
    """The roles' templates, with paths under `out` and loopback-only ports."""
    for sub in ("conf.d", "logs", "tls", "root", "run"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    os.symlink(ROOT, os.path.join(out, "root", "current"))
    version = re.search(r"nginx/([0-9.]+)", subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True).stderr).group(1)
    paths = {**json.loads(os.environ.get("PERF_EXTRA_VARS", "{}")),   # experiments
             "out": out, "nginx_version": version, "api_root": f"{out}/root",
             "api_config_dir": out, "api_log_dir": f"{out}/logs",
             "nginx_upstream_socket": f"{out}/gunicorn.sock", "nginx_tls_dir": f"{out}/tls",
             "nginx_edge_dir": f"{out}/edge"}
    subprocess.run([os.path.join(BIN, "ansible-playbook"), os.path.join(HERE, "render.yml"),
                    "-e", json.dumps(paths)],
                   check=True, capture_output=True, env=dict(os.environ, ANSIBLE_STRATEGY="linear"))
    conf = os.path.join(out, "nginx.conf")
    with open(conf) as f:
        text = f.read()
    text = (text.replace("/var/log/nginx/", f"{out}/logs/")
            .replace("pid /run/nginx/nginx.pid", f"pid {out}/nginx.pid")
            .replace("include /etc/nginx/conf.d/*.conf;", f"include {out}/conf.d/*.conf;"))
    with open(conf, "w") as f:
        f.write(text)
    api = os.path.join(out, "conf.d", "api.conf")
    with open(api) as f:
        text = f.read()
    text = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", text)
    text = text.replace("listen 80 ", f"listen 127.0.0.1:{PORTS['http']} ")
    text = text.replace("listen 443 ", f"listen 127.0.0.1:{PORTS['c']} ")
    with open(api, "w") as f:
        f.write(text)
    # the edge settings' includes, by the role's own tool (default settings: a single host)
    with open(f"{out}/edge.json", "w") as f:
        json.dump(json.loads(os.environ.get("PERF_EDGE_SETTINGS", "{}")), f)
    subprocess.run([sys.executable, os.path.join(ROOT, "ansible", "roles", "nginx", "files",
                                                 "supermega-edge-config"),
                    "--settings", f"{out}/edge.json", "--out", f"{out}/edge",
                    "--jail-dir", f"{out}/no-fail2ban"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", f"{out}/tls/server.key", "-out", f"{out}/tls/server.crt",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def stack():
    # a server left on one of these ports would answer in place of this
    # stack's and be measured instead: refuse to start beside one
    for port in PORTS.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, (
                f"127.0.0.1:{port} already answers: a server left from another run? "
                "(end it by its PID)")
    out = tempfile.mkdtemp(prefix="perf-native-")
    os.chmod(out, 0o755)  # noqa: S103 (nginx's workers, www-data, reach the socket in it)
    procs = []

    def start(name, argv, **kw):
        log = os.path.join(out, "logs", f"{name}.out")
        proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True, **kw)
        procs.append(proc)
        return proc, log

    try:
        render(out)
        gunicorn, log = start("gunicorn", [
            os.path.join(BIN, "gunicorn"), "--config", f"{out}/gunicorn.conf.py",
            "--bind", f"unix:{out}/gunicorn.sock", "--bind", f"127.0.0.1:{PORTS['b']}"],
            cwd=ROOT, env=dict(os.environ, RUNTIME_DIRECTORY=f"{out}/run"))
        wait_until_answers(URLS["b"], gunicorn, log)
        os.chmod(f"{out}/gunicorn.sock", 0o666)  # noqa: S103 (nginx's workers run as www-data)
        nginx, log = start("nginx", ["nginx", "-c", f"{out}/nginx.conf", "-g", "daemon off;"])
        wait_until_answers(URLS["c"], nginx, log)
        seed, log = start("seed", [sys.executable, "app/app.py"], cwd=ROOT)
        wait_until_answers(URLS["a"], seed, log)
        yield out
    finally:
        for proc in reversed(procs):     # only the processes started here, by PID
            terminate(proc)
        shutil.rmtree(out, ignore_errors=True)


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
