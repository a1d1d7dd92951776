"""ufw: default deny in, SSH rate-limited, 80 and 443 open, nothing else."""

import re


def ufw_status(host):
    return host.check_output("ufw status verbose")


def test_ufw_active_with_default_deny(host):
    status = ufw_status(host)
    assert "Status: active" in status
    assert re.search(r"Default: deny \(incoming\), allow \(outgoing\), (deny|disabled) \(routed\)",
                     status)


def expected_rules(host):
    """(port, action, from) as `ufw status verbose` lists them, for the source
    lists this host was converged with (the inventory's; empty: anywhere)."""
    facts = host.ansible.get_variables()
    rules = []
    for ports, action, sources in ((["22"], "LIMIT", facts.get("firewall_ssh_sources")),
                                   (["80", "443"], "ALLOW", facts.get("firewall_api_sources"))):
        for port in ports:
            if sources:
                rules += [(f"{port}/tcp", action, source) for source in sources]
            else:
                rules += [(f"{port}/tcp", action, "Anywhere"),
                          (f"{port}/tcp (v6)", action, "Anywhere (v6)")]
    return sorted(rules)


def test_only_ssh_http_https_are_allowed(host):
    rules = re.findall(r"^(\d+/tcp(?: \(v6\))?)\s+(LIMIT|ALLOW|DENY|REJECT) IN\s+"
                       r"(\S+(?: \(v6\))?)", ufw_status(host), re.MULTILINE)
    # IPv4 and IPv6: exactly these, from exactly these sources, nothing else
    assert sorted(rules) == expected_rules(host)


def test_ufw_starts_at_boot(host):
    assert "ENABLED=yes" in host.file("/etc/ufw/ufw.conf").content_string
    assert host.service("ufw").is_enabled


def test_fail2ban_jails(host):
    status = host.check_output("fail2ban-client status")
    assert "sshd" in status and "nginx-limit-req" in status
    sshd = host.check_output("fail2ban-client get sshd journalmatch")
    assert "sshd" in sshd  # the systemd journal backend, not a log file
    actions = host.check_output("fail2ban-client get sshd actions")
    assert actions.splitlines()[-1].strip() == "nftables"
