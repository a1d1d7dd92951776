"""ufw: default deny in, SSH rate-limited, 80 and 443 open, the exporters' ports from
the metrics sources only, nothing else."""

import re

from harness.deployment import EXPORTERS, metrics_sources


def ufw_status(host):
    return host.check_output("ufw status verbose")


def test_ufw_active_with_default_deny(host):
    status = ufw_status(host)
    assert "Status: active" in status
    assert re.search(r"Default: deny \(incoming\), allow \(outgoing\), (deny|disabled) \(routed\)",
                     status)


def ufw_source(cidr):
    """A network as `ufw status` prints it (a single address without /32)."""
    return cidr.removesuffix("/32")


def expected_rules(host):
    """(port, action, from) as `ufw status verbose` lists them, for the source
    lists this host was converged with (the inventory's; empty: anywhere)."""
    facts = host.ansible.get_variables()
    rules = [(f"{port}/tcp", "ALLOW", ufw_source(source)) for port in sorted(EXPORTERS.values())
             for source in metrics_sources(host)]
    for ports, action, sources in ((["22"], "LIMIT", facts.get("firewall_ssh_sources")),
                                   (["80", "443"], "ALLOW", facts.get("firewall_api_sources"))):
        for port in ports:
            if sources:
                rules += [(f"{port}/tcp", action, source) for source in sources]
            else:
                rules += [(f"{port}/tcp", action, "Anywhere"),
                          (f"{port}/tcp (v6)", action, "Anywhere (v6)")]
    return sorted(rules)


# A rule of the form the roles write: one TCP port, inbound, from one source
# (ufw prints the role's comment after it)
RULE = re.compile(r"^(\d+/tcp(?: \(v6\))?)\s+(LIMIT|ALLOW|DENY|REJECT) IN\s+"
                  r"(\S+(?: \(v6\))?)(?:\s+#.*)?$")


def listed_rules(status):
    """Every rule `ufw status verbose` lists (the lines under its "--" line):
    those of the roles' form as (port, action, from), and any other line
    whole (a port range, both protocols, an interface, outbound)."""
    table = status.partition("\n--")[2].split("\n")[1:]
    rules, other = [], []
    for line in filter(str.strip, table):
        match = RULE.match(line.rstrip())
        if match:
            rules.append(match.groups())
        else:
            other.append(line.strip())
    return rules, other


def test_only_ssh_http_https_are_allowed(host):
    rules, other = listed_rules(ufw_status(host))
    assert other == [], "rules of a form the roles never write"
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


BOOT_RULESET = "/usr/local/sbin/supermega-firewall-boot"
KEPT = "/var/lib/supermega-firewall"
# a dump without comments (dates) and packet counters, as the kept ruleset is written
NORMALIZE = r"sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]$/[0:0]/'"


def test_the_ruleset_loaded_at_boot_is_the_one_ufw_builds(host):
    """At boot ufw.service restores the ruleset kept at the last converge
    (supermega-firewall-boot) instead of running ufw-init. It must be exactly
    what ufw-init builds from ufw's files now: rebuild it the slow way and
    compare, table by table."""
    with host.sudo():
        assert host.check_output(f"{BOOT_RULESET} status") == "fresh"
        kept = {v: host.file(f"{KEPT}/rules.{v}").content_string.strip() for v in ("v4", "v6")}
        host.run_expect([0], "/lib/ufw/ufw-init force-reload")
        built = {"v4": host.check_output(f"iptables-save | {NORMALIZE}"),
                 "v6": host.check_output(f"ip6tables-save | {NORMALIZE}")}
    assert "--dport 443" in kept["v4"]
    assert built == kept


def test_a_changed_ufw_file_sends_the_boot_back_to_ufw_init(host):
    """After a change to any of ufw's files (here: one byte appended to
    after.init, then put back) the kept ruleset is stale and the boot builds
    the rules through ufw-init."""
    path = "/etc/ufw/after.init"
    with host.sudo():
        host.run_expect([0], f"cp -p {path} /run/after.init.orig && echo >> {path}")
        try:
            stale = host.check_output(f"{BOOT_RULESET} status")
        finally:
            host.run_expect([0], f"cp -p /run/after.init.orig {path} && rm /run/after.init.orig")
        fresh = host.check_output(f"{BOOT_RULESET} status")
    assert stale.startswith("stale: ufw's files changed")
    assert fresh == "fresh"


MODULES_LOAD = "/etc/modules-load.d/supermega-firewall.conf"
# The iptables side of netfilter, which ufw's rules (iptables-nft) load and
# fail2ban's nftables actions do not: every one of these loaded must be listed.
IPTABLES_MODULE = re.compile(r"^(x_tables|ip6?_tables|ipt_\w+|ip6t_\w+|xt_\w+)$")


def test_the_modules_of_ufw_rules_are_loaded_at_the_start_of_the_boot(host):
    """systemd-modules-load loads the modules ufw's rules use (the firewall
    role's list), instead of one modprobe at a time inside ufw.service on the
    path to the network: every listed module is loaded, the unit did not
    fail on one, and every iptables-side module loaded is on the list."""
    listed = {line.strip() for line in host.file(MODULES_LOAD).content_string.splitlines()
              if line.strip() and not line.startswith("#")}
    loaded = {line.split()[0] for line in host.file("/proc/modules").content_string.splitlines()}
    # built into the kernel (Ubuntu's may be): no /proc/modules line, a /sys/module directory
    builtin = {name for name in listed - loaded if host.file(f"/sys/module/{name}").is_directory}
    assert listed - loaded - builtin == set()
    assert host.run("systemctl is-active systemd-modules-load").stdout.strip() == "active"
    assert {name for name in loaded if IPTABLES_MODULE.match(name)} - listed == set()
