"""scripts/report.py: the README's figure block is replaced, whatever it held."""

import os

import pytest

from harness.report import alone_row, boot_alone_section, fleet_section, replace_block

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


def alone(healthy, median):
    return {"bound_seconds": 30, "median_healthy": median, "run": "now",
            "boots": [{"instance": f"alone-{n}", "vcpus": 2, "memory_mib": 2048, "healthy": h,
                       "ssh": h + 2, "host_load_before": 0.1, "analyze": ["Startup finished"],
                       "critical_chain": ["nginx.service +1.4s", "└─supermega-edge-config.service"]}
                      for n, h in enumerate(healthy, 1)]}


@pytest.mark.parametrize("healthy, median, verdict", [([24.0, 26.5, 25.1], 25.1, "held"),
                                                      ([29.0, 31.0, 30.5], 30.5, "MISSED")])
def test_the_boot_alone_section_says_whether_the_bound_held(healthy, median, verdict):
    text = "\n".join(boot_alone_section(alone(healthy, median)))
    assert f"Median boot to healthy: **{median} s** (bound 30 s: {verdict})" in text
    assert "| alone-2 |" in text and "supermega-edge-config.service" in text
    assert alone_row(alone(healthy, median)).endswith(f"(median {median} s; bound 30 s)")


def test_no_boot_alone_run_says_so():
    assert boot_alone_section({})[-1].endswith("not measured in this run.")
    assert alone_row({}) == "not measured"
