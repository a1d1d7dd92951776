"""Processes a test starts on this machine (Prometheus, a log collector):
ended by the PID the test holds, never by name."""

import signal
import subprocess


def terminate(proc):
    """TERM, then KILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
