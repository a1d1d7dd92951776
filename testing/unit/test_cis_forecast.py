"""The CIS forecast's page (harness/cis_forecast.py), from results a scan
would write: a failing rule shows its waiver's reason from
compliance/cis-ubuntu2404-level1-server.yml, or "not waived" and counts
against the AMI's build; a rule that passed is not listed; a CIS rule that
Debian's content lacks is listed as not measurable. The real forecast scans
an instance of the image (`make cis-forecast`)."""

import pytest
import yaml

from harness import cis_forecast, scap

P = scap.RULE_PREFIX


@pytest.fixture
def rules(monkeypatch, tmp_path):
    cis = {P + "sshd_disable_root_login", P + "aide_build_database", P + "ufw_only_required",
           P + "apparmor_configured"}
    debian = {P + "sshd_disable_root_login", P + "aide_build_database", P + "ufw_only_required"}
    monkeypatch.setattr(cis_forecast, "rule_sets", lambda content: (cis, debian))
    monkeypatch.setattr(cis_forecast, "refinements", lambda content: {"v": "1"})
    compliance = tmp_path / "compliance"
    compliance.mkdir()
    (compliance / "cis-ubuntu2404-level1-server.yml").write_text(yaml.safe_dump(
        {"waivers": {"aide_build_database": "Integrity is the image's digest, not AIDE."}}))
    monkeypatch.setattr(scap, "COMPLIANCE", str(compliance))
    return tmp_path


def results(tmp_path, measured):
    rows = "".join(f'<rule-result idref="{P}{rule}"><result>{result}</result></rule-result>'
                   for rule, result in measured.items())
    path = tmp_path / "results.xml"
    path.write_text('<Benchmark xmlns="http://checklists.nist.gov/xccdf/1.2"><TestResult>'
                    f"{rows}</TestResult></Benchmark>")
    return str(path)


def test_a_failure_shows_its_waiver_or_counts_as_not_waived(rules):
    lines, unwaived = cis_forecast.page("unused", results(rules, {
        "sshd_disable_root_login": "pass", "aide_build_database": "fail",
        "ufw_only_required": "error"}), "Measured here.")
    text = "\n".join(lines)
    assert unwaived == [P + "ufw_only_required"]
    assert "| `aide_build_database` | fail | waived: Integrity is the image's digest, not AIDE. |" \
        in text
    assert "| `ufw_only_required` | error | **not waived** |" in text
    assert "sshd_disable_root_login" not in text
    assert "1 error, 1 fail, 1 pass" in text
    assert "1 of the 2 failures waived" in text and "**1 not waived**" in text
    assert "Not measurable here (1 rules" in text and "`apparmor_configured`" in text


def test_every_failure_waived_reads_so(rules):
    lines, unwaived = cis_forecast.page("unused", results(rules, {
        "sshd_disable_root_login": "pass", "aide_build_database": "fail",
        "ufw_only_required": "notapplicable"}), "Measured here.")
    assert unwaived == []
    assert "1 of the 1 failures waived in `compliance/cis-ubuntu2404-level1-server.yml`." \
        in "\n".join(lines)
