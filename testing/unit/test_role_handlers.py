"""A failed package step does not cascade into its role's handlers (issue
34): the metrics and journal_upload roles write their configuration before
they install the packages, and notify a restart of units the packages bring.
With force_handlers (ansible/site.yml), a failed install used to run those
restarts anyway, on units that were never installed, burying the install's
own error under the handler's.

Each role's real handler runs here, under ansible-playbook on this machine,
after a configuration change notified it and the package step failed or
succeeded: its name, its `when` and its loop as the role writes them, its
module swapped for `debug` (nothing on this machine is restarted)."""

import os
import subprocess
import sys

import pytest
import yaml

from harness import ROOT

CASES = {
    "metrics": ("Restart the exporters", {}),
    "journal_upload": ("Restart journal upload", {"journal_upload_url": "https://collector:19532"}),
}


def converge(tmp_path, role, install_fails):
    handler, extra_vars = CASES[role]
    with open(os.path.join(ROOT, "ansible", "roles", role, "handlers", "main.yml")) as f:
        handlers = [{**{k: v for k, v in h.items() if k != "ansible.builtin.systemd_service"},
                     "ansible.builtin.debug": {"msg": "would restart"}}
                    for h in yaml.safe_load(f) if h["name"] == handler]
    assert handlers and all("when" in h for h in handlers), handlers
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "force_handlers": True,
        "vars": extra_vars,
        "tasks": [
            {"name": "A configuration file changed", "ansible.builtin.command": "true",
             "changed_when": True, "notify": handler},
            {"name": "The package step", "ansible.builtin.command": "false" if install_fails
             else "true", "register": f"{role}_package_step", "changed_when": False}],
        "handlers": handlers}]))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                          "-c", "local", "-i", "localhost,", "-e",
                          f"ansible_python_interpreter={sys.executable}", str(playbook)],
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("role", sorted(CASES))
def test_a_failed_install_leaves_the_restart_alone(tmp_path, role):
    code, out = converge(tmp_path, role, install_fails=True)
    assert code != 0, out
    assert f"RUNNING HANDLER [{CASES[role][0]}]" in out, out
    # the only failure is the package step's
    assert out.count("fatal: [localhost]") == 1 and "ok=1" in out and "failed=1" in out, out
    assert "skipping: [localhost]" in out, out


@pytest.mark.parametrize("role", sorted(CASES))
def test_after_a_good_install_the_restart_runs(tmp_path, role):
    code, out = converge(tmp_path, role, install_fails=False)
    assert code == 0, out
    ran = out.split(f"RUNNING HANDLER [{CASES[role][0]}]")[1]
    assert "would restart" in ran and "skipping: [localhost]" not in ran, out
