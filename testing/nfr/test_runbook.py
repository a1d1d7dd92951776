"""The runbook's commands (docs/runbook.md), run as an operator would, each
checked for what the operator would read from it: a pipeline fails if any
part fails (pipefail), and a command's answer is asserted, not only its exit."""

import json

from harness.nfr import API

ROOT_DIR = f"/opt/{API}"


def ok(host, cmd):
    """Run as root with bash's pipefail: `a | tail` fails when `a` fails."""
    return host.run_expect([0], "bash -o pipefail -c %s", cmd).stdout


def test_read_the_logs(host):
    # a request of our own, so the log lines below are known to exist
    rid = "runbook-read-logs-0001"
    ok(host, f"curl -fsk -o /dev/null -H 'X-Request-ID: {rid}' https://127.0.0.1/customers/111")
    ok(host, "sleep 2")    # nginx flushes its access log buffer every second
    last = json.loads(ok(host, "tail -1 /var/log/nginx/access.log | python3 -m json.tool"))
    assert last["request_id"] == rid and last["status"] == 200
    # server errors: before the fault tests (test_7) there must be none
    errors = host.run("grep -c '\"status\":5' /var/log/nginx/access.log")
    assert errors.rc == 1 and errors.stdout.strip() == "0", errors.stdout
    found = ok(host, f"zgrep -h '\"request_id\":\"{rid}\"' /var/log/nginx/access.log*")
    assert json.loads(found)["uri"] == "/customers/111"
    journal = ok(host, f"journalctl -u {API} -u nginx --since -1h --no-pager | tail -5")
    assert journal.strip(), "the journal has nothing for the API and nginx"
    # cloud-init created this instance's login user at boot: an identity change
    audit = ok(host, "ausearch --input-logs -k identity -ts today --format text | tail -3")
    assert "/etc/" in audit, audit
    assert "Currently banned:" in ok(host, "fail2ban-client status sshd")


def test_roll_back_and_forward_in_place(host):
    live = ok(host, f"readlink {ROOT_DIR}/current").strip()
    # a "previous" release to roll back to (an image holds only the one it was baked with)
    ok(host, f"cp -a {live} {ROOT_DIR}/releases/previous-release")
    try:
        assert "previous-release" in ok(host, f"ls -1t {ROOT_DIR}/releases/")
        ok(host, f"ln -sfn {ROOT_DIR}/releases/previous-release {ROOT_DIR}/current")
        ok(host, f"systemctl restart {API}")
        # the restart returns once gunicorn reported ready (Type=notify): no retries
        assert ok(host, "curl -fsk --max-time 20 https://127.0.0.1/healthz") == '{"status":"ok"}\n'
        assert ok(host, f"readlink /proc/$(systemctl show -p MainPID --value {API})/cwd"
                  ).strip() == f"{ROOT_DIR}/releases/previous-release"
    finally:
        ok(host, f"ln -sfn {live} {ROOT_DIR}/current && systemctl restart {API}")
        ok(host, f"rm -rf {ROOT_DIR}/releases/previous-release")
    assert ok(host, "curl -fsk --max-time 20 https://127.0.0.1/healthz") == '{"status":"ok"}\n'
    assert ok(host, f"readlink /proc/$(systemctl show -p MainPID --value {API})/cwd"
              ).strip() == live


def test_rotate_the_self_signed_certificate(host):
    before = ok(host, "openssl x509 -in /etc/nginx/tls/server.crt -noout -fingerprint -sha256")
    ok(host, "rm /etc/nginx/tls/server.key /etc/nginx/tls/server.crt")
    ok(host, "systemctl start nginx-selfsigned-cert && systemctl reload nginx")
    after = ok(host, "openssl x509 -in /etc/nginx/tls/server.crt -noout -fingerprint -sha256")
    assert before != after
    assert host.file("/etc/nginx/tls/server.key").mode == 0o600
    served = ok(host, "echo | openssl s_client -connect 127.0.0.1:443 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    assert served == after, "nginx still serves the old certificate after its reload"


def test_when_healthz_fails_checks(host):
    assert ok(host, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/healthz") == "200"
    assert "Status: active" in ok(host, "ufw status verbose")
    status = ok(host, f"systemctl status --no-pager {API}.socket {API}.service")
    assert status.count("Active: active") == 2, status
    ok(host, f"tail -50 /var/log/{API}/error.log")
    assert host.run("nginx -t").rc == 0
    assert "/" in ok(host, "df -h /var/log | tail -1")
