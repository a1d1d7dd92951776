"""Fixtures of the image scenario's checks (testing/image): the instances,
and what Packer recorded about the build machine just before sealing it.
(Imported by name: a second conftest.py would clash with the roles' suite's,
which runs in the same session.)"""

import json
import os

import pytest
import testinfra
import yaml

from harness import BUILD

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
INSTANCES = os.environ.get("MOLECULE_INSTANCE_CONFIG", "")


@pytest.fixture(scope="module")
def inventory():
    """instance name -> its connection facts (Molecule's instance config)."""
    with open(INSTANCES) as f:
        return {i["instance"]: i for i in yaml.safe_load(f)}


@pytest.fixture(scope="module")
def instances(inventory):
    """Every instance, not only the one --hosts gives the `host` fixture."""
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")
            for name in sorted(inventory)}


def read_build_identity():
    """The build VM's identity, recorded by Packer just before the seal."""
    with open(os.environ.get("IMAGE_BUILD_IDENTITY",
                             os.path.join(BUILD, "image-build-identity.json"))) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def build_identity():
    return read_build_identity()
