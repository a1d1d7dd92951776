"""A real log collector on this machine's loopback: Debian's
systemd-journal-remote, listening for HTTPS with a certificate of a test
PKI (harness/pki.py log_pki), writing what it receives to journal files it
reads back with journalctl. VMs reach it at qemu's gateway, 10.0.2.2. Used
by the roles' shipping test (testing/host/test_journal_upload.py) and the
fleet's (testing/fleet). Started and ended by its PID."""

import os
import subprocess
import time

from harness.processes import terminate

RECEIVER = "/lib/systemd/systemd-journal-remote"


class Collector:
    """systemd-journal-remote on 127.0.0.1:PORT with PKI/CERT.crt and .key."""

    def __init__(self, port, pki, cert, workdir):
        self.out = os.path.join(workdir, cert)
        os.makedirs(self.out)
        self.log = open(self.out + ".log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [RECEIVER, f"--listen-https=127.0.0.1:{port}", f"--key={pki}/{cert}.key",
             f"--cert={pki}/{cert}.crt", f"--output={self.out}/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(1)
        if self.proc.poll() is not None:
            self.log.close()
            with open(self.out + ".log") as f:
                raise AssertionError(f"the collector exited: {f.read()}")

    def received(self, *matches):
        """The messages received so far (journalctl's MATCHES, e.g.
        _HOSTNAME=x, narrow them)."""
        files = [os.path.join(self.out, f) for f in os.listdir(self.out)]
        if not files:
            return ""
        out = subprocess.run(["/usr/bin/journalctl", "--no-pager", "-o", "cat",
                              *(f"--file={f}" for f in files), *matches],
                             capture_output=True, text=True)
        return out.stdout

    def wait_for(self, texts, bound, *matches):
        """Seconds until each of TEXTS has arrived (polled every second, at
        most BOUND seconds); None for one that has not."""
        started, arrived = time.monotonic(), {}
        while True:
            got = self.received(*matches)
            for text in texts:
                if text in got and text not in arrived:
                    arrived[text] = round(time.monotonic() - started, 1)
            if len(arrived) == len(texts) or time.monotonic() > started + bound:
                return {text: arrived.get(text) for text in texts}
            time.sleep(1)

    def stop(self):
        terminate(self.proc)
        self.log.close()
