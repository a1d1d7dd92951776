"""End to end over HTTPS inside the host: nginx -> unix socket -> gunicorn -> Flask."""

import json
import re
import time

import pytest

from harness.deployment import API, https_port_clients_see

# `systemd-analyze security nginx.service` on Debian 12, measured on the
# Molecule VM (2026-11-29): 9.6 with the distribution's unit alone, 2.8 with
# the role's sandbox drop-in (templates/sandbox.conf.j2)
NGINX_EXPOSURE = 2.8

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


def assert_json(response):
    assert response.headers["content-type"].startswith("application/json"), response
    return response.json()


def assert_security_headers(response, https=True):
    for name, value in SECURITY_HEADERS.items():
        if name == "strict-transport-security" and not https:
            continue
        assert response.all(name) == [value], (name, response)
    assert "x-xss-protection" not in response.headers
    assert "server" not in response.headers, response  # no server name, no version
    assert response.headers.get("x-request-id")


@pytest.mark.parametrize("name,expected", [
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("RestrictNamespaces", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("CapabilityBoundingSet", "cap_chown cap_dac_override cap_kill cap_setgid cap_setuid "
                              "cap_net_bind_service"),
])
def test_nginx_runs_sandboxed(host, name, expected):
    assert host.service("nginx").systemd_properties.get(name) == expected


# Syscalls nginx never needs, which a foothold in it would: each must be
# refused by the unit's effective filter (@system-service, drop-ins included)
NGINX_DENIED_SYSCALLS = ["ptrace", "mount", "reboot", "kexec_load", "init_module",
                         "delete_module", "swapon", "bpf", "pivot_root", "settimeofday"]


def test_nginx_runs_under_a_syscall_filter(host):
    """The effective SystemCallFilter is an allow-list without those calls,
    and the running master is under a seccomp filter (mode 2): applied, not
    only set."""
    unit = host.service("nginx").systemd_properties
    allowed = unit.get("SystemCallFilter", "")
    assert allowed and not allowed.startswith("~"), allowed    # an allow-list
    listed = set(allowed.split())
    assert {"read", "write", "accept4", "sendfile"} <= listed, allowed
    assert not set(NGINX_DENIED_SYSCALLS) & listed, set(NGINX_DENIED_SYSCALLS) & listed
    status = host.file(f"/proc/{unit['MainPID']}/status").content_string
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status


def test_nginx_starts_with_one_load_of_its_configuration(host):
    """No `nginx -t` before the start (Debian's ExecStartPre): nginx refuses
    a broken configuration by itself (the start fails, and the unit with
    it), and the second load was on the boot's path."""
    assert host.service("nginx").systemd_properties.get("ExecStartPre", "") == ""


def test_nginx_systemd_exposure_at_most_2_8(host):
    out = host.check_output("systemd-analyze security --no-pager nginx.service")
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= NGINX_EXPOSURE, out


def test_nginx_config_is_valid(host):
    assert host.run("nginx -t").rc == 0


@pytest.mark.parametrize("path,expected", [
    ("/customers", [{"id": "111", "data": {"name": "Deadpool"}},
                    {"id": "222", "data": {"name": "Daredevil"}},
                    {"id": "333", "data": {"name": "Captain America"}}]),
    ("/customers/222", {"id": "222", "data": {"name": "Daredevil"}}),
    ("/customers/333/accounts", [{"id": "5", "data": {
        "account_number": "5274393383004246", "type": "cc", "alias": "Credit Card",
        "balance": 3592.22}}]),
    ("/customers/111/accounts/1", {"id": "1", "data": {
        "bsb": "060-000", "account_number": "11112222", "type": "tx",
        "alias": "Transaction Account", "balance": 1000.0}}),
    ("/healthz", {"status": "ok"}),
])
def test_every_route_returns_the_seed_data(http, path, expected):
    response = http(path)
    assert response.status == 200, response
    assert assert_json(response) == expected
    assert_security_headers(response)


@pytest.mark.parametrize("path,status,body", [
    ("/customers/foo", 404, {"error": "Customer foo does not exist"}),
    ("/customers/111/accounts/7", 404, {"error": "Account 7 for customer 111 does not exist"}),
    ("/nope", 404, {"error": "Not Found"}),
])
def test_app_errors_are_json(http, path, status, body):
    response = http(path)
    assert response.status == status
    assert assert_json(response) == body
    assert_security_headers(response)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_get_json_405_with_allow(http, method):
    response = http("/customers", method=method, body="{}" if method != "OPTIONS" else None)
    assert response.status == 405, response
    assert assert_json(response) == {"error": "Method Not Allowed"}
    assert response.headers["allow"] == "GET, HEAD"
    assert_security_headers(response)


def test_request_id_is_passed_through_or_made(host, http, logged):
    mine = http("/customers/111", headers={"X-Request-ID": "test-req-0123456789"})
    assert mine.headers["x-request-id"] == "test-req-0123456789"
    made = http("/customers/111")
    assert len(made.headers["x-request-id"]) == 32
    # nginx logs it (and passes it to gunicorn as X-Request-ID)
    assert logged("test-req-0123456789")


def get_request(host_header="127.0.0.1", path="/customers"):
    return f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize("port,tls", [(443, True), (80, False)], ids=["https", "http"])
def test_only_the_apis_names_are_answered(raw, port, tls):
    # its own address and localhost: answered; any other Host: the connection
    # is closed with no answer at all (no data, no redirect, no error page)
    assert b'"status":"ok"' in raw(get_request(path="/healthz"), port=port, tls=tls)
    assert b'"status":"ok"' in raw(get_request("localhost", "/healthz"), port=port, tls=tls)
    assert raw(get_request("attacker.example"), port=port, tls=tls) == b""


def test_an_unknown_tls_server_name_gets_no_answer(raw):
    assert b"Deadpool" in raw(get_request(), sni="localhost")
    assert raw(get_request(), sni="attacker.example") == b""


def test_plain_http_to_the_https_port_gets_json_400(raw):
    answer = raw(get_request(), tls=False)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(body) == {"error": "Bad Request"}
    assert b"nginx" not in answer.lower()


def test_unknown_transfer_coding_gets_json_501(raw):
    answer = raw(b"GET /customers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Transfer-Encoding: foo\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501"), answer
    assert json.loads(body) == {"error": "Not Implemented"}


def test_unsupported_http_version_gets_no_html(raw):
    # nginx refuses HTTP/2.0 on an HTTP/1 connection (505) or just closes it:
    # either way, never its HTML page or its name
    answer = raw(b"GET /customers HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"<html" not in answer.lower() and b"nginx" not in answer.lower(), answer
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 505") and json.loads(body)["error"], answer


def test_no_cors_headers_without_configured_origins(http):
    # nginx_cors_origins is empty by default: no origin is allowed anything
    get = http("/customers", headers={"Origin": "https://app.example"})
    preflight = http("/customers", method="OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert get.status == 200 and preflight.status == 405
    for answer in (get, preflight):
        assert not [h for h in answer.headers if h.startswith("access-control-")], answer


def test_forged_request_id_is_replaced(http):
    response = http("/customers", headers={"X-Request-ID": "bad id\"{}"})
    assert response.headers["x-request-id"] != "bad id\"{}"


def test_http_redirects_to_https_except_healthz(http):
    """To the HTTPS port the deployment's clients use (Vagrant's forward:
    8443; 443 where it is the default, and then left out of the URL)."""
    redirect = http("/customers/111?x=1", scheme="http")
    port = https_port_clients_see()
    assert redirect.status == 301
    assert redirect.headers["location"] == (
        f"https://127.0.0.1{'' if port == 443 else f':{port}'}/customers/111?x=1")
    assert_security_headers(redirect, https=False)
    health = http("/healthz", scheme="http")
    assert health.status == 200 and assert_json(health) == {"status": "ok"}


def handshake(host, *options):
    """openssl s_client against nginx; returns (negotiated "protocol cipher", output).
    Every offer matches the server's ECDSA key, so only nginx's policy can refuse it."""
    out = host.run("echo | openssl s_client -connect 127.0.0.1:443 -servername 127.0.0.1 "
                   + " ".join(options) + " 2>&1")
    match = re.search(r"New, (TLSv[0-9.]+), Cipher is (\S+)", out.stdout)
    if not match or match.group(2) == "(NONE)":
        return None, out.stdout
    return f"{match.group(1)} {match.group(2)}", out.stdout


def test_tls_1_3_and_1_2_with_aead_ciphers(host):
    assert (handshake(host, "-tls1_3")[0] or "").startswith("TLSv1.3 TLS_")
    assert handshake(host, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")[0] == (
        "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256")


@pytest.mark.parametrize("version", ["-tls1_1", "-tls1"])
def test_tls_before_1_2_refused(host, version):
    # an offer the server could otherwise take: an ECDSA suite that TLS 1.0/1.1 know,
    # with the client's own minimum lowered (SECLEVEL=0)
    negotiated, out = handshake(host, version, "-cipher",
                                "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA@SECLEVEL=0")
    assert negotiated is None, out


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",            # CBC, SHA-1 MAC
    "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",      # CBC
])
def test_tls_weak_ciphers_refused(host, cipher):
    # ECDSA-authenticated, so the server's key fits: only its cipher list can say no
    negotiated, out = handshake(host, "-tls1_2", "-cipher", f"{cipher}@SECLEVEL=0")
    assert negotiated is None, out


def test_no_dhe_suites_configured(host):
    # DHE would need a dhparam file; ECDHE covers Mozilla's intermediate clients
    ciphers = [line for line in host.file("/etc/nginx/nginx.conf").content_string.splitlines()
               if line.strip().startswith("ssl_ciphers ")]
    assert len(ciphers) == 1 and "ECDHE-" in ciphers[0] and "DHE-" not in ciphers[0].replace(
        "ECDHE-", ""), ciphers


def test_self_signed_certificate_is_ecdsa_p256_for_this_host(host):
    text = host.check_output("openssl x509 -in /etc/nginx/tls/server.crt -noout -text")
    assert "ASN1 OID: prime256v1" in text
    assert "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text


def limited_in_error_log(host, address, zone, since_line):
    """Refusals nginx logged for this client in `zone`, after line `since_line`."""
    kind = {"api_req": "requests", "api_conn": "connections"}[zone]
    pattern = f'limiting {kind}.* zone "{zone}", client: {address},'
    return int(host.check_output(
        "tail -n +%s /var/log/nginx/error.log | grep -c -E -- %s || true",
        str(since_line + 1), pattern) or 0)


def error_log_lines(host):
    return int(host.check_output("wc -l < /var/log/nginx/error.log"))


def test_burst_from_one_client_gets_json_429(host, h2_streams, primary_address):
    # 60 requests written in one TLS record (H2_PROBE): nginx reads and judges
    # them in one pass, at one clock reading, however slowly the guest runs.
    # The rate limit (20 r/s, burst 40, nodelay) then serves the first 41
    # (the burst plus the request the rate itself allows) and refuses the rest
    # with 429. 60 streams stay under the per-client connection limit (64), so
    # limit_conn cannot answer for limit_req here: it has its own test below.
    # (fail2ban's nginx-limit-req jail ignores the host's own address.)
    before = error_log_lines(host)
    tag = f"burst-{time.time_ns()}"
    result = h2_streams(tag, primary_address, at_once=60)
    statuses = result["logged"]
    assert sorted(statuses) == list(range(1, 61)), (statuses, result)
    refused = [n for n, status in statuses.items() if status == 429]
    assert sorted(set(statuses.values())) == [200, 429], statuses
    assert len(refused) == 60 - 41, statuses
    assert json.loads(result["bodies"][str(refused[0])]) == {"error": "Too Many Requests"}
    assert limited_in_error_log(host, primary_address, "api_req", before) == len(refused)
    assert limited_in_error_log(host, primary_address, "api_conn", before) == 0


def test_connections_beyond_the_per_client_limit_get_429(host, h2_streams, primary_address):
    # Requests held open: the client grants HTTP/2 no flow-control window, so
    # nginx can send no body and each request stays in progress. They are
    # sent slower than the rate limit refills (40 at once = the burst, then
    # one every 0.1 s, at 20 r/s), so limit_req refuses none of them however
    # slow the guest (slower only makes room); the 65th open request meets
    # limit_conn (64 per client). Every 429 must be limit_conn's.
    before = error_log_lines(host)
    tag = f"conns-{time.time_ns()}"
    result = h2_streams(tag, primary_address, at_once=40, paced=30, interval=0.1,
                        window0=True, hold=2)
    statuses = result["logged"]
    assert len(statuses) == 70, (statuses, result)
    refused_conn = limited_in_error_log(host, primary_address, "api_conn", before)
    assert limited_in_error_log(host, primary_address, "api_req", before) == 0
    assert refused_conn == 70 - 64, statuses
    assert sorted(n for n, status in statuses.items() if status == 429) == list(range(65, 71))


def test_loopback_is_not_rate_limited(http):
    statuses = [r.status for r in http("/customers", repeat=80)]
    assert statuses == [200] * 80


def nginx_log_entry(host, request_id):
    for _ in range(20):      # nginx flushes its log buffer every second
        line = host.check_output("grep -F %s /var/log/nginx/access.log | tail -1",
                                 f'"request_id":"{request_id}"')
        if line:
            return json.loads(line)
        time.sleep(0.5)
    raise AssertionError(f"{request_id} is not in nginx's access log")


def test_oversized_body_gets_json_413_from_nginx(host, http):
    # The app refuses bodies over 1 KiB too (defence in depth): this checks
    # that nginx refuses first, so the body never reaches gunicorn.
    request_id = f"body-limit-{time.time_ns()}"
    response = http("/customers", body="x" * 4096, headers={"X-Request-ID": request_id})
    assert response.status == 413
    assert assert_json(response) == {"error": "Request Entity Too Large"}
    entry = nginx_log_entry(host, request_id)
    assert entry["status"] == 413 and entry["upstream_status"] == "", entry


def test_oversized_header_gets_json_431(http):
    response = http("/customers", headers={"X-Big": "a" * 9000})
    assert response.status == 431, response
    assert assert_json(response) == {"error": "Request Header Fields Too Large"}


def test_upstream_down_gives_json_502_without_server_details(host, http):
    host.run_expect([0], f"systemctl stop {API}.socket {API}.service")
    try:
        response = http("/customers")
        assert response.status == 502
        assert assert_json(response) == {"error": "Bad Gateway"}
        assert "nginx" not in response.body.lower()
    finally:
        host.run_expect([0], f"systemctl start {API}.socket")
    assert http("/customers").status == 200


def test_a_forged_forwarded_for_is_not_believed_from_an_untrusted_peer(http, logged,
                                                                       primary_address):
    """This host's own address is no trusted proxy (a single host trusts none;
    an instance behind a load balancer, only its subnets): a client naming
    another address in X-Forwarded-For is logged as itself."""
    tag = f"xff-forged-{int(time.time() * 1000)}"
    response = http("/customers", source=primary_address,
                    headers={"X-Forwarded-For": "198.51.100.77", "User-Agent": tag})
    assert response.status in (200, 403), response     # 403: an instance with mutual TLS
    clients = [json.loads(line)["remote_addr"] for line in logged(f'"user_agent":"{tag}"')]
    assert clients == [primary_address], clients
