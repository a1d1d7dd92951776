"""What the AMI's CIS Ubuntu 24.04 Level 1 Server scan is expected to find,
measured on the nearest machine this project can run: an instance of the
Debian 12 image, scanned with the same rules where Debian's content has them
(`make cis-forecast`, by hand, after `make image`).

ComplianceAsCode gives most rules the same id in every product; a rule's
check is written per product, for the same setting. So the forecast:

- selects, in a tailoring of ssg-debian12-ds.xml written at run time, exactly
  the CIS Level 1 Server rules (read from ssg-ubuntu2404-ds.xml's profile)
  that Debian's content also has;
- scans an instance of the image with it, by packer/scripts/scap-scan.sh
  (harness.scap.scan, the code CI's ANSSI scan runs), into build/cis-forecast/;
- writes docs/cis-forecast.md: every CIS rule that failed on Debian, with
  what compliance/cis-ubuntu2404-level1-server.yml does about it (its
  waiver's reason, or "not waived": the AMI's build would fail on it), and
  the CIS rules Debian's content has no check for (not measurable here).
  `make report` puts that page in docs/verification.md.

    python -m harness.cis_forecast               boot, scan, write the page
    python -m harness.cis_forecast table         the page again from the kept
                                                 results (after a waiver changed)

Not part of CI: it would be a second scan of the same image (about 5 min
under emulation), for a platform CI cannot run; the page says which commit's
image and which scan produced its figures.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as ET
import yaml

from harness import ROOT, scap

CIS = "xccdf_org.ssgproject.content_profile_cis_level1_server"
FORECAST_PROFILE = "xccdf_com.supermegabank_profile_cis_level1_server_on_debian12"
OUT = os.path.join(ROOT, "build", "cis-forecast")
PAGE = os.path.join(ROOT, "docs", "cis-forecast.md")
IMAGE = os.environ.get("IMAGE", os.path.join(ROOT, "build", "image", "supermega-api.qcow2"))


def rule_sets(content):
    cis = scap.profile_rules(os.path.join(content, "ssg-ubuntu2404-ds.xml"), CIS)
    debian = {r.get("id") for r in scap.benchmark(os.path.join(content, "ssg-debian12-ds.xml"))
              .iter(scap.XCCDF + "Rule")}
    return cis, debian


def refinements(content):
    """The CIS profile's refine-value (its chosen values: the SSH idle timeout,
    the grace time, ptrace's scope, ...) that Debian's benchmark can take: the
    same Value with the same selector. Without them the Debian checks would
    compare against Debian's defaults, not CIS's."""
    chosen = {}
    for profile in scap.profile_chain(os.path.join(content, "ssg-ubuntu2404-ds.xml"), CIS):
        for r in profile.findall(scap.XCCDF + "refine-value"):     # the nearest wins
            chosen.setdefault(r.get("idref"), r.get("selector"))
    selectors = {v.get("id"): {x.get("selector") for x in v.findall(scap.XCCDF + "value")}
                 for v in scap.benchmark(os.path.join(content, "ssg-debian12-ds.xml"))
                 .iter(scap.XCCDF + "Value")}
    return {v: sel for v, sel in sorted(chosen.items()) if sel in selectors.get(v, ())}


def write_tailoring(content, out):
    cis, debian = rule_sets(content)
    both = sorted(cis & debian)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2"',
             '                 id="xccdf_com.supermegabank_tailoring_cis_forecast">',
             '  <xccdf:version time="2026-12-07T00:00:00">1</xccdf:version>',
             f"  <xccdf:Profile id={quoteattr(FORECAST_PROFILE)}>",
             "    <xccdf:title>CIS Ubuntu 24.04 Level 1 Server's rules, Debian 12's checks"
             "</xccdf:title>"]
    lines += [f'    <xccdf:select idref="{r}" selected="true"/>' for r in both]
    lines += [f"    <xccdf:refine-value idref={quoteattr(v)} selector={quoteattr(sel)}/>"
              for v, sel in refinements(content).items()]
    lines += ["  </xccdf:Profile>", "</xccdf:Tailoring>", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"{len(cis)} CIS rules; {len(both)} in Debian's content -> {out}; "
          f"profile {FORECAST_PROFILE}", file=sys.stderr)


def page(content, results, origin):
    """docs/cis-forecast.md's lines, from a forecast scan's results.xml."""
    cis, debian = rule_sets(content)
    test = ET.parse(results).getroot().find(".//" + scap.XCCDF + "TestResult")
    measured = {r.get("idref"): r.find(scap.XCCDF + "result").text
                for r in test.iter(scap.XCCDF + "rule-result")}
    with open(os.path.join(scap.COMPLIANCE, "cis-ubuntu2404-level1-server.yml")) as f:
        waivers = yaml.safe_load(f).get("waivers") or {}
    counts = {}
    for rule in cis & debian:
        result = measured.get(rule, "not run")
        counts[result] = counts.get(result, 0) + 1
    failing = [r for r in sorted(cis & debian) if measured.get(r) in ("fail", "error")]
    unwaived = [r for r in failing if r.removeprefix(scap.RULE_PREFIX) not in waivers]
    lines = ["<!-- Written by harness/cis_forecast.py (make cis-forecast); do not edit. -->",
             "",
             f"CIS Ubuntu 24.04 Level 1 Server (`{CIS}` in `ssg-ubuntu2404-ds.xml`, Debian's "
             f"ssg-debderived 0.1.76) selects {len(cis)} rules; {len(cis & debian)} have a check "
             f"in `ssg-debian12-ds.xml`, scanned with the {len(refinements(content))} of CIS's "
             "chosen values (refine-value) that Debian's content takes. " + origin + " Result: "
             + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + "; "
             f"{len(failing) - len(unwaived)} of the {len(failing)} failures waived in "
             "`compliance/cis-ubuntu2404-level1-server.yml`"
             + (f", **{len(unwaived)} not waived** (the AMI's build would fail on them)."
                if unwaived else "."),
             ""]
    if failing:
        lines += ["| Rule | On Debian 12 | The AMI's tailoring |", "|---|---|---|"]
        for rule in failing:
            short = rule.removeprefix(scap.RULE_PREFIX)
            lines.append(f"| `{short}` | {measured[rule]} | "
                         + (f"waived: {waivers[short]}" if short in waivers else "**not waived**")
                         + " |")
        lines.append("")
    missing = sorted(r.removeprefix(scap.RULE_PREFIX) for r in cis - debian)
    lines.append(f"Not measurable here ({len(missing)} rules: Debian's content has no check for "
                 "them; the AMI's build is the first to score them): "
                 + ", ".join(f"`{r}`" for r in missing) + ".")
    return lines, unwaived


def write_page(lines, path=PAGE):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(path)


def forecast():
    """Boot an instance of the image as the fleet boots it, scan it with the
    forecast's tailoring, write the page."""
    from harness.fleet import Instance, free_port, make_ssh_key

    if not os.path.isfile(IMAGE):
        raise SystemExit(f"{IMAGE} not found: bake it first (make image)")
    content = scap.content_dir()
    os.makedirs(OUT, exist_ok=True)
    tailoring_file = os.path.join(OUT, "tailoring.xml")
    write_tailoring(content, tailoring_file)
    # the commit the image was baked from (the bake's record beside it), else this tree's
    record = os.path.join(os.path.dirname(os.path.dirname(IMAGE)), "image-build.json")
    if os.path.isfile(record):
        with open(record) as f:
            revision = json.load(f).get("git_revision", "unknown")
    else:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                  capture_output=True, text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        instance = Instance("cis", work, IMAGE, make_ssh_key(work, "cis"), free_port(),
                            cpus=1, memory=1024)
        instance.boot()
        try:
            instance.wait()
            instance.settle(300)
            code, summary, log = scap.scan(instance, os.path.join(content, "ssg-debian12-ds.xml"),
                                           tailoring_file, FORECAST_PROFILE, out=OUT)
        finally:
            instance.stop()
    if summary is None:
        raise SystemExit(f"the scan gave no results (exit {code}):\n{log[-3000:]}")
    origin = (f"Measured on {time.strftime('%Y-%m-%d', time.gmtime())} on an instance of the "
              f"image of commit `{revision}` (booted with the fleet's user-data), by "
              f"`make cis-forecast`: the scan took {summary.get('seconds', 'n/a')} s "
              "(1 vCPU, TCG).")
    with open(os.path.join(OUT, "origin.txt"), "w") as f:
        f.write(origin)
    lines, unwaived = page(content, os.path.join(OUT, "results.xml"), origin)
    write_page(lines)
    return 1 if unwaived else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", choices=["scan", "table"], default="scan")
    args = p.parse_args(argv)
    if args.what == "scan":
        return forecast()
    with open(os.path.join(OUT, "origin.txt")) as f:
        origin = f.read()
    lines, unwaived = page(scap.content_dir(), os.path.join(OUT, "results.xml"), origin)
    write_page(lines)
    return 1 if unwaived else 0


if __name__ == "__main__":
    sys.exit(main())
