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
    # the host answers only to its own names and addresses, found when its edge
    # settings are applied: apply them again for the new address, then reload
    # nginx (the runbook's step after an address change)
    host.run_expect([0], "supermega-edge-config && systemctl reload nginx")
    for _ in range(30):
        if from_scanner("ping", "-c1", "-W1", VM_IP).returncode == 0:
            break
        time.sleep(1)
    yield nic
    host.run(f"fail2ban-client set sshd unbanip {SCAN_IP}")


def test_password_and_root_logins_are_refused(host):
    # first in this module: the port scan below counts against the firewall's
    # SSH rate limit (6 new connections per 30 s from one address)
    for user in ("root", "admin"):
        code, err = ssh_attempt(user, "-o",
                                "PreferredAuthentications=password,keyboard-interactive")
        assert code == 255 and "Permission denied (publickey)" in err, (
            err, host.run("ufw status verbose; fail2ban-client status sshd").stdout)


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


def failed_and_banned(host):
    """(failures fail2ban counts for the scanner now, whether it is banned)."""
    status = host.check_output("fail2ban-client status sshd")
    failed = int(re.search(r"Currently failed:\s+(\d+)", status).group(1))
    return failed, SCAN_IP in status.split("Banned IP list:")[-1]


def test_fail2ban_bans_the_scanner_at_maxretry(host, record):
    """The sshd jail bans exactly when the failures it counts reach maxretry
    (5 in 10 minutes), not before, and the ban holds. One failed login at a
    time, each awaited until fail2ban has read it (it reads the journal a
    moment later), so neither the pace of the attempts nor a slow guest
    decides the outcome."""
    maxretry = int(host.check_output("fail2ban-client get sshd maxretry"))
    host.run(f"fail2ban-client set sshd unbanip {SCAN_IP}")
    # the port scan's probes of port 22 count against the firewall's SSH rate
    # limit (6 per 30 s): let that window pass, so every attempt reaches sshd
    time.sleep(31)
    start, banned = failed_and_banned(host)
    assert not banned
    history = [(0, start, False)]
    for attempt in range(1, maxretry - start + 1):
        # paced under the firewall's SSH rate limit (6 new connections per 30 s),
        # so every attempt reaches sshd: it is fail2ban, not ufw, that stops them
        time.sleep(6)
        before = failed_and_banned(host)[0]
        ssh_attempt(f"nosuchuser{attempt}")
        for _ in range(100):       # until fail2ban has counted this attempt, or banned
            failed, banned = failed_and_banned(host)
            if banned or failed > before:
                break
            time.sleep(0.2)
        history.append((attempt, failed, banned))
        if banned:
            break
    record("network", {"fail2ban_maxretry": maxretry, "fail2ban_history": history,
                       "fail2ban_banned_after_attempts": history[-1][0]})
    # not banned while the count was under maxretry, banned once it got there
    assert all(not banned and failed < maxretry for _, failed, banned in history[:-1]), history
    assert history[-1][2], (history, host.run(
        "journalctl -u ssh --since -5min --no-pager | tail -20").stdout)
    # fail2ban lists the ban before its action has run (the first ban also
    # creates its nftables table): wait, bounded, until the firewall has it
    in_firewall = ""
    for _ in range(60):
        in_firewall = host.run("nft list set inet f2b-table addr-set-sshd").stdout
        if SCAN_IP in in_firewall:
            break
        time.sleep(0.5)
    assert SCAN_IP in in_firewall, (in_firewall, host.run(
        "journalctl -u fail2ban --since -5min --no-pager | tail -20").stdout)
    # the banned address no longer reaches sshd at all
    code, err = ssh_attempt("admin")
    assert code == 255 and ("timed out" in err or "refused" in err), err
    # while everyone else still can
    assert host.run("true").rc == 0
