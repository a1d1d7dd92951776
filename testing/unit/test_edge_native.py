"""The edge's trust rules, proven with requests (not with text): the roles'
nginx and gunicorn on loopback (harness/native.py), with loopback's many
addresses as the peers: 127.0.0.2 stands for the load balancer (the only
trusted proxy), 127.0.0.3 for another host inside the VPC.

- the client certificate's subject, as the load balancer passes it
  (X-Amzn-Mtls-Clientcert-Subject, client_auth load_balancer: the fleet's
  user-data), authorises a request only from the trusted proxy and only for
  an allowed subject: the same header sent straight to the instance counts
  for nothing (JSON 403, no data);
- X-Forwarded-For forged by a non-proxy peer changes neither the logged
  client nor the rate-limit key; through the proxy, the client the proxy
  saw (the rightmost address, the one it appended) is both. The rate limit
  is set to 1 request a minute (burst 1) for these checks, so that the
  third request of one key is refused whatever this machine's speed;
- X-Request-ID (the id a request is traced by, in nginx's and gunicorn's
  logs and the answer) is kept from the trusted proxy only: a non-proxy
  peer's is replaced by nginx's own.
"""

import http.client
import json
import re
import shutil
import time

import pytest

from harness.native import NativeStack
from harness.vm import unverified_context

LB, INSIDER = "127.0.0.2", "127.0.0.3"
CLIENT, OTHER_CLIENT = "198.51.100.7", "198.51.100.9"
ALLOWED = "CN=web-tier,O=SuperMega Bank"
SUBJECT = "X-Amzn-Mtls-Clientcert-Subject"
TRUST_LB = {"trusted_proxies": [f"{LB}/32"], "behind_load_balancer": True}
SLOW_LIMIT = {"nginx_rate_limit": "1r/m", "nginx_rate_limit_burst": 1}

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="needs nginx (make deps)")


@pytest.fixture(scope="module")
def mtls_at_lb():
    ports = {"https": 18543, "http": 18180}
    settings = {**TRUST_LB, "client_auth": "load_balancer", "client_subjects": [ALLOWED]}
    with NativeStack(ports, settings) as stack:
        yield stack


@pytest.fixture(scope="module")
def behind_lb():
    ports = {"https": 18643, "http": 18280}
    with NativeStack(ports, TRUST_LB, extra_vars=SLOW_LIMIT) as stack:
        yield stack


def get(stack, source, headers, path="/customers/111", tag=None):
    conn = http.client.HTTPSConnection("127.0.0.1", stack.ports["https"], timeout=10,
                                       context=unverified_context(), source_address=(source, 0))
    headers = {"Host": "localhost", **headers}
    if tag:     # found in the log by it (a request id from an untrusted peer is replaced)
        headers["User-Agent"] = tag
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), response.headers
    finally:
        conn.close()


def logged_client(stack, tag, timeout=10):
    """The client nginx logged for the request tagged `tag` (nginx flushes
    its log every 1 s: polled, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [e for e in stack.access_log() if e["user_agent"] == tag]
        if lines:
            return lines[0]["remote_addr"]
        time.sleep(0.2)
    raise AssertionError(f"{tag} never reached the access log")


def test_the_verified_subject_from_the_load_balancer_authorises(mtls_at_lb):
    status, body, _ = get(mtls_at_lb, LB, {SUBJECT: ALLOWED})
    assert status == 200 and json.loads(body)["data"]["name"] == "Deadpool"


@pytest.mark.parametrize("source, headers", [
    (INSIDER, {SUBJECT: ALLOWED}),                      # the header straight to the instance
    (LB, {}),                                           # the load balancer passed no certificate
    (LB, {SUBJECT: "CN=intruder,O=SuperMega Bank"}),    # a subject not allowed
    (LB, {SUBJECT: ""}),
])
def test_anything_else_gets_json_403_and_no_data(mtls_at_lb, source, headers):
    status, body, _ = get(mtls_at_lb, source, headers)
    assert status == 403 and json.loads(body) == {"error": "Forbidden"}


def test_healthz_stays_open_for_the_health_checks(mtls_at_lb):
    assert get(mtls_at_lb, INSIDER, {}, path="/healthz")[0] == 200


def test_a_forged_forwarded_for_from_a_non_proxy_is_not_believed(behind_lb):
    """An insider naming CLIENT in X-Forwarded-For is logged and limited as
    itself: its third request is refused, and CLIENT's budget is untouched."""
    statuses = [get(behind_lb, INSIDER, {"X-Forwarded-For": CLIENT},
                    tag=f"forged-{n}")[0] for n in range(3)]
    assert statuses == [200, 200, 429]
    assert logged_client(behind_lb, "forged-0") == INSIDER
    assert get(behind_lb, LB, {"X-Forwarded-For": CLIENT})[0] == 200


def test_through_the_proxy_the_client_it_saw_is_logged_and_limited(behind_lb):
    """The load balancer appends the client it saw; what the client put in
    front of it (a forgery) is not used. OTHER_CLIENT's limit is its own."""
    forged = f"{INSIDER}, {OTHER_CLIENT}"      # the client claimed INSIDER; the LB saw OTHER_CLIENT
    statuses = [get(behind_lb, LB, {"X-Forwarded-For": forged}, tag=f"via-lb-{n}")[0]
                for n in range(3)]
    assert statuses == [200, 200, 429]
    assert logged_client(behind_lb, "via-lb-0") == OTHER_CLIENT
    assert get(behind_lb, LB, {"X-Forwarded-For": "198.51.100.11"})[0] == 200


def test_a_request_id_is_believed_from_the_proxy_only(behind_lb):
    """(Answered with its status or a 429: the id is in every answer.)"""
    forged = "set-by-an-insider-0001"
    answered = get(behind_lb, INSIDER, {"X-Request-ID": forged})[2]["X-Request-ID"]
    assert answered != forged and re.fullmatch(r"[0-9a-f]{32}", answered), answered
    kept = "set-by-the-balancer-0001"
    assert get(behind_lb, LB, {"X-Request-ID": kept})[2]["X-Request-ID"] == kept
