"""Owners and modes that matter (linux-baseline os-02, os-03, os-05, os-13)."""

import re
import time
import uuid

import pytest

from harness.deployment import API, API_CONFIG_DIR, API_ROOT


@pytest.mark.parametrize("path,user,group,mode", [
    ("/etc/shadow", "root", "shadow", 0o640),
    ("/etc/gshadow", "root", "shadow", 0o640),
    ("/etc/passwd", "root", "root", 0o644),
    ("/etc/group", "root", "root", 0o644),
    ("/etc/login.defs", "root", "root", 0o644),
    ("/etc/skel/.bashrc", "root", "root", 0o640),
    ("/etc/skel/.profile", "root", "root", 0o640),
    ("/etc/skel/.bash_logout", "root", "root", 0o640),
    ("/etc/securetty", "root", "root", 0o600),
    ("/etc/crontab", "root", "root", 0o600),
    ("/etc/cron.d", "root", "root", 0o700),
    ("/etc/cron.daily", "root", "root", 0o700),
    ("/etc/nginx/tls", "root", "root", 0o700),
    ("/etc/nginx/tls/server.key", "root", "root", 0o600),
    ("/etc/nginx/nginx.conf", "root", "root", 0o640),
    ("/etc/nginx/conf.d/api.conf", "root", "root", 0o640),
    ("/etc/nginx/supermega", "root", "root", 0o750),
    ("/etc/supermega-edge/settings.json", "root", "root", 0o640),
    (f"{API_CONFIG_DIR}/gunicorn.conf.py", "root", API, 0o640),
    (f"/etc/systemd/system/{API}.service", "root", "root", 0o644),
])
def test_owner_and_mode(host, path, user, group, mode):
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (user, group, mode)


def test_root_may_log_in_on_no_terminal(host):
    assert host.file("/etc/securetty").size == 0


def test_service_user_cannot_log_in(host):
    user = host.user(API)
    assert user.shell == "/usr/sbin/nologin"
    assert user.password in ("!", "*", "!*")
    assert user.uid < 1000  # a system account


def test_app_files_are_not_writable_by_the_service_user(host):
    release = host.file(f"{API_ROOT}/current").linked_to
    writable = host.run(f"sudo -u {API} find {release} {API_CONFIG_DIR} -writable -print")
    assert writable.stdout.strip() == ""
    assert host.file(f"{release}/app/app.py").user == "root"


def test_login_defs(host):
    content = host.file("/etc/login.defs").content_string
    for line in ["UMASK\t027", "PASS_MAX_DAYS\t60", "PASS_MIN_DAYS\t7", "PASS_WARN_AGE\t7",
                 "LOGIN_RETRIES\t5", "LOGIN_TIMEOUT\t60", "ENCRYPT_METHOD\tYESCRYPT"]:
        assert line in content.splitlines(), line


def test_roots_locked_password_has_a_maximum_age(host):
    # /etc/shadow's fifth field: the maximum age in days (ANSSI R32: 365)
    fields = host.check_output("sudo getent shadow root").split(":")
    assert fields[1].startswith(("!", "*")), "root has a usable password"
    assert fields[4] == "365", fields


def test_an_idle_login_shell_ends(host):
    """A login shell gets TMOUT=600, read-only (an operator cannot turn it
    off in the session); a non-interactive shell (automation) is untouched."""
    out = host.run("bash -lc 'echo $TMOUT; TMOUT=0; echo still-here'")
    assert out.stdout.split()[0] == "600", out.stdout
    # bash refuses the assignment (bash 5.2 goes on, later ones end the shell)
    assert "TMOUT: readonly variable" in out.stderr, out.stderr
    assert host.check_output("bash -c 'echo x${TMOUT}x'") == "xx"


def test_logind_ends_idle_sessions(host):
    # what logind reads, drop-ins included (a later one would win)
    config = host.check_output("systemd-analyze cat-config systemd/logind.conf")
    values = [line.split("=", 1)[1] for line in config.splitlines()
              if line.startswith("StopIdleSessionSec=")]
    assert values and values[-1] == "600", values


def test_insecure_packages_absent(host):
    for package in ["telnetd", "inetd", "xinetd", "ypserv", "tftpd", "prelink"]:
        assert not host.package(package).is_installed


def test_no_crash_reporter_rewrites_the_core_pattern(host):
    # apport (Ubuntu) resets kernel.core_pattern and fs.suid_dumpable at boot
    for package in ["apport", "whoopsie"]:
        assert not host.package(package).is_installed
    assert host.sysctl("kernel.core_pattern") == "|/bin/false"
    assert host.sysctl("fs.suid_dumpable") == 0


# needrestart's setting as needrestart reads it: its main file ends by
# evaluating conf.d/*.conf in order (a later file wins). Debian does not
# install needrestart (Ubuntu 24.04 does: the role writes its policy either
# way), so the fragments are evaluated as that loop does, without the main file.
NEEDRESTART_SETTING = (
    "perl -e 'our %nrconf; for my $fn (sort </etc/needrestart/conf.d/*.conf>) { "
    "eval do { local (@ARGV, $/) = $fn; <> }; die \"$fn: $@\" if $@ } "
    "print $nrconf{restart} // \"unset\"'")


def test_needrestart_only_lists_services_after_an_upgrade(host):
    conf = host.file("/etc/needrestart/conf.d/50-hardening.conf")
    assert conf.exists and conf.user == "root" and conf.mode == 0o644
    assert "$nrconf{restart} = 'l';" in conf.content_string
    assert host.check_output(NEEDRESTART_SETTING) == "l"    # (no later file sets another)


def test_no_hosts_equiv(host):
    assert not host.file("/etc/hosts.equiv").exists


def test_auditd_rules_loaded(host):
    rules = host.check_output("auditctl -l")
    for needle in ["-w /etc/passwd -p wa -k identity", "-w /etc/shadow -p wa -k identity",
                   "-w /etc/sudoers -p wa -k privilege", "-w /etc/ssh/sshd_config -p wa -k sshd",
                   "-a always,exit -S all -F path=/usr/bin/sudo -F perm=x -F auid>=1000 "
                   "-F auid!=-1 -F key=privileged",
                   f"-w {API_CONFIG_DIR} -p wa -k app-config", "key=time-change", "key=modules"]:
        assert needle in rules, needle


def test_auditd_never_stops_auditing_silently(host):
    # not dev-sec's SUSPEND (auditing stops, the API serves on, nobody hears):
    # a warning at 75 MB left, then the host halts (hardening vars say why)
    conf = dict(line.replace(" ", "").split("=", 1)
                for line in host.file("/etc/audit/auditd.conf").content_string.splitlines()
                if "=" in line and not line.startswith("#"))
    assert {key: conf.get(key) for key in ("space_left_action", "admin_space_left_action",
                                           "disk_full_action", "disk_error_action")} == {
        "space_left_action": "SYSLOG", "admin_space_left_action": "HALT",
        "disk_full_action": "HALT", "disk_error_action": "HALT"}
    # and auditd runs with it: a setting it rejects would have stopped it
    assert host.service("auditd").is_running


def test_kernel_auditing_is_on(host):
    # journald turns kernel auditing off whenever it (re)starts unless Audit=yes
    assert "enabled 1" in host.check_output("auditctl -s").splitlines()
    host.run_expect([0], "systemctl restart systemd-journald")
    assert "enabled 1" in host.check_output("auditctl -s").splitlines()


def test_auditd_records_identity_changes(host):
    host.run_expect([0], "touch /etc/passwd")
    for _ in range(10):  # auditd writes the record a moment later
        out = host.run("ausearch --input-logs -k identity -f /etc/passwd -ts recent")
        if out.rc == 0:
            break
        time.sleep(1)
    assert out.rc == 0 and "passwd" in out.stdout, out.stderr


def test_unattended_security_upgrades(host):
    config = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    assert 'APT::Periodic::Update-Package-Lists "1";' in config
    origins = [line.split('"')[1] for line in config.splitlines()
               if line.startswith(("Unattended-Upgrade::Origins-Pattern:: ",
                                   "Unattended-Upgrade::Allowed-Origins:: "))]
    assert origins, "no origins configured"
    assert all("security" in origin.lower() for origin in origins), origins
    # an immutable image's instance is replaced, never rebooted behind the
    # operator's back (apt's merged configuration: a later file would win)
    reboots = [line for line in config.splitlines()
               if line.startswith("Unattended-Upgrade::Automatic-Reboot ")]
    assert reboots == ['Unattended-Upgrade::Automatic-Reboot "false";'], reboots


def test_package_downloads_are_retried(host):
    """The package_fetch role: apt's merged configuration (a later file
    would win) retries a failed download before a package step fails."""
    config = host.check_output("apt-config dump")
    assert 'Acquire::Retries "5";' in config.splitlines(), config
    assert 'Acquire::http::Timeout "30";' in config.splitlines(), config


def test_time_sync(host):
    assert host.service("systemd-timesyncd").is_running


def effective(config_text, key):
    """The value systemd applies for KEY: the last assignment across the
    configuration and its drop-ins, in the order systemd reads them."""
    values = [line.split("=", 1)[1].strip() for line in config_text.splitlines()
              if line.strip().startswith(f"{key}=")]
    return values[-1] if values else None


def test_journald_capped_and_persistent(host):
    """What journald reads, drop-ins included (a later one would override the
    role's), and the persistent journal it keeps."""
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert effective(config, "SystemMaxUse") == "500M", config
    assert effective(config, "SystemMaxFileSize") == "50M", config
    assert effective(config, "MaxRetentionSec") == "1month", config
    assert effective(config, "Storage") == "persistent", config
    assert host.file("/var/log/journal").is_directory
    machine = host.file("/etc/machine-id").content_string.strip()
    assert host.file(f"/var/log/journal/{machine}/system.journal").exists


def test_sudo_runs_commands_on_a_pty_and_logs_them(host):
    """Every sudo command runs on a pty of its own (use_pty: a command that
    outlives sudo cannot write into the operator's terminal), and is logged
    in /var/log/sudo.log (the hardening role's drop-in). Run from a terminal
    (script(1) gives the caller one): sudo's tty must differ from the
    caller's. Debian's /etc/sudoers already sets use_pty, so the behaviour
    fails when anything turns it off (a later `Defaults !use_pty`), and the
    log line and the drop-in fail without the role."""
    marker = f"sudo-check-{uuid.uuid4().hex[:12]}"
    out = host.run(f"script -qec \"tty; sudo -n /bin/sh -c 'tty; echo {marker}'\" /dev/null")
    assert out.rc == 0, out.stderr
    # (the ttys as printed; util-linux 2.41's script(1) echoes a NUL as "^@" before one)
    ttys = re.findall(r"/dev/pts/\d+", out.stdout)
    assert len(ttys) == 2, out.stdout
    caller, command = ttys
    assert command != caller, f"sudo ran the command on the caller's terminal: {out.stdout}"
    assert marker in host.file("/var/log/sudo.log").content_string
    dropin = host.file("/etc/sudoers.d/00-hardening").content_string
    assert "Defaults use_pty" in dropin.splitlines()
    assert 'Defaults logfile="/var/log/sudo.log"' in dropin.splitlines()


def test_sudo_resets_the_environment(host):
    """env_reset (Debian's sudoers and the role's drop-in): a variable the
    caller sets does not reach the command; a later `Defaults !env_reset`
    fails here. (ignore_dot, also in the drop-in, cannot be seen at work:
    Debian's secure_path never holds "."; the OpenSCAP scan checks it.)"""
    out = host.run("SUPERMEGA_PROBE=leaked sudo -n sh -c 'echo probe=${SUPERMEGA_PROBE:-none}'")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "probe=none", out.stdout
    dropin = host.file("/etc/sudoers.d/00-hardening").content_string.splitlines()
    assert "Defaults env_reset" in dropin and "Defaults ignore_dot" in dropin
