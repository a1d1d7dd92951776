"""harness/processes.py: a process that ignores TERM is killed after the grace."""

import subprocess
import sys
import time

from harness.processes import terminate

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print(1, flush=True); time.sleep(60)")


def test_term_then_kill():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    proc.stdout.readline()          # the handler is installed
    started = time.monotonic()
    terminate(proc, timeout=1)
    assert proc.returncode == -9 and time.monotonic() - started < 10
