"""build/timings.json: every stage's duration, recorded by the harness itself.

Writers: the Ansible callback `stage_times` (every playbook Molecule, Packer
and Vagrant run), the pytest plugin `harness.pytest_timings` (every verify),
`harness.timed` (whole commands) and `harness.vm`'s boot figures via Molecule's
create. Readers: harness/report.py (docs/verification.md, the README's
figures). The file is merged under a lock: the CI lanes write at once.
"""

import fcntl
import json
import os

from harness import BUILD

DEFAULT = os.path.join(BUILD, "timings.json")


def path():
    return os.environ.get("STAGE_TIMINGS") or DEFAULT


def record(values, target=None):
    """Merge values into the timings file."""
    target = target or path()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {}
        if os.path.exists(target):
            with open(target) as f:
                data = json.load(f)
        data.update(values)
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, target)


def load(target=None):
    target = target or path()
    if not os.path.exists(target):
        return {}
    with open(target) as f:
        return json.load(f)


if __name__ == "__main__":
    import sys

    # timings.py KEY=VALUE ... (numbers stay numbers): for shell and playbook steps
    values = {}
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        try:
            values[key] = json.loads(value)
        except ValueError:
            values[key] = value
    if values and os.environ.get("STAGE_TIMINGS"):
        record(values)
