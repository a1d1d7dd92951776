"""Kernel parameters, modules, limits (linux-baseline sysctl-*, os-10)."""

import os

import pytest
import yaml

from harness import ROOT

BASELINE = os.path.join(ROOT, "ansible",
                        "roles", "hardening", "vars", "main.yml")


def load_baseline():
    with open(BASELINE) as f:
        return yaml.safe_load(f)["hardening_sysctl_baseline"]


# One test per parameter of the role's baseline (vars/main.yml), read from
# the role rather than restated: the running kernel must have each value.
@pytest.mark.parametrize("key,value", sorted(load_baseline().items()))
def test_sysctl(host, key, value):
    assert host.sysctl(key) == value


def test_sysctl_survives_reboot_via_config_file(host):
    content = host.file("/etc/sysctl.d/99-zz-hardening.conf").content_string
    assert "net.ipv4.conf.all.rp_filter = 1" in content
    assert "kernel.core_pattern = |/bin/false" in content


@pytest.mark.parametrize("module", ["cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf",
                                    "dccp", "sctp", "rds", "tipc", "kvm", "kvm_amd", "kvm_intel"])
def test_unused_module_cannot_load(host, module):
    """modprobe's effective configuration (every file in modprobe.d) refuses
    the module: loading it runs /bin/false, and no alias loads it. Read from
    the configuration, not from a dry run: `modprobe -n` prints nothing for a
    module already loaded, as KVM is on a VM booted before the role ran (the
    image's instances check that it is not loaded at boot)."""
    lines = host.run(f"modprobe --showconfig | grep -E '^(install|blacklist) {module}( |$)'").stdout
    assert f"install {module} /bin/false" in lines.splitlines(), lines
    assert f"blacklist {module}" in lines.splitlines(), lines


def test_core_dumps_disabled(host):
    limits = host.file("/etc/security/limits.d/10-hardening.conf").content_string
    assert "hard    core    0" in limits
    assert host.check_output("systemctl show -p DefaultLimitCORE --value") == "0"
    assert host.sysctl("kernel.core_pattern") == "|/bin/false"
