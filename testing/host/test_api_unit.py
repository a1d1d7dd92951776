"""The API's systemd units: socket activation, notify, restart, sandbox."""

import re

import pytest

from harness.deployment import API, API_ROOT


def unit_property(host, unit, name):
    """systemd's own view of the unit (testinfra: `systemctl show`)."""
    return host.service(unit).systemd_properties.get(name, "")


@pytest.mark.parametrize("name,expected", [
    ("Type", "notify"),
    ("User", API),
    ("Restart", "on-failure"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("PrivateNetwork", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX"),
    ("CapabilityBoundingSet", ""),
])
def test_service_properties(host, name, expected):
    assert unit_property(host, f"{API}.service", name) == expected


@pytest.mark.parametrize("unit", ["service", "socket"])
def test_start_is_not_ordered_behind_cloud_init(host, unit):
    """gunicorn needs nothing of cloud-init (no network, no user-data): its
    socket and service are not behind sysinit.target, which an instance's
    cloud-init network stage holds back (docs/adr/0014-boot-path.md), but keep what
    that target gave them: file systems, tmpfiles, sysctls, audit's rules."""
    name = f"{API}.{unit}"
    after = set(unit_property(host, name, "After").split())
    assert not {"sysinit.target", "basic.target"} & after, after
    everything_before = host.check_output(f"systemctl list-dependencies --after --plain {name}")
    assert "cloud-init.service" not in everything_before, everything_before
    assert {"local-fs.target", "systemd-tmpfiles-setup.service"} <= after, after
    if unit == "service":
        assert {"systemd-sysctl.service", "auditd.service"} <= after, after


# Syscalls the API never needs, which a foothold in it would: each must be
# refused by the unit's effective filter (drop-ins included).
DENIED_SYSCALLS = ["ptrace", "mount", "umount2", "reboot", "kexec_load", "init_module",
                   "delete_module", "swapon", "bpf", "setrlimit", "chroot", "pivot_root",
                   "settimeofday"]


def test_the_api_runs_under_a_syscall_filter(host):
    """The effective SystemCallFilter (allow @system-service, deny @privileged
    and @resources) denies what the API never uses, and the running master is
    under a seccomp filter (mode 2), so the filter is applied, not only set."""
    allowed = unit_property(host, f"{API}.service", "SystemCallFilter")
    assert allowed and not allowed.startswith("~"), allowed    # an allow-list
    listed = set(allowed.split())
    assert {"read", "write", "accept4", "sendmsg"} <= listed, allowed
    assert not set(DENIED_SYSCALLS) & listed, set(DENIED_SYSCALLS) & listed
    # a denied call fails with EPERM, not a kill (systemd 252 prints errno 1, later ones its name)
    assert unit_property(host, f"{API}.service", "SystemCallErrorNumber") in ("EPERM", "1")
    pid = unit_property(host, f"{API}.service", "MainPID")
    status = host.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status


def test_socket_triggers_service(host):
    assert unit_property(host, f"{API}.socket", "Triggers") == f"{API}.service"
    assert unit_property(host, f"{API}.service", "ExecReload").find("HUP") > 0


def test_systemd_analyze_security_exposure_at_most_1_5(host):
    out = host.check_output(f"systemd-analyze security --no-pager {API}.service")
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 1.5, out


def test_service_restarts_after_a_crash(host):
    """kill -9 the master: systemd restarts it, the socket never went away."""
    before = host.check_output(f"systemctl show -p MainPID --value {API}.service")
    host.run_expect([0], f"systemctl kill --signal=KILL --kill-whom=main {API}.service")
    cmd = host.run(
        f"for i in $(seq 60); do p=$(systemctl show -p MainPID --value {API}.service); "
        f"[ \"$p\" != 0 ] && [ \"$p\" != {before} ] && "
        f"systemctl is-active -q {API}.service && exit 0; "
        "sleep 0.5; done; exit 1")
    assert cmd.rc == 0, "service did not come back after SIGKILL"


def test_release_layout(host):
    current = host.file(f"{API_ROOT}/current")
    assert current.is_symlink
    target = current.linked_to
    assert target.startswith(f"{API_ROOT}/releases/")
    assert host.file(f"{target}/venv/bin/gunicorn").exists
    assert host.file(f"{target}/wheelhouse").is_directory
