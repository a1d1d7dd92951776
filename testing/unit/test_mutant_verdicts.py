"""The mutation check's verdicts on a guard's run, from the JUnit report of a
real pytest run: a row is caught only when the guard failed in its body (not
in a fixture that errored) and then passed wholly (not skipped)."""

import json
import os
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


def test_guard_runs_read_the_inventory_listed_once(tmp_path):
    """harness/guard_inventory.py: a guard run takes the check's listed
    inventory; `ansible-inventory` (here one that fails) is never run."""
    listed = tmp_path / "inventory.json"
    listed.write_text(json.dumps({"_meta": {"hostvars": {"box": {
        "ansible_connection": "local", "marker": "listed-once"}}},
        "all": {"children": ["ungrouped"]}, "ungrouped": {"hosts": ["box"]}}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ansible-inventory"
    fake.write_text("#!/bin/sh\necho 'ansible-inventory was run' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "test_guard.py").write_text(
        "def test_reads_the_listed_inventory(host):\n"
        "    assert host.ansible.get_variables()['marker'] == 'listed-once'\n")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
            "-p", "harness.guard_inventory", "--hosts=ansible://box",
            f"--ansible-inventory={tmp_path / 'unused'}", str(tmp_path / "test_guard.py")]
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    with_it = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path,
                             env=dict(env, GUARD_INVENTORY_JSON=str(listed)))
    assert with_it.returncode == 0, with_it.stdout[-2000:]
    without = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert without.returncode != 0 and "ansible-inventory was run" in without.stdout
