"""What the image holds, checked on its instances: patched at the bake, and
the manifest and SBOM it carries say what is really installed
(docs/adr/0019-patched-at-bake.md).

The expected values come from the instance itself (dpkg, the wheelhouse's
files, the mirror) and from the build's own artifacts under build/, never
from the code that made them.
"""

import hashlib
import json
import os

import pytest

from harness import BUILD
from harness.image import instances, inventory  # noqa: F401 (fixtures)

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SHARE = "/usr/share/supermega-api"
pytestmark = pytest.mark.skipif(not INVENTORY, reason="run by molecule test -s image")


@pytest.fixture(scope="module")
def instance(instances):
    return instances["instance-1"]


@pytest.fixture(scope="module")
def sbom(instance):
    return json.loads(instance.check_output(f"cat {SHARE}/sbom.cdx.json"))


def test_nothing_is_upgradable_against_the_mirror_the_image_was_baked_from(instance):
    """The bake applied every update: with the mirror's index fetched again
    now, no installed package has a newer version."""
    update = instance.run("sudo apt-get -q -o Acquire::Retries=5 update")
    assert update.rc == 0, update.stderr
    pending = instance.check_output("apt list --upgradable 2>/dev/null | grep 'upgradable from' "
                                    "|| true")
    assert pending == "", f"pending updates on a fresh instance:\n{pending}"


def test_the_instance_runs_the_newest_installed_kernel(instance):
    """A kernel upgraded at the bake is the one every instance boots."""
    running = instance.check_output("uname -r")
    installed = instance.check_output(
        "ls /boot/vmlinuz-* | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1")
    assert running == installed


def test_the_image_carries_its_sbom_and_manifest_readable_by_all(instance):
    for name in ("sbom.cdx.json", "packages.txt"):
        f = instance.file(f"{SHARE}/{name}")
        assert f.is_file and f.user == "root" and f.mode == 0o644, name


def test_the_sbom_in_the_image_is_the_one_the_build_wrote_beside_it(instance):
    with open(os.path.join(BUILD, "image-sbom.sha256")) as f:
        printed = f.read().strip()
    with open(os.path.join(BUILD, "image-sbom.cdx.json"), "rb") as f:
        beside = hashlib.sha256(f.read()).hexdigest()
    inside = instance.check_output(f"sha256sum {SHARE}/sbom.cdx.json").split()[0]
    assert printed == beside == inside


def test_every_installed_package_is_in_the_sbom_and_the_manifest_with_its_version(instance, sbom):
    installed = set(instance.check_output(
        r"dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'").splitlines())
    manifest = set(instance.check_output(f"cat {SHARE}/packages.txt").splitlines())
    listed = {f"{c['name']}\t{c['version']}\t{c['purl'].rsplit('arch=', 1)[1]}"
              for c in sbom["components"] if c["purl"].startswith("pkg:deb/")}
    assert sbom["specVersion"] == "1.6"
    assert installed == manifest == listed, {"not listed": sorted(installed - listed)[:10],
                                             "not installed": sorted(listed - installed)[:10]}


def test_every_wheel_of_the_release_is_in_the_sbom_with_its_sha256(instance, sbom):
    on_disk = {}
    for line in instance.check_output(
            "cd /opt/supermega-api/current/wheelhouse && sha256sum -- *.whl").splitlines():
        digest, name = line.split()
        on_disk[name.split("-")[0].replace("_", "-").lower()] = digest
    listed = {c["name"]: c["hashes"][0]["content"] for c in sbom["components"]
              if c["purl"].startswith("pkg:pypi/")}
    assert on_disk and listed == on_disk
