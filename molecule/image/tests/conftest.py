"""The order of the image scenario's one pytest session.

Molecule hands pytest the paths sorted by name, which would put the NFR
suite first. It runs last instead, on instance-1: it installs wrk, reboots
the instance and gets the lab's scanner banned, none of which the image
checks may see. Before it: the roles' suite, then this directory's checks
in file order (the mutation check, then the build key's refusal, whose
failed logins get this machine banned by instance-2).
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
NFR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "testing", "nfr")


def _group(item):
    path = str(item.path)
    if path.startswith(NFR + os.sep):
        return 2
    return 1 if path.startswith(HERE + os.sep) else 0


def pytest_collection_modifyitems(items):
    items.sort(key=_group)   # stable: each group keeps its own order
