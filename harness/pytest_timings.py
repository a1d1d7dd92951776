"""pytest hooks that record a verify run in build/timings.json.

A pytest plugin (the venv loads it in every session, pyproject.toml): <stage>_verify_seconds,
_passed, _failed, where stage is $TIMING_STAGE or molecule_<scenario>.
Records only when STAGE_TIMINGS is set (the Makefile sets it).
"""

import os
import time

from harness.timings import record

_started = {}


def _stage():
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME")
    return os.environ.get("TIMING_STAGE") or (f"molecule_{scenario}" if scenario else "")


def pytest_sessionstart(session):
    _started["t"] = time.monotonic()


def pytest_sessionfinish(session, exitstatus):
    stage = _stage()
    if not (stage and os.environ.get("STAGE_TIMINGS") and "t" in _started):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    record({f"{stage}_verify_seconds": round(time.monotonic() - _started["t"], 1),
            f"{stage}_verify_passed": len(stats.get("passed", [])),
            f"{stage}_verify_failed": len(stats.get("failed", [])) + len(stats.get("error", []))})
