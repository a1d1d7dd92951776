"""A pytest plugin for the mutation check's guard runs (`-p
harness.guard_inventory`): the Ansible inventory the check listed once
(the file GUARD_INVENTORY_JSON names, `ansible-inventory --list` of the
same inventory) stands in for testinfra's own `ansible-inventory --list`,
which each of the ~150 guard processes would otherwise run (~1 s each on
this machine with the check's VMs running). Without the variable, nothing
changes."""

import json
import os

from testinfra.utils import ansible_runner

LISTED = os.environ.get("GUARD_INVENTORY_JSON")

if LISTED:
    with open(LISTED) as f:
        INVENTORY = json.load(f)

    def listed_once(config, inventory_file):
        return INVENTORY

    ansible_runner.get_ansible_inventory = listed_once
