"""The benchmarks' wiring, checked where it cannot run: the tailoring files
(compliance/) and the profiles they extend, against ComplianceAsCode's
content as Debian packages it (tools/scap-content.sh fetches it from
trixie: a Debian mirror, which CI reaches). The qcow2's scan runs in CI
(testing/benchmark); the AMI's (CIS Ubuntu 24.04 Level 1 Server) runs only
in its build, so what it would scan with is resolved here by the real
scanner (`oscap info`)."""

import os
import re
import subprocess

import pytest
from conftest import provisioners

from harness import scap

COMPLIANCE = scap.COMPLIANCE
PACKER_CONTENT = '${local.scap["amazon-ebs"].content}'
TAILORINGS = sorted(f for f in os.listdir(COMPLIANCE) if f.endswith(".xml"))
# Which content each tailoring is for (its file name says the platform).
CONTENT = {"anssi-bp28-intermediary-debian12.xml": "ssg-debian12-ds.xml",
           "cis-ubuntu2404-level1-server.xml": "ssg-ubuntu2404-ds.xml"}
EXTENDS = {
    "anssi-bp28-intermediary-debian12.xml":
        "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary",
    "cis-ubuntu2404-level1-server.xml": "xccdf_org.ssgproject.content_profile_cis_level1_server",
}


@pytest.fixture(scope="module")
def content():
    return scap.content_dir()


def test_every_tailoring_file_is_known_here():
    assert TAILORINGS == sorted(CONTENT)


@pytest.mark.parametrize("name", sorted(CONTENT))
def test_the_profile_extended_resolves_in_debians_content(name, content):
    """`oscap info --profile` in the data stream the scan will read: the
    content file is in the package and the profile id is in it."""
    _, extends, _ = scap.tailoring(os.path.join(COMPLIANCE, name))
    assert extends == EXTENDS[name]
    datastream = os.path.join(content, CONTENT[name])
    assert os.path.isfile(datastream), f"{CONTENT[name]} is not in Debian's ssg packages"
    info = subprocess.run(["oscap", "info", "--profile", extends, datastream],
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    assert re.search(r"^\s*Id: " + re.escape(extends), info.stdout, re.M), info.stdout


@pytest.mark.parametrize("name", sorted(CONTENT))
def test_every_waiver_is_a_rule_of_the_profile_with_a_one_line_reason(name, content):
    """A waiver of a rule the profile does not select waives nothing: a
    typo, or a rule the content dropped. (scap.tailoring refuses a waiver
    without exactly one one-line remark.)"""
    _, extends, waivers = scap.tailoring(os.path.join(COMPLIANCE, name))
    selected = scap.profile_rules(os.path.join(content, CONTENT[name]), extends)
    assert selected, extends
    assert sorted(set(waivers) - selected) == []
    for rule, reason in waivers.items():
        assert 15 <= len(reason) <= 200, (rule, reason)


def test_a_waiver_without_its_reason_is_refused(tmp_path):
    bad = tmp_path / "t.xml"
    bad.write_text(
        '<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2" id="x">'
        '<xccdf:Profile id="xccdf_a_profile_b" extends="c">'
        '<xccdf:select idref="xccdf_org.ssgproject.content_rule_r" selected="false"/>'
        "</xccdf:Profile></xccdf:Tailoring>")
    with pytest.raises(ValueError, match="needs its reason"):
        scap.tailoring(str(bad))


def test_the_qcow2_scan_uses_the_anssi_tailoring_and_its_profile():
    profile, _, _ = scap.tailoring(scap.QCOW2["tailoring"])
    assert os.path.basename(scap.QCOW2["tailoring"]) == "anssi-bp28-intermediary-debian12.xml"
    assert scap.QCOW2["content"] == CONTENT["anssi-bp28-intermediary-debian12.xml"]
    assert profile == scap.QCOW2["profile"]


def test_the_ami_build_scans_with_the_same_script_before_its_seal(templates, build):
    """The AMI's scan: only its source, the one script, the CIS tailoring's
    profile and Ubuntu's content, after the playbook and before the seal."""
    (scap_locals,) = [block["scap"] for doc in templates.values()
                      for block in doc.get("locals", []) if "scap" in block]
    ami = scap_locals["amazon-ebs"]
    profile, _, _ = scap.tailoring(os.path.join(scap.ROOT, ami["tailoring"]))
    assert ami["profile"] == profile
    assert ami["content"] == CONTENT[os.path.basename(ami["tailoring"])]
    steps = provisioners(build)
    kinds = [(kind, body.get("script")) for kind, body in steps]
    scan = kinds.index(("shell", "packer/scripts/scap-scan.sh"))
    assert kinds.index(("ansible", None)) < scan < len(steps) - 1
    assert kinds[-1] == ("shell", "packer/scripts/seal.sh")
    body = steps[scan][1]
    assert body["only"] == ["amazon-ebs.ubuntu"]
    env = dict(v.split("=", 1) for v in body["environment_vars"])
    assert env["SCAP_PROFILE"] == '${local.scap["amazon-ebs"].profile}'
    assert env["SCAP_REMOVE_SCANNER"] == "yes"       # the AMI does not ship the scanner
    assert env["SCAP_CONTENT"] == "/tmp/" + PACKER_CONTENT  # noqa: S108 (the build VM's path)
