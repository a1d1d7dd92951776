"""ansible/roles/metrics/files/api.mtail against lines in nginx's own log format.

The lines are made from the nginx role's `log_format api_json` (the
template's text, its variables filled in), so a change of field order or
name there fails here. mtail runs natively (`--one_shot`: read the file,
print the metrics, exit). Needs Debian's `mtail` package: `make deps`.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from harness import ROOT

PROGRAM = os.path.join(ROOT, "ansible", "roles", "metrics", "files", "api.mtail")
NGINX_CONF = os.path.join(ROOT, "ansible", "roles", "nginx", "templates", "nginx.conf.j2")


def log_format():
    """The quoted pieces of `log_format api_json`, joined: '{"time":"$time_iso8601",...}'."""
    with open(NGINX_CONF) as f:
        text = f.read()
    body = re.search(r"log_format api_json escape=json (.*?);\n", text, re.S).group(1)
    return "".join(re.findall(r"'([^']*)'", body))


def line(uri, status, seconds, agent="curl/7.88.1"):
    """One access-log line as nginx writes it (escape=json escapes " and \\)."""
    values = {"time_iso8601": "2026-11-29T12:00:00+00:00", "api_request_id": "0" * 32,
              "remote_addr": "192.0.2.1", "request_method": "GET", "request_uri": uri,
              "status": str(status), "body_bytes_sent": "120", "request_time": seconds,
              "upstream_status": "200", "upstream_response_time": seconds,
              "server_protocol": "HTTP/1.1", "ssl_protocol": "TLSv1.3",
              "ssl_cipher": "TLS_AES_128_GCM_SHA256", "host": "api.example",
              "http_user_agent": agent}

    def fill(match):
        return json.dumps(values[match.group(1)])[1:-1]
    return re.sub(r"\$(\w+)", fill, log_format())


def run_mtail(tmp_path, lines):
    if not shutil.which("mtail"):
        pytest.fail("mtail is missing: `make deps` installs Debian's mtail package")
    log = tmp_path / "access.log"
    log.write_text("".join(f"{entry}\n" for entry in lines))
    out = subprocess.run(["mtail", "--one_shot", "--one_shot_format=json", "--progs", PROGRAM,
                          "--logs", str(log), "--port", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def counts(metrics):
    return {tuple(v["Labels"]): v["Value"]["Value"]
            for v in metrics["api_http_requests_total"][0]["LabelValues"]}


def test_the_log_format_is_what_the_program_reads():
    assert line("/customers", 200, "0.012").startswith('{"time":"2026-11-29T12:00:00+00:00",')
    json.loads(line('/customers?q="x"', 200, "0.012", agent='a "quoted" \\ agent'))


def test_routes_are_path_templates_and_statuses_are_nginx_codes(tmp_path):
    metrics = run_mtail(tmp_path, [
        line("/customers", 200, "0.012"),
        line("/customers/", 200, "0.010"),
        line("/customers/111", 200, "0.020"),
        line("/customers/111/accounts", 200, "0.030"),
        line("/customers/111/accounts/1?verbose=1", 404, "0.004"),
        line("/customers/111/accounts/1/x", 404, "0.004"),
        line("/healthz", 200, "0.003"),
        line("/etc/passwd", 404, "0.001"),
        line('/customers/%22%3E"<script>', 429, "0.000", agent='x"\\y'),
    ])
    assert counts(metrics) == {
        ("/customers", "200"): 2, ("/customers/:id", "200"): 1,
        ("/customers/:id/accounts", "200"): 1, ("/customers/:id/accounts/:id", "404"): 1,
        ("/healthz", "200"): 1, ("other", "404"): 2, ("/customers/:id", "429"): 1}
    assert metrics["api_access_log_lines_unparsed_total"][0]["LabelValues"][0]["Value"][
        "Value"] == 0


def test_latency_lands_in_the_right_buckets(tmp_path):
    metrics = run_mtail(tmp_path, [line("/customers", 200, s)
                                   for s in ("0.004", "0.020", "0.300", "0.300", "3.000")])
    (histogram,) = [v["Value"] for v in metrics["api_http_request_duration_seconds"][0][
        "LabelValues"] if v["Labels"] == ["/customers"]]
    assert histogram["Count"] == 5 and abs(histogram["Sum"] - 3.624) < 1e-9
    assert {le: histogram["Buckets"][le] for le in ("0.005", "0.025", "0.5", "5")} == {
        "0.005": 1, "0.025": 1, "0.5": 2, "5": 1}


def test_a_line_in_another_format_is_counted_not_lost(tmp_path):
    metrics = run_mtail(tmp_path, ['127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" '
                                   "200 12 \"-\" \"curl\"", line("/customers", 200, "0.01")])
    assert metrics["api_access_log_lines_unparsed_total"][0]["LabelValues"][0]["Value"][
        "Value"] == 1
    assert counts(metrics) == {("/customers", "200"): 1}
