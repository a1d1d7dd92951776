"""Boot to healthy, an instance alone (`make boot-alone`, after `make image`;
CI runs it once both VM lanes are done, so no other VM shares the cores).

Each instance of the baked image boots as the fleet boots them: the launch
template's user-data (aws/fleet.yml) and its instance type's size (t3.small:
2 vCPUs, 2 GiB), under TCG, with nothing else running. Boot to healthy is
from starting qemu to the first HTTPS `/healthz` 200 (harness/vm.py).
After it, the boot is left to finish (`systemctl is-system-running --wait`),
and `systemd-analyze time`, the top of `blame` and nginx's critical chain
are read on the instance.

The bound is a ratio, not a number of seconds: this shared machine's speed
moves with the hour (the same image measured 26-28 s and 35-47 s on one
day), so an absolute bound passed or failed by the hour, not by the image.
The reference is measured in the same run, interleaved with the image's
boots, on the same vCPUs and memory: the unhardened base image the image
is baked from (the local Debian 12 base; cloud-init and sshd, nothing of
this project's), from starting qemu to its console's login prompt and its
SSH banner. The image must serve (HTTPS /healthz 200) within
RATIO_BOUND times the median of that (see RATIO_BOUND for the figures).

It refuses to start beside another VM, and records the host's load average
before each boot next to the figure (build/boot-alone.json; `make report`
shows it).
"""

import json
import os
import statistics
import subprocess
import time

from harness import ROOT
from harness.fleet import Instance, free_port, make_ssh_key

IMAGE = os.environ.get("IMAGE", os.path.join(ROOT, "build", "image", "supermega-api.qcow2"))
RESULTS = os.path.join(ROOT, "build", "boot-alone.json")
COUNT = int(os.environ.get("BOOT_ALONE_COUNT", "3"))
CPUS, MEMORY = 2, 2048          # aws/fleet.yml's InstanceType default, t3.small
# The image's median boot to healthy over the base image's median boot to
# login and SSH, booted alternately in the same run. Measured by hand
# (2026-12-07, 05:15 UTC, nothing else running, the CI image of 305e4b5):
# base 47.4, 37.8, 43.9 s; image 24.6, 24.8, 25.4 s: ratio 0.56. An hour
# before, the same image took 41-47 s in CI: the absolute 40 s bound failed
# by the hour, the ratio moves with the machine. The bound catches the boot
# path growing back: cloud-init's local stage alone was ~11 s of a 37-s
# boot (ADR 0014), which would take the ratio past it.
RATIO_BOUND = 0.75
ANALYZE = ("systemd-analyze time; systemd-analyze blame --no-pager | head -n 8; echo ---; "
           "systemd-analyze critical-chain --no-pager nginx.service")


def other_vms():
    """qemu processes running on this machine (pid: first words of argv)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"qemu-system"):
            found[int(pid)] = b" ".join(argv[:6]).decode(errors="replace")
    return found


def base_image():
    """The unhardened base the image is baked from (built or reused by
    packer/base-image/build.sh, which prints its path)."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    out = subprocess.run(["bash", os.path.join(ROOT, "packer", "base-image", "build.sh")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def alone():
    others = other_vms()
    assert not others, f"not alone: other VMs are running: {others}"
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def boot_reference(n, work, key, base):
    """The base image, same size, its default seed: qemu start to login and SSH."""
    load = alone()
    reference = Instance(f"base-{n}", work, base, key, free_port(), cpus=CPUS, memory=MEMORY,
                         fleet=False)
    reference.boot()
    try:
        state = reference.wait()
    finally:
        reference.stop()
    return {"instance": reference.name, "vcpus": CPUS, "memory_mib": MEMORY,
            "ssh": state["boot_seconds"], "host_load_before": load}


def boot_once(n, work, key):
    load = alone()
    instance = Instance(f"alone-{n}", work, IMAGE, key, free_port(), cpus=CPUS, memory=MEMORY)
    instance.boot()
    try:
        state = instance.wait()
        # (the fleet check's bound; ssh itself gives up after 120 s)
        settled = instance.settle(100)
        analyze = instance.ssh(ANALYZE)
    finally:
        instance.stop()
    assert analyze.returncode == 0, analyze.stderr
    analyzed, _, chain = analyze.stdout.partition("---\n")
    return {"instance": instance.name, "vcpus": CPUS, "memory_mib": MEMORY,
            "healthy": state["boot_to_healthy_seconds"], "ssh": state["boot_seconds"],
            "settled": settled, "host_load_before": load,
            "analyze": [line.strip() for line in analyzed.splitlines() if line.strip()],
            "critical_chain": [line.rstrip() for line in chain.splitlines()
                               if line.strip() and not line.startswith("The time ")]}


def test_the_image_serves_within_the_base_images_own_boot(tmp_path):
    assert os.path.isfile(IMAGE), f"{IMAGE} not found: bake it first (make image)"
    base = base_image()
    key = make_ssh_key(str(tmp_path), "boot-alone")
    boots, references = [], []
    results = {"ratio_bound": RATIO_BOUND, "image": IMAGE, "base_image": base, "boots": boots,
               "references": references,
               "run": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        for n in range(1, COUNT + 1):     # interleaved: the hour moves both alike
            references.append(boot_reference(n, str(tmp_path), key, base))
            boots.append(boot_once(n, str(tmp_path), key))
            # a unit that failed could have made the boot faster: count only whole boots
            assert boots[-1]["settled"] == "running", boots[-1]
        results["median_healthy"] = round(statistics.median(b["healthy"] for b in boots), 1)
        results["median_reference"] = round(statistics.median(r["ssh"] for r in references), 1)
        results["ratio"] = round(results["median_healthy"] / results["median_reference"], 2)
    finally:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=1)
    assert results["ratio"] <= RATIO_BOUND, results
