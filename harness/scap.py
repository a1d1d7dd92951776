"""OpenSCAP against an instance of the baked image: the controller's half of
the scan (the machine's half is packer/scripts/scap-scan.sh, the script the
AMI's build runs before its seal).

- content: ComplianceAsCode's data streams from Debian's packages
  (tools/scap-content.sh);
- the tailoring files under compliance/: the profile scanned, and each
  waiver (a deselected rule) with its reason in a remark;
- the scan: the script, the data stream and the tailoring copied to the
  instance, run there as root; results.xml and summary.json copied back;
- the HTML report rendered here from results.xml (`oscap xccdf generate
  report`, native speed), beside them under build/scap/.

    python -m harness.scap waivers compliance/anssi-bp28-intermediary-debian12.xml
"""

import functools
import json
import os
import subprocess
import sys

import defusedxml.ElementTree as ET

from harness import ROOT

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"
SCRIPT = os.path.join(ROOT, "packer", "scripts", "scap-scan.sh")
COMPLIANCE = os.path.join(ROOT, "compliance")
OUT = os.path.join(ROOT, "build", "scap")

# The qcow2's benchmark (CI): ANSSI BP-028 intermediary on Debian 12
# (docs/adr/0020-openscap-anssi-bp28.md says why that level).
QCOW2 = {"content": "ssg-debian12-ds.xml",
         "tailoring": os.path.join(COMPLIANCE, "anssi-bp28-intermediary-debian12.xml"),
         "profile": "xccdf_com.supermegabank_profile_anssi_bp28_intermediary_api"}


def content_dir():
    """Fetch (or reuse) the content; its directory."""
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", "scap-content.sh")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def tailoring(path):
    """(profile id, the profile it extends, {rule id: reason}) of a tailoring
    file; a waiver without a reason is refused."""
    root = ET.parse(path).getroot()
    profiles = root.findall(XCCDF + "Profile")
    if len(profiles) != 1:
        raise ValueError(f"{path}: one Profile expected, found {len(profiles)}")
    profile = profiles[0]
    waivers = {}
    for select in profile.findall(XCCDF + "select"):
        rule = select.get("idref")
        if select.get("selected") != "false":
            raise ValueError(f"{path}: {rule} is selected: a tailoring here only waives")
        remarks = [r.text.strip() for r in select.findall(XCCDF + "remark")
                   if (r.text or "").strip()]
        if len(remarks) != 1 or "\n" in remarks[0]:
            raise ValueError(f"{path}: {rule} needs its reason, one remark of one line")
        if rule in waivers:
            raise ValueError(f"{path}: {rule} is waived twice")
        waivers[rule] = remarks[0]
    return profile.get("id"), profile.get("extends"), waivers


@functools.lru_cache(maxsize=4)
def benchmark(datastream):
    """A data stream's XCCDF Benchmark, parsed once per process (the files
    are ~10 MB; several readers ask for the same one)."""
    return ET.parse(datastream).getroot().find(".//" + XCCDF + "Benchmark")


def profile_chain(datastream, profile_id):
    """A content profile and the profiles it extends, nearest first."""
    profiles = {p.get("id"): p for p in benchmark(datastream).iter(XCCDF + "Profile")}
    if profile_id not in profiles:
        raise KeyError(f"{profile_id} is not a profile of {datastream}")
    chain, pid = [], profile_id
    while pid:
        chain.append(profiles[pid])
        pid = profiles[pid].get("extends")
    return chain


def profile_rules(datastream, profile_id):
    """The rules a content profile selects (its own selects over those of
    any profile it extends)."""
    rules = {r.get("id") for r in benchmark(datastream).iter(XCCDF + "Rule")}
    chosen = set()
    for profile in reversed(profile_chain(datastream, profile_id)):
        for s in profile.findall(XCCDF + "select"):
            if s.get("idref") in rules:
                (chosen.add if s.get("selected") == "true" else chosen.discard)(s.get("idref"))
    return chosen


def scan(instance, content, tailoring_file, profile, out=OUT, remove_scanner="no"):
    """Run the scan on a harness.fleet.Instance; (exit code, summary or
    None, the script's stderr). results.xml, summary.json and oscap.log land
    in out."""
    os.makedirs(out, exist_ok=True)
    s = instance.state
    ssh_opts = ["-i", instance.ssh_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    target = f"{s['user']}@127.0.0.1"
    remote = subprocess.run(["ssh", *ssh_opts, "-p", str(s["port"]), target, "mktemp -d"],
                            check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    subprocess.run(["scp", *ssh_opts, "-P", str(s["port"]), SCRIPT, tailoring_file, content,
                    f"{target}:{remote}/"], check=True, timeout=300)
    env = (f"SCAP_CONTENT={remote}/{os.path.basename(content)} "
           f"SCAP_TAILORING={remote}/{os.path.basename(tailoring_file)} "
           f"SCAP_PROFILE={profile} SCAP_OUT={remote}/out SCAP_REMOVE_SCANNER={remove_scanner}")
    run = subprocess.run(["ssh", *ssh_opts, "-p", str(s["port"]), target,
                          f"sudo {env} sh {remote}/scap-scan.sh; code=$?; "
                          f"sudo chown -R \"$(id -u)\" {remote}/out; exit $code"],
                         capture_output=True, text=True, timeout=3000)
    fetched = subprocess.run(["scp", *ssh_opts, "-P", str(s["port"]),
                              f"{target}:{remote}/out/*", out], capture_output=True, text=True,
                             timeout=300)
    summary = None
    if fetched.returncode == 0 and os.path.isfile(os.path.join(out, "summary.json")):
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
    return run.returncode, summary, run.stderr


def render_report(out=OUT):
    """The HTML report from results.xml, by this machine's oscap."""
    results = os.path.join(out, "results.xml")
    html = os.path.join(out, "report.html")
    with open(html, "w") as f:
        subprocess.run(["oscap", "xccdf", "generate", "report", results], stdout=f, check=True,
                       timeout=600)
    return html


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "waivers":
        profile, extends, waivers = tailoring(args[1])
        print(f"{profile} (extends {extends}): {len(waivers)} waivers")
        for rule, reason in sorted(waivers.items()):
            print(f"  {rule.removeprefix(RULE_PREFIX)}: {reason}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
