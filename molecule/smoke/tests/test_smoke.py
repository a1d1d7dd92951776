"""The VM loop's own check: the python_runtime role changed a real VM."""

import pytest

testinfra_hosts = ["ansible://all"]


def test_it_is_a_real_booted_debian_12(host):
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")
    assert host.run("systemctl is-system-running --wait").stdout.strip() in ("running", "degraded")
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


@pytest.mark.parametrize("package", ["python3", "python3-venv"])
def test_runtime_packages_installed(host, package):
    assert host.package(package).is_installed


def test_a_venv_can_be_made_and_used(host):
    cmd = host.run("d=$(mktemp -d) && python3 -m venv $d/v && $d/v/bin/python -c "
                   "'import sys; print(sys.prefix)' && rm -rf $d")
    assert cmd.rc == 0, cmd.stderr
    assert "/v" in cmd.stdout


def test_instance_identity_is_unique_to_this_boot(host):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert len(machine_id) == 32
    assert host.file("/etc/ssh/ssh_host_ed25519_key").exists
