"""The mutation check's verdicts on a guard's run, from the JUnit report of a
real pytest run: a row is caught only when the guard failed in its body (not
in a fixture that errored) and then passed wholly (not skipped)."""

import subprocess
import sys

import pytest

from harness.guards import failed_in_its_body, junit_outcomes, passed_wholly

GUARDS = '''
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("could not reach the host")

def test_asserts():
    assert 1 == 2

def test_fixture_errors(broken):
    pass

def test_skips():
    pytest.skip("not here")

def test_passes():
    pass
'''


@pytest.fixture(scope="module")
def guards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guards")
    (folder / "test_guard.py").write_text(GUARDS)
    return folder


def run(folder, select):
    report = folder / f"{select.replace(' ', '_')}.xml"
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "-o", "addopts=", f"--junitxml={report}", "-k", select,
                          str(folder / "test_guard.py")],
                         capture_output=True, text=True, check=False, cwd=folder)
    return out.returncode, junit_outcomes(str(report))


def test_an_assertion_that_fails_is_a_catch(guards):
    code, outcomes = run(guards, "asserts")
    assert (code, outcomes) == (1, dict(failed=1, errors=0, skipped=0, passed=0))
    assert failed_in_its_body(code, outcomes)


def test_a_fixture_that_errors_is_not_a_catch(guards):
    """pytest exits 1 for it as for a failure: the exit code alone would count it."""
    code, outcomes = run(guards, "fixture_errors")
    assert code == 1 and outcomes["errors"] == 1
    assert not failed_in_its_body(code, outcomes)


def test_a_failure_beside_an_error_is_not_a_catch(guards):
    code, outcomes = run(guards, "asserts or fixture_errors")
    assert not failed_in_its_body(code, outcomes)


def test_a_pass_counts_only_when_something_ran_and_nothing_was_skipped(guards):
    assert passed_wholly(*run(guards, "passes"))
    code, outcomes = run(guards, "skips")
    assert code == 0 and not passed_wholly(code, outcomes)
    code, outcomes = run(guards, "passes or skips")
    assert code == 0 and not passed_wholly(code, outcomes)
    code, outcomes = run(guards, "nothing_has_this_name")
    assert code == 5 and not passed_wholly(code, outcomes)
