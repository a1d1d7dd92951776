"""harness/timings.py and harness/timed.py: the CI lanes write one file at
once, so every writer's keys survive; a timed command's exit code is kept."""

import json
import multiprocessing
import subprocess
import sys

from harness import timings


def write_many(target, writer):
    for n in range(20):
        timings.record({f"w{writer}_{n}": n}, target)


def test_concurrent_writers_lose_nothing(tmp_path):
    target = str(tmp_path / "timings.json")
    procs = [multiprocessing.Process(target=write_many, args=(target, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = timings.load(target)
    assert len(data) == 80 and data["w3_19"] == 19


def test_a_timed_command_keeps_its_exit_code_and_duration(tmp_path):
    target = tmp_path / "timings.json"
    out = subprocess.run([sys.executable, "-m", "harness.timed", "step", "--",
                          sys.executable, "-c", "import sys; sys.exit(3)"],
                         env={"STAGE_TIMINGS": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=False)
    assert out.returncode == 3
    data = json.loads(target.read_text())
    assert data["step_exit_code"] == 3 and data["step_seconds"] >= 0


def test_key_value_records_keep_numbers_numbers(tmp_path):
    target = tmp_path / "timings.json"
    subprocess.run([sys.executable, "-m", "harness.timings", "a=1.5", 'b="x"', "c=[1, 2]"],
                   env={"STAGE_TIMINGS": str(target)}, check=True)
    assert json.loads(target.read_text()) == {"a": 1.5, "b": "x", "c": [1, 2]}
