"""The Packer templates, read with a real HCL parser (python-hcl2), for the
static checks of what nothing here can run (test_packer.py, test_bake.py)."""

import glob
import os

import hcl2
import pytest

from harness import ROOT

PACKER = os.path.join(ROOT, "packer")


def clean(value):
    """python-hcl2 keeps HCL's quotes and marks blocks: give plain values."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(name):
    with open(os.path.join(PACKER, name)) as f:
        return clean(hcl2.load(f))


@pytest.fixture(scope="module")
def templates():
    return {os.path.basename(p): load(os.path.basename(p))
            for p in sorted(glob.glob(os.path.join(PACKER, "*.pkr.hcl")))}


@pytest.fixture(scope="module")
def sources(templates):
    """{"amazon-ebs.ubuntu": {...}, "qemu.local": {...}} from every file."""
    found = {}
    for doc in templates.values():
        for block in doc.get("source", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found[f"{kind}.{name}"] = body
    return found


@pytest.fixture(scope="module")
def variables(templates):
    found = {}
    for doc in templates.values():
        for block in doc.get("variable", []):
            found.update(block)
    return found


@pytest.fixture(scope="module")
def build(templates):
    (build,) = [b for doc in templates.values() for b in doc.get("build", [])]
    return build


@pytest.fixture(scope="module")
def ami(sources):
    return sources["amazon-ebs.ubuntu"]


def provisioners(build):
    """[(type, body)] in the order Packer runs them."""
    return [(kind, body) for block in build["provisioner"] for kind, body in block.items()]
