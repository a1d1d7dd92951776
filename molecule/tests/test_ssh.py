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
    ("banner", "none"),
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
