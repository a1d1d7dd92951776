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


def fake_vagrant(paths, monkeypatch):
    """A VM "vm-1" whose every command succeeds and whose converge fails
    nothing: recorded, as the stage_times callback does, only where
    STAGE_TIMINGS points; HTTPS answers at once."""
    (paths / "id").write_text("vm-1\n")
    monkeypatch.setattr(up, "https_healthy", lambda port: True)

    class Done:
        returncode, stdout = 0, ""

    provisions = []

    def fake_run(argv, env=None, **kw):
        if argv[:2] == ["vagrant", "provision"]:
            provisions.append(argv)
            if env.get("STAGE_TIMINGS"):
                up.record({f"{env['TIMING_STAGE']}_converge_failed": 0}, env["STAGE_TIMINGS"])
        return Done()

    monkeypatch.setattr(up.subprocess, "run", fake_run)
    return provisions


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


def test_run_alone_without_stage_timings_a_clean_converge_counts(paths, monkeypatch):
    """`python -m harness.up` run by hand (no Makefile, so no STAGE_TIMINGS):
    the converge's callback must still be told where to record its outcome,
    or a converge that failed nothing would read as unfinished."""
    monkeypatch.delenv("STAGE_TIMINGS")
    monkeypatch.setattr(up.timings, "DEFAULT", str(paths / "timings.json"))
    fake_vagrant(paths, monkeypatch)
    assert up.main([]) == 0
    assert (paths / "converged").read_text().strip() == "vm-1"


@pytest.mark.parametrize("args, environ, partial", [
    ("", {}, ""),
    ("-e package_fetch_retries=99", {}, ""),       # (make vagrant-check's refused converge)
    ("-vvv -e tag=x -i inv", {}, ""),              # (a value holding t is no option)
    ("--tags ssh", {}, "--tags"),
    ("--tag ssh", {}, "--tag"),                     # (argparse takes an abbreviation)
    ("-t nginx", {}, "-t"),
    ("-tssh", {}, "-tssh"),
    ("-vC", {}, "-vC"),
    ("--skip-tags=metrics", {}, "--skip-tags=metrics"),
    ("--start-at-task=Install ufw", {}, "--start-at-task=Install"),
    ("-v --chec", {}, "--chec"),
    ("", {"ANSIBLE_RUN_TAGS": "ssh"}, "ANSIBLE_RUN_TAGS=ssh"),
    ("", {"ANSIBLE_SKIP_TAGS": "metrics"}, "ANSIBLE_SKIP_TAGS=metrics"),
    ("", {"ANSIBLE_RUN_TAGS": ""}, ""),
])
def test_a_partial_converge_is_recognised(args, environ, partial):
    assert up.partial_converge(args, environ) == partial


def test_a_partial_converge_is_refused_before_it_runs(paths, monkeypatch, capsys):
    """`VAGRANT_ANSIBLE_ARGS="--tags ssh" make up` on a VM never converged:
    the tagged run could fail nothing and still leave the VM unconverged, so
    it is not run; no stamp, no "up"."""
    monkeypatch.setenv("VAGRANT_ANSIBLE_ARGS", "--tags ssh")
    provisions = fake_vagrant(paths, monkeypatch)
    assert up.main([]) == 1
    assert provisions == [] and not (paths / "converged").exists()
    err = capsys.readouterr().err
    assert "is up" not in err and "partial converge (--tags)" in err
    assert "next: make up without it" in err


def test_an_empty_stage_timings_counts_as_unset(paths, monkeypatch):
    monkeypatch.setenv("STAGE_TIMINGS", "")
    monkeypatch.setattr(up.timings, "DEFAULT", str(paths / "timings.json"))
    fake_vagrant(paths, monkeypatch)
    assert up.main([]) == 0


@pytest.mark.parametrize("first", ["failed half-way", "interrupted", "ended unrecorded"])
def test_after_a_converge_that_did_not_complete_make_up_converges_again(
        paths, monkeypatch, capsys, first):
    """#34: a converge that failed half-way (ok=182 failed=1, as the issue's
    did), one interrupted (^C: KeyboardInterrupt in the driver), and one
    whose run wrote no outcome (a killed ansible-playbook) leave no stamp
    and never say "up"; the next `make up` converges the same VM again, and
    only after that converge says "up"."""
    provisions = fake_vagrant(paths, monkeypatch)
    succeeding = up.subprocess.run

    def first_run(argv, env=None, **kw):
        if argv[:2] != ["vagrant", "provision"]:
            return succeeding(argv, env=env, **kw)
        provisions.append(argv)
        if first == "interrupted":
            raise KeyboardInterrupt
        if first == "failed half-way":
            up.record({f"{env['TIMING_STAGE']}_converge_failed": 1}, env["STAGE_TIMINGS"])

        class Failed:
            returncode = 2 if first == "failed half-way" else 0
        return Failed()

    monkeypatch.setattr(up.subprocess, "run", first_run)
    if first == "interrupted":
        with pytest.raises(KeyboardInterrupt):
            up.main([])
    else:
        assert up.main([]) == 1
    assert len(provisions) == 1 and not (paths / "converged").exists()
    assert "is up" not in capsys.readouterr().err

    monkeypatch.setattr(up.subprocess, "run", succeeding)     # the mirror is back
    assert up.main([]) == 0
    assert len(provisions) == 2, "the second make up did not converge the VM again"
    assert (paths / "converged").read_text().strip() == "vm-1"
    assert "is up" in capsys.readouterr().err
