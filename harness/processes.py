"""Processes a test starts on this machine (Prometheus, a log collector,
the native stack's servers, HAProxy): ended by the PID the test holds,
never by name."""

import signal
import subprocess


def terminate(proc, timeout=20):
    """TERM, then KILL after TIMEOUT seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
