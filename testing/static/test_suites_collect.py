"""The VM suites import and collect here, natively, in seconds: an error at
import time (a name the suites read from the roles that does not resolve)
otherwise shows only after a VM has booted and converged. Each session is
collected as its scenario runs it (the image scenario: the image checks
with the roles' suite), and its order is the one harness/ordering.py
declares."""

import os
import subprocess
import sys

import pytest

from harness import ROOT

# what each VM session collects, as Molecule's verifier or the Makefile hands it to pytest
SESSIONS = {
    "default": ["testing/host"],
    "image": ["testing/image", "testing/host"],
    "nfr": ["testing/nfr"],
    "fleet": ["testing/fleet"],
    "boot": ["testing/boot"],
    "perf": ["testing/perf"],
}


def collect(paths):
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-o", "addopts=", *paths],
                         cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTEST_ADDOPTS="", STAGE_TIMINGS=""), check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_vm_suite_collects(session):
    assert collect(SESSIONS[session])


def module_order(ids):
    seen = []
    for test_id in ids:
        module = test_id.split("::")[0]
        if module not in seen:
            seen.append(module)
    return seen


def test_image_session_runs_the_roles_suite_first_then_the_declared_order():
    modules = module_order(collect(SESSIONS["image"]))
    host = [m for m in modules if m.startswith("testing/host/")]
    image = [m for m in modules if m.startswith("testing/image/")]
    assert modules == host + image
    assert host[-2:] == ["testing/host/test_alerts_live.py", "testing/host/test_journal_upload.py"]
    assert image == ["testing/image/test_edge_settings.py", "testing/image/test_image.py",
                     "testing/image/test_image_contents.py",
                     "testing/image/test_mutants.py", "testing/image/test_build_key.py"]


def test_nfr_session_runs_in_the_declared_order():
    modules = [os.path.basename(m) for m in module_order(collect(SESSIONS["nfr"]))]
    assert modules == ["test_network.py", "test_bad_input.py", "test_tls.py",
                       "test_performance.py", "test_load.py", "test_runbook.py", "test_faults.py"]
