#!/usr/bin/env python3
"""Write an XCCDF 1.2 tailoring file from a YAML list of waivers, so the
waivers are reviewed as plain text and the XML is never edited by hand.

    tools/tailoring.py compliance/anssi-bp28-intermediary-debian12.yml

The YAML: id (the tailoring's), profile (the tailored profile's id),
extends (ComplianceAsCode's profile), title, and waivers: {rule: reason}
(rule without the xccdf_org.ssgproject.content_rule_ prefix; the reason one
line). Writes the .xml beside it; `--check` only says whether it is current
(make lint).
"""

import argparse
import sys
from xml.sax.saxutils import escape, quoteattr

import yaml

RULE = "xccdf_org.ssgproject.content_rule_"


def render(spec):
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             "<!-- Written by tools/tailoring.py from the .yml beside it; do not edit. -->",
             '<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2"',
             f"                 id={quoteattr(spec['id'])}>",
             '  <xccdf:version time="2026-12-07T00:00:00">1</xccdf:version>',
             f"  <xccdf:Profile id={quoteattr(spec['profile'])}",
             f"                 extends={quoteattr(spec['extends'])}>",
             f"    <xccdf:title>{escape(spec['title'])}</xccdf:title>"]
    for rule, reason in sorted((spec.get("waivers") or {}).items()):
        reason = " ".join(str(reason).split())
        lines += [f'    <xccdf:select idref="{RULE}{rule}" selected="false">',
                  f"      <xccdf:remark>{escape(reason)}</xccdf:remark>",
                  "    </xccdf:select>"]
    lines += ["  </xccdf:Profile>", "</xccdf:Tailoring>", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", nargs="+")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    stale = []
    for path in args.spec:
        with open(path) as f:
            text = render(yaml.safe_load(f))
        out = path.removesuffix(".yml") + ".xml"
        try:
            with open(out) as f:
                current = f.read() == text
        except FileNotFoundError:
            current = False
        if args.check:
            if not current:
                stale.append(out)
        elif not current:
            with open(out, "w") as f:
                f.write(text)
            print(out)
    if stale:
        print(f"tailoring.py: not written from their .yml (run tools/tailoring.py): {stale}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
