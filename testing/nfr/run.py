#!/usr/bin/env python3
"""The non-functional suite: performance, load, faults, bad input, TLS, network.

Boots one instance of the baked image (or any converged qcow2), wires it into
a small lab of network namespaces, runs testing/nfr/test_*.py against it, and
tears everything down. The suite's figures go to build/nfr-results.json, and
build/verification-report.md is written from them.

    testing/nfr/run.py [--image build/image/supermega-api.qcow2] [--keep]

Lab (all on this machine, nothing else is touched):

    instance NIC 1: qemu user-mode, SSH/HTTPS/HTTP forwarded on 127.0.0.1
    instance NIC 2: tap "nfrtap0" --- bridge in netns "nfr-lab" --- veth --- netns "nfr-scan"
                    192.168.77.10/24                                          192.168.77.20/24
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
WORK = os.path.join(BUILD, "nfr")
VM_TOOL = [sys.executable, os.path.join(ROOT, "scripts", "qemu_vm.py")]
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from qemu_vm import close_control_masters, write_inventory  # noqa: E402

LAB_NS, SCAN_NS, TAP = "nfr-lab", "nfr-scan", "nfrtap0"
VM_LAB_IP, SCAN_IP = "192.168.77.10", "192.168.77.20"


def log(message):
    print(f"nfr: {message}", file=sys.stderr, flush=True)


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def lab_up():
    lab_down()
    for ns in (LAB_NS, SCAN_NS):
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "set", TAP, "netns", LAB_NS)
    sh("ip", "-n", LAB_NS, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", LAB_NS, "link", "set", TAP, "master", "br0")
    sh("ip", "-n", LAB_NS, "link", "add", "veth-lab", "type", "veth", "peer", "name", "veth-scan",
       "netns", SCAN_NS)
    sh("ip", "-n", LAB_NS, "link", "set", "veth-lab", "master", "br0")
    for dev in ("br0", TAP, "veth-lab", "lo"):
        sh("ip", "-n", LAB_NS, "link", "set", dev, "up")
    sh("ip", "-n", SCAN_NS, "addr", "add", f"{SCAN_IP}/24", "dev", "veth-scan")
    for dev in ("veth-scan", "lo"):
        sh("ip", "-n", SCAN_NS, "link", "set", dev, "up")


def lab_down():
    for ns in (SCAN_NS, LAB_NS):
        sh("ip", "netns", "del", ns, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=os.path.join(BUILD, "image", "supermega-api.qcow2"))
    p.add_argument("--keep", action="store_true", help="leave the instance and the lab up")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k tls)")
    args = p.parse_args()
    if not os.path.exists(args.image):
        raise SystemExit(f"nfr: {args.image} not found (make image)")
    os.makedirs(WORK, exist_ok=True)
    key = os.path.join(WORK, "admin_key")
    if not os.path.exists(key):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nfr", "-f", key)
    vm = os.path.join(WORK, "instance")
    subprocess.run([*VM_TOOL, "stop", "--dir", vm], check=False, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    out = subprocess.run([*VM_TOOL, "start", "--name", "nfr-instance", "--dir", vm,
                          "--base", args.image, "--ssh-pubkey", key + ".pub", "--memory", "2048",
                          "--cpus", "2", "--tap", TAP, "--forward", "https=0:443",
                          "--forward", "http=0:80"], check=True, stdout=subprocess.PIPE, text=True)
    state = json.loads(out.stdout)
    log(f"instance up in {time.monotonic() - started:.0f}s, SSH on 127.0.0.1:{state['port']}")
    code = 1
    try:
        lab_up()
        inventory = write_inventory(os.path.join(WORK, "inventory.yml"), [state], key)
        env = dict(os.environ, NFR_STATE=os.path.join(vm, "vm.json"), NFR_KEY=key,
                   NFR_LAB_NS=LAB_NS, NFR_SCAN_NS=SCAN_NS, NFR_VM_LAB_IP=VM_LAB_IP,
                   NFR_SCAN_IP=SCAN_IP, NFR_RESULTS=os.path.join(BUILD, "nfr-results.json"),
                   NFR_IMAGE=args.image)
        if os.path.exists(env["NFR_RESULTS"]):
            os.unlink(env["NFR_RESULTS"])
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--sudo",
             "--connection=ansible", f"--ansible-inventory={inventory}", "--hosts=api",
             os.path.join(ROOT, "testing", "nfr"), *args.pytest_args], env=env, cwd=ROOT).returncode
        subprocess.run([sys.executable, os.path.join(ROOT, "testing", "nfr", "report.py")],
                       check=False)
    finally:
        if not args.keep:
            close_control_masters(WORK)
            subprocess.run([*VM_TOOL, "stop", "--dir", vm], check=False)
            lab_down()
    return code


if __name__ == "__main__":
    sys.exit(main())
