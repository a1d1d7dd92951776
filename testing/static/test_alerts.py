"""The alert rules (monitoring/prometheus/alerts.yml) and their unit tests.

`promtool test rules` shows every alert firing and not firing; here each
rule is broken the ways an edit could break it (a threshold moved past
either test value, a label matcher dropped, a `for` lengthened, the alert
muted or removed) and promtool must then FAIL: a rule test that passes
either way guards nothing. Needs Debian's `prometheus` package (promtool):
`make deps`.
"""

import os
import re
import shutil
import subprocess

import pytest

from harness import ROOT

PROM = os.path.join(ROOT, "monitoring", "prometheus")
RULES = os.path.join(PROM, "alerts.yml")
RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")

# (alert, text in its rule, replacement): each must make promtool's tests fail
MUTATIONS = [
    ("ApiDown", 'probe_success{job="api-https"} == 0', 'probe_success{job="api-https"} == 2'),
    ("ApiDown", 'probe_success{job="api-https"}', "probe_success"),
    ("ApiDown", "for: 1m", "for: 2m"),
    ("ApiUnitNotActive", 'name="supermega-api.service", ', ""),
    ("ApiUnitNotActive", ', state="active"', ""),
    ("ApiUnitNotActive", "for: 2m", "for: 3m"),
    ("ApiScrapeTargetDown", 'up{job=~"api-.*"}', "up"),
    ("ApiScrapeTargetDown", "for: 5m", "for: 6m"),
    ("ApiServerErrorRatioHigh", "> 0.01", "> 0.013"),
    ("ApiServerErrorRatioHigh", "> 0.01", "> 0.007"),
    ("ApiServerErrorRatioHigh", 'status=~"5.."', 'status=~"[45].."'),
    ("ApiLatencyP99High", "> 0.5", "> 0.6"),
    ("ApiLatencyP99High", "> 0.5", "> 0.45"),
    ("ApiLatencyP99High", ', route!="other"', ""),
    ("ApiLatencyP99High", "histogram_quantile(0.99,", "histogram_quantile(0.9,"),
    ("ApiRateLimitedRequestsHigh", "> 1", "> 1.3"),
    ("ApiRateLimitedRequestsHigh", "> 1", "> 0.7"),
    ("TlsCertificateExpiresSoon", "< 21 * 86400", "< 19 * 86400"),
    ("TlsCertificateExpiresSoon", "< 21 * 86400", "< 23 * 86400"),
    ("DiskSpaceLow", "< 0.10", "< 0.08"),
    ("DiskSpaceLow", "< 0.10", "< 0.12"),
    ("DiskSpaceLow", '"tmpfs|ramfs|squashfs|overlay"', '"ramfs|squashfs|overlay"'),
    ("MemoryLow", "< 0.10", "< 0.08"),
    ("MemoryLow", "< 0.10", "< 0.12"),
    ("ClockUnsynchronised", "min_over_time(", "max_over_time("),
    ("ClockUnsynchronised", ">= 16", ">= 17"),
    ("ClockUnsynchronised", "[5m]", "[1m]"),
]


def alert_names():
    with open(RULES) as f:
        return re.findall(r"^\s+- alert: (\w+)$", f.read(), re.M)


def promtool_test(prom_dir):
    if not shutil.which("promtool"):
        pytest.fail("promtool is missing: `make deps` installs Debian's prometheus package")
    out = subprocess.run(["promtool", "test", "rules", "tests/alerts_test.yml"], cwd=prom_dir,
                         capture_output=True, text=True, timeout=60, check=False)
    return out.returncode, out.stdout + out.stderr


def rules_copy(tmp_path, alert, edit):
    """A copy of monitoring/prometheus with one alert's rule block (from its
    `- alert:` line to the next) replaced by `edit(block)`."""
    with open(RULES) as f:
        text = f.read()
    start = text.index(f"      - alert: {alert}\n")
    end = text.find("      - alert: ", start + 1)
    end = len(text) if end == -1 else end
    shutil.copytree(PROM, tmp_path / "prometheus")
    with open(tmp_path / "prometheus" / "alerts.yml", "w") as f:
        f.write(text[:start] + edit(text[start:end]) + text[end:])
    return tmp_path / "prometheus"


def changed(alert, old, new):
    def edit(block):
        assert block.count(old) == 1, f"{old!r} is not once in {alert}'s rule"
        return block.replace(old, new)
    return edit


def test_rules_pass_their_tests():
    code, out = promtool_test(PROM)
    assert code == 0, out


def test_every_alert_has_firing_and_quiet_cases():
    with open(os.path.join(PROM, "tests", "alerts_test.yml")) as f:
        tests = f.read()
    for name in alert_names():
        cases = re.findall(rf"alertname: {name}\n\s+exp_alerts:(.*)", tests)
        assert any(c.strip() == "[]" for c in cases), f"{name}: no case where it stays quiet"
        assert any(c.strip() == "" for c in cases), f"{name}: no case where it fires"


def test_every_alert_has_a_runbook_entry():
    with open(RUNBOOK) as f:
        headings = {re.sub(r"[^a-z0-9]", "", line.lower())
                    for line in f if line.startswith("### ")}
    for name in alert_names():
        assert name.lower() in headings, f"docs/runbook.md has no '### {name}' section"


def test_every_alert_is_mutated():
    assert {m[0] for m in MUTATIONS} == set(alert_names())


@pytest.mark.parametrize("alert", ["ApiDown", "ApiServerErrorRatioHigh", "ClockUnsynchronised"])
def test_a_removed_alert_fails_the_tests(tmp_path, alert):
    code, out = promtool_test(rules_copy(tmp_path, alert, lambda block: ""))
    assert code != 0, f"promtool still passes without {alert}:\n{out}"


@pytest.mark.parametrize("alert,old,new", MUTATIONS,
                         ids=[f"{a}: {o!r} -> {n!r}" for a, o, n in MUTATIONS])
def test_a_broken_rule_fails_the_tests(tmp_path, alert, old, new):
    code, out = promtool_test(rules_copy(tmp_path, alert, changed(alert, old, new)))
    assert code != 0, f"promtool still passes with {alert}'s {old!r} made {new!r}:\n{out}"
