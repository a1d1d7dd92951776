"""The firewall and SSH seen from another host: a scanner in its own network
namespace, on the instance's second NIC (a tap in the lab namespace).
"""

import json
import os
import re
import subprocess
import time

import pytest

from harness.deployment import EXPORTERS, METRICS_SETTINGS

# the usual suspects, and the exporters' management range (closed: no monitoring source)
SCANNED_PORTS = ("1-1024,2222,3306,5000,5355,5432,6379,8000-8010,8080,8443,9000,"
                 + ",".join(map(str, sorted(EXPORTERS.values()))))

LAB_NS = os.environ.get("NFR_LAB_NS", "")
SCAN_NS = os.environ.get("NFR_SCAN_NS", "")
VM_IP = os.environ.get("NFR_VM_LAB_IP", "")
SCAN_IP = os.environ.get("NFR_SCAN_IP", "")
OTHER_IP = os.environ.get("NFR_OTHER_IP", "")     # the scanner's second address: never listed


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
                       "-p", SCANNED_PORTS,
                       "--open", "-oG", "-", VM_IP, timeout=900)
    assert out.returncode == 0, out.stderr
    open_ports = sorted(int(p) for p in re.findall(r"(\d+)/open/tcp", out.stdout))
    record("network", {"nmap_open_tcp_ports": open_ports, "nmap_ports_scanned": SCANNED_PORTS})
    assert open_ports == [22, 80, 443]


def scan(ports, source=None):
    """The open TCP ports among PORTS, scanned from the scanner (from SOURCE,
    one of its addresses, if given)."""
    spoof = ["-S", source, "-e", "veth-scan"] if source else []
    out = from_scanner("nmap", "-Pn", "-n", "-sS", "--max-retries", "1", *spoof,
                       "-p", ",".join(map(str, ports)), "--open", "-oG", "-", VM_IP, timeout=300)
    assert out.returncode == 0, out.stderr
    return sorted(int(p) for p in re.findall(r"(\d+)/open/tcp", out.stdout))


def apply_metrics_sources(host, sources):
    """Give the instance these monitoring sources the way boot does: the
    settings file, then supermega-metrics-config.service, whose restart
    restarts the exporters that require it (the runbook's step)."""
    host.run_expect([0], f"printf '%s\\n' '{json.dumps({'metrics_sources': sources})}' "
                         f"> {METRICS_SETTINGS}")
    host.run_expect([0], "systemctl restart supermega-metrics-config")
    for _ in range(30):      # until every exporter listens again
        if all(host.run(f"ss -H -tln 'sport = :{port}'").stdout.strip()
               for port in EXPORTERS.values()):
            return
        time.sleep(1)
    raise AssertionError(host.run(f"systemctl status --no-pager {' '.join(EXPORTERS)}").stdout)


def test_exporters_answer_a_listed_source_only(host, record):
    """Empty sources (the image as baked): the exporters' ports are closed to
    everyone (the scan above covers them too). One source listed, the
    scanner's own address: its scrape works, and the same ports stay closed
    to the scanner's other address. Back to none: closed again."""
    ports = sorted(EXPORTERS.values())
    original = host.file(METRICS_SETTINGS).content_string
    assert json.loads(original).get("metrics_sources", []) == []
    try:
        apply_metrics_sources(host, [f"{SCAN_IP}/32"])
        listed, other = scan(ports, SCAN_IP), scan(ports, OTHER_IP)
        scrape = from_scanner("curl", "-s", "--max-time", "20", "--interface", SCAN_IP,
                              f"http://{VM_IP}:{EXPORTERS['prometheus-node-exporter.service']}"
                              "/metrics")
        refused = from_scanner("curl", "-s", "--max-time", "5", "--interface", OTHER_IP,
                               f"http://{VM_IP}:{EXPORTERS['prometheus-node-exporter.service']}"
                               "/metrics")
    finally:
        apply_metrics_sources(host, json.loads(original).get("metrics_sources", []))
    closed_again = scan(ports, SCAN_IP)
    record("network", {"metrics_ports": ports, "metrics_open_to_listed_source": listed,
                       "metrics_open_to_other_source": other,
                       "metrics_open_after_sources_emptied": closed_again})
    assert listed == ports, listed
    assert "node_systemd_unit_state" in scrape.stdout, scrape.stderr
    assert other == [] and refused.returncode != 0, (other, refused.stdout[:200])
    assert closed_again == [], closed_again


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
