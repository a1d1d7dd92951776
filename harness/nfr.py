"""Helpers of the non-functional suite (testing/nfr), imported by its tests.

A module of its own, not conftest.py: in the image scenario this suite runs
in one pytest session with the roles' suite and the image checks, each with
a conftest.py; `from conftest import` would get whichever was loaded last.
"""

import os
import time
import urllib.request

from harness.deployment import API  # noqa: F401 (the service's name, read from the roles)
from harness.load import parse_wrk, wrk_command
from harness.vm import close_control_masters, unverified_context, wait_for_ssh_banner

RUN_DIR = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")


insecure_context = unverified_context


def healthy(port, timeout=3):
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz",
                                    context=insecure_context(), timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def run_wrk(host, url, connections, seconds, threads=2, tag="nfr", background=False,
            logged_only=False):
    """Run wrk in the instance; returns its summary dict (or the pid if background)."""
    cmd = wrk_command(url, connections, seconds, threads=threads, tag=tag,
                      logged_only=logged_only, script="/root/nfr/routes.lua")
    if background:
        out = host.check_output(f"nohup sh -c '{cmd} > /root/nfr/{tag}.out 2>&1' "
                                "> /dev/null 2>&1 & echo $!")
        return int(out)
    return parse_wrk(host.check_output(cmd))


def wait_background_wrk(host, pid, tag, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and host.run(f"kill -0 {pid}").rc == 0:
        time.sleep(1)
    return parse_wrk(host.check_output(f"cat /root/nfr/{tag}.out"))


def wait_for_ssh_after_reboot(vm, timeout=300):
    """The old SSH control master died with the reboot: drop it, and wait
    (rarely: the firewall rate-limits new SSH connections) for sshd."""
    close_control_masters(RUN_DIR)
    try:
        wait_for_ssh_banner(vm["port"], time.monotonic() + timeout, lambda: True)
    except SystemExit as gone:
        raise AssertionError(f"sshd did not come back after the reboot: {gone}") from None


def rss_kib(host, names):
    out = host.check_output("ps -eo rss=,comm=")
    return sum(int(line.split()[0]) for line in out.splitlines()
               if line.split()[1] in names or line.split()[1].startswith("gunicorn"))
