"""Log files, rotation that loses nothing, and journald caps."""

import json
import time

from harness.deployment import API, API_LOG_DIR


def test_logrotate_config_is_clean(host):
    out = host.run("logrotate -d /etc/logrotate.conf")
    assert out.rc == 0
    errors = [line for line in out.stderr.splitlines() if line.lower().startswith("error")]
    assert errors == []
    for conf in [f"/etc/logrotate.d/{API}", "/etc/logrotate.d/nginx"]:
        content = host.file(conf).content_string
        directives = [line.split("#")[0].strip() for line in content.splitlines()]
        assert "copytruncate" not in directives
        assert "daily" in content and "rotate 14" in content and "compress" in content


def test_log_files_owned_for_their_writers(host):
    log_dir = host.file(API_LOG_DIR)
    assert (log_dir.user, log_dir.mode) == (API, 0o750)
    f = host.file(f"{API_LOG_DIR}/error.log")
    assert f.exists and f.user == API and f.mode & 0o007 == 0
    # each request is logged once, by nginx (api_gunicorn_access_log: false)
    assert not host.file(f"{API_LOG_DIR}/access.log").exists


def open_logs(host, pid):
    """The log files a process writes to now (its open file descriptors)."""
    return set(host.check_output(f"find /proc/{pid}/fd -lname '/var/log/*' -printf '%l\\n'")
               .split())


def test_nginx_access_log_is_json(host, http, logged):
    request_id = f"json-log-check-{time.time_ns()}"
    http("/customers/111", headers={"X-Request-ID": request_id})
    entry = json.loads(logged(request_id)[-1])
    assert entry["status"] == 200 and entry["uri"] == "/customers/111"
    assert entry["upstream_status"] == "200"
    assert float(entry["request_time"]) >= 0


def test_encoded_newline_cannot_forge_a_log_line(host, http, logged):
    request_id = f"forge-{time.time_ns()}"
    http("/customers/111%0Aforged%20status=200%0A", headers={"X-Request-ID": request_id})
    logged(request_id)
    lines = host.check_output(f"grep -h -A1 {request_id} /var/log/nginx/access.log"
                              ).splitlines()
    mine = [line for line in lines if request_id in line]
    assert len(mine) == 1, lines            # one JSON line, the URI still encoded
    assert json.loads(mine[0])["uri"] == "/customers/111%0Aforged%20status=200%0A"
    assert not any(line.startswith("forged") for line in lines), lines


def test_forced_rotation_keeps_logging(host, http, logged):
    # a line in nginx's current file first: logrotate leaves an empty log
    # alone (notifempty), so on a host no request had reached since the
    # last rotation nothing would be rotated and nothing shown
    before = f"before-rotation-{time.time_ns()}"
    http("/customers/111", headers={"X-Request-ID": before})
    logged(before)
    host.run_expect([0], "logrotate -f /etc/logrotate.conf")
    assert host.file(f"{API_LOG_DIR}/error.log.1").exists
    assert host.file("/var/log/nginx/access.log.1").exists
    # gunicorn reopened its log: it writes to the new file, not the rotated one
    master = host.check_output(f"systemctl show -p MainPID --value {API}.service")
    assert open_logs(host, master) == {f"{API_LOG_DIR}/error.log"}
    # nginx reopened its logs: a new request is in the new file, not the rotated one
    request_id = f"after-rotation-{time.time_ns()}"   # new each run: the test repeats
    http("/customers/222", headers={"X-Request-ID": request_id})
    # in the new file (polled, bounded; a line in the rotated file fails at once)...
    logged(request_id, not_in="/var/log/nginx/access.log.1")
    assert host.run(f"grep -q {request_id} /var/log/nginx/access.log.1").rc == 1  # ...only
