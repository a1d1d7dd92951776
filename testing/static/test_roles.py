"""Static checks of the Ansible roles: docs, specs and defaults agree.

These run without a VM: they catch a variable added to defaults but not to
the argument specs (so never validated), a README that lies about defaults,
or a dev-sec control that is neither covered nor waived.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from harness import ROOT

ROLES = sorted(os.path.basename(os.path.dirname(d))
               for d in glob.glob(os.path.join(ROOT, "ansible/roles/*/tasks")))


def load(path):
    with open(os.path.join(ROOT, path)) as f:
        return yaml.safe_load(f)


def test_the_expected_roles_exist():
    assert ROLES == ["api", "firewall", "hardening", "instance_boot", "journal_upload", "metrics",
                     "nginx", "python_runtime"]



@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults = load(f"ansible/roles/{role}/defaults/main.yml")
    specs = load(f"ansible/roles/{role}/meta/argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    required = {name for name, spec in options.items() if spec.get("required")}
    # every option has a default, except the required ones (wired by the play)
    assert set(defaults) == set(options) - required, set(defaults) ^ (set(options) - required)
    assert all("default" not in options[name] for name in required)
    for name in options:
        assert options[name].get("description"), f"{name} has no description"
        # what Ansible's argument validation accepts (it fails the play otherwise)
        assert options[name].get("type") in {"str", "int", "bool", "list", "dict", "path",
                                              "raw", "float"}, name
        assert "elements" not in options[name] or options[name]["type"] == "list", name
        assert name.startswith(f"{role}_"), f"{name} is not prefixed with the role name"
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
    # the preflight entry point validates the same options
    assert specs["preflight"]["options"] == options


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_preflight_and_a_readme(role):
    assert os.path.exists(os.path.join(ROOT, f"ansible/roles/{role}/tasks/preflight.yml"))
    assert os.path.exists(os.path.join(ROOT, f"ansible/roles/{role}/README.md"))


@pytest.mark.parametrize("role", ROLES)
def test_distribution_vars_define_the_same_keys(role):
    """A key set for Debian 12 (verified here) but not for Ubuntu 24.04 (not
    runnable here), or the reverse, would only fail on the host that lacks it."""
    files = sorted(glob.glob(os.path.join(ROOT, f"ansible/roles/{role}/vars/*.yml")))
    per_distribution = {os.path.basename(f): set(load(os.path.relpath(f, ROOT)) or {})
                        for f in files if os.path.basename(f) != "main.yml"}
    if per_distribution:
        assert sorted(per_distribution) == ["Debian.yml", "Ubuntu.yml"]
        assert per_distribution["Debian.yml"] == per_distribution["Ubuntu.yml"], (
            per_distribution["Debian.yml"] ^ per_distribution["Ubuntu.yml"])


def test_ansible_checks_host_keys_of_real_hosts():
    """A converge hands the host the TLS key and the app: it must be the host the
    operator means. Only the throwaway-VM paths turn checking off, for themselves."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "ansible.cfg"))
    assert cfg.getboolean("defaults", "host_key_checking") is True


def test_site_playbook_preflights_every_role():
    play = load("ansible/site.yml")[0]
    preflight = play["pre_tasks"][0]
    assert preflight["ansible.builtin.include_role"]["tasks_from"] == "preflight"
    roles = [r["role"] for r in play["roles"]]
    assert sorted(preflight["loop"]) == sorted(roles) == ROLES


def test_every_devsec_control_is_covered_or_waived():
    controls = load("ansible/roles/hardening/controls.yml")
    covered, waived = set(controls["covered"]), set(controls["waived"])
    assert not covered & waived
    for control, entry in controls["covered"].items():
        test_file, _, test_name = entry["test"].partition("::")
        path = os.path.join(ROOT, "testing", "host", test_file)
        with open(path) as f:
            assert f"def {test_name}(" in f.read(), f"{control}: {entry['test']} does not exist"
    # the dev-sec baselines' control ids (linux-baseline os/package/sysctl, ssh-baseline sshd)
    expected = ({f"os-{i:02d}" for i in range(1, 17)} | {"os-03b", "os-05b"}
                | {f"package-{i:02d}" for i in (1, 2, 3, 5, 6, 7, 8, 9, 10)}
                | {f"sysctl-{i:02d}" for i in range(1, 35) if i not in (18, 31)}
                | {"sysctl-31a", "sysctl-31b"}
                | {f"sshd-{i:02d}" for i in range(1, 49) if i != 26})
    assert covered | waived == expected, sorted(expected ^ (covered | waived))


LOCAL_STAGE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - ansible.builtin.include_role:
        name: instance_boot
        tasks_from: preflight
"""


def run_instance_boot_preflight(tmp_path, extra_vars):
    """instance_boot's preflight on this machine, with extra_vars."""
    play = tmp_path / "play.yml"
    play.write_text(LOCAL_STAGE_PLAY)
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "ansible/roles"),
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play),
         "-e", json.dumps(extra_vars)],
        capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("cfg, refused", [("network: {config: disabled}\n", False),
                                          ("datasource_list: [NoCloud, None]\n", True)])
def test_dropping_cloud_init_local_stage_is_refused_where_it_configures_the_network(
        tmp_path, cfg, refused):
    """instance_boot_local_stage false masks the stage that renders the
    network from the datasource: the preflight refuses it, naming the
    variable, unless cloud-init's network configuration is turned off."""
    (tmp_path / "cloud.cfg.d").mkdir()
    (tmp_path / "cloud.cfg.d" / "90-base.cfg").write_text(cfg)
    out = run_instance_boot_preflight(tmp_path, {"instance_boot_local_stage": False,
                                                 "instance_boot_cloud_dir": str(tmp_path)})
    if refused:
        assert out.returncode != 0, out.stdout[-3000:]
        assert "instance_boot_local_stage is false" in out.stdout, out.stdout[-3000:]
    else:
        assert out.returncode == 0, out.stdout[-3000:]


def test_a_unit_both_serving_and_deferred_is_refused(tmp_path):
    """Deferring a unit on the API's path would order it after itself: the
    preflight refuses it, naming both variables and the unit."""
    out = run_instance_boot_preflight(tmp_path, {
        "instance_boot_serving_units": ["nginx.service"],
        "instance_boot_deferred_units": ["fail2ban.service", "nginx.service"]})
    assert out.returncode != 0, out.stdout[-3000:]
    assert "instance_boot_deferred_units and instance_boot_serving_units both name" in out.stdout
    assert "nginx.service" in out.stdout, out.stdout[-3000:]
