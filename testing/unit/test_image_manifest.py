"""What the image says it holds (packer/scripts/sbom.py) and where the AMI's
copy goes (packer/scripts/publish-sbom.sh), natively.

sbom.py is run as Packer runs it, on lists in inventory.sh's formats; its
output is read back as CycloneDX 1.6 JSON and compared with the inputs the
test wrote. publish-sbom.sh runs against a stand-in `aws` that records its
arguments (no AWS here): the calls it would make are asserted, and its
refusals of a bad input. The baked qcow2's own SBOM and manifest are checked
on its instances (testing/image/test_image.py).
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from harness import ROOT

SBOM = os.path.join(ROOT, "packer", "scripts", "sbom.py")
PUBLISH = os.path.join(ROOT, "packer", "scripts", "publish-sbom.sh")

PACKAGES = ("nginx\t1.22.1-9+deb12u3\tamd64\n"
            "libssl3\t3.0.17-1~deb12u3\tamd64\n"
            "tzdata\t2025b-0+deb12u2\tall\n")
WHEELS = {"flask-3.1.3-py3-none-any.whl": "a" * 64,
          "markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.whl": "b" * 64,
          "zope_interface-7.2-cp311-cp311-manylinux2014_x86_64.whl": "c" * 64}


def write_inputs(tmp_path, packages=PACKAGES, wheels=None):
    wheels = WHEELS if wheels is None else wheels
    (tmp_path / "packages.txt").write_text(packages)
    (tmp_path / "wheelhouse.txt").write_text(
        "".join(f"{digest}\t{name}\n" for name, digest in wheels.items()))
    return str(tmp_path / "packages.txt"), str(tmp_path / "wheelhouse.txt")


def run_sbom(tmp_path, *extra, **inputs):
    packages, wheels = write_inputs(tmp_path, **inputs)
    out = tmp_path / "sbom.cdx.json"
    run = subprocess.run([sys.executable, SBOM, packages, wheels, str(out), *extra],
                         capture_output=True, text=True)
    return run, out


def test_every_package_and_wheel_is_in_the_sbom_with_its_version_and_hash(tmp_path):
    run, out = run_sbom(tmp_path, "--revision", "abc1234")
    assert run.returncode == 0, run.stderr
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["version"] == "abc1234"
    by_purl = {c["purl"]: c for c in bom["components"]}
    assert set(by_purl) == {
        "pkg:deb/debian/nginx@1.22.1-9%2Bdeb12u3?arch=amd64",
        "pkg:deb/debian/libssl3@3.0.17-1~deb12u3?arch=amd64",
        "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u2?arch=all",
        "pkg:pypi/flask@3.1.3",
        "pkg:pypi/markupsafe@3.0.4",
        "pkg:pypi/zope-interface@7.2",
    }
    assert by_purl["pkg:pypi/markupsafe@3.0.4"]["hashes"] == [{"alg": "SHA-256",
                                                               "content": "b" * 64}]
    assert "hashes" not in by_purl["pkg:deb/debian/nginx@1.22.1-9%2Bdeb12u3?arch=amd64"]
    # the image depends on every component: "which images carry it?" is a walk
    (image_deps,) = [d for d in bom["dependencies"] if d["ref"] == "image"]
    assert len(image_deps["dependsOn"]) == 6


def test_it_prints_the_digest_of_what_it_wrote(tmp_path):
    run, out = run_sbom(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == hashlib.sha256(out.read_bytes()).hexdigest()


def test_a_file_that_is_not_a_wheel_is_refused_by_name(tmp_path):
    run, out = run_sbom(tmp_path, wheels={"flask-3.1.3.tar.gz": "a" * 64})
    assert run.returncode != 0
    assert "flask-3.1.3.tar.gz" in run.stderr and "not a wheel" in run.stderr
    assert not out.exists()


def test_a_malformed_package_line_is_refused(tmp_path):
    run, out = run_sbom(tmp_path, packages="nginx 1.22.1 amd64\n")
    assert run.returncode != 0 and not out.exists()
    assert "not name<TAB>version<TAB>arch: 'nginx 1.22.1 amd64" in run.stderr


def test_a_hash_that_is_not_sha256_is_refused(tmp_path):
    run, out = run_sbom(tmp_path, wheels={"flask-3.1.3-py3-none-any.whl": "abc"})
    assert run.returncode != 0 and "SHA-256" in run.stderr
    assert not out.exists()


# ---- publish-sbom.sh: the AMI's SBOM to S3 and the AMI's tags ----

AMI = "ami-0123456789abcdef0"


@pytest.fixture
def fake_aws(tmp_path):
    """An `aws` on PATH that appends its arguments, one call per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "aws-calls.txt"
    tool = bin_dir / "aws"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    tool.chmod(0o755)
    return bin_dir, calls


def manifest(tmp_path, artifact_id, name="packer-manifest.json"):
    """Packer's manifest after two runs: the last one built artifact_id."""
    path = tmp_path / name
    path.write_text(json.dumps({"last_run_uuid": "run-2", "builds": [
        {"packer_run_uuid": "run-1", "artifact_id": "ap-southeast-2:ami-00000000000000000"},
        {"packer_run_uuid": "run-2", "artifact_id": artifact_id}]}))
    return str(path)


def publish(tmp_path, fake_aws, **env):
    bin_dir, calls = fake_aws
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text('{"bomFormat": "CycloneDX"}')
    packages = tmp_path / "packages.txt"
    packages.write_text(PACKAGES)
    values = {"MANIFEST": env.pop("MANIFEST", None) or manifest(tmp_path, f"ap-southeast-2:{AMI}"),
              "SBOM": str(sbom),
              "PACKAGES": str(packages), "BUCKET": "bank-image-sboms",
              "REGION": "ap-southeast-2", **env}
    run = subprocess.run(["bash", PUBLISH], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **values})
    made = calls.read_text().splitlines() if calls.exists() else []
    return run, made, hashlib.sha256(sbom.read_bytes()).hexdigest()


def test_the_amis_sbom_goes_to_s3_under_its_id_and_is_tagged_with_its_digest(tmp_path, fake_aws):
    run, calls, digest = publish(tmp_path, fake_aws)
    assert run.returncode == 0, run.stderr
    prefix = f"s3://bank-image-sboms/sboms/{AMI}"
    assert calls[0].startswith("--region ap-southeast-2 s3 cp --only-show-errors ")
    assert f" {prefix}/sbom.cdx.json " in calls[0]
    assert f" {prefix}/packages.txt " in calls[1]
    assert calls[2] == (f"--region ap-southeast-2 ec2 create-tags --resources {AMI} --tags "
                        f"Key=SbomSha256,Value={digest} Key=SbomUri,Value={prefix}/sbom.cdx.json")
    assert len(calls) == 3


def test_an_empty_bucket_is_refused_by_name_before_any_call(tmp_path, fake_aws):
    run, calls, _ = publish(tmp_path, fake_aws, BUCKET="")
    assert run.returncode != 0 and "BUCKET is empty" in run.stderr
    assert calls == []


def test_a_manifest_whose_last_build_is_not_an_ami_is_refused(tmp_path, fake_aws):
    run, calls, _ = publish(tmp_path, fake_aws,
                            MANIFEST=manifest(tmp_path, "build/image/supermega-api.qcow2",
                                              name="qcow2-manifest.json"))
    assert run.returncode != 0 and "not an AMI" in run.stderr
    assert calls == []


# ---- inventory.sh: no image with a package still upgradable ----

def test_the_inventory_refuses_an_image_with_an_upgradable_package(tmp_path):
    """Before the seal: a stand-in `apt` reporting one upgradable package
    fails the build, naming it, before anything is written."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt").write_text(
        "#!/bin/sh\necho 'Listing...'\n"
        "echo 'libssl3/stable-security 3.0.17-1~deb12u3 amd64 "
        "[upgradable from: 3.0.17-1~deb12u2]'\n")
    (bin_dir / "apt").chmod(0o755)
    run = subprocess.run(["sh", os.path.join(ROOT, "packer", "scripts", "inventory.sh")],
                         capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert run.returncode == 1
    assert "still upgradable" in run.stderr and "libssl3" in run.stderr
