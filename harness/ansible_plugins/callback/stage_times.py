"""Record how long each playbook run took, and its recap, in build/timings.json.

Enabled for Molecule (the project's base config), Packer and Vagrant
(ansible.cfg); records only when STAGE_TIMINGS names the file (the Makefile
sets it), so a plain `ansible-playbook` run writes nothing.

Keys: <stage>_<action>_seconds, _ok, _changed, _failed, where
  stage  = $TIMING_STAGE, or molecule_<scenario> under Molecule;
  action = the playbook's name (create, destroy, prepare), except that the
           converge playbook is "converge" the first time and "idempotence"
           once Molecule's state says the instance converged.
"""

import os
import time

from ansible.plugins.callback import CallbackBase

from harness.timings import record

DOCUMENTATION = """
    name: stage_times
    type: aggregate
    short_description: record playbook durations and recaps in the project's timings file
    description:
      - Writes <stage>_<action>_seconds/_ok/_changed/_failed when STAGE_TIMINGS is set.
    requirements:
      - STAGE_TIMINGS (path of the JSON file) in the environment
"""

CONVERGE_PLAYBOOKS = {"site", "converge"}


def molecule_converged():
    state = os.environ.get("MOLECULE_STATE_FILE", "")
    if not state or not os.path.exists(state):
        return False
    with open(state) as f:
        return any(line.strip() == "converged: true" for line in f)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stage_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = None
        self.key = None

    def v2_playbook_on_start(self, playbook):
        self.started = time.monotonic()
        name = os.path.splitext(os.path.basename(playbook._file_name))[0]
        scenario = os.environ.get("MOLECULE_SCENARIO_NAME")
        stage = os.environ.get("TIMING_STAGE") or (f"molecule_{scenario}" if scenario else "")
        if name in CONVERGE_PLAYBOOKS:
            name = "idempotence" if scenario and molecule_converged() else "converge"
        self.key = f"{stage}_{name}" if stage else None

    def v2_playbook_on_stats(self, stats):
        if not (self.key and os.environ.get("STAGE_TIMINGS") and self.started is not None):
            return
        totals = {"ok": 0, "changed": 0, "failed": 0}
        for host in stats.processed:
            summary = stats.summarize(host)
            totals["ok"] += summary["ok"]
            totals["changed"] += summary["changed"]
            totals["failed"] += summary["failures"] + summary["unreachable"]
        record({f"{self.key}_seconds": round(time.monotonic() - self.started, 1),
                **{f"{self.key}_{k}": v for k, v in totals.items()}})
