"""Kernel parameters, modules, limits (linux-baseline sysctl-*, os-10)."""

import os

import pytest
import yaml

BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ansible",
                        "roles", "hardening", "vars", "main.yml")


@pytest.mark.parametrize("key,value", [
    ("net.ipv4.ip_forward", 0),
    ("net.ipv4.conf.all.rp_filter", 1),
    ("net.ipv4.conf.default.rp_filter", 1),
    ("net.ipv4.conf.all.accept_redirects", 0),
    ("net.ipv4.conf.all.send_redirects", 0),
    ("net.ipv4.conf.all.secure_redirects", 0),
    ("net.ipv4.conf.all.accept_source_route", 0),
    ("net.ipv6.conf.all.accept_redirects", 0),
    ("net.ipv6.conf.all.accept_source_route", 0),
    ("net.ipv4.conf.all.log_martians", 1),
    ("net.ipv4.tcp_syncookies", 1),
    ("net.ipv4.icmp_echo_ignore_broadcasts", 1),
    ("net.ipv4.tcp_rfc1337", 1),
    ("kernel.kptr_restrict", 2),
    ("kernel.dmesg_restrict", 1),
    ("kernel.yama.ptrace_scope", 2),
    ("kernel.randomize_va_space", 2),
    ("kernel.sysrq", 0),
    ("kernel.unprivileged_bpf_disabled", 1),
    ("fs.suid_dumpable", 0),
    ("fs.protected_hardlinks", 1),
    ("fs.protected_symlinks", 1),
    ("fs.protected_fifos", 2),
    ("fs.protected_regular", 2),
])
def test_sysctl(host, key, value):
    assert host.sysctl(key) == value


def test_every_baseline_parameter_is_live(host):
    """All of the role's baseline (vars/main.yml), not a sample: the running kernel."""
    with open(BASELINE) as f:
        baseline = yaml.safe_load(f)["hardening_sysctl_baseline"]
    live = {key: host.sysctl(key) for key in baseline}
    wrong = {key: (live[key], value) for key, value in baseline.items() if live[key] != value}
    assert wrong == {}


def test_sysctl_survives_reboot_via_config_file(host):
    content = host.file("/etc/sysctl.d/99-zz-hardening.conf").content_string
    assert "net.ipv4.conf.all.rp_filter = 1" in content
    assert "kernel.core_pattern = |/bin/false" in content


@pytest.mark.parametrize("module", ["cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf",
                                    "dccp", "sctp", "rds", "tipc"])
def test_unused_module_cannot_load(host, module):
    out = host.run(f"modprobe -n -v {module}")
    assert "install /bin/false" in out.stdout or "not found" in out.stderr, out


def test_core_dumps_disabled(host):
    limits = host.file("/etc/security/limits.d/10-hardening.conf").content_string
    assert "hard    core    0" in limits
    assert host.check_output("systemctl show -p DefaultLimitCORE --value") == "0"
    assert host.sysctl("kernel.core_pattern") == "|/bin/false"
