#!/usr/bin/env python3
"""Run a command, pass its output through, and record how long it took.

    timed.py NAME -- COMMAND [ARGS...]

Adds {NAME}_seconds to build/timings.json. When the command is Molecule, it
also records each action's duration ({NAME}_{action}_seconds, e.g.
molecule_converge_seconds), from the "<scenario> ➜ <action>: Executing"
lines Molecule prints. Exits with the command's exit code.
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMINGS = os.path.join(ROOT, "build", "timings.json")
# "default ➜ converge: Executing" (colour) or "[default > converge] Executing" (NO_COLOR)
ACTION = re.compile(r"(?:➜ (\w+):|\[[\w-]+ > (\w+)\]) (Executing|Executed)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def record(values):
    """Merge values into build/timings.json (locked: the VM suites run in parallel)."""
    os.makedirs(os.path.dirname(TIMINGS), exist_ok=True)
    with open(TIMINGS + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {}
        if os.path.exists(TIMINGS):
            with open(TIMINGS) as f:
                data = json.load(f)
        data.update(values)
        with open(TIMINGS, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit(__doc__)
    name, argv = sys.argv[1], sys.argv[3:]
    started = time.monotonic()
    actions, current = {}, None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        match = ACTION.search(ANSI.sub("", line))
        action = match and (match.group(1) or match.group(2))
        if match and match.group(3) == "Executing":
            current = (action, time.monotonic())
        elif match and current and action == current[0]:
            key = f"{name}_{current[0]}_seconds"
            # an action can run twice (destroy at start and end): keep the longest
            actions[key] = max(actions.get(key, 0), round(time.monotonic() - current[1], 1))
            current = None
    code = proc.wait()
    total = round(time.monotonic() - started, 1)
    record({f"{name}_seconds": total, **actions, f"{name}_exit_code": code})
    print(f"timed: {name} took {total}s {json.dumps(actions)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
