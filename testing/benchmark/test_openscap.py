"""OpenSCAP on an instance of the baked image (`make scap`, after `make
image`; CI's roles lane, once its VMs are done).

One instance boots as the fleet boots them (the launch template's
user-data, aws/fleet.yml), and packer/scripts/scap-scan.sh, the script the
AMI's build runs before its seal, scans it as root with Debian's
openscap-scanner against ComplianceAsCode's ANSSI BP-028 intermediary
profile for Debian 12 (trixie's ssg-debian, tools/scap-content.sh),
tailored by compliance/anssi-bp28-intermediary-debian12.xml: every rule the
image does not meet is waived there with its reason, or the scan fails.
Results (results.xml, the HTML report rendered here, summary.json, the
waivers) are kept under build/scap/; `make report` puts the pass rate and
the failing rules in docs/verification.md.
"""

import json
import os
import time

from harness import ROOT, scap
from harness.fleet import Instance, free_port, make_ssh_key

IMAGE = os.environ.get("IMAGE", os.path.join(ROOT, "build", "image", "supermega-api.qcow2"))
RESULTS = os.path.join(ROOT, "build", "scap.json")


def test_the_image_meets_anssi_bp28_intermediary_but_for_its_waivers(tmp_path):
    assert os.path.isfile(IMAGE), f"{IMAGE} not found: bake it first (make image)"
    content = os.path.join(scap.content_dir(), scap.QCOW2["content"])
    profile, extends, waivers = scap.tailoring(scap.QCOW2["tailoring"])
    assert profile == scap.QCOW2["profile"]
    key = make_ssh_key(str(tmp_path), "scap")
    instance = Instance("scap", str(tmp_path), IMAGE, key, free_port(), cpus=1, memory=1024)
    instance.boot()
    started = time.monotonic()
    try:
        instance.wait()
        # the boot's deferred units done: the scan sees the instance as it serves
        assert instance.settle(300) == "running"
        code, summary, log = scap.scan(instance, content, scap.QCOW2["tailoring"], profile)
    finally:
        instance.stop()
    results = {"profile": profile, "extends": extends, "exit_code": code,
               "total_seconds": round(time.monotonic() - started, 1),
               "waivers": {rule.removeprefix(scap.RULE_PREFIX): reason
                           for rule, reason in sorted(waivers.items())},
               **(summary or {})}
    if summary:
        scap.render_report()
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=1)
    assert summary is not None, f"the scan gave no results (exit {code}):\n{log[-3000:]}"
    assert code == 0 and not summary["failing"], (
        f"unwaived failures (fix them in the roles or waive them with a reason in "
        f"{scap.QCOW2['tailoring']}):\n" + "\n".join(
            f"  {f['rule'].removeprefix(scap.RULE_PREFIX)} ({f['result']})"
            for f in summary["failing"]) + f"\n{log[-2000:]}")
