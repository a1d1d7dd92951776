#!/usr/bin/env python3
"""`make up` as the web team would run it, checked end to end, here
(make vagrant-check; CI's roles lane).

1. `make up`'s driver (harness/up.py) with a converge that fails (an
   argument the preflight refuses, VAGRANT_ANSIBLE_ARGS): it must exit
   non-zero, say what to run next, and never say "up";
2. `make up`'s driver again, as anyone would: it must converge the VM again
   (its last converge did not complete), from scratch on the local box (TCG,
   loopback-only ports: see tools/vagrant-local.sh), fail nothing, and say
   "up" only once HTTPS /healthz answers from this machine;
3. from this machine: https://127.0.0.1:8443/customers returns the seed data
   (and /healthz over plain HTTP on :8080);
4. the roles' Testinfra suite (testing/host) on the VM, through Vagrant's
   own inventory: the host state a `vagrant up` leaves, checked as on
   Molecule's VM (the HTTPS port its clients see: Vagrant's forward);
5. `vagrant destroy -f`: no domain this run defined and no qemu process of
   ours left (domains libvirt already had before, e.g. another checkout's,
   are named in the log and not ours to judge).

A second converge of a converged VM is not run: idempotence of the same
playbook is Molecule's (molecule/default). Times go to build/timings.json
(vagrant_* from harness/up.py's stages and the stage_times callback,
vagrant_verify_*, vagrant_destroy_seconds).
"""

import json
import os
import ssl
import subprocess
import sys
import urllib.request

import yaml

from harness import ROOT
from harness.timings import load, record
from harness.up import LOCAL, vagrant_env
from harness.vm import unverified_context

TIMED = [sys.executable, "-m", "harness.timed"]


def log(message):
    print(f"vagrant-check: {message}", file=sys.stderr, flush=True)


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


def suite_inventory(env):
    """An inventory for the suite: Vagrant's generated one (its host, port,
    user and key), with the SSH options Molecule gives its VMs
    (.config/molecule/config.yml, the one place they are spelled): one kept
    connection, as the host's ufw limits new SSH connections (6 in 30 s)
    and Testinfra's SSH backend reads its options from the inventory, not
    from ANSIBLE_SSH_ARGS."""
    listed = subprocess.run(
        ["ansible-inventory", "--list", "-i", os.path.join(
            ROOT, ".vagrant", "provisioners", "ansible", "inventory", "vagrant_ansible_inventory")],
        check=True, capture_output=True, text=True, env=env).stdout
    host = json.loads(listed)["_meta"]["hostvars"]["default"]
    with open(os.path.join(ROOT, ".config", "molecule", "config.yml")) as f:
        options = yaml.safe_load(f)["driver"]["ssh_connection_options"]
    control = os.path.join(ROOT, ".vagrant", "cp-%C")
    host["ansible_ssh_common_args"] = " ".join(
        o.replace("${MOLECULE_EPHEMERAL_DIRECTORY}/cp-%C", control) for o in options)
    path = os.path.join(ROOT, ".vagrant", "suite-inventory.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"all": {"hosts": {"default": host}}}, f)
    return path


def run_host_suite(env):
    """testing/host against the Vagrant VM, as Molecule runs it against its
    VMs: as root, over one kept SSH connection; the HTTPS port its clients
    see is Vagrant's forward."""
    suite_env = dict(env, SUPERMEGA_HTTPS_PORT=env.get("VAGRANT_HTTPS_PORT", "8443"),
                     ANSIBLE_HOST_KEY_CHECKING="False")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--durations=15",
         "--hosts=ansible://default", f"--ansible-inventory={suite_inventory(suite_env)}",
         "--sudo", os.path.join(ROOT, "testing", "host")], env=suite_env, cwd=ROOT).returncode


def check(condition, message):
    if not condition:
        raise SystemExit(f"vagrant-check: FAILED: {message}")


REFUSED_BY_PREFLIGHT = "-e package_fetch_retries=99"     # package_fetch allows 0-20


def up(env, extra_args=""):
    """harness/up.py as `make up` runs it; (exit code, what it printed)."""
    out = subprocess.run([sys.executable, "-m", "harness.up"], cwd=ROOT, text=True,
                         env=dict(env, VAGRANT_ANSIBLE_ARGS=extra_args),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sys.stderr.write(out.stdout)
    return out.returncode, out.stdout


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
        refused, said = up(env, REFUSED_BY_PREFLIGHT)
        check(refused != 0, "make up exited 0 with a converge that failed")
        check("is up" not in said, "make up said 'up' after a converge that failed")
        check("next: make up" in said, "make up did not say what to run next")
        record({"vagrant_refused_converge_seconds": load().get("vagrant_converge_seconds")})
        log("a failed converge: make up exited non-zero, said what to run next, never 'up'")
        again, said = up(env)
        check(again == 0, "make up failed after the refused converge")
        check("not converging again" not in said, "make up did not converge again")
        check("Customer Account API is up" in said, "make up did not say 'up'")
        converge = {k: v for k, v in load().items() if k.startswith("vagrant_converge_")}
        check(converge.get("vagrant_converge_failed") == 0, f"the converge's recap: {converge}")
        status, customers = get("https://127.0.0.1:8443/customers")
        check(status == 200 and [c["data"]["name"] for c in customers] == [
            "Deadpool", "Daredevil", "Captain America"], f"/customers: {customers}")
        status, health = get("http://127.0.0.1:8080/healthz")
        check((status, health) == (200, {"status": "ok"}), f"/healthz: {health}")
        log("HTTPS /customers from the host: 200 with the seed data")
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
