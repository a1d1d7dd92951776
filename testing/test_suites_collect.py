"""The VM suites import and collect here, natively, in seconds: an error at
import time (a name the suites read from the roles that does not resolve)
otherwise shows only after a VM has booted and converged."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("suite", ["molecule/tests", "molecule/image/tests", "testing/nfr",
                                   "testing/fleet", "testing/boot"])
def test_vm_suite_collects(suite):
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-o", "addopts=", "."],
                         cwd=os.path.join(ROOT, suite), capture_output=True, text=True,
                         env=dict(os.environ, PYTEST_ADDOPTS="", STAGE_TIMINGS=""), check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " collected" in out.stdout.splitlines()[-1] or "tests collected" in out.stdout
