"""harness/report.py: docs/verification.md from the run's records, its
headline figures first; the README carries no figures (it links there)."""

import os
import subprocess
import sys

import pytest

from harness import ROOT
from harness.report import (
    alone_row,
    boot_alone_section,
    cis_forecast_section,
    fleet_section,
    headline,
    scap_section,
    verification,
)

TIMINGS = {"ci_total_seconds": 3946, "molecule_default_converge_seconds": 799.1,
           "molecule_default_idempotence_seconds": 265.3, "git_revision": "abc1234"}


@pytest.mark.parametrize("row", ["| whole `bash .ci/run` |", "| `packer build` (qcow2) |",
                                 "| the same, alone (2 vCPUs, `make boot-alone`), against"])
def test_a_figure_the_run_did_not_measure_says_so(row):
    line = next(x for x in headline({}, {}, {}, {}).splitlines() if x.startswith(row))
    assert line.endswith("not measured |") or "n/a" in line, line


def test_the_headline_carries_this_runs_figures():
    text = headline(TIMINGS, {"bake_seconds": 929}, {"ratios": {"c_over_b": 1.09}}, {})
    assert "| whole `bash .ci/run` | 65.8 min (3946 s) |" in text
    assert "| converge of `site.yml` from scratch (Molecule) | 799.1 s |" in text
    assert "| `packer build` (qcow2) | 929 s |" in text


def test_verification_opens_with_the_headline(tmp_path):
    text = verification(TIMINGS, {}, {}, {}, [], docs_dir=str(tmp_path))
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Headline figures", "## CI and its stages"]
    assert "from the run of commit `abc1234`" in text


def test_the_report_writes_only_its_docs_file(tmp_path):
    with open(os.path.join(ROOT, "README.md"), "rb") as f:
        readme = f.read()
    docs = tmp_path / "verification.md"
    subprocess.run([sys.executable, "-m", "harness.report", "--docs", str(docs)], check=True,
                   capture_output=True, cwd=tmp_path)
    assert docs.read_text().startswith("<!-- Written by harness/report.py")
    with open(os.path.join(ROOT, "README.md"), "rb") as f:
        assert f.read() == readme


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


def alone(healthy, median, reference=40.0):
    return {"ratio_bound": 0.75, "median_healthy": median, "median_reference": reference,
            "ratio": round(median / reference, 2), "run": "now",
            "references": [{"instance": f"base-{n}", "ssh": reference, "host_load_before": 0.1}
                           for n in range(1, len(healthy) + 1)],
            "boots": [{"instance": f"alone-{n}", "vcpus": 2, "memory_mib": 2048, "healthy": h,
                       "ssh": h + 2, "host_load_before": 0.1, "analyze": ["Startup finished"],
                       "critical_chain": ["nginx.service +1.4s", "└─supermega-edge-config.service"]}
                      for n, h in enumerate(healthy, 1)]}


@pytest.mark.parametrize("healthy, median, verdict", [([24.0, 26.5, 25.1], 25.1, "held"),
                                                      ([29.0, 31.0, 30.5], 30.5, "MISSED")])
def test_the_boot_alone_section_says_whether_the_ratio_held(healthy, median, verdict):
    text = "\n".join(boot_alone_section(alone(healthy, median)))
    ratio = round(median / 40.0, 2)
    assert f"ratio **{ratio}** (bound 0.75: {verdict})" in text
    assert "| alone-2 |" in text and "supermega-edge-config.service" in text
    assert "| base-3 | 40.0 s |" in text
    assert alone_row(alone(healthy, median)).endswith(f"ratio {ratio}, bound 0.75)")


def test_no_boot_alone_run_says_so():
    assert boot_alone_section({})[-1].endswith("not measured in this run.")
    assert alone_row({}) == "not measured"


def test_the_scan_section_gives_the_pass_rate_the_failures_and_every_waiver():
    scan = {"extends": "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary",
            "seconds": 412, "total_seconds": 470.5,
            "counts": {"pass": 150, "fail": 1, "notapplicable": 60},
            "failing": [{"rule": "xccdf_org.ssgproject.content_rule_accounts_tmout",
                         "result": "fail"}],
            "waivers": {"aide_build_database": "an immutable image: ..."}}
    text = "\n".join(scap_section(scan))
    assert "**150 pass, 1 fail**" in text and "pass rate 99.3 %" in text
    assert "60 notapplicable" in text and "1 rules waived" in text
    assert "- `accounts_tmout` (fail)" in text
    assert "| `aide_build_database` | an immutable image: ... |" in text


def test_no_scan_says_so():
    assert scap_section({})[-1] == "Not run in this run."


def test_the_cis_forecast_page_is_included_without_its_marker(tmp_path):
    page = tmp_path / "cis-forecast.md"
    page.write_text("<!-- Written by harness/cis_forecast.py; do not edit. -->\n\n"
                    "| `aide_build_database` | fail | waived: digest |\n")
    text = "\n".join(cis_forecast_section(str(page)))
    assert "| `aide_build_database` | fail | waived: digest |" in text
    assert "do not edit" not in text
    assert cis_forecast_section(str(tmp_path / "absent.md"))[-1] == "Not measured yet."


def test_a_red_run_says_which_stages_failed():
    from harness.report import failed_stages
    assert failed_stages({"lint_exit_code": 0, "unit_exit_code": 0}) == (
        "Every stage of this run exited 0.")
    line = failed_stages({"lint_exit_code": 0, "molecule_image_exit_code": 1,
                          "lane_image_exit_code": 1})
    assert line.startswith("**This run was red**")
    assert "`lane_image`, `molecule_image`" in line and "lint" not in line


def test_the_nginx_restart_line_gives_the_first_probe_and_what_was_asserted(tmp_path):
    nfr = {"faults": {"nginx_restart": {
        "restart_command_s": 8.1, "first_probe_after_command_s": 3.2,
        "first_probe_curl_exit": 0, "first_probe_status": "200", "requests": 900,
        "socket_errors": 16, "non_2xx_3xx": 0,
        "after": {"requests": 700, "socket_errors": 0}}}}
    text = verification(TIMINGS, {}, nfr, {}, [], docs_dir=str(tmp_path))
    assert ("Restart of nginx: the command took 8.1 s, the first connection after it returned "
            "was answered in 3.2 s (curl exit 0, HTTP 200; asserted: answered, 200, within "
            "30 s); in the 10 s after: 700 requests, 0 socket errors.") in text
    assert "| restart nginx | 3.2 s after the command | 900 | 16 | 0 |" in text
