#!/usr/bin/env python3
"""Boot and stop throwaway qemu VMs for the project's tests.

One tool serves Molecule's create/destroy playbooks (every scenario: the
roles, the baked image, the NFR suite), Packer's build seed and the local
Vagrant box, so every VM is made the same way:

- a qcow2 overlay on a base image (the base is never written to; the
  overlay is throwaway, so qemu caches it without flushing: cache=unsafe);
- a NoCloud seed (`seed`: the one writer, cloud-localds) carrying a per-run
  SSH key, a user with passwordless sudo, a hostname and a fresh instance-id;
- qemu user-mode networking with SSH (and any --forward) bound to 127.0.0.1
  only, on free ports;
- the accelerator as a setting (--accel / $VM_ACCEL): kvm where it works,
  tcg where it does not (this project's CI);
- `start` returns only once sshd answers with its banner, and prints the
  connection facts as JSON (with --healthz, also the seconds from starting
  qemu to the first HTTPS `/healthz` 200); `stop` kills by pidfile and
  removes the VM's files.

    python -m harness.vm start --name api --dir DIR --base IMG --ssh-pubkey KEY.pub [...]
    python -m harness.vm stop --dir DIR
    python -m harness.vm seed --dir DIR --user NAME --ssh-pubkey KEY.pub [--iso]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

STATE = "vm.json"
# Under TCG every instruction is emulated: a CPU model without AVX makes
# glibc pick SSE code paths, which TCG runs faster than its AVX emulation.
TCG_CPU = "qemu64"


def log(message):
    print(f"harness.vm: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A host built by the playbook rate-limits new SSH connections per address
# (ufw `limit`: the 6th within 30 s is dropped, and a dropped client's SYN
# retries keep it blocked), and every connection from this machine arrives
# from the same slirp address. So: wait for the boot to finish on the serial
# console first, then probe sshd rarely.
SSH_PROBE_INTERVAL = 10
BOOTED = re.compile(rb"login: |Cloud-init v\. \S+ finished")


def unverified_context():
    """A TLS client context that accepts any certificate: for the project's
    test hosts only, each of which makes its own self-signed certificate at
    first boot (no CA to check it against). The one place the tests turn
    verification off; what the certificate and TLS settings are is checked
    by the TLS tests (sslyze), not here."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_healthy(port, timeout=2):
    """GET https://127.0.0.1:PORT/healthz answers 200 (any certificate: the
    instance makes its own at first boot)."""
    ctx = unverified_context()
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx,
                                    timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for_boot(console, started, deadline, proc_alive, healthz_port=None):
    """Wait until the console shows the boot finished (and, with healthz_port,
    until HTTPS /healthz answers 200). Returns the seconds from `started` to
    the first healthy answer, or None."""
    booted, healthy = False, None
    while time.monotonic() < deadline:
        if not proc_alive():
            raise SystemExit("harness.vm: qemu exited while booting (see the console log)")
        if healthz_port and healthy is None and https_healthy(healthz_port):
            healthy = round(time.monotonic() - started, 1)
        if not booted:
            try:
                with open(console, "rb") as f:
                    booted = bool(BOOTED.search(f.read()))
            except FileNotFoundError:
                pass
        if booted and (healthy is not None or not healthz_port):
            return healthy
        # /healthz is asked every 0.1 s until it answers: the figure is then
        # late by 0.05 s on average (0.25 s at the console's 0.5 s)
        time.sleep(0.1 if healthz_port and healthy is None else 0.5)
    raise SystemExit(f"harness.vm: the boot did not finish before the timeout (see {console})"
                     + (" and /healthz never answered 200" if healthz_port and healthy is None
                        else ""))


def wait_for_ssh_banner(port, deadline, proc_alive):
    """hostfwd accepts TCP before sshd is up, so wait for the banner itself."""
    while time.monotonic() < deadline:
        if not proc_alive():
            raise SystemExit("harness.vm: qemu exited while booting (see the console log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(10)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        time.sleep(SSH_PROBE_INTERVAL)
    raise SystemExit(f"harness.vm: no SSH banner on 127.0.0.1:{port} before the timeout")


def write_seed(directory, name, user, pubkey, extra_user_data, iso=True):
    """The NoCloud seed every VM of this project boots with: `user-data` and
    `meta-data` in DIRECTORY (Packer takes these files as its cd_files), and
    DIRECTORY/seed.iso made from them by cloud-localds (cloud-image-utils)."""
    os.makedirs(directory, exist_ok=True)
    meta = f"instance-id: {name}-{uuid.uuid4()}\nlocal-hostname: {name}\n"
    user_data = "#cloud-config\n" + json.dumps({
        "users": [{
            "name": user,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            # the hardening role's SSH login group (AllowGroups), as the
            # README tells operators to declare it in their user-data
            "groups": ["ssh-users"],
            "lock_passwd": True,
            "ssh_authorized_keys": [pubkey],
        }],
        "ssh_pwauth": False,
        "disable_root": True,
        **extra_user_data,
    }, indent=1) + "\n"
    paths = {}
    for fname, text in (("meta-data", meta), ("user-data", user_data)):
        paths[fname] = os.path.join(directory, fname)
        with open(paths[fname], "w") as f:
            f.write(text)
    if not iso:
        return None
    if not shutil.which("cloud-localds"):
        raise SystemExit("harness.vm: 'cloud-localds' not found (apt install cloud-image-utils)")
    out = os.path.join(directory, "seed.iso")
    subprocess.run(["cloud-localds", out, paths["user-data"], paths["meta-data"]], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def accel_args(accel, cpu):
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", cpu or "host"]
    if accel == "tcg":
        return ["-accel", "tcg,thread=multi", "-cpu", cpu or TCG_CPU]
    raise SystemExit(f"harness.vm: --accel must be 'kvm' or 'tcg', not {accel!r}")


def tap_args(tap):
    """A second NIC on a host tap device (for tests that need a real L2 peer)."""
    if not tap:
        return []
    return ["-netdev", f"tap,id=n1,ifname={tap},script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=n1,mac=52:54:00:77:00:10"]


def use_every_core():
    """Let this process and the qemu it starts run on every core. Started
    from an Ansible task under mitogen's strategy, it would inherit
    mitogen's CPU pinning: on a machine with fewer than four cores mitogen
    pins every process it starts to CPU 1 (ansible_mitogen/affinity.py), so
    two VMs booted by Molecule's create shared one core while the other
    idled (seen in CI, 2026-11-29)."""
    os.sched_setaffinity(0, range(os.cpu_count()))


def start(args):
    directory = os.path.abspath(args.dir)
    if os.path.exists(os.path.join(directory, "qemu.pid")):
        raise SystemExit(f"harness.vm: {directory} already holds a VM; stop it first")
    if not os.path.isfile(args.base):
        raise SystemExit(f"harness.vm: base image {args.base} not found (make base-image)")
    for tool in ("qemu-system-x86_64", "qemu-img"):
        if not shutil.which(tool):
            raise SystemExit(f"harness.vm: '{tool}' not found (apt install qemu-system-x86 "
                             "qemu-utils)")
    os.makedirs(directory, exist_ok=True)
    with open(args.ssh_pubkey) as f:
        pubkey = f.read().strip()

    disk = os.path.join(directory, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                    "-b", os.path.abspath(args.base), disk, args.disk_size], check=True)
    seed_iso = write_seed(os.path.join(directory, "seed"), args.name, args.user, pubkey,
                          json.loads(args.user_data_json))

    ssh_port = free_port()
    forwards = {"ssh": {"host": ssh_port, "guest": 22}}
    hostfwd = [f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22"]
    for spec in args.forward:
        label, _, ports = spec.partition("=")
        host, _, guest = ports.partition(":")
        host_port = int(host) if host not in ("", "0") else free_port()
        forwards[label] = {"host": host_port, "guest": int(guest)}
        hostfwd.append(f"hostfwd=tcp:127.0.0.1:{host_port}-:{guest}")

    pidfile = os.path.join(directory, "qemu.pid")
    console = os.path.join(directory, "console.log")
    argv = [
        "qemu-system-x86_64", *accel_args(args.accel, args.cpu),
        "-name", args.name, "-m", str(args.memory), "-smp", str(args.cpus),
        "-drive", f"file={disk},if=virtio,format=qcow2,discard=unmap,cache=unsafe",
        "-drive", f"file={seed_iso},if=virtio,format=raw,media=cdrom,readonly=on",
        "-netdev", "user,id=n0," + ",".join(hostfwd),
        "-device", "virtio-net-pci,netdev=n0",
        "-device", "virtio-rng-pci",
        *tap_args(args.tap),
        *args.qemu_arg,
        "-display", "none", "-vga", "none",
        "-serial", f"file:{console}", "-monitor", "none",
        "-daemonize", "-pidfile", pidfile,
    ]
    use_every_core()
    started = time.monotonic()
    subprocess.run(argv, check=True)
    with open(pidfile) as f:
        pid = int(f.read().strip())

    def alive():
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    state = {
        "instance": args.name,
        "address": "127.0.0.1",
        "port": ssh_port,
        "user": args.user,
        "identity_file": os.path.abspath(args.ssh_pubkey[:-4])
        if args.ssh_pubkey.endswith(".pub") else "",
        "become_method": "sudo",
        "pid": pid,
        "dir": directory,
        "forwards": forwards,
        "accel": args.accel,
        "argv": argv,
    }
    with open(os.path.join(directory, STATE), "w") as f:
        json.dump(state, f, indent=1)
    healthz_port = forwards[args.healthz]["host"] if args.healthz else None
    try:
        healthy = wait_for_boot(console, started, started + args.timeout, alive, healthz_port)
        wait_for_ssh_banner(ssh_port, started + args.timeout, alive)
    except SystemExit:
        stop_dir(directory)
        raise
    state["boot_seconds"] = round(time.monotonic() - started, 1)
    if healthz_port:
        state["boot_to_healthy_seconds"] = healthy
    with open(os.path.join(directory, STATE), "w") as f:
        json.dump(state, f, indent=1)
    log(f"{args.name}: SSH on 127.0.0.1:{ssh_port} after {state['boot_seconds']}s"
        + (f", HTTPS /healthz 200 after {healthy}s" if healthz_port else "")
        + f" ({args.accel})")
    json.dump(state, sys.stdout)
    print()


def stop_dir(directory, keep=False):
    pidfile = os.path.join(directory, "qemu.pid")
    if os.path.exists(pidfile):
        with open(pidfile) as f:
            text = f.read().strip()
        pid = int(text) if text else 0
        if pid and is_our_qemu(pid, directory):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.2)
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
            log(f"stopped qemu pid {pid}")
        if os.path.exists(pidfile):  # qemu removes it itself on a clean exit
            os.unlink(pidfile)
    if not keep:
        for name in ("disk.qcow2", STATE):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(os.path.join(directory, "seed"), ignore_errors=True)


def is_our_qemu(pid, directory):
    """Only ever signal the qemu that this directory started."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return False
    return "qemu-system" in cmdline and directory in cmdline


def close_control_masters(directory):
    for name in os.listdir(directory):
        if name.startswith("cp-"):
            subprocess.run(["ssh", "-o", f"ControlPath={os.path.join(directory, name)}",
                            "-O", "exit", "x"], check=False, capture_output=True)


def stop(args):
    stop_dir(os.path.abspath(args.dir), keep=args.keep_disk)


def seed(args):
    with open(args.ssh_pubkey) as f:
        pubkey = f.read().strip()
    iso = write_seed(args.dir, args.hostname, args.user, pubkey, json.loads(args.user_data_json),
                     iso=args.iso)
    print(iso or os.path.abspath(args.dir))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("start", help="boot a VM and wait for SSH")
    p.add_argument("--name", required=True)
    p.add_argument("--dir", required=True, help="where the VM's files live")
    p.add_argument("--base", required=True, help="base qcow2 image")
    p.add_argument("--ssh-pubkey", required=True)
    p.add_argument("--user", default="admin")
    p.add_argument("--memory", type=int, default=1024, help="MiB")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--disk-size", default="8G")
    p.add_argument("--accel", default=os.environ.get("VM_ACCEL", "tcg"))
    p.add_argument("--cpu", default=os.environ.get("VM_CPU", ""),
                   help=f"qemu CPU model (default: host under kvm, {TCG_CPU} under tcg)")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--forward", action="append", default=[],
                   help="LABEL=HOSTPORT:GUESTPORT on 127.0.0.1 (HOSTPORT 0: pick a free one)")
    p.add_argument("--tap", default="", help="also attach a NIC on this host tap device")
    p.add_argument("--qemu-arg", action="append", default=[],
                   help="extra qemu argument (repeat)")
    p.add_argument("--user-data-json", default="{}",
                   help="extra cloud-config keys, as JSON")
    p.add_argument("--healthz", default="",
                   help="a --forward LABEL: also wait for HTTPS /healthz 200 there, and time it")
    p.set_defaults(func=start)

    p = sub.add_parser("stop", help="kill the VM by pidfile and remove its files")
    p.add_argument("--dir", required=True)
    p.add_argument("--keep-disk", action="store_true")
    p.set_defaults(func=stop)

    p = sub.add_parser("seed", help="write a NoCloud seed (user-data, meta-data, seed.iso)")
    p.add_argument("--dir", required=True)
    p.add_argument("--hostname", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--ssh-pubkey", required=True)
    p.add_argument("--user-data-json", default="{}")
    p.add_argument("--iso", action="store_true", help="also make DIR/seed.iso")
    p.set_defaults(func=seed)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
