"""The mutation check: every protection has a test that fails without it.

For each protection: the smallest change that removes it is made on the
live instance; the guarding test must now FAIL (pytest exit code 1: a test
failed, not an error); the change is undone and the test must PASS on the
host as it was. (That last run is also the "before": the guard is not run
a third time on the same state.) A mutation whose guard still passes is a
test that cannot fail: this module fails then.

Runs after the roles' suite and the image checks in `molecule test -s
image` (order: harness/ordering.py), or alone:
`make mutants`. The table goes to build/mutants.json and from there into
docs/verification.md.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest
import testinfra

from harness import ROOT
from harness.deployment import API, API_CONFIG_DIR, API_ROOT
from harness.guards import failed_in_its_body, junit_outcomes, passed_wholly
from harness.image import read_build_identity

SUITE = os.path.join(ROOT, "testing", "host")                    # the roles' suite (instance-1)
EDGE = os.path.join(ROOT, "testing", "image")                    # instance-2's edge settings
RESULTS = os.path.join(ROOT, "build", "mutants.json")
NGINX_API = "/etc/nginx/conf.d/api.conf"
NGINX_MAIN = "/etc/nginx/nginx.conf"
SSHD = "/etc/ssh/sshd_config"
API_UNIT = "/etc/systemd/system/supermega-api.service"
NGINX_ROTATE = "/etc/logrotate.d/nginx"
EDGE_HTTP = "/etc/nginx/supermega/http.conf"
AUDITD = "/etc/audit/auditd.conf"
BOOT_RULESET = "/var/lib/supermega-firewall/rules.v4"
NODE_EXPORTER_SANDBOX = "/etc/systemd/system/prometheus-node-exporter.service.d/sandbox.conf"
SUDO_DROPIN = "/etc/sudoers.d/00-hardening"
MODPROBE = "/etc/modprobe.d/hardening.conf"
API_DROPIN = "/etc/systemd/system/supermega-api.service.d/99-mutant.conf"
NGINX_SANDBOX = "/etc/systemd/system/nginx.service.d/sandbox.conf"
UFW_RULES = ["/etc/ufw/user.rules", "/etc/ufw/user6.rules"]
LOGIN_DEFS = "/etc/login.defs"
TLS_CERT = "/etc/nginx/tls/server.crt"
TLS_KEY = "/etc/nginx/tls/server.key"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
GRUB_CFG = "/boot/grub/grub.cfg"
API_CODE = f"{API_ROOT}/current/app/app.py"
# (as the role's audit.rules writes it; quoted for the shell)
SUDO_AUDIT_RULE = ("always,exit -F path=/usr/bin/sudo -F perm=x -F 'auid>=1000' "
                   "-F 'auid!=unset' -k privileged")
TIME_AUDIT_RULE = "always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time-change"
MODULES_AUDIT_RULE = "always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules"
BACKUP = "/root/mutant-backup"   # a row's copies of the files it changes, made anew each row
# The account files' backups (passwd- ...), the sub-id files, and the login
# records (useradd extends lastlog and faillog to the new uid) that useradd,
# usermod and userdel rewrite besides the change itself: kept before a row
# that changes an account, put back after it (a file that was not there is
# removed), so the row leaves the instance as it found it. A keep that
# failed stops the row (exit 1) and leaves no mark: nothing is then removed
# as "not there before".
ACCOUNT_FILES = ("/etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /etc/subuid /etc/subgid "
                 "/etc/subuid- /etc/subgid- /var/log/lastlog /var/log/faillog")
KEPT_AS = f'{BACKUP}/account$(echo "$f" | tr / _)'
KEEP_ACCOUNT_FILES = (f"for f in {ACCOUNT_FILES}; do [ ! -e $f ] || "
                      f"cp -a --sparse=always $f {KEPT_AS} || exit 1; done; "
                      f"touch {BACKUP}/.accounts-kept")
RESTORE_ACCOUNT_FILES = (f"if [ -e {BACKUP}/.accounts-kept ]; then for f in "
                         f"{ACCOUNT_FILES}; do if [ -e {KEPT_AS} ]; then "
                         f"cp -a --sparse=always {KEPT_AS} $f; else rm -f $f; fi; done; fi")
RELOAD_NGINX = "nginx -t -q && systemctl reload nginx && sleep 1"
RELOAD_SSH = "sshd -t && systemctl reload ssh"
RESTART_API = "systemctl daemon-reload && systemctl restart supermega-api.service"


@dataclass
class Mutation:
    name: str          # what the change removes
    files: list        # restored from a copy afterwards
    apply: object      # shell, as root on the instance (or a function giving it, called
                       # when the row runs: for values only the bake's records hold)
    settle: str        # shell, after the change and again after restoring
    guard: str         # the test (file::function under testing/host) that must fail
    undo: object = ""  # shell (or a function giving it), before the files are restored
    select: str = ""   # a -k expression picking one parametrized case of the guard
    instance: str = "instance-1"   # where the change is made
    suite: str = SUITE             # where the guard lives


def instance_2_file(path):
    """A file of the other instance, read when the row runs (as root)."""
    other = testinfra.get_host("ansible://instance-2?ansible_inventory="
                               + os.environ["MOLECULE_INVENTORY_FILE"], sudo=True)
    return other.file(path).content_string


def copied_from_instance_2(*paths):
    """Shell writing instance-2's copy of each file over this instance's."""
    return " && ".join(f"printf '%s' {shlex.quote(instance_2_file(path))} > {path}"
                       for path in paths)


def at_run_time(name, command, undo, guard, **kw):
    """A protection changed on the running host (a sysctl, a file's mode)
    and changed back: nothing to restore from a copy, nothing to settle."""
    return Mutation(name, [], command, "true", guard, undo=undo, **kw)


def later_file(name, path, text, guard, settle="true", **kw):
    """A protection overridden by a file that sorts after the role's (a
    drop-in, an apt.conf.d or sudoers.d entry), removed again afterwards,
    with its folder if the row made it (a unit's first drop-in)."""
    folder = os.path.dirname(path)
    mode = " && chmod 0440 " + path if path.startswith("/etc/sudoers.d/") else ""
    lines = " ".join(shlex.quote(line) for line in text.split("\n"))   # one argument a line
    return Mutation(name, [], f"{{ [ -d {folder} ] || {{ mkdir -p {folder} && "
                    f"touch {BACKUP}/.made-folder; }}; }} && "
                    f"printf '%s\\n' {lines} > {path}{mode}", settle,
                    guard, undo=f"rm -f {path} && {{ [ ! -e {BACKUP}/.made-folder ] || "
                                f"rmdir {folder}; }}", **kw)


# An image baked from an older base, as the AMI's is (Canonical's image of
# some weeks ago): one installed package taken back to the release's own
# version where the mirror has a newer one (-updates, -security), by
# downgrade-one.sh. Undone by the bake's own packer/scripts/upgrade.sh, so the
# guard passing again shows that script patches such an image.
def script(path):
    """A shell script of this repository, run as root on the instance (one
    command: a row's settle may follow it)."""
    with open(os.path.join(ROOT, path)) as f:
        return f"sh -c {shlex.quote(f.read())} {os.path.basename(path)}"


MUTATIONS = [
    Mutation("rate limit (limit_req) removed", [NGINX_API],
             f"sed -i '/limit_req zone=api_req/d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_burst_from_one_client_gets_json_429"),
    Mutation("per-client connection limit (limit_conn) removed", [NGINX_API],
             f"sed -i '/limit_conn api_conn/d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_connections_beyond_the_per_client_limit_get_429"),
    Mutation("weak ECDSA cipher ECDHE-ECDSA-AES128-SHA allowed", [NGINX_MAIN],
             f"sed -i 's/ssl_ciphers /ssl_ciphers ECDHE-ECDSA-AES128-SHA:/' {NGINX_MAIN}",
             RELOAD_NGINX,
             "test_nginx.py::test_tls_weak_ciphers_refused", select="AES128-SHA]"),
    Mutation("TLS 1.1 allowed", [NGINX_MAIN],
             "sed -i -e 's/ssl_protocols TLSv1.2/ssl_protocols TLSv1.1 TLSv1.2/' -e "
             "'s/ssl_ciphers \\([^;]*\\);/ssl_ciphers \\1:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0;/' "
             + NGINX_MAIN, RELOAD_NGINX,
             "test_nginx.py::test_tls_before_1_2_refused", select="tls1_1"),
    Mutation("security header (X-Frame-Options) dropped", [NGINX_API],
             f"sed -i '/add_header X-Frame-Options/d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_every_route_returns_the_seed_data", select="customers and 222"),
    Mutation("request body limit raised (1k -> 1m)", [NGINX_MAIN],
             f"sed -i 's/client_max_body_size 1k;/client_max_body_size 1m;/' {NGINX_MAIN}",
             RELOAD_NGINX, "test_nginx.py::test_oversized_body_gets_json_413_from_nginx"),
    Mutation("HTTP->HTTPS redirect replaced by data on :80", [NGINX_API],
             # the first `return 301` is port 80's catch-all: proxy it to the API instead
             f"sed -i '0,/return 301 https/s//proxy_pass http:\\/\\/api; #/' {NGINX_API}",
             RELOAD_NGINX, "test_nginx.py::test_http_redirects_to_https_except_healthz"),
    Mutation("SSH password login enabled", [SSHD],
             f"sed -i 's/^PasswordAuthentication no/PasswordAuthentication yes/' {SSHD}",
             RELOAD_SSH, "test_ssh.py::test_sshd_setting", select="passwordauthentication"),
    Mutation("SSH root login allowed", [SSHD],
             f"sed -i 's/^PermitRootLogin no/PermitRootLogin yes/' {SSHD}",
             RELOAD_SSH, "test_ssh.py::test_sshd_setting", select="permitrootlogin"),
    Mutation("auditd suspends auditing on a full disk (dev-sec's SUSPEND, not HALT)", [AUDITD],
             f"sed -i 's/^disk_full_action = HALT/disk_full_action = SUSPEND/' {AUDITD}",
             "auditctl --signal HUP && sleep 1",
             "test_files.py::test_auditd_never_stops_auditing_silently"),
    # (a port range: a rule of a form the roles never write, which the guard
    # read past before it listed every line)
    Mutation("the exporters' ports opened to everyone (a port range)", [],
             "ufw allow 9100:9102/tcp >/dev/null", "true",
             "test_firewall.py::test_only_ssh_http_https_are_allowed",
             undo="ufw delete allow 9100:9102/tcp >/dev/null"),
    Mutation("port 8080 opened in the firewall, with a listener", [],
             "ufw allow 8080/tcp >/dev/null && systemd-run --unit=mutant-8080 "
             "python3 -m http.server 8080 >/dev/null", "sleep 1",
             "test_firewall.py::test_only_ssh_http_https_are_allowed",
             undo="systemctl stop mutant-8080; ufw delete allow 8080/tcp >/dev/null"),
    Mutation("the ruleset ufw.service loads at boot lost its 443 rule", [BOOT_RULESET],
             f"sed -i '/--dport 443 /d' {BOOT_RULESET}", "true",
             "test_firewall.py::test_the_ruleset_loaded_at_boot_is_the_one_ufw_builds"),
    Mutation("sandbox directive ProtectSystem=strict removed from the API unit", [API_UNIT],
             f"sed -i '/^ProtectSystem=strict/d' {API_UNIT}", RESTART_API,
             "test_api_unit.py::test_service_properties", select="ProtectSystem"),
    Mutation("the node exporter's sandbox drop-in emptied", [NODE_EXPORTER_SANDBOX],
             f": > {NODE_EXPORTER_SANDBOX}",
             "systemctl daemon-reload && systemctl restart prometheus-node-exporter.service",
             "test_metrics.py::test_exporter_is_sandboxed", select="node"),
    Mutation("the API answers any Host (the names check removed)", [NGINX_API],
             f"sed -i '/if (\\$api_host_refused)/,+2d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_only_the_apis_names_are_answered"),
    Mutation("the API answers any TLS server name (the SNI check removed)", [NGINX_API],
             f"sed -i '/if (\\$api_sni_refused)/,+2d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_an_unknown_tls_server_name_gets_no_answer"),
    Mutation("client authentication off (mutual TLS check removed)", [NGINX_API],
             f"sed -i '/if (\\$api_client_ok = 0)/,+2d' {NGINX_API}", RELOAD_NGINX,
             "test_edge_settings.py::test_without_a_valid_allowed_certificate_json_403_and_no_data",
             instance="instance-2", suite=EDGE),
    Mutation("CORS for any origin (*)", [EDGE_HTTP],
             f"sed -i 's/^    default \"\";/    default \"*\";/' {EDGE_HTTP}", RELOAD_NGINX,
             "test_edge_settings.py::test_other_origins_get_no_cors_headers",
             instance="instance-2", suite=EDGE),
    Mutation("CORS with credentials (Access-Control-Allow-Credentials added)", [NGINX_API],
             f"sed -i '/add_header Access-Control-Allow-Origin /a add_header "
             f"Access-Control-Allow-Credentials true always;' {NGINX_API}", RELOAD_NGINX,
             "test_edge_settings.py::test_cors_get_from_the_allowed_origin_echoes_it_exactly",
             instance="instance-2", suite=EDGE),
    # -- the README's remaining claims: runtime changes, a drop-in that
    #    overrides, a setting put back to the distribution's default
    Mutation("HSTS header dropped", [NGINX_API],
             f"sed -i '/add_header Strict-Transport-Security/d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_every_route_returns_the_seed_data", select="customers and 222"),
    Mutation("Cross-Origin-Resource-Policy header dropped", [NGINX_API],
             f"sed -i '/add_header Cross-Origin-Resource-Policy/d' {NGINX_API}", RELOAD_NGINX,
             "test_nginx.py::test_every_route_returns_the_seed_data", select="customers and 222"),
    at_run_time("a kernel parameter changed at run time (IP forwarding on)",
                "sysctl -qw net.ipv4.ip_forward=1", "sysctl -qw net.ipv4.ip_forward=0",
                "test_kernel.py::test_sysctl", select="ip_forward"),
    at_run_time("core dumps back on at run time (core_pattern)",
                "sysctl -qw kernel.core_pattern=core",
                "sysctl -qw 'kernel.core_pattern=|/bin/false'",
                "test_kernel.py::test_core_dumps_disabled"),
    Mutation("an unused filesystem's module allowed again (cramfs)", [MODPROBE],
             f"sed -i '/ cramfs/d' {MODPROBE}", "true",
             "test_kernel.py::test_unused_module_cannot_load", select="cramfs"),
    later_file("the journal's cap overridden by a later drop-in",
               "/etc/systemd/journald.conf.d/99-mutant.conf", "[Journal]\nSystemMaxUse=10G",
               "test_files.py::test_journald_capped_and_persistent"),
    later_file("the journal kept in memory only (a later drop-in: Storage=volatile)",
               "/etc/systemd/journald.conf.d/99-mutant.conf", "[Journal]\nStorage=volatile",
               "test_files.py::test_journald_capped_and_persistent"),
    later_file("automatic reboots turned on by a later apt file", "/etc/apt/apt.conf.d/99-mutant",
               'Unattended-Upgrade::Automatic-Reboot "true";',
               "test_files.py::test_unattended_security_upgrades"),
    Mutation("sudo's log turned off", [SUDO_DROPIN],
             f"sed -i '/logfile=/d' {SUDO_DROPIN}", "true",
             "test_files.py::test_sudo_runs_commands_on_a_pty_and_logs_them"),
    later_file("sudo's own pty turned off by a later drop-in", "/etc/sudoers.d/zz-mutant",
               "Defaults !use_pty",
               "test_files.py::test_sudo_runs_commands_on_a_pty_and_logs_them"),
    later_file("sudo passing the caller's environment (a later drop-in)",
               "/etc/sudoers.d/zz-mutant", "Defaults !env_reset",
               "test_files.py::test_sudo_resets_the_environment"),
    Mutation("idle login shells kept (TMOUT file removed)", [],
             "mv /etc/profile.d/99-supermega-tmout.sh /root/mutant-tmout.sh", "true",
             "test_files.py::test_an_idle_login_shell_ends",
             undo="mv /root/mutant-tmout.sh /etc/profile.d/99-supermega-tmout.sh"),
    Mutation("a package older than the mirror's (an older base, not upgraded)", [],
             script("testing/image/downgrade-one.sh"), "true",
             "test_image_contents.py::test_nothing_is_upgradable_against_the_mirror_the_image_"
             "was_baked_from", suite=EDGE,
             undo=script("packer/scripts/upgrade.sh")),
    Mutation("Debian's protected-links file back in /usr/lib (diversion removed)", [],
             "dpkg-divert --quiet --rename --remove /usr/lib/sysctl.d/99-protect-links.conf",
             "true", "test_kernel.py::test_no_sysctl_file_sets_a_hardened_parameter_otherwise",
             undo="dpkg-divert --quiet --rename --divert "
                  "/usr/lib/sysctl.d/99-protect-links.conf.distrib "
                  "--add /usr/lib/sysctl.d/99-protect-links.conf"),
    Mutation("the interfaces' reverse-path filter loosened (rp_filter 2)", [],
             "for f in /proc/sys/net/ipv4/conf/*/rp_filter; do "
             "d=$(basename $(dirname $f)); cat $f > /root/mutant-rp.$d; echo 2 > $f; done",
             "true", "test_kernel.py::test_every_interface_filters_reverse_paths_strictly",
             undo="for f in /root/mutant-rp.*; do cat $f > "
                  "/proc/sys/net/ipv4/conf/${f##*mutant-rp.}/rp_filter; rm -f $f; done"),
    later_file("apt's retries turned off by a later apt file", "/etc/apt/apt.conf.d/99zzz-mutant",
               'Acquire::Retries "0";', "test_files.py::test_package_downloads_are_retried"),
    at_run_time("the shadow file readable by everyone",
                "chmod 0644 /etc/shadow", "chmod 0640 /etc/shadow",
                "test_files.py::test_owner_and_mode", select="shadow-root-shadow"),
    Mutation("time sync stopped", [],
             "systemctl stop systemd-timesyncd", "true", "test_files.py::test_time_sync",
             undo="systemctl start systemd-timesyncd"),
    Mutation("SSH open to any account with a key (AllowGroups removed)", [SSHD],
             f"sed -i '/^AllowGroups/d' {SSHD}", RELOAD_SSH,
             "test_ssh.py::test_ssh_only_for_the_login_group"),
    later_file("the API's syscall filter reset by a drop-in", API_DROPIN,
               "[Service]\nSystemCallFilter=",
               "test_api_unit.py::test_the_api_runs_under_a_syscall_filter", settle=RESTART_API),
    later_file("the API given the network by a drop-in (PrivateNetwork=no)", API_DROPIN,
               "[Service]\nPrivateNetwork=no", "test_api_unit.py::test_service_properties",
               settle=RESTART_API, select="PrivateNetwork"),
    # (its pid-file lines stay: without them systemd waits for the distribution's
    # /run/nginx.pid, which this nginx.conf never writes, and the restart times out)
    Mutation("nginx's sandbox directives dropped (the distribution's unit)", [NGINX_SANDBOX],
             f"sed -i '/^UMask=/,$d' {NGINX_SANDBOX}",
             "systemctl daemon-reload && systemctl restart nginx",
             "test_nginx.py::test_nginx_runs_sandboxed"),
    later_file("nginx's syscall filter reset by a later drop-in",
               "/etc/systemd/system/nginx.service.d/zz-mutant.conf",
               "[Service]\nSystemCallFilter=",
               "test_nginx.py::test_nginx_runs_under_a_syscall_filter",
               settle="systemctl daemon-reload && systemctl restart nginx"),
    at_run_time("nginx's configuration readable by everyone",
                "chmod 0644 /etc/nginx/conf.d/api.conf", "chmod 0640 /etc/nginx/conf.d/api.conf",
                "test_files.py::test_owner_and_mode", select="api.conf"),
    Mutation("fail2ban stopped", [],
             "systemctl stop fail2ban", "true",
             "test_services.py::test_unit_active_and_enabled", select="fail2ban",
             undo="systemctl start fail2ban"),
    # -- the rest of the README's "Security model" and "Hardened host" claims
    # (made live by ufw's own commands; undone by restoring its rule files and
    # reloading, which puts the rule back in its place)
    Mutation("SSH's connection rate limit replaced by a plain allow", UFW_RULES,
             "ufw delete limit 22/tcp >/dev/null && ufw allow 22/tcp >/dev/null",
             "ufw reload >/dev/null", "test_firewall.py::test_only_ssh_http_https_are_allowed"),
    Mutation("an RSA host key offered beside ed25519", [SSHD],
             "ssh-keygen -q -t rsa -b 3072 -N '' -f /etc/ssh/ssh_host_rsa_key && "
             f"sed -i '/^HostKey /a HostKey /etc/ssh/ssh_host_rsa_key' {SSHD}", RELOAD_SSH,
             "test_ssh.py::test_only_an_ed25519_host_key",
             undo="rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub"),
    Mutation("the post-quantum key exchange no longer first (classic curve25519 only)", [SSHD],
             f"sed -i 's/^KexAlgorithms .*/KexAlgorithms curve25519-sha256/' {SSHD}", RELOAD_SSH,
             "test_ssh.py::test_post_quantum_key_exchange_first"),
    Mutation("the login banner back to the distribution's text", ["/etc/issue.net"],
             "echo 'Debian GNU/Linux' > /etc/issue.net", "true", "test_ssh.py::test_login_banner"),
    Mutation("a network protocol's module allowed again (sctp)", [MODPROBE],
             f"sed -i '/ sctp/d' {MODPROBE}", "true",
             "test_kernel.py::test_unused_module_cannot_load", select="sctp"),
    Mutation("password hashes back to the distribution's method (SHA512)", [LOGIN_DEFS],
             f"sed -i 's/^ENCRYPT_METHOD.*/ENCRYPT_METHOD\\tSHA512/' {LOGIN_DEFS}", "true",
             "test_files.py::test_login_defs"),
    Mutation("the default umask back to the distribution's 022", [LOGIN_DEFS],
             f"sed -i 's/^UMASK.*/UMASK\\t022/' {LOGIN_DEFS}", "true",
             "test_files.py::test_login_defs"),
    later_file("idle sessions kept by a later logind drop-in",
               "/etc/systemd/logind.conf.d/zz-mutant.conf", "[Login]\nStopIdleSessionSec=infinity",
               "test_files.py::test_logind_ends_idle_sessions"),
    at_run_time("set-uid core dumps allowed at run time, as a crash reporter does",
                "sysctl -qw fs.suid_dumpable=2", "sysctl -qw fs.suid_dumpable=0",
                "test_files.py::test_no_crash_reporter_rewrites_the_core_pattern"),
    at_run_time("the system crontab readable by everyone",
                "chmod 0644 /etc/crontab", "chmod 0600 /etc/crontab",
                "test_files.py::test_owner_and_mode", select="crontab"),
    Mutation("auditd's watch on /etc/shadow deleted at run time", [],
             "auditctl -W /etc/shadow -p wa -k identity >/dev/null", "true",
             "test_files.py::test_auditd_rules_loaded",
             undo="auditctl -w /etc/shadow -p wa -k identity"),
    at_run_time("auditd's watch on sudoers deleted at run time",
                "auditctl -W /etc/sudoers -p wa -k privilege >/dev/null",
                "auditctl -w /etc/sudoers -p wa -k privilege",
                "test_files.py::test_auditd_rules_loaded"),
    at_run_time("auditd's watch on the API's configuration deleted at run time",
                f"auditctl -W {API_CONFIG_DIR} -p wa -k app-config >/dev/null",
                f"auditctl -w {API_CONFIG_DIR} -p wa -k app-config",
                "test_files.py::test_auditd_rules_loaded"),
    at_run_time("auditd's rule on setting the clock deleted at run time",
                f"auditctl -d {TIME_AUDIT_RULE} >/dev/null", f"auditctl -a {TIME_AUDIT_RULE}",
                "test_files.py::test_auditd_rules_loaded"),
    at_run_time("auditd's rule on loading kernel modules deleted at run time",
                f"auditctl -d {MODULES_AUDIT_RULE} >/dev/null", f"auditctl -a {MODULES_AUDIT_RULE}",
                "test_files.py::test_auditd_rules_loaded"),
    Mutation("sudo no longer audited (its rule deleted at run time)", [],
             f"auditctl -d {SUDO_AUDIT_RULE} >/dev/null", "true",
             "test_files.py::test_auditd_rules_loaded", undo=f"auditctl -a {SUDO_AUDIT_RULE}"),
    later_file("daily security upgrades off (a later apt file)", "/etc/apt/apt.conf.d/99zzz-mutant",
               'APT::Periodic::Unattended-Upgrade "0";',
               "test_files.py::test_unattended_security_upgrades"),
    Mutation("the API's user given a login shell", [],
             f"{KEEP_ACCOUNT_FILES} && usermod -s /bin/bash {API}", "true",
             "test_files.py::test_service_user_cannot_log_in",
             undo=f"usermod -s /usr/sbin/nologin {API} && {RESTORE_ACCOUNT_FILES}"),
    Mutation("the API's code writable by its user", [],
             f"chown {API} $(readlink -f {API_CODE})", "true",
             "test_files.py::test_app_files_are_not_writable_by_the_service_user",
             undo=f"chown root $(readlink -f {API_CODE})"),
    at_run_time("the API's configuration writable by its group (the API's)",
                f"chmod g+w {API_CONFIG_DIR}/gunicorn.conf.py",
                f"chmod g-w {API_CONFIG_DIR}/gunicorn.conf.py",
                "test_files.py::test_app_files_are_not_writable_by_the_service_user"),
    later_file("the API given a capability by a drop-in (CAP_NET_RAW)", API_DROPIN,
               "[Service]\nCapabilityBoundingSet=CAP_NET_RAW",
               "test_api_unit.py::test_service_properties", settle=RESTART_API,
               select="CapabilityBoundingSet"),
    # (the score reads the unit as systemd loaded it: a reload, no restart)
    later_file("every capability allowed to the API by a drop-in (its exposure score)",
               API_DROPIN, "[Service]\nCapabilityBoundingSet=~",
               "test_api_unit.py::test_systemd_analyze_security_exposure_at_most_1_5",
               settle="systemctl daemon-reload"),
    later_file("every capability allowed to nginx by a later drop-in (its exposure score)",
               "/etc/systemd/system/nginx.service.d/zz-mutant.conf",
               "[Service]\nCapabilityBoundingSet=~",
               "test_nginx.py::test_nginx_systemd_exposure_at_most_2_8",
               settle="systemctl daemon-reload"),
    later_file("needrestart restarting services by itself (a later conf.d file)",
               "/etc/needrestart/conf.d/zz-mutant.conf", "$nrconf{restart} = 'a';",
               "test_files.py::test_needrestart_only_lists_services_after_an_upgrade"),
    Mutation("the build's machine-id kept (an unsealed image)", ["/etc/machine-id"],
             lambda: f"echo {read_build_identity()['machine_id']} > /etc/machine-id", "true",
             "test_image.py::test_machine_ids_are_unique_per_instance", suite=EDGE),
    Mutation("instance-1 given instance-2's TLS key and certificate (a shared key)",
             [TLS_CERT, TLS_KEY], lambda: copied_from_instance_2(TLS_CERT, TLS_KEY), "true",
             "test_image.py::test_tls_keys_are_unique_per_instance", suite=EDGE),
    Mutation("instance-1 given instance-2's SSH host key (a shared host key)",
             [HOST_KEY, HOST_KEY + ".pub"],
             lambda: copied_from_instance_2(HOST_KEY, HOST_KEY + ".pub"), "true",
             "test_image.py::test_ssh_host_keys_are_unique_per_instance", suite=EDGE),
    Mutation("a build key left in root's authorized_keys", [],
             # (root's .ssh kept as it was, or its absence: put back afterwards,
             # only once the keep succeeded)
             f"{{ [ ! -e /root/.ssh ] || cp -a /root/.ssh {BACKUP}/ssh || exit 1; }} "
             f"&& touch {BACKUP}/.ssh-kept && "
             "install -d -m 0700 /root/.ssh && echo 'ssh-ed25519 "
             "AAAAC3NzaC1lZDI1NTE5AAAAIMutantMutantMutantMutantMutantMutantMutantMu "
             "packer-build-mutant' >> /root/.ssh/authorized_keys", "true",
             "test_image.py::test_no_authorized_key_but_the_instances_own", suite=EDGE,
             undo=f"if [ -e {BACKUP}/.ssh-kept ]; then rm -rf /root/.ssh && "
                  f"{{ [ ! -e {BACKUP}/ssh ] || "
                  f"cp -a {BACKUP}/ssh /root/.ssh; }}; fi"),
    Mutation("a kernel argument dropped from the next boot's menu (mce=0)", [GRUB_CFG],
             f"sed -i 's/ mce=0//' {GRUB_CFG}", "true",
             "test_kernel.py::test_the_next_boot_has_the_hardening_kernel_arguments"),
    Mutation("the build's journal left in the image", [],
             lambda: f"mkdir /var/log/journal/{read_build_identity()['machine_id']}", "true",
             "test_image.py::test_build_logs_and_state_were_cleaned", suite=EDGE,
             undo=lambda: f"rmdir /var/log/journal/{read_build_identity()['machine_id']}"),
    Mutation("the build user left in the image", [],
             lambda: f"{KEEP_ACCOUNT_FILES} && useradd --no-create-home --shell "
                     f"/usr/sbin/nologin {read_build_identity()['build_user']}", "true",
             "test_image.py::test_build_user_is_gone", suite=EDGE,
             undo=lambda: f"userdel {read_build_identity()['build_user']} && "
                          f"{RESTORE_ACCOUNT_FILES}"),
    Mutation("log rotation's reopen signal (nginx USR1) removed", [NGINX_ROTATE],
             f"sed -i '/kill -USR1/d; /nginx -s reopen/d; /invoke-rc.d nginx rotate/d' "
             # (settle: nginx reopens its logs, whatever the last rotation left it writing to)
             f"{NGINX_ROTATE}", RELOAD_NGINX,
             "test_logging.py::test_forced_rotation_keeps_logging"),
]


def shell(command):
    return command() if callable(command) else command


GUARD_UNUSED_PLUGINS = ["schemathesis", "hypothesispytest", "anyio"]


@pytest.fixture(scope="module")
def listed_inventory(request, tmp_path_factory):
    """The scenario's inventory, listed once for every guard run
    (harness/guard_inventory.py)."""
    inventory = request.config.option.ansible_inventory
    path = tmp_path_factory.mktemp("guards") / "inventory.json"
    path.write_text(subprocess.run(["ansible-inventory", "--list", "-i", inventory],
                                   check=True, capture_output=True, text=True,
                                   env=dict(os.environ, ANSIBLE_VERBOSITY="0")).stdout)
    return str(path)


def run_guard(config, mutation, inventory_json):
    """The guarding test, alone, against the same host as this suite: its
    exit code, the end of its output, and its outcomes from its JUnit report
    (how many failed, errored, passed, skipped)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "guard.xml")
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
                # (plugins no guard uses: their imports cost ~1.3 s of each of the ~160
                # guard runs, measured on this machine with a VM running)
                *[arg for name in GUARD_UNUSED_PLUGINS for arg in ("-p", f"no:{name}")],
                "-p", "harness.guard_inventory",
                "-o", "addopts=", f"--junitxml={report}",
                f"--connection={config.option.connection}",
                f"--ansible-inventory={config.option.ansible_inventory}",
                f"--hosts={config.option.hosts}", "--sudo",
                os.path.join(mutation.suite, mutation.guard),
                *(["-k", mutation.select] if mutation.select else [])]
        out = subprocess.run(argv, capture_output=True, text=True, cwd=mutation.suite,
                             check=False,
                             # (no timings: the guard's run is not the scenario's verify)
                             env=dict(os.environ, PYTEST_ADDOPTS="", STAGE_TIMINGS="",
                                      GUARD_INVENTORY_JSON=inventory_json))
        outcomes = junit_outcomes(report) if os.path.exists(report) else {}
    tail = "\n".join(out.stdout.splitlines()[-15:])
    return out.returncode, tail, outcomes


def save(row):
    rows = []
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            rows = [r for r in json.load(f) if r["mutation"] != row["mutation"]]
    rows.append(row)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(rows, f, indent=1)


def apply_script(mutation, copies):
    """One shell script: the change, its settle, then each kept file must
    differ from its copy (cmp exit 1, else exit 3 naming it). A settle is an
    && list, and under set -e a failure before its last command would not
    stop the script: its status is taken explicitly."""
    checks = "".join(f"rc=0; cmp -s {p} {c} || rc=$?; [ $rc -eq 1 ] || "
                     f"{{ echo 'the mutation left {p} as it was' >&2; exit 3; }}; "
                     for p, c in copies)
    return f"set -e; {shell(mutation.apply)}; {{ {mutation.settle}; }} || exit $?; {checks}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutants_are_caught(request, mutation, listed_inventory):
    config = request.config
    host = testinfra.get_host(f"ansible://{mutation.instance}?ansible_inventory="
                              f"{config.option.ansible_inventory}", sudo=True)
    started = time.monotonic()
    row = {"mutation": mutation.name, "instance": mutation.instance,
           "guard": mutation.guard + (f" (-k '{mutation.select}')" if mutation.select else "")}
    # Three commands on the instance a row, besides the guard's runs (each
    # SSH command costs the instance a sudo session: under emulation that
    # is most of a row's time when it was one command a file).
    copies = [(path, f"{BACKUP}/{os.path.basename(path)}") for path in mutation.files]
    host.run_expect([0], "set -e; " + "; ".join(
        [f"rm -rf {BACKUP}", f"mkdir -p {BACKUP}"] + [f"cp -a {p} {c}" for p, c in copies]))
    try:
        applied = host.run(apply_script(mutation, copies))
        assert applied.rc == 0, f"the mutation could not be made: {applied.stderr}"
        code, out_mutated, outcomes = run_guard(config, mutation, listed_inventory)
        row.update(mutated=code, mutated_outcomes=outcomes)
    finally:
        # the undo (its exit status ignored, as it may find nothing to undo),
        # then the copies put back and the settle, each of which must succeed
        host.run_expect([0], (f"( {shell(mutation.undo)} ) || true; " if mutation.undo else "")
                        + "set -e; " + "".join(f"cp -a {c} {p}; " for p, c in copies)
                        + mutation.settle)
    code, out_restored, restored = run_guard(config, mutation, listed_inventory)
    failed = failed_in_its_body(row["mutated"], row["mutated_outcomes"])
    row.update(restored=code, restored_outcomes=restored,
               caught=failed and passed_wholly(code, restored),
               seconds=round(time.monotonic() - started, 1))
    save(row)
    assert failed, ("the guard did not fail in its body without the protection "
                    f"{row['mutated_outcomes']}:\n{out_mutated}")
    assert passed_wholly(code, restored), ("the guard does not pass (wholly) after the "
                                           f"protection came back {restored}:\n{out_restored}")
