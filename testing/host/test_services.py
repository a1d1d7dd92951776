"""The services are up, enabled, and the only things listening."""

import re

import pytest

from harness.deployment import API, API_SOCKET, EXPORTERS, metrics_sources


@pytest.mark.parametrize("unit", [
    "nginx.service", f"{API}.socket", f"{API}.service", "auditd.service",
    "fail2ban.service", "ufw.service", "systemd-timesyncd.service", "apt-daily-upgrade.timer",
])
def test_unit_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running, f"{unit} is not active"
    assert service.is_enabled, f"{unit} is not enabled"


def socket_activated_ssh(host):
    """Ubuntu >= 22.10 starts sshd from ssh.socket (systemd holds port 22);
    Debian 12 runs ssh.service, which listens itself."""
    return host.system_info.distribution == "ubuntu"


def test_ssh_unit_active_and_enabled(host):
    unit = "ssh.socket" if socket_activated_ssh(host) else "ssh.service"
    assert host.service(unit).is_running, f"{unit} is not active"
    assert host.service(unit).is_enabled, f"{unit} is not enabled"


def test_no_failed_units(host):
    failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
    assert failed.strip() == ""


def listeners(host, proto):
    out = host.check_output(f"ss -H -{proto}lnp")
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        address, _, port = local.rpartition(":")
        process = re.search(r'\(\("([^"]+)"', line)
        name = process.group(1) if process else "?"
        found.append((address.strip("[]").split("%")[0], int(port), name))
    return found


def is_loopback(address):
    return address.startswith("127.") or address == "::1"


def test_only_sshd_and_nginx_listen_beyond_loopback_on_tcp(host):
    public = {(port, proc) for address, port, proc in listeners(host, "t")
              if not is_loopback(address)}
    ssh = "systemd" if socket_activated_ssh(host) else "sshd"
    expected = {(22, ssh), (80, "nginx"), (443, "nginx")}
    if metrics_sources(host):
        # (ss shows the first 15 characters of a process's name)
        expected |= {(port, unit.removesuffix(".service")[:15]) for unit, port in EXPORTERS.items()}
    assert public == expected


def test_nothing_but_dhcp_listens_beyond_loopback_on_udp(host):
    public = {(port, proc) for address, port, proc in listeners(host, "u")
              if not is_loopback(address)}
    assert public <= {(68, "systemd-network")}, public


def test_gunicorn_listens_only_on_its_unix_socket(host):
    gunicorn_inet = [entry for entry in listeners(host, "t") + listeners(host, "u")
                     if "gunicorn" in entry[2]]
    assert gunicorn_inet == []
    sock = host.file(API_SOCKET)
    assert sock.is_socket
    assert sock.user == "root" and sock.group == "www-data" and sock.mode == 0o660


def test_gunicorn_runs_as_the_service_user_with_cpus_plus_one_workers(host):
    procs = host.process.filter(comm="gunicorn")
    assert procs, "no gunicorn process"
    assert {p.user for p in procs} == {API}
    cpus = int(host.check_output("nproc"))
    assert len(procs) == 1 + cpus + 1  # master + (CPUs + 1) workers
    master = [p for p in procs if p.ppid == 1]
    assert len(master) == 1
