"""The scan script (packer/scripts/scap-scan.sh), natively, with a stand-in
`oscap` that writes the results a real scan would: the script's verdict
comes from the results, not from oscap's exit code alone, and a bad
parameter is refused by name before anything runs. The real scanner runs on
an instance of the baked image (testing/benchmark) and, on paper, in the
AMI's build (packer/api.pkr.hcl)."""

import json
import os
import subprocess

import pytest

from harness import ROOT

SCRIPT = os.path.join(ROOT, "packer", "scripts", "scap-scan.sh")
PROFILE = "xccdf_com.supermegabank_profile_test"
RULE = "xccdf_org.ssgproject.content_rule_"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the script runs as root only")


def results_xml(results):
    rules = "".join(
        f'<rule-result idref="{RULE}{rule}" time="2026-12-07T05:00:00+00:00">'
        f"<result>{result}</result></rule-result>" for rule, result in results.items())
    return ('<Benchmark xmlns="http://checklists.nist.gov/xccdf/1.2"><TestResult>'
            f"{rules}</TestResult></Benchmark>")


@pytest.fixture
def scanner(tmp_path):
    """A stand-in `oscap` on PATH: --version, and `xccdf eval` writing the
    results given in $FAKE_RESULTS to --results and exiting $FAKE_EXIT;
    every call's arguments go to calls.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "oscap").write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> {tmp_path}/calls.txt
[ "$1" = --version ] && {{ echo "OpenSCAP command line tool (oscap) 1.3.7"; exit 0; }}
while [ $# -gt 0 ]; do
  [ "$1" = --results ] && {{ printf '%s' "$FAKE_RESULTS" > "$2"; }}
  shift
done
exit "$FAKE_EXIT"
""")
    (bin_dir / "oscap").chmod(0o755)
    content = tmp_path / "ds.xml"
    content.write_text("<data-stream-collection/>")
    tailoring = tmp_path / "tailoring.xml"
    tailoring.write_text(f'<Tailoring><Profile id="{PROFILE}"/></Tailoring>')
    return tmp_path, bin_dir, content, tailoring


def scan(scanner, results, exit_code, **overrides):
    tmp_path, bin_dir, content, tailoring = scanner
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SCAP_CONTENT": str(content),
           "SCAP_TAILORING": str(tailoring), "SCAP_PROFILE": PROFILE,
           "SCAP_OUT": str(tmp_path / "out"), "SCAP_REMOVE_SCANNER": "no",
           "FAKE_RESULTS": results_xml(results), "FAKE_EXIT": str(exit_code), **overrides}
    return subprocess.run(["sh", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def summary(scanner):
    with open(scanner[0] / "out" / "summary.json") as f:
        return json.load(f)


def test_no_failing_rule_passes_with_the_counts(scanner):
    run = scan(scanner, {"a": "pass", "b": "pass", "c": "notapplicable"}, 0)
    assert run.returncode == 0, run.stderr
    assert summary(scanner)["counts"] == {"pass": 2, "notapplicable": 1}
    assert summary(scanner)["failing"] == []
    assert "2 pass" in run.stderr


def test_a_failing_rule_fails_the_scan_and_is_named(scanner):
    run = scan(scanner, {"a": "pass", "sshd_set_idle_timeout": "fail"}, 2)
    assert run.returncode == 2
    assert f"FAILED: {RULE}sshd_set_idle_timeout (fail)" in run.stderr
    assert summary(scanner)["failing"] == [{"rule": f"{RULE}sshd_set_idle_timeout",
                                            "result": "fail"}]


def test_a_rule_in_error_fails_the_scan_whatever_oscap_exits(scanner):
    # oscap exits 0 when nothing "fails", even with a rule it could not evaluate
    run = scan(scanner, {"a": "pass", "b": "error"}, 0)
    assert run.returncode == 2
    assert f"FAILED: {RULE}b (error)" in run.stderr


def test_the_tailored_profile_and_its_waivers_are_what_oscap_is_given(scanner):
    run = scan(scanner, {"a": "pass"}, 0)
    assert run.returncode == 0, run.stderr
    calls = (scanner[0] / "calls.txt").read_text().splitlines()
    (evaluation,) = [c for c in calls if c.startswith("xccdf eval")]
    assert f"--tailoring-file {scanner[3]} --profile {PROFILE}" in evaluation
    assert evaluation.endswith(str(scanner[2]))


def test_oscap_that_did_not_run_is_an_error_not_a_pass(scanner):
    run = scan(scanner, {"a": "pass"}, 1)
    assert run.returncode == 1 and "oscap exited 1" in run.stderr


@pytest.mark.parametrize("name, value, says", [
    ("SCAP_CONTENT", "/nonexistent/ds.xml", "SCAP_CONTENT must name a data stream file"),
    ("SCAP_TAILORING", "", "SCAP_TAILORING must name a tailoring file"),
    ("SCAP_PROFILE", "anssi_bp28_intermediary", "SCAP_PROFILE must be an XCCDF profile id"),
    ("SCAP_PROFILE", "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary",
     "is not a profile of"),
    ("SCAP_OUT", "", "SCAP_OUT must name the results directory"),
    ("SCAP_REMOVE_SCANNER", "maybe", "SCAP_REMOVE_SCANNER must be yes or no"),
])
def test_a_bad_parameter_is_refused_by_name_before_the_scan(scanner, name, value, says):
    run = scan(scanner, {"a": "pass"}, 0, **{name: value})
    assert run.returncode == 1 and says in run.stderr, run.stderr
    assert not (scanner[0] / "calls.txt").exists()
