#!/usr/bin/env python3
"""What the AMI's CIS Ubuntu 24.04 Level 1 Server scan is expected to find,
measured on the nearest machine this project can run: an instance of the
Debian 12 image, scanned with the same rules where Debian's content has them.

ComplianceAsCode gives most rules the same id in every product; a rule's
check is written per product, for the same setting. So:

    tools/cis-forecast.py tailoring OUT.xml
        a tailoring of ssg-debian12-ds.xml selecting exactly the CIS Level 1
        Server rules (read from ssg-ubuntu2404-ds.xml) that Debian's content
        also has; scan an instance with it (harness.scap.scan, by hand)
    tools/cis-forecast.py table RESULTS.xml
        the table for docs/verification.md: every CIS rule that failed on
        Debian, with what compliance/cis-ubuntu2404-level1-server.yml does
        about it (its waiver's reason), and the CIS rules Debian's content
        does not have (not measurable here)

The scan is not part of CI (it would be a second scan of the same instance,
for a platform CI does not run); its figures in docs/verification.md say
which run produced them.
"""

import argparse
import os
import sys
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as ET
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import scap  # noqa: E402

CIS = "xccdf_org.ssgproject.content_profile_cis_level1_server"
FORECAST_PROFILE = "xccdf_com.supermegabank_profile_cis_level1_server_on_debian12"


def rule_sets(content):
    cis = scap.profile_rules(os.path.join(content, "ssg-ubuntu2404-ds.xml"), CIS)
    benchmark = ET.parse(os.path.join(content, "ssg-debian12-ds.xml")).getroot().find(
        ".//" + scap.XCCDF + "Benchmark")
    debian = {r.get("id") for r in benchmark.iter(scap.XCCDF + "Rule")}
    return cis, debian


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
    lines += ["  </xccdf:Profile>", "</xccdf:Tailoring>", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"{len(cis)} CIS rules; {len(both)} in Debian's content -> {out}; "
          f"profile {FORECAST_PROFILE}", file=sys.stderr)


def table(content, results):
    cis, debian = rule_sets(content)
    test = ET.parse(results).getroot().find(".//" + scap.XCCDF + "TestResult")
    measured = {r.get("idref"): r.find(scap.XCCDF + "result").text
                for r in test.iter(scap.XCCDF + "rule-result")}
    with open(os.path.join(scap.COMPLIANCE, "cis-ubuntu2404-level1-server.yml")) as f:
        waivers = yaml.safe_load(f).get("waivers") or {}
    counts = {}
    for rule in cis & debian:
        counts[measured.get(rule, "not run")] = counts.get(measured.get(rule, "not run"), 0) + 1
    print(f"CIS Level 1 Server: {len(cis)} rules; {len(cis & debian)} have a Debian 12 check, "
          "measured on an instance of the image: "
          + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".\n")
    print("| Rule | On Debian 12 | The AMI's tailoring |\n|---|---|---|")
    for rule in sorted(cis & debian):
        result = measured.get(rule, "not run")
        if result in ("fail", "error"):
            short = rule.removeprefix(scap.RULE_PREFIX)
            print(f"| `{short}` | {result} | "
                  f"{'waived: ' + waivers[short] if short in waivers else '**not waived**'} |")
    missing = sorted(r.removeprefix(scap.RULE_PREFIX) for r in cis - debian)
    print(f"\nNot measurable here ({len(missing)}: Debian's content has no check for them): "
          + ", ".join(f"`{r}`" for r in missing) + ".")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["tailoring", "table"])
    p.add_argument("path")
    args = p.parse_args(argv)
    content = scap.content_dir()
    if args.what == "tailoring":
        write_tailoring(content, args.path)
    else:
        table(content, args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
