#!/usr/bin/env python3
"""`vagrant up` as the web team would run it, checked end to end, here.

1. `vagrant up --provider=libvirt` with the local box (TCG, loopback-only
   ports: see tools/vagrant-local.sh): boot and a from-scratch converge of
   ansible/site.yml, which must fail nothing;
2. from this machine: https://127.0.0.1:8443/customers returns the seed data
   (and /healthz over plain HTTP on :8080);
3. the roles' Testinfra suite (testing/host) on the VM, through Vagrant's
   own inventory: the host state a `vagrant up` leaves, checked as on
   Molecule's VM (the HTTPS port its clients see: Vagrant's forward);
4. `vagrant destroy -f`: no domain this run defined and no qemu process of
   ours left (domains libvirt already had before `vagrant up`, e.g. another
   checkout's, are named in the log and not ours to judge).

A second `vagrant provision` is not run: idempotence of the same playbook is
Molecule's (molecule/default), and it would add a converge's time, not coverage.
Times go to build/timings.json (vagrant_up_seconds, vagrant_converge_*,
vagrant_verify_*, vagrant_destroy_seconds).
"""

import json
import os
import ssl
import subprocess
import sys
import urllib.request

from harness import ROOT
from harness.timings import load, record
from harness.vm import unverified_context

LOCAL = ["bash", os.path.join(ROOT, "tools", "vagrant-local.sh")]
TIMED = [sys.executable, "-m", "harness.timed"]


def log(message):
    print(f"vagrant-check: {message}", file=sys.stderr, flush=True)


def vagrant_env():
    env = dict(os.environ)
    out = subprocess.run([*LOCAL, "env"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def get(url, insecure=True):
    ctx = unverified_context() if insecure else ssl.create_default_context()
    with urllib.request.urlopen(url, context=ctx, timeout=20) as response:  # noqa: S310 (http/https only)
        return response.status, json.loads(response.read())


def leftovers():
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                             capture_output=True, text=True).stdout.split()
    networks = subprocess.run(["virsh", "-c", "qemu:///system", "net-list", "--all", "--name"],
                              capture_output=True, text=True).stdout.split()
    procs = [line for line in subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True,
                                             text=True).stdout.splitlines()
             if "qemu-system" in line and "guest=supermega" in line.replace(" ", "")]
    return domains, networks, procs


def run_host_suite(env):
    """testing/host against the Vagrant VM (Vagrant's generated inventory),
    as Molecule runs it against its VMs: as root, over one kept SSH
    connection (the host's ufw limits new SSH connections)."""
    inventory = os.path.join(ROOT, ".vagrant", "provisioners", "ansible", "inventory",
                             "vagrant_ansible_inventory")
    control = os.path.join(ROOT, ".vagrant", "cp-%C")
    suite_env = dict(env, SUPERMEGA_HTTPS_PORT=env.get("VAGRANT_HTTPS_PORT", "8443"),
                     ANSIBLE_HOST_KEY_CHECKING="False",
                     ANSIBLE_SSH_ARGS="-o UserKnownHostsFile=/dev/null "
                                      "-o StrictHostKeyChecking=no -o ControlMaster=auto "
                                      f"-o ControlPersist=300s -o ControlPath={control} "
                                      "-o ServerAliveInterval=15")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--durations=15",
         "--hosts=ansible://default", f"--ansible-inventory={inventory}", "--sudo",
         os.path.join(ROOT, "testing", "host")], env=suite_env, cwd=ROOT).returncode


def check(condition, message):
    if not condition:
        raise SystemExit(f"vagrant-check: FAILED: {message}")


def main():
    subprocess.run([*LOCAL, "daemons"], check=True)
    env = dict(vagrant_env(), TIMING_STAGE="vagrant")
    code = 1
    before = set()
    try:
        subprocess.run(["vagrant", "destroy", "-f"], env=env, cwd=ROOT, check=False)
        # Taken after that destroy, so a domain of ours from an earlier run is not in it.
        before = set(leftovers()[0])
        if before:
            log(f"domains libvirt had before this run (not ours): {sorted(before)}")
        record({"vagrant_converge_failed": None})  # this run's converge must write it anew
        up = subprocess.run([*TIMED, "vagrant_up", "--", "vagrant", "up", "--provider=libvirt"],
                            env=env, cwd=ROOT)
        check(up.returncode == 0, "vagrant up failed")
        status, customers = get("https://127.0.0.1:8443/customers")
        check(status == 200 and [c["data"]["name"] for c in customers] == [
            "Deadpool", "Daredevil", "Captain America"], f"/customers: {customers}")
        status, health = get("http://127.0.0.1:8080/healthz")
        check((status, health) == (200, {"status": "ok"}), f"/healthz: {health}")
        log("HTTPS /customers from the host: 200 with the seed data")
        converge = {k: v for k, v in load().items() if k.startswith("vagrant_converge_")}
        check(converge.get("vagrant_converge_failed") == 0, f"the converge's recap: {converge}")
        check(run_host_suite(env) == 0, "the roles' Testinfra suite failed on the Vagrant VM")
        code = 0
    finally:
        subprocess.run([*TIMED, "vagrant_destroy", "--", "vagrant", "destroy", "-f"], env=env,
                       cwd=ROOT, check=False)
        domains, networks, procs = leftovers()
        domains = sorted(set(domains) - before)
        subprocess.run([*LOCAL, "stop-daemons"], check=False)
        if domains or procs:
            log(f"left behind: domains {domains}, qemu {procs}")
            code = 1
        log(f"after destroy: domains {domains or 'none'}, networks {networks or 'none'}, "
            f"qemu processes {len(procs)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
