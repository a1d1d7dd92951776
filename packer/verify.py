#!/usr/bin/env python3
"""Verify the baked image: boot two instances from it and test them.

1. Boot instance 1 alone and time boot-to-healthy: from starting qemu to the
   first `GET /healthz` answered 200 over HTTPS (through a loopback port
   forward), with nothing run on the instance but its own boot.
2. Boot instance 2.
3. Run the roles' Testinfra suite (molecule/tests) against both instances:
   one suite, two targets.
4. Run the image-only checks (packer/tests): identities differ, the build
   user and key are gone, the instance needed no configuration.
5. Stop both instances (by pidfile) unless --keep.

Writes build/image-verify.json with the timings; prints a summary.

    packer/verify.py [--image build/image/supermega-api.qcow2] [--keep]
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from qemu_vm import close_control_masters, write_inventory  # noqa: E402

VM_TOOL = [sys.executable, os.path.join(ROOT, "scripts", "qemu_vm.py")]


def log(message):
    print(f"image-verify: {message}", file=sys.stderr, flush=True)


def vm_dir(name):
    return os.path.join(BUILD, "instances", name)


def https_ok(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx,
                                    timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def boot(name, image, key, timeout=600):
    """Start an instance; return (state, seconds from qemu start to HTTPS /healthz 200)."""
    directory = vm_dir(name)
    subprocess.run([*VM_TOOL, "stop", "--dir", directory], check=False,
                   stderr=subprocess.DEVNULL)
    started = time.monotonic()
    proc = subprocess.Popen([*VM_TOOL, "start", "--name", name, "--dir", directory,
                             "--base", image, "--ssh-pubkey", key + ".pub",
                             "--memory", "2048", "--cpus", "2",
                             "--forward", "https=0:443", "--forward", "http=0:80",
                             "--timeout", str(timeout)],
                            stdout=subprocess.PIPE, text=True)
    state_file = os.path.join(directory, "vm.json")
    healthy = None
    while time.monotonic() - started < timeout:
        if os.path.exists(state_file):
            with open(state_file) as f:
                port = json.load(f)["forwards"]["https"]["host"]
            if https_ok(port):
                healthy = time.monotonic() - started
                break
        if proc.poll() not in (None, 0):
            raise SystemExit(f"image-verify: {name} failed to boot")
        time.sleep(1)
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"image-verify: {name} failed to boot")
    if healthy is None:
        raise SystemExit(f"image-verify: {name} never answered /healthz over HTTPS")
    state = json.loads(out)
    log(f"{name}: SSH after {state['boot_seconds']}s, HTTPS /healthz 200 after {healthy:.1f}s")
    return state, round(healthy, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=os.path.join(BUILD, "image", "supermega-api.qcow2"))
    p.add_argument("--keep", action="store_true", help="leave the instances running")
    args = p.parse_args()

    if not os.path.exists(args.image):
        raise SystemExit(f"image-verify: {args.image} not found (make image)")
    os.makedirs(os.path.join(BUILD, "instances"), exist_ok=True)
    key = os.path.join(BUILD, "instances", "admin_key")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "image-verify",
                        "-f", key], check=True)

    names = ["instance-1", "instance-2"]
    results = {"image": args.image}
    try:
        state1, healthy1 = boot(names[0], args.image, key)
        state2, healthy2 = boot(names[1], args.image, key)
        results.update(boot_to_healthy_seconds=healthy1, boot_to_ssh_seconds=state1["boot_seconds"],
                       instance_2_boot_to_healthy_seconds=healthy2)
        inventory = write_inventory(os.path.join(BUILD, "instances", "inventory.yml"),
                                    [state1, state2], key)
        env = dict(os.environ, IMAGE_VERIFY_INVENTORY=inventory,
                   IMAGE_BUILD_IDENTITY=os.path.join(BUILD, "image-build-identity.json"),
                   IMAGE_BUILD_KEY=os.path.join(BUILD, "packer-seed", "build_key"))
        common = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                  "--connection=ansible", f"--ansible-inventory={inventory}"]
        started = time.monotonic()
        # The roles' suite runs as root, exactly as Molecule's verifier runs it,
        # on both instances at once (each run is mostly waiting on its guest).
        suites = []
        for name in names:
            out = open(os.path.join(BUILD, "instances", f"suite-{name}.log"), "w")
            suites.append((name, out, subprocess.Popen(
                [*common, f"--hosts={name}", "--sudo", os.path.join(ROOT, "molecule", "tests")],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)))
        codes = []
        for name, out, proc in suites:
            codes.append(proc.wait())
            out.close()
            with open(out.name) as f:
                print(f"--- Testinfra suite on {name} ({out.name})\n{f.read()}", flush=True)
        results["suite_seconds"] = round(time.monotonic() - started, 1)
        image = subprocess.run([*common, "--hosts=api", os.path.join(ROOT, "packer", "tests")],
                               env=env, cwd=ROOT)
        results["tests_seconds"] = round(time.monotonic() - started, 1)
        results["suite_passed"] = codes == [0, 0]
        results["image_checks_passed"] = image.returncode == 0
    finally:
        if not args.keep:
            close_control_masters(os.path.join(BUILD, "instances"))
            for name in names:
                subprocess.run([*VM_TOOL, "stop", "--dir", vm_dir(name)], check=False)
    with open(os.path.join(BUILD, "image-verify.json"), "w") as f:
        json.dump(results, f, indent=1)
    log(json.dumps(results))
    return 0 if results.get("suite_passed") and results.get("image_checks_passed") else 1


if __name__ == "__main__":
    sys.exit(main())
