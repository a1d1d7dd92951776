"""An AWS API emulator on this machine's loopback: moto's server mode, which
speaks the real Secrets Manager protocol (SigV4-signed JSON requests) and
serves the instance metadata service's IMDSv2 paths (a session token, then
the instance role's credentials). The journal's boot-time shipping fetches
its client certificate and key from it, natively (testing/unit) and from
an instance of the image, which reaches it at qemu's gateway, 10.0.2.2
(testing/fleet). Started and ended by its PID."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from harness.processes import terminate
from harness.vm import free_port

REGION = "us-east-1"        # the emulated metadata service's placement/region


class Emulator:
    def __init__(self, logdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(logdir, "moto.log"), "w")  # noqa: SIM115 (closed in stop)
        # moto's server reads its region from here; no real credential exists
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "emulator",
               "AWS_SECRET_ACCESS_KEY": "emulator"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"moto's server did not start on {self.url}") from None
                time.sleep(0.3)

    def client(self, service="secretsmanager"):
        import boto3  # a test-side client only (moto's own dependency)
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="emulator",
                            aws_secret_access_key="emulator")  # noqa: S106 (no real key)

    def put_pair(self, name, cert_path, key_path):
        """A secret holding a client certificate and key as the fleet's
        secret does (JSON: certificate, private_key); returns its ARN."""
        with open(cert_path) as c, open(key_path) as k:
            value = json.dumps({"certificate": c.read(), "private_key": k.read()})
        return self.client().create_secret(Name=name, SecretString=value)["ARN"]

    def stop(self):
        terminate(self.proc)
        self.log.close()
