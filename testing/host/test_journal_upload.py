"""The journal leaves the host: systemd-journal-upload on the host ships it
over TLS to a real systemd-journal-remote (Debian's, started here on the
controller's loopback; the VM reaches it at qemu's 10.0.2.2) with this
run's test PKI (molecule/default/prepare.yml).

1. A collector whose certificate comes from another CA (a stranger) runs
   first: the host must send it nothing, while a request with a known
   X-Request-ID is made (the uploader checks whom it talks to).
2. The real collector replaces it: that first request's id arrives (the
   uploader resumes from its saved cursor: nothing lost in the outage), and
   so does a second request's, within 30 s of that request (measured).

Runs in the roles' scenario (molecule/default), whose host_vars name the
collector; an image's instance ships nothing until one is given to it
(none at boot yet: docs/adr/0016-journal-upload.md), so there it is skipped, saying so.
Figures: build/journal-upload.json -> docs/verification.md.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

import pytest

from harness import ROOT
from harness.processes import terminate

RESULTS = os.path.join(ROOT, "build", "journal-upload.json")
RUN_DIR = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
PKI = os.path.join(RUN_DIR, "logpki")
RECEIVER = "/lib/systemd/systemd-journal-remote"
ARRIVAL_BOUND = 30          # seconds from the request to its id at the collector
STRANGER_WINDOW = 25        # seconds the stranger collector listens (two upload retries)

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME") != "default",
    reason="an image's instance is given no log collector (none at its boot yet): the "
           "shipping check runs on the roles' VM (molecule/default)")


def collector_port(host):
    url = host.ansible.get_variables()["journal_upload_url"]
    return urllib.parse.urlsplit(url).port


class Collector:
    """systemd-journal-remote on loopback with a given certificate, by PID."""

    def __init__(self, port, cert, workdir):
        self.out = os.path.join(workdir, cert)
        os.makedirs(self.out)
        self.log = open(self.out + ".log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [RECEIVER, f"--listen-https=127.0.0.1:{port}", f"--key={PKI}/{cert}.key",
             f"--cert={PKI}/{cert}.crt", f"--output={self.out}/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(1)
        if self.proc.poll() is not None:
            self.log.close()
            with open(self.out + ".log") as f:
                raise AssertionError(f"the collector exited: {f.read()}")

    def received(self):
        files = [os.path.join(self.out, f) for f in os.listdir(self.out)]
        if not files:
            return ""
        out = subprocess.run(["/usr/bin/journalctl", "--no-pager", "-o", "cat",
                              *(f"--file={f}" for f in files)],
                             capture_output=True, text=True)
        return out.stdout

    def stop(self):
        terminate(self.proc)
        self.log.close()


def request_with_id(http, rid):
    answer = http("/healthz-not-a-route", headers={"X-Request-ID": rid})
    assert answer.status == 404, answer       # nginx logs it (JSON 404), with the id


def test_the_uploader_is_enabled_sandboxed_and_keeps_its_key_root_only(host):
    """(Whether it runs depends on the collector: until the shipping test
    starts one, it retries every 10 s; that test checks the running process.)"""
    unit = "systemd-journal-upload.service"
    assert host.service(unit).is_enabled
    show = dict(line.split("=", 1) for line in host.check_output(
        f"systemctl show -p User -p DynamicUser -p NoNewPrivileges -p ProtectSystem "
        f"-p CapabilityBoundingSet -p Restart -p ActiveState {unit}").splitlines())
    assert show["User"] == "systemd-journal-upload" and show["DynamicUser"] == "yes", show
    assert show["NoNewPrivileges"] == "yes" and show["ProtectSystem"] == "strict", show
    assert show["CapabilityBoundingSet"] == "", show
    assert show["Restart"] == "always" and show["ActiveState"] in ("active", "activating"), show
    # the key is root's on disk; the unit reads it as a credential
    assert host.file("/etc/supermega-journal-upload/client.key").mode == 0o600
    # the package's receiver and gateway never run on an API host
    for socket_unit in ("systemd-journal-remote.socket", "systemd-journal-gatewayd.socket"):
        assert host.check_output(f"systemctl is-enabled {socket_unit} || true") == "masked"


def test_the_journal_reaches_the_collector_and_only_the_real_one(host, http, tmp_path):
    port = collector_port(host)
    work = str(tmp_path)
    first, second = f"ship-{uuid.uuid4().hex[:16]}", f"ship-{uuid.uuid4().hex[:16]}"
    figures = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "host": host.backend.host, "bound_seconds": ARRIVAL_BOUND}
    stranger = Collector(port, "stranger", work)
    try:
        request_with_id(http, first)
        time.sleep(STRANGER_WINDOW)
        figures["stranger_received_entries"] = len(stranger.received().splitlines())
    finally:
        stranger.stop()
    collector = Collector(port, "collector", work)
    try:
        request_with_id(http, second)
        sent = time.monotonic()
        arrived = {}
        while time.monotonic() < sent + ARRIVAL_BOUND and len(arrived) < 2:
            text = collector.received()
            for rid in (first, second):
                if rid in text and rid not in arrived:
                    arrived[rid] = round(time.monotonic() - sent, 1)
            time.sleep(1)
        figures.update(first_after_outage_seconds=arrived.get(first),
                       arrival_seconds=arrived.get(second))
        # the process that shipped them is not root
        pid = host.check_output("systemctl show -p MainPID --value systemd-journal-upload")
        figures["uploader_user"] = host.check_output(f"ps -o user= -p {pid}")
    finally:
        collector.stop()
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(figures, f, indent=1)
        shutil.rmtree(work, ignore_errors=True)
    assert figures["stranger_received_entries"] == 0, \
        f"the host shipped its journal to a collector of another CA: {figures}"
    assert arrived.get(second) is not None, \
        f"{second} not at the collector {ARRIVAL_BOUND} s after the request: {figures}"
    assert arrived.get(first) is not None, f"the entry logged in the outage was lost: {figures}"
    assert figures["uploader_user"] not in ("", "root"), figures
