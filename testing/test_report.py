"""scripts/report.py: the README's figure block is replaced, whatever it held."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from report import fleet_section, replace_block  # noqa: E402

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@pytest.mark.parametrize("inside", ["", "| old | 1 |\n", "| a |\n| b |\n"])
def test_the_block_is_replaced_empty_or_not(inside):
    readme = f"intro\n{START}\n{inside}{END}\nrest\n"
    assert replace_block(readme, "| new | 2 |") == f"intro\n{START}\n| new | 2 |\n{END}\nrest\n"


def test_running_twice_gives_the_same_readme():
    once = replace_block(f"{START}\n{END}\n", "| x |")
    assert replace_block(once, "| x |") == once


def test_a_readme_without_markers_is_refused():
    with pytest.raises(SystemExit, match="markers"):
        replace_block("no markers here\n", "| x |")


def test_the_fleet_section_draws_one_picture_per_scenario(tmp_path):
    series = {"200": [10, 12, 11], "failed": [0, 1, 0]}
    fleet = {
        "boot": {"instances": {"fleet-s1": 60.1}, "both_seconds": 70.0,
                 "health_check": {"inter_ms": 1000, "fall": 2}},
        "abuse": {"requests": 300, "steady_failed": 0, "abusive_rps": 90.5, "burst_seconds": 8.8,
                  "abusive_statuses": {"200": 90, "429": 710}, "steady_during_burst": 100,
                  "checks_failed": {"s1": 0}, "logged_429": {"s1": "300"},
                  "events": [[1.0, "burst starts"]], "per_second": series},
        "roll": {"requests": 900, "failed": 0, "roll_seconds": 201.3,
                 "steps": [{"new": "s3", "old": "s1", "seconds": 100.2, "boot_to_healthy": 80.0}],
                 "events": [[0.5, "boot s3"], [2.0, "s1 stopped"]], "per_second": series},
    }
    text = "\n".join(fleet_section(fleet, str(tmp_path)))
    assert "| rolling replacement | 900 | 0 | roll 201.3 s" in text
    assert "burst 90.5 req/s" in text
    assert "instance lost" not in text          # not run: no row, no picture
    assert sorted(os.listdir(tmp_path / "img")) == ["fleet-abuse.png", "fleet-roll.png"]
    assert (tmp_path / "img" / "fleet-roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_fleet_run_says_so(tmp_path):
    assert fleet_section({}, str(tmp_path))[-1] == "not run"
