"""The firewall and SSH seen from another host: a scanner in its own network
namespace, on the instance's second NIC (a tap in the lab namespace).
"""

import os
import re
import subprocess
import time

import pytest

LAB_NS = os.environ.get("NFR_LAB_NS", "")
SCAN_NS = os.environ.get("NFR_SCAN_NS", "")
VM_IP = os.environ.get("NFR_VM_LAB_IP", "")
SCAN_IP = os.environ.get("NFR_SCAN_IP", "")


def from_scanner(*argv, timeout=300):
    return subprocess.run(["ip", "netns", "exec", SCAN_NS, *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def lab_address(host):
    """Give the instance's lab NIC its address (runtime only: gone after a reboot)."""
    nic = host.check_output("ip -o link | awk -F': ' '/52:54:00:77:00:10/ {print $2}'")
    assert nic, "the instance has no lab NIC"
    host.run_expect([0], f"ip addr replace {VM_IP}/24 dev {nic} && ip link set {nic} up")
    for _ in range(30):
        if from_scanner("ping", "-c1", "-W1", VM_IP).returncode == 0:
            break
        time.sleep(1)
    yield nic
    host.run(f"fail2ban-client set sshd unbanip {SCAN_IP}")


def test_only_ssh_http_https_answer_a_port_scan(record):
    out = from_scanner("nmap", "-Pn", "-n", "-sS", "-T4", "--max-retries", "1",
                       "-p", "1-1024,2222,3306,5000,5355,5432,6379,8000-8010,8080,8443,9000",
                       "--open", "-oG", "-", VM_IP, timeout=900)
    assert out.returncode == 0, out.stderr
    open_ports = sorted(int(p) for p in re.findall(r"(\d+)/open/tcp", out.stdout))
    record("network", {"nmap_open_tcp_ports": open_ports,
                       "nmap_ports_scanned": "1-1024,2222,3306,5000,5355,5432,6379,8000-8010,"
                                             "8080,8443,9000"})
    assert open_ports == [22, 80, 443]


def test_https_works_from_the_other_host():
    out = from_scanner("curl", "-sk", "--max-time", "20", f"https://{VM_IP}/customers/111")
    assert '"Deadpool"' in out.stdout, out.stdout + out.stderr


def ssh_attempt(user, *options):
    out = from_scanner("ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                       "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
                       *options, f"{user}@{VM_IP}", "true", timeout=60)
    return out.returncode, out.stderr


def test_password_and_root_logins_are_refused():
    for user in ("root", "admin"):
        code, err = ssh_attempt(user, "-o",
                                "PreferredAuthentications=password,keyboard-interactive")
        assert code == 255 and "Permission denied (publickey)" in err, err


def test_fail2ban_bans_the_scanner_after_failed_logins(host, record):
    host.run(f"fail2ban-client set sshd unbanip {SCAN_IP}")
    attempts = 0
    for attempts in range(1, 21):
        # paced well under the firewall's SSH rate limit (6 new connections per
        # 30 s, SYN retransmits of a slow handshake included), so every attempt
        # reaches sshd and it is fail2ban, not ufw, that stops them
        time.sleep(10)
        ssh_attempt(f"nosuchuser{attempts}")
        if SCAN_IP in host.check_output("fail2ban-client status sshd"):
            break
    for _ in range(15):  # fail2ban reads the journal a moment later
        status = host.check_output("fail2ban-client status sshd")
        if SCAN_IP in status:
            break
        time.sleep(2)
    record("network", {"fail2ban_banned_after_attempts": attempts})
    assert SCAN_IP in status, status + host.run(
        "journalctl -u ssh --since -10min --no-pager | tail -25").stdout
    # the banned address no longer reaches sshd at all
    code, err = ssh_attempt("admin")
    assert code == 255 and ("timed out" in err or "refused" in err), err
    # while everyone else still can
    assert host.run("true").rc == 0
