"""The roles' nginx and gunicorn on this machine's loopback, no VM: the same
templates and defaults a converge uses (rendered by harness/render-edge.yml;
only paths and ports are moved), the edge settings applied by the nginx
role's own supermega-edge-config. Used by the native performance run
(testing/perf) and the edge's request-level checks (testing/unit).

    with NativeStack({"https": 18443, "http": 18080, "gunicorn": 18001},
                     edge_settings={...}) as stack:
        ... https://127.0.0.1:18443 ..., stack.access_log()

Processes are started here and ended by their PID only.
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

from harness import ROOT
from harness.processes import terminate
from harness.vm import unverified_context

BIN = os.path.dirname(sys.executable)
HERE = os.path.dirname(os.path.abspath(__file__))
EDGE_TOOL = os.path.join(ROOT, "ansible", "roles", "nginx", "files", "supermega-edge-config")


def answers(url):
    try:
        with urllib.request.urlopen(url + "/healthz", context=unverified_context(),
                                    timeout=2) as r:
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
        raise AssertionError(f"{url} never answered: {f.read()[-2000:]}")


def render(out, ports, edge_settings, extra_vars=None):
    """The roles' templates, with paths under `out` and loopback-only ports."""
    for sub in ("conf.d", "logs", "tls", "root", "run"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    os.symlink(ROOT, os.path.join(out, "root", "current"))
    version = re.search(r"nginx/([0-9.]+)", subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True).stderr).group(1)
    # no stub_status listener (its fixed port would collide between stacks)
    paths = {"nginx_stub_status_port": 0, **(extra_vars or {}),
             "out": out, "nginx_version": version, "api_root": f"{out}/root",
             "api_config_dir": out, "api_log_dir": f"{out}/logs",
             "nginx_upstream_socket": f"{out}/gunicorn.sock", "nginx_tls_dir": f"{out}/tls",
             "nginx_edge_dir": f"{out}/edge"}
    subprocess.run([os.path.join(BIN, "ansible-playbook"), os.path.join(HERE, "render-edge.yml"),
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
    text = text.replace("listen 80 ", f"listen 127.0.0.1:{ports['http']} ")
    text = text.replace("listen 443 ", f"listen 127.0.0.1:{ports['https']} ")
    with open(api, "w") as f:
        f.write(text)
    # the edge settings' includes, by the role's own tool
    with open(f"{out}/edge.json", "w") as f:
        json.dump(edge_settings, f)
    subprocess.run([sys.executable, EDGE_TOOL, "--settings", f"{out}/edge.json",
                    "--out", f"{out}/edge", "--jail-dir", f"{out}/no-fail2ban"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", f"{out}/tls/server.key", "-out", f"{out}/tls/server.crt",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)


class NativeStack:
    """gunicorn (on the unix socket nginx uses, and on ports["gunicorn"] if
    given) and nginx (ports["https"], ports["http"]) from the roles' config."""

    def __init__(self, ports, edge_settings=None, extra_vars=None):
        self.ports, self.edge_settings = ports, edge_settings or {}
        self.extra_vars = extra_vars
        self.out, self.procs = None, []
        self.https = f"https://127.0.0.1:{ports['https']}"

    def start(self, name, argv, **kw):
        """Start one more process beside the stack (ended with it)."""
        log = os.path.join(self.out, "logs", f"{name}.out")
        with open(log, "w") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True, **kw)
        self.procs.append(proc)
        return proc, log

    def __enter__(self):
        # a server left on one of these ports would answer in place of this
        # stack's: refuse to start beside one
        for port in self.ports.values():
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, (
                    f"127.0.0.1:{port} already answers: a server left from another run? "
                    "(end it by its PID)")
        self.out = tempfile.mkdtemp(prefix="native-edge-")
        os.chmod(self.out, 0o755)  # noqa: S103 (nginx's workers, www-data, reach the socket in it)
        try:
            render(self.out, self.ports, self.edge_settings, self.extra_vars)
            binds = ["--bind", f"unix:{self.out}/gunicorn.sock"]
            if "gunicorn" in self.ports:
                binds += ["--bind", f"127.0.0.1:{self.ports['gunicorn']}"]
            gunicorn, log = self.start("gunicorn", [
                os.path.join(BIN, "gunicorn"), "--config", f"{self.out}/gunicorn.conf.py", *binds],
                cwd=ROOT, env=dict(os.environ, RUNTIME_DIRECTORY=f"{self.out}/run"))
            deadline = time.monotonic() + 20
            while not os.path.exists(f"{self.out}/gunicorn.sock"):
                assert gunicorn.poll() is None and time.monotonic() < deadline, log
                time.sleep(0.1)
            os.chmod(f"{self.out}/gunicorn.sock", 0o666)  # noqa: S103 (nginx's workers: www-data)
            nginx, log = self.start("nginx", ["nginx", "-c", f"{self.out}/nginx.conf",
                                               "-g", "daemon off;"])
            wait_until_answers(self.https, nginx, log)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def access_log(self):
        """nginx's JSON access log lines so far, parsed."""
        with open(os.path.join(self.out, "logs", "access.log")) as f:
            return [json.loads(line) for line in f if line.strip()]

    def __exit__(self, *exc):
        for proc in reversed(self.procs):     # only the processes started here, by PID
            terminate(proc)
        self.procs = []
        if self.out:
            shutil.rmtree(self.out, ignore_errors=True)
