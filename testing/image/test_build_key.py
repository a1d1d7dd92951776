"""Last of the image scenario's checks, and on instance-2 only: the build's
key is refused. These failed logins come from this machine's address, which
fail2ban then bans (as it should), so nothing may need SSH to instance-2
after them; instance-1 serves the mutation check before (test_mutants.py).
"""

import os
import subprocess
import time

import pytest

from harness.image import BUILD, build_identity, inventory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not os.environ.get("MOLECULE_INVENTORY_FILE"),
                                reason="run by molecule test -s image")


def test_build_key_is_refused(inventory, build_identity):
    key = os.environ.get("IMAGE_BUILD_KEY", os.path.join(BUILD, "packer-seed", "build_key"))
    facts = inventory["instance-2"]
    for user in (build_identity["build_user"], "admin"):
        # each attempt is a new connection from the same address, which the
        # firewall's SSH rate limit (6 per 30 s) would otherwise drop
        time.sleep(8)
        out = subprocess.run(
            ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=20", "-p", str(facts["port"]),
             f"{user}@127.0.0.1", "true"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 255, (user, out.stderr)
        assert "Permission denied" in out.stderr, (user, out.stderr)
