"""Every package step of the roles runs again, as a new apt process, after
it fails (ADR 0021): apt skips a mirror address that refused or timed out a
connection for the rest of its run, so apt's own retries cannot outlast such
an outage. testing/unit/test_package_fetch.py shows why, and shows one
role's step outlasting it; this holds every role to the same form, wired to
the one pair of values in group_vars."""

import glob
import os
import re

import pytest
import yaml

from harness import ROOT

GROUP_VARS = os.path.join(ROOT, "ansible", "group_vars", "api", "main.yml")


def tasks_of(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_of(task.get(key))


PACKAGE_MODULES = ("ansible.builtin.apt", "ansible.legacy.apt", "apt", "ansible.builtin.package",
                   "ansible.legacy.package", "package")
COMMAND_MODULES = ("ansible.builtin.command", "ansible.builtin.shell", "ansible.legacy.command",
                   "ansible.legacy.shell", "command", "shell")
# apt-get or apt installing or upgrading, however the command is written
APT_FETCH = re.compile(r"\bapt(-get)?\b.*\b(install|upgrade|full-upgrade|dist-upgrade|download)\b")


def fetches_packages(task):
    for name in PACKAGE_MODULES:
        module = task.get(name)
        if module is not None:
            return not (isinstance(module, dict) and module.get("state") == "absent")
    for name in COMMAND_MODULES:
        if name in task:
            command = task[name]
            text = " ".join(map(str, command.get("argv", []))) + str(command.get("cmd", "")) \
                if isinstance(command, dict) else str(command)
            return bool(APT_FETCH.search(text))
    return False


def package_steps():
    """(role, file, task) for every task that fetches packages: the apt or
    package module (not removing), or apt run as a command."""
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, "ansible", "roles", "*", "tasks", "*.yml"))):
        role = path.split(os.sep)[-3]
        with open(path) as f:
            for task in tasks_of(yaml.safe_load(f)):
                if fetches_packages(task):
                    found.append((role, os.path.relpath(path, ROOT), task))
    return found


@pytest.mark.parametrize("task", [
    {"ansible.builtin.package": {"name": "x"}},
    {"ansible.legacy.apt": {"name": "x", "state": "latest"}},
    {"ansible.builtin.command": "apt-get -y install x"},
    {"ansible.builtin.shell": {"cmd": "DEBIAN_FRONTEND=noninteractive apt install -y x"}},
    {"ansible.builtin.command": {"argv": ["apt-get", "-q", "download", "x"]}},
])
def test_a_package_step_written_another_way_is_found(task):
    assert fetches_packages(task)


@pytest.mark.parametrize("task", [
    {"ansible.builtin.apt": {"name": "x", "state": "absent"}},
    {"ansible.builtin.command": "apt-cache policy x"},
    {"ansible.builtin.copy": {"dest": "/etc/apt/apt.conf.d/x"}},
])
def test_what_fetches_nothing_is_left_alone(task):
    assert not fetches_packages(task)


STEPS = package_steps()


def test_every_role_that_installs_packages_is_found():
    # (a new one is held to the same form below, and named here)
    assert {role for role, _, _ in STEPS} == {
        "python_runtime", "hardening", "firewall", "api", "nginx", "metrics", "journal_upload"}


@pytest.mark.parametrize("role, path, task", STEPS, ids=[f"{r}:{t['name']}" for r, _, t in STEPS])
def test_the_package_step_runs_apt_again_after_a_failure(role, path, task):
    registered = task.get("register")
    assert registered, f"{path}: {task['name']!r} registers no result to retry on"
    assert task.get("until") == f"{registered} is succeeded", (path, task.get("until"))
    assert task.get("retries") == f"{{{{ {role}_package_retries }}}}", (path, task.get("retries"))
    assert task.get("delay") == f"{{{{ {role}_package_retry_delay }}}}", (path, task.get("delay"))


def test_group_vars_wire_every_role_to_the_one_pair_of_values():
    with open(GROUP_VARS) as f:
        values = yaml.safe_load(f)
    assert isinstance(values["package_step_retries"], int) and values["package_step_retries"] >= 1
    assert isinstance(values["package_step_retry_delay"], int) and \
        values["package_step_retry_delay"] >= 1
    for role in {role for role, _, _ in STEPS}:
        assert values.get(f"{role}_package_retries") == "{{ package_step_retries }}", role
        assert values.get(f"{role}_package_retry_delay") == "{{ package_step_retry_delay }}", role
