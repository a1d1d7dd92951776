"""The order of the image scenario's one pytest session.

Molecule hands pytest the paths sorted by name, which would put this
directory's checks before the roles' suite. The suite runs first instead:
the mutation check reuses its guards on the same instance and must find it
as the suite left it. Then this directory's checks in file order (the
image and edge-settings checks, the mutation check, then the build key's
refusal, whose failed logins get this machine banned by instance-2).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# the roles' suite's deployment names (molecule/tests/deployment.py), for this
# directory's checks, which pytest may import before that suite
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))     # qemu_vm


def pytest_collection_modifyitems(items):
    # stable: each group keeps its own order
    items.sort(key=lambda item: str(item.path).startswith(HERE + os.sep))
