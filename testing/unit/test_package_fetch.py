"""How the roles fetch packages, proven natively with apt and Ansible
themselves against a local repository (one package made here):

- the package_fetch role's apt configuration (its template, its defaults):
  a server that resets the connections fetching the package for a while (a
  mirror that goes away in the middle of a package step, as in issue 34),
  then answers: apt gets the package once it is back, fails without the
  setting, and fails naming the mirror when it never comes back;
- what apt's own retries cannot do: a mirror that refuses connections, or
  lets them time out, is skipped by apt for the rest of its run (apt's
  methods/connect.cc keeps such addresses in `bad_addr`), so apt fails even
  once the mirror is back;
- the roles' package step itself (a role's real apt task, run by
  ansible-playbook on this machine with apt pointed at the local repository
  and a stand-in dpkg): it runs again as a new apt process and outlasts the
  refusing and the silent mirror, back once the first attempt failed. (That
  one attempt alone would not: it is one apt run, the case above.)
  (ADR 0021.)"""

import gzip
import hashlib
import http.server
import lzma
import os
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import threading

import jinja2
import pytest
import yaml

from harness import ROOT

ROLE = os.path.join(ROOT, "ansible", "roles", "package_fetch")

pytestmark = pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")),
                                reason="needs apt and dpkg (a Debian controller)")


def role_config(**overrides):
    """The file the role writes, from its own template and defaults."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        values = {**yaml.safe_load(f), **overrides, "ansible_managed": "test"}
    with open(os.path.join(ROLE, "templates", "fetch.conf.j2")) as f:
        return jinja2.Template(f.read()).render(**values)


class FlakyMirror(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Serves `root`; the first `refuse` requests for a package (.deb) get
    their connection reset unanswered; refuse=None: every one."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root, refuse, port=0):
        self.root, self.refuse, self.package_requests = root, refuse, 0
        super().__init__(("127.0.0.1", port), Handler)


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=args[2].root, **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.endswith(".deb"):
            self.server.package_requests += 1
            refuse = self.server.refuse
            if refuse is None or self.server.package_requests <= refuse:
                # a reset, unanswered: how a mirror gone away mid-step looks to apt
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
        super().do_GET()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    package = tmp_path_factory.mktemp("pkg")
    (package / "DEBIAN").mkdir()
    (package / "DEBIAN" / "control").write_text(
        "Package: supermega-fetch-probe\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: test <test@example.invalid>\nDescription: fetched by a test\n")
    deb = root / "supermega-fetch-probe_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(package), str(deb)],
                   check=True, capture_output=True)
    data = deb.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    index = ((package / "DEBIAN" / "control").read_text()
             + f"Filename: ./{deb.name}\nSize: {len(data)}\nSHA256: {digest}\n").encode()
    # the index as apt asks for it first (compressed), so it asks nothing twice
    (root / "Packages").write_bytes(index)
    (root / "Packages.xz").write_bytes(lzma.compress(index))
    (root / "Packages.gz").write_bytes(gzip.compress(index))
    return root


def apt(work, port, config, *args):
    """apt-get against only the local mirror, with its own lists and cache."""
    for sub in ("lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(f"deb [trusted=yes] http://127.0.0.1:{port}/ ./\n")
    (work / "apt.conf").write_text(config)
    options = ["-o", f"Dir::Etc::sourcelist={work}/sources.list", "-o", "Dir::Etc::sourceparts=-",
               "-o", f"Dir::State::Lists={work}/lists", "-o", f"Dir::Cache={work}/cache",
               "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]
    return subprocess.run(["apt-get", *options, *args], capture_output=True, text=True,
                          cwd=work, env=dict(os.environ, APT_CONFIG=str(work / "apt.conf")),
                          timeout=300)


def serve(mirror):
    threading.Thread(target=mirror.serve_forever, daemon=True).start()
    return mirror.server_address[1]


def fetch(repository, work, refuse, config):
    """`apt-get update` (the mirror answers), then the package step while the
    mirror resets `refuse` package requests."""
    mirror = FlakyMirror(repository, refuse=0)
    try:
        port = serve(mirror)
        update = apt(work, port, config, "update")
        assert update.returncode == 0 and "Err" not in update.stdout, update.stdout
        mirror.refuse = refuse
        step = apt(work, port, config, "download", "supermega-fetch-probe")
        return step, port, mirror.package_requests
    finally:
        mirror.shutdown()


def test_the_package_step_survives_a_mirror_that_is_away_for_a_while(repository, tmp_path):
    step, _, requests = fetch(repository, tmp_path, 3, role_config())
    assert step.returncode == 0, step.stdout + step.stderr
    assert (tmp_path / "supermega-fetch-probe_1.0_all.deb").exists()
    assert requests == 4        # three reset, the fourth answered


def test_without_retries_the_same_outage_fails_the_step(repository, tmp_path):
    """The role's setting is what makes the difference."""
    step, _, requests = fetch(repository, tmp_path, 3, role_config(package_fetch_retries=0))
    # (apt's http method reconnects once by itself within a try: measured)
    assert step.returncode != 0 and requests == 2, step.stdout + step.stderr


def test_a_mirror_that_never_comes_back_fails_naming_it(repository, tmp_path):
    """(Two retries here: the role's five would only make the wait longer.)"""
    step, port, requests = fetch(repository, tmp_path, None,
                                 role_config(package_fetch_retries=2))
    assert step.returncode != 0
    assert f"Failed to fetch http://127.0.0.1:{port}/./supermega-fetch-probe_1.0_all.deb" in \
        step.stderr, step.stderr
    # the first try and every retry, each with the http method's own reconnect
    assert requests == 2 * (1 + 2), requests


# -- connections refused, or never answered: apt's own retries do not help


def apt_options(work, config):
    """The apt configuration a test's apt reads (APT_CONFIG): the role's file,
    the local mirror as the only source, private lists, cache and dpkg status,
    and a stand-in dpkg (nothing is installed on this machine)."""
    for sub in ("lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "status").write_text("")
    settings = {"Dir::Etc::sourcelist": work / "sources.list", "Dir::Etc::sourceparts": "-",
                "Dir::State::Lists": work / "lists", "Dir::Cache": work / "cache",
                "Dir::State::status": work / "status", "Dir::Bin::dpkg": "/bin/true",
                "Debug::NoLocking": "1", "APT::Sandbox::User": "root"}
    (work / "apt.conf").write_text(config + "".join(f'{key} "{value}";\n'
                                                    for key, value in settings.items()))
    return dict(os.environ, APT_CONFIG=str(work / "apt.conf"))


class Outage:
    """The mirror's port while the mirror is away: nothing listening
    (`refused`), or a listener whose accept queue is full, so that the
    kernel drops every new connection's SYN and a client's connect times out
    (`silent`); `end()` puts the mirror back on the same port."""

    def __init__(self, repository, port, kind):
        self.repository, self.port, self.sockets = repository, port, []
        if kind == "silent":
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(0)
            self.sockets.append(listener)
            for _ in range(3):          # (the queue of a backlog of 0 holds one)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                self.sockets.append(filler)
        self.mirror = None

    def end(self):
        for sock in self.sockets:
            sock.close()
        self.mirror = FlakyMirror(self.repository, refuse=0, port=self.port)
        serve(self.mirror)

    def close(self):
        for sock in self.sockets:
            sock.close()
        if self.mirror:
            self.mirror.shutdown()
            self.mirror.server_close()


def through_an_outage(repository, work, config, kind, argv, failed_try):
    """Run argv (apt or ansible-playbook, with APT_CONFIG) once the mirror's
    index is fetched and the mirror is away; the mirror comes back as soon as
    the output shows one failed try (a line matching failed_try), never on a
    timer. Returns (exit code, output, package requests the mirror served)."""
    env = apt_options(work, config)
    mirror = FlakyMirror(repository, refuse=0)
    port = serve(mirror)
    (work / "sources.list").write_text(f"deb [trusted=yes] http://127.0.0.1:{port}/ ./\n")
    update = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert update.returncode == 0, update.stdout + update.stderr
    mirror.shutdown()
    mirror.server_close()
    outage = Outage(repository, port, kind)
    lines = []
    try:
        step = subprocess.Popen(argv, env=env, cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = threading.Timer(240, step.kill)      # bounded, whatever happens
        deadline.start()
        for line in step.stdout:
            lines.append(line)
            if outage.mirror is None and failed_try in line:
                outage.end()
        code = step.wait()
        deadline.cancel()
        return code, "".join(lines), outage.mirror.package_requests if outage.mirror else 0
    finally:
        outage.close()


APT_DOWNLOAD = ["apt-get", "download", "supermega-fetch-probe"]


@pytest.mark.parametrize("kind, reason", [("refused", "Connection refused"),
                                          ("silent", "connection timed out")])
def test_apt_alone_skips_a_mirror_that_refused_or_timed_out_for_the_rest_of_its_run(
        repository, tmp_path, kind, reason):
    """The mirror is back from apt's second try on, and apt never asks it
    again: its retries cannot outlast such an outage (why the roles' package
    step runs apt again instead)."""
    config = role_config(package_fetch_retries=2, package_fetch_timeout=2)
    code, out, requests = through_an_outage(repository, tmp_path, config, kind, APT_DOWNLOAD,
                                            "Ign:1 ")
    assert code != 0 and reason in out, out
    assert out.count("Ign:1 ") == 2, out           # the first try and both retries failed
    assert requests == 0, requests                  # none of them reached the mirror


def role_package_step(role="firewall"):
    """A role's package task as the role writes it."""
    with open(os.path.join(ROOT, "ansible", "roles", role, "tasks", "main.yml")) as f:
        tasks = yaml.safe_load(f)
    return next(t for t in tasks if "ansible.builtin.apt" in t)


def run_step(repository, work, kind, task):
    """The task against this machine (connection local), its package swapped
    for the local repository's; apt as the role's configuration sets it."""
    # (the index is fetched beforehand, so the outage hits the download; the
    # module's cache update, which cache_valid_time implies, is left out: its
    # own tries run in one process, which skips the mirror as apt does)
    module = {key: value for key, value in task["ansible.builtin.apt"].items()
              if key not in ("update_cache", "cache_valid_time")}
    task = dict(task, **{"ansible.builtin.apt": {**module, "name": "supermega-fetch-probe"}})
    playbook = work / "step.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        # (two retries and a one-second pause: the outage ends after the first try)
        "vars": {"firewall_package_retries": 2, "firewall_package_retry_delay": 1},
        "tasks": [task]}]))
    # (the system's Python: the apt module needs python3-apt, a host package)
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-c", "local",
            "-i", "localhost,", "-e", "ansible_python_interpreter=/usr/bin/python3", str(playbook)]
    # (apt's own retries, futile here, cut to one: each would wait seconds)
    config = role_config(package_fetch_retries=1, package_fetch_timeout=2)
    return through_an_outage(repository, work, config, kind, argv, "FAILED - RETRYING")


SYSTEM_PYTHON_HAS_APT = subprocess.run(["/usr/bin/python3", "-c", "import apt_pkg"],
                                       capture_output=True, check=False).returncode == 0 \
    if os.path.exists("/usr/bin/python3") else False


@pytest.mark.skipif(not SYSTEM_PYTHON_HAS_APT or os.geteuid() != 0,
                    reason="Ansible's apt module needs python3-apt (make deps) and root")
@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_the_roles_package_step_outlasts_a_mirror_that_refused_or_timed_out(
        repository, tmp_path, kind):
    code, out, requests = run_step(repository, tmp_path, kind, role_package_step())
    assert code == 0, out
    assert out.count("FAILED - RETRYING") == 1 and requests == 1, out
    assert (tmp_path / "cache" / "archives" / "supermega-fetch-probe_1.0_all.deb").exists()



# -- the bake's upgrade (packer/scripts/upgrade.sh) runs apt again the same way


def run_upgrade_sh(tmp_path, failures):
    """upgrade.sh with stand-ins for apt-get (its first `failures` calls
    fail), apt (nothing upgradable) and sleep (no wait), logging each call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stubs = {
        "apt-get": f'echo "apt-get $*" >> {log}\n'
                   f'n=$(grep -c "^apt-get" {log})\n[ "$n" -gt {failures} ]\n',
        "apt": "exit 0\n",
        "sleep": f'echo "sleep $*" >> {log}\n',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    out = subprocess.run(["sh", os.path.join(ROOT, "packer", "scripts", "upgrade.sh")],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"))
    calls = [line.split(" -o DPkg::Lock::Timeout=600 ")[-1] if line.startswith("apt-get") else line
             for line in log.read_text().splitlines()]
    return out, calls


def test_the_bakes_upgrade_runs_apt_again_after_a_failure(tmp_path):
    out, calls = run_upgrade_sh(tmp_path, failures=2)
    assert out.returncode == 0, out.stderr
    assert calls == ["update", "sleep 20", "update", "sleep 20", "update",
                     "-y -o Dpkg::Options::=--force-confold full-upgrade",
                     "-y autoremove --purge"], calls


def test_the_bakes_upgrade_fails_when_the_mirror_never_comes_back(tmp_path):
    out, calls = run_upgrade_sh(tmp_path, failures=99)
    assert out.returncode != 0
    assert calls.count("update") == 5 and "full-upgrade" not in " ".join(calls), calls
    assert "running it again in 20 s (4 of 4)" in out.stderr, out.stderr
