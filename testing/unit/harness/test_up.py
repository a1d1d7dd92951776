"""harness/up.py's honesty, without a VM: a VM counts as converged only when
the stamp names this very VM, and a failure says what to run next."""

import pytest

from harness import up


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setattr(up, "STAMP", str(tmp_path / "converged"))
    monkeypatch.setattr(up, "MACHINE_ID", str(tmp_path / "id"))
    monkeypatch.setenv("STAGE_TIMINGS", str(tmp_path / "timings.json"))
    return tmp_path


@pytest.mark.parametrize("machine, stamp, expected", [
    ("vm-1", None, False),          # never converged (or the last one failed: no stamp)
    ("vm-1", "vm-1", True),
    ("vm-2", "vm-1", False),        # a new VM, the stamp of the old one
    (None, "vm-1", False),          # no VM at all
])
def test_converged_only_when_the_stamp_names_this_vm(paths, machine, stamp, expected):
    if machine:
        (paths / "id").write_text(machine + "\n")
    if stamp:
        (paths / "converged").write_text(stamp + "\n")
    assert up.converged() is expected


def test_a_failure_exits_non_zero_and_says_what_to_run_next(paths, capsys):
    stages = up.Stages({"host packages": 1.0})
    assert up.fail(stages, "the converge did not complete", "make up") == 1
    err = capsys.readouterr().err
    assert "FAILED: the converge did not complete" in err and "next: make up" in err
    assert "is up" not in err
    assert "host packages" in err and "total" in err
