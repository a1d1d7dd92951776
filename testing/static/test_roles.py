"""Static checks of the Ansible roles: docs, specs and defaults agree.

These run without a VM: they catch a variable added to defaults but not to
the argument specs (so never validated), a README that lies about defaults,
or a dev-sec control that is neither covered nor waived.
"""

import glob
import importlib.util
import json
import os
import re
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
                     "nginx", "package_fetch", "python_runtime"]



@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults = load(f"ansible/roles/{role}/defaults/main.yml")
    specs = load(f"ansible/roles/{role}/meta/argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    required = {name for name, spec in options.items() if spec.get("required")}
    # options whose default is the OS's (tasks/os_vars.yml): no role default,
    # which would outrank nothing but hide the OS's value
    per_os = os_dependent(role)
    assert not per_os & required
    # every option has a default, except the required ones (wired by the
    # play) and the OS-dependent ones
    expected = set(options) - required - per_os
    assert set(defaults) == expected, set(defaults) ^ expected
    assert all("default" not in options[name] for name in required | per_os)
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


def os_dependent(role):
    """The public names tasks/os_vars.yml sets from the OS defaults (the
    keys of its set_fact task)."""
    path = f"ansible/roles/{role}/tasks/os_vars.yml"
    if not os.path.exists(os.path.join(ROOT, path)):
        return set()
    tasks = load(path)
    return {name for task in tasks for name in task.get("ansible.builtin.set_fact", {})}


# The platforms the roles are written for, as Ansible's facts name them.
PLATFORMS = {"Debian 12": ("Debian", "Debian", "12"), "Debian 13": ("Debian", "Debian", "13"),
             "Ubuntu 24.04": ("Debian", "Ubuntu", "24")}


def os_defaults(role, family, distribution, major):
    """What tasks/os_vars.yml loads on such a host: the family's file, then the
    distribution's, then its major version's, the most specific winning."""
    merged = {}
    for name in (f"family-{family}.yml", f"{distribution}.yml", f"{distribution}-{major}.yml"):
        path = os.path.join(ROOT, f"ansible/roles/{role}/vars/{name}")
        if os.path.exists(path):
            merged.update(load(os.path.relpath(path, ROOT)) or {})
    return merged


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_os_default_is_defined_on_every_platform(platform):
    """A key defined for Debian 12 (verified here) but not for Ubuntu 24.04 (not
    runnable here), or the reverse, would only fail on the host that lacks it:
    every OS default the roles read resolves on every platform."""
    for role in ROLES:
        loader = os.path.join(ROOT, f"ansible/roles/{role}/tasks/os_vars.yml")
        if not os.path.exists(loader):
            assert not glob.glob(os.path.join(ROOT, f"ansible/roles/{role}/vars/family-*.yml"))
            continue
        with open(loader) as f:
            read = set(re.findall(r"default\((\w+_os_\w+)\)", f.read()))
        assert read, loader
        defined = os_defaults(role, *PLATFORMS[platform])
        assert read <= set(defined), (role, platform, sorted(read - set(defined)))
        assert {k for k in defined if "_os_" in k} <= read, (role, "defined but never read")


OS_VARS_PLAY = """
- hosts: api
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - ansible.builtin.include_role:
        name: hardening
        tasks_from: os_vars
    - ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0600"
        content: >-
          {{ {'service': hardening_ssh_service, 'socket': hardening_ssh_socket_unit,
              'time': hardening_time_sync_package,
              'modules': hardening_modules_disabled} | to_json }}
"""


def resolve_os_vars(tmp_path, group_vars):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(json.dumps(
        {"api": {"hosts": {"localhost": {"ansible_python_interpreter": sys.executable}}}}))
    (inventory / "group_vars" / "api.yml").write_text(json.dumps(group_vars))
    (tmp_path / "play.yml").write_text(OS_VARS_PLAY)
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "ansible/roles"),
               ANSIBLE_LOCALHOST_WARNING="False")
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
         str(tmp_path / "play.yml"), "-e", json.dumps({"out": str(tmp_path / "out.json")})],
        capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads((tmp_path / "out.json").read_text())


def controller_is_debian():
    with open("/etc/os-release") as f:
        return "\nID=debian\n" in "\n" + f.read()


@pytest.mark.skipif(not controller_is_debian(),
                    reason="the OS defaults below are Debian's: this controller is not Debian")
def test_the_os_defaults_apply_where_the_inventory_sets_nothing(tmp_path):
    values = resolve_os_vars(tmp_path, {})
    assert values["service"] == "ssh" and values["socket"] == ""
    assert values["time"] == "systemd-timesyncd"
    assert "squashfs" in values["modules"] and "kvm" in values["modules"]


def test_group_vars_override_an_os_default(tmp_path):
    """include_vars outranks group_vars: the OS defaults must not (dev-sec's
    pattern: the operator's value wins)."""
    values = resolve_os_vars(tmp_path, {"hardening_time_sync_package": "chrony",
                                        "hardening_modules_disabled": ["cramfs"]})
    assert values["time"] == "chrony"
    assert values["modules"] == ["cramfs"]


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


HARDENING_AREAS = ["ssh", "sysctl", "kernel_cmdline", "modules", "login_defs", "core_dumps",
                   "file_modes", "packages", "auditd", "fail2ban", "unattended_upgrades",
                   "time_sync", "journald", "sudo", "listeners"]


def listed_tasks(tmp_path, tags):
    """The tasks `ansible-playbook site.yml --tags TAGS` would run, as Ansible
    selects them (the areas are imported, so every task is listed)."""
    (tmp_path / "hosts.yml").write_text(json.dumps({"api": {"hosts": {"h1": {}}}}))
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
         str(tmp_path / "hosts.yml"), os.path.join(ROOT, "ansible/site.yml"), "--list-tasks",
         "--tags", tags],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tasks = []
    for line in out.stdout.splitlines():
        match = re.match(r"\s+(.+?)\tTAGS: \[(.*)\]$", line)
        if match and not line.strip().startswith("play #"):
            tasks.append((match.group(1), {t.strip() for t in match.group(2).split(",") if t}))
    return tasks


def test_one_area_runs_alone(tmp_path):
    """`--tags ssh` runs the preflights (a lockout is refused whatever the
    tags) and hardening's SSH tasks, and nothing else."""
    tasks = listed_tasks(tmp_path, "ssh")
    ssh = [name for name, tags in tasks if "always" not in tags]
    assert all("ssh" in tags for name, tags in tasks if "always" not in tags), tasks
    assert all(name.startswith("hardening : ") for name in ssh), ssh
    with open(os.path.join(ROOT, "ansible/roles/hardening/tasks/ssh.yml")) as f:
        assert len(ssh) == len(yaml.safe_load(f)), (ssh, "not every task of ssh.yml is listed")
    always = [name for name, tags in tasks if "always" in tags]
    assert "Preflight - validate every role's variables and refuse lockouts before any change" \
        in always and "hardening : Preflight" in always


@pytest.mark.parametrize("area", HARDENING_AREAS)
def test_every_hardening_area_has_its_own_tag(tmp_path, area):
    tasks = listed_tasks(tmp_path, area)
    own = [name for name, tags in tasks if "always" not in tags]
    assert own and all(name.startswith("hardening : ") for name in own), (area, tasks)


def suite_table(level, module, name):
    """A table a VM suite declares (its expected values), read here so that
    the role's own values are checked against it without a VM."""
    path = os.path.join(ROOT, "testing", level, f"{module}.py")
    spec = importlib.util.spec_from_file_location(f"{level}_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def test_the_role_sets_every_sysctl_the_host_suite_expects_and_no_other():
    """Removing (or changing) a hardened kernel parameter in the role fails
    here; one added to the role without a test fails too."""
    expected = suite_table("host", "test_kernel", "EXPECTED_SYSCTLS")
    baseline = load("ansible/roles/hardening/vars/main.yml")["hardening_sysctl_baseline"]
    assert baseline == expected, {k: (baseline.get(k), expected.get(k))
                                  for k in set(baseline) | set(expected)
                                  if baseline.get(k) != expected.get(k)}
    # every dev-sec sysctl control the role claims is among them
    controls = load("ansible/roles/hardening/controls.yml")["covered"]
    with open(os.path.join(ROOT, "ansible/roles/hardening/vars/main.yml")) as f:
        claimed = set(re.findall(r"# (sysctl-\w+)", f.read()))
    assert claimed <= set(controls), claimed - set(controls)


@pytest.mark.parametrize("table, variable", [
    ("MASKED_UNITS", "instance_boot_masked_units"),
    ("MASKED_GENERATORS", "instance_boot_masked_generators"),
    ("DEFERRED_UNITS", "instance_boot_deferred_units")])
def test_the_boot_role_defaults_are_what_the_image_checks_expect(table, variable):
    """Removing a unit from the role's lists fails here (the image checks
    hold the same lists as their own expectations)."""
    defaults = load("ansible/roles/instance_boot/defaults/main.yml")
    assert defaults[variable] == suite_table("image", "test_image", table)


def test_the_role_adds_every_kernel_argument_the_host_suite_expects():
    expected = suite_table("host", "test_kernel", "EXPECTED_KERNEL_ARGUMENTS")
    assert load("ansible/roles/hardening/defaults/main.yml")["hardening_kernel_cmdline"] == expected
