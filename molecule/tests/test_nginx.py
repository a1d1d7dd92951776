"""End to end over HTTPS inside the host: nginx -> unix socket -> gunicorn -> Flask."""

import pytest

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "referrer-policy": "no-referrer",
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


def test_nginx_config_is_valid(host):
    assert host.run("sudo nginx -t").rc == 0


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


def test_request_id_is_passed_through_or_made(host, http):
    mine = http("/customers/111", headers={"X-Request-ID": "test-req-0123456789"})
    assert mine.headers["x-request-id"] == "test-req-0123456789"
    made = http("/customers/111")
    assert len(made.headers["x-request-id"]) == 32
    # the same id appears in nginx's and gunicorn's access logs
    host.run_expect([0], "sleep 1")
    assert host.run("sudo grep -q test-req-0123456789 /var/log/nginx/access.log").rc == 0
    assert host.run("sudo grep -q 'request_id=test-req-0123456789' "
                    "/var/log/supermega-api/access.log").rc == 0


def test_forged_request_id_is_replaced(http):
    response = http("/customers", headers={"X-Request-ID": "bad id\"{}"})
    assert response.headers["x-request-id"] != "bad id\"{}"


def test_http_redirects_to_https_except_healthz(http):
    redirect = http("/customers/111?x=1", scheme="http")
    assert redirect.status == 301
    assert redirect.headers["location"] == "https://127.0.0.1/customers/111?x=1"
    assert_security_headers(redirect, https=False)
    health = http("/healthz", scheme="http")
    assert health.status == 200 and assert_json(health) == {"status": "ok"}


def test_tls_versions(host):
    def handshake(option):
        return host.run(f"echo | openssl s_client -connect 127.0.0.1:443 {option} 2>&1")

    assert "New, TLSv1.3, Cipher is TLS_" in handshake("-tls1_3").stdout
    assert "New, TLSv1.2, Cipher is ECDHE-ECDSA-" in handshake("-tls1_2").stdout
    for old in ["-tls1_1", "-tls1"]:
        out = handshake(f"{old} -cipher DEFAULT@SECLEVEL=0")
        assert "Cipher is (NONE)" in out.stdout or out.rc != 0, out.stdout


def test_tls_weak_ciphers_refused(host):
    out = host.run("echo | openssl s_client -connect 127.0.0.1:443 -tls1_2 "
                   "-cipher 'AES128-SHA:DES-CBC3-SHA:ECDHE-RSA-AES128-SHA' 2>&1")
    assert out.rc != 0 or "Cipher is (NONE)" in out.stdout


def test_self_signed_certificate_is_ecdsa_p256_for_this_host(host):
    text = host.check_output("sudo openssl x509 -in /etc/nginx/tls/server.crt -noout -text")
    assert "ASN1 OID: prime256v1" in text
    assert "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text


def test_burst_from_one_client_gets_json_429(host, simultaneous, primary_address):
    # 120 requests at once, as HTTP/2 streams on one connection (nginx allows
    # 128 at a time), so that they reach nginx together rather than at the
    # pace of one emulated client: the burst allowance (40, +1 for the rate
    # itself) is served, the rest get 429.
    # A guest starved by other VMs can spread the arrivals over seconds; then
    # fewer are over the rate, and it is the per-address connection limit
    # (every HTTP/2 stream counts) that answers 429. Either limiter is this
    # client's protection, and each logs what it refuses, so every 429 must
    # be in nginx's error log under one of the two zones.
    # (fail2ban's nginx-limit-req jail ignores the host's own address.)
    def refusals_logged():
        pattern = ('limiting (requests|connections).* zone "api_(req|conn)", '
                   f"client: {primary_address},")
        return int(host.check_output(
            "sudo grep -c -E -- %s /var/log/nginx/error.log || true", pattern) or 0)

    logged_before = refusals_logged()
    responses = simultaneous("/customers", 120, primary_address)
    statuses = sorted(r.status for r in responses)
    assert set(statuses) == {200, 429}, responses
    assert statuses.count(200) >= 41, statuses
    limited = [r for r in responses if r.status == 429]
    assert assert_json(limited[0]) == {"error": "Too Many Requests"}
    assert_security_headers(limited[0])
    assert refusals_logged() - logged_before == len(limited)


def test_loopback_is_not_rate_limited(http):
    statuses = [r.status for r in http("/customers", repeat=80)]
    assert statuses == [200] * 80


def test_oversized_body_gets_json_413(http):
    response = http("/customers", body="x" * 4096)
    assert response.status == 413
    assert assert_json(response) == {"error": "Request Entity Too Large"}


def test_oversized_header_gets_json_431(http):
    response = http("/customers", headers={"X-Big": "a" * 9000})
    assert response.status == 431, response
    assert assert_json(response) == {"error": "Request Header Fields Too Large"}


def test_upstream_down_gives_json_502_without_server_details(host, http):
    host.run_expect([0], "sudo systemctl stop supermega-api.socket supermega-api.service")
    try:
        response = http("/customers")
        assert response.status == 502
        assert assert_json(response) == {"error": "Bad Gateway"}
        assert "nginx" not in response.body.lower()
    finally:
        host.run_expect([0], "sudo systemctl start supermega-api.socket")
    assert http("/customers").status == 200
