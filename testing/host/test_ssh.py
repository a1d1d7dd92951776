"""sshd's effective configuration (`sshd -T`), not just the file."""

import pytest


@pytest.fixture(scope="module")
def sshd(host):
    out = host.check_output("sshd -T -C user=nobody,host=client,addr=192.0.2.1")
    settings = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, value)
    return settings


@pytest.mark.parametrize("key,value", [
    ("port", "22"),
    ("permitrootlogin", "no"),
    ("passwordauthentication", "no"),
    ("kbdinteractiveauthentication", "no"),
    ("pubkeyauthentication", "yes"),
    ("authenticationmethods", "publickey"),
    ("permitemptypasswords", "no"),
    ("maxauthtries", "3"),
    ("logingracetime", "30"),
    ("allowtcpforwarding", "no"),
    ("allowagentforwarding", "no"),
    ("allowstreamlocalforwarding", "no"),
    ("x11forwarding", "no"),
    ("permittunnel", "no"),
    ("gatewayports", "no"),
    ("permituserenvironment", "no"),
    ("loglevel", "VERBOSE"),
    ("hostbasedauthentication", "no"),
    ("ignorerhosts", "yes"),
    ("strictmodes", "yes"),
    ("clientaliveinterval", "300"),
    ("clientalivecountmax", "3"),
    ("kerberosauthentication", "no"),
    ("gssapiauthentication", "no"),
    ("x11uselocalhost", "yes"),
    ("printmotd", "no"),
    ("printlastlog", "no"),
    ("banner", "/etc/issue.net"),
    ("allowgroups", "ssh-users"),
    ("syslogfacility", "AUTH"),
    ("maxsessions", "10"),
    ("maxstartups", "10:30:60"),
    ("tcpkeepalive", "no"),
    ("ignoreuserknownhosts", "yes"),
])
def test_sshd_setting(sshd, key, value):
    assert sshd[key] == value


def test_only_modern_algorithms(sshd):
    assert set(sshd["ciphers"].split(",")) <= {
        "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
        "aes256-ctr", "aes192-ctr", "aes128-ctr"}
    assert all(mac.endswith("-etm@openssh.com") for mac in sshd["macs"].split(","))
    kex = sshd["kexalgorithms"].split(",")
    assert not any("sha1" in k or "group14" in k or "nistp" in k for k in kex), kex
    assert "curve25519-sha256" in kex


def test_no_dsa_host_key(host):
    assert not host.file("/etc/ssh/ssh_host_dsa_key").exists
    assert host.file("/etc/ssh/ssh_host_ed25519_key").mode == 0o600


def test_only_an_ed25519_host_key(host, sshd):
    # dev-sec ssh-baseline: no NIST-curve host key, RSA only at 4096 bits or not at all
    out = host.check_output("sshd -T -C user=nobody,host=client,addr=192.0.2.1")
    keys = [line.split()[1] for line in out.splitlines() if line.startswith("hostkey ")]
    assert keys == ["/etc/ssh/ssh_host_ed25519_key"], keys
    for kind in ("ecdsa", "rsa", "dsa"):
        assert not host.file(f"/etc/ssh/ssh_host_{kind}_key").exists, kind


def test_post_quantum_key_exchange_first(host, sshd):
    offered = host.check_output("ssh -Q kex").split()
    hybrids = [k for k in ("mlkem768x25519-sha256", "sntrup761x25519-sha512",
                           "sntrup761x25519-sha512@openssh.com") if k in offered]
    assert hybrids, offered
    assert sshd["kexalgorithms"].split(",")[0] == hybrids[0]


def test_login_banner(host):
    banner = host.file("/etc/issue.net")
    assert "Authorised access only" in banner.content_string and banner.mode == 0o644


def test_ssh_only_for_the_login_group(host):
    """A user with a valid key but outside ssh-users is refused; the operator
    (in it) is not locked out."""
    user = "ssh-outsider"
    host.run_expect([0], f"id {user} >/dev/null 2>&1 || useradd --create-home "
                         f"--shell /bin/bash {user}")
    try:
        host.run_expect([0], f"rm -f /root/{user}-key* && ssh-keygen -q -t ed25519 -N '' "
                             f"-f /root/{user}-key && install -d -m 700 -o {user} "
                             f"/home/{user}/.ssh && install -m 600 -o {user} "
                             f"/root/{user}-key.pub /home/{user}/.ssh/authorized_keys")
        # (the exit code is echoed: testinfra takes its own 255 for a failed connection)
        out = host.run(f"ssh -i /root/{user}-key -o BatchMode=yes -o StrictHostKeyChecking=no "
                       f"-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 "
                       f"{user}@127.0.0.1 true; echo ssh-exit=$?")
        assert "ssh-exit=255" in out.stdout and "Permission denied" in out.stderr, out
        operator = host.check_output("id -nG $SUDO_USER 2>/dev/null || id -nG")
        assert "ssh-users" in operator.split(), operator
    finally:
        host.run(f"userdel --remove {user}; rm -f /root/{user}-key*")


def test_sshd_config_is_root_only_and_complete(host):
    config = host.file("/etc/ssh/sshd_config")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    lines = config.content_string.splitlines()
    assert "DebianBanner no" in lines  # not shown by sshd -T
    assert not any(line.startswith("Include") for line in lines)


def test_weak_dh_moduli_removed(host):
    sizes = host.check_output("awk '$5 ~ /^[0-9]+$/ {print $5}' /etc/ssh/moduli | sort -un")
    assert sizes and all(int(size) >= 3071 for size in sizes.split())


def test_password_login_is_refused_by_the_server(host):
    """An SSH client offered only passwords gets no method to try."""
    out = host.run("ssh -o BatchMode=yes -o StrictHostKeyChecking=no "
                   "-o UserKnownHostsFile=/dev/null "
                   "-o PreferredAuthentications=password,keyboard-interactive "
                   "-o ConnectTimeout=10 "
                   "root@127.0.0.1 true; echo ssh-exit=$?")
    assert "ssh-exit=255" in out.stdout
    assert "Permission denied (publickey)" in out.stderr
