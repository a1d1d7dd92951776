"""The package_fetch role's apt configuration, proven with apt itself,
natively: a local repository (one package made here) whose server resets
the connections that fetch the package for a while (a mirror that goes
away in the middle of a package step, as in issue 34), then answers; apt
with the role's configuration (its template, its defaults) gets the package
once the server is back, fails without it, and fails naming the mirror when
it never comes back."""

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

    def __init__(self, root, refuse):
        self.root, self.refuse, self.package_requests = root, refuse, 0
        super().__init__(("127.0.0.1", 0), Handler)


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
