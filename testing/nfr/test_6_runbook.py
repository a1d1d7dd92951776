"""The runbook's commands (docs/runbook.md), run as an operator would."""

from conftest import API

ROOT_DIR = f"/opt/{API}"


def ok(host, cmd):
    return host.run_expect([0], cmd).stdout


def test_read_the_logs(host):
    ok(host, "tail -1 /var/log/nginx/access.log | python3 -m json.tool")
    ok(host, "grep -c '\"status\":5' /var/log/nginx/access.log || true")
    rid = ok(host, "tail -1 /var/log/nginx/access.log | python3 -c "
                   "'import json,sys; print(json.load(sys.stdin)[\"request_id\"])'").strip()
    ok(host, f"zgrep -h request_id={rid} /var/log/{API}/access.log* || true")
    ok(host, f"journalctl -u {API} -u nginx --since -1h --no-pager | tail -5")
    ok(host, "ausearch --input-logs -k identity -ts today --format text | tail -3")
    ok(host, "fail2ban-client status sshd")


def test_roll_back_and_forward_in_place(host):
    live = ok(host, f"readlink {ROOT_DIR}/current").strip()
    # a "previous" release to roll back to (an image holds only the one it was baked with)
    ok(host, f"cp -a {live} {ROOT_DIR}/releases/previous-release")
    try:
        ok(host, f"ls -1t {ROOT_DIR}/releases/")
        ok(host, f"ln -sfn {ROOT_DIR}/releases/previous-release {ROOT_DIR}/current")
        ok(host, f"systemctl restart {API}")
        ok(host, "curl -fsk --retry 10 --retry-delay 1 --retry-all-errors https://127.0.0.1/healthz")
        assert "previous-release" in ok(host, f"readlink {ROOT_DIR}/current")
    finally:
        ok(host, f"ln -sfn {live} {ROOT_DIR}/current && systemctl restart {API}")
        ok(host, f"rm -rf {ROOT_DIR}/releases/previous-release")
    ok(host, "curl -fsk --retry 10 --retry-delay 1 --retry-all-errors https://127.0.0.1/healthz")


def test_rotate_the_self_signed_certificate(host):
    before = ok(host, "openssl x509 -in /etc/nginx/tls/server.crt -noout -fingerprint -sha256")
    ok(host, "rm /etc/nginx/tls/server.key /etc/nginx/tls/server.crt")
    ok(host, "systemctl start nginx-selfsigned-cert && systemctl reload nginx")
    after = ok(host, "openssl x509 -in /etc/nginx/tls/server.crt -noout -fingerprint -sha256")
    assert before != after
    assert host.file("/etc/nginx/tls/server.key").mode == 0o600
    ok(host, "curl -fsk https://127.0.0.1/healthz")


def test_when_healthz_fails_checks(host):
    assert ok(host, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/healthz") == "200"
    ok(host, "ufw status verbose")
    ok(host, f"systemctl status --no-pager {API}.socket {API}.service")
    ok(host, f"tail -50 /var/log/{API}/error.log")
    ok(host, "nginx -t")
    ok(host, "df -h /var/log")
