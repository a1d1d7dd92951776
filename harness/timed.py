#!/usr/bin/env python3
"""Run a command, pass its output through, and record how long it took.

    python -m harness.timed NAME -- COMMAND [ARGS...]

Adds {NAME}_seconds and {NAME}_exit_code to build/timings.json (the stages
inside, e.g. Molecule's converge, are recorded by the stage_times Ansible
callback and pytest hooks, not read from the output). Exits with the
command's exit code.
"""

import subprocess
import sys
import time

from harness.timings import record


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit(__doc__)
    name, argv = sys.argv[1], sys.argv[3:]
    started = time.monotonic()
    code = subprocess.run(argv, check=False).returncode
    total = round(time.monotonic() - started, 1)
    record({f"{name}_seconds": total, f"{name}_exit_code": code})
    print(f"timed: {name} took {total}s (exit {code})", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
