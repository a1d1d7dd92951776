"""Edge and scrape settings given at boot: instance-2 of the image boots with
user-data carrying its environment's edge settings (molecule/image/create.yml
makes them: mutual TLS with this run's test CA and one allowed subject, one
CORS origin, one name, behind a load balancer: qemu's gateway, whence every
forwarded connection comes, as the trusted proxy) and no scrape settings
(checked at the end of this module: instance-1 has a source). Checked from this
machine, through instance-2's forwarded HTTPS port, as a caller would: who
may read customer data, and who may not.
"""

import glob
import http.client
import json
import os
import socket
import ssl
import time

import pytest
import testinfra

from harness.deployment import EXPORTERS, METRICS_SETTINGS
from harness.vm import unverified_context

RUN_DIR = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PKI = os.path.join(RUN_DIR, "pki")
NAME, ORIGIN = "api.bank.test", "https://app.bank.test"
pytestmark = pytest.mark.skipif(not INVENTORY, reason="run by molecule test -s image")


@pytest.fixture(scope="module")
def port():
    (state,) = glob.glob(os.path.join(RUN_DIR, "vms", "instance-2", "vm.json"))
    with open(state) as f:
        return json.load(f)["forwards"]["https"]["host"]


@pytest.fixture(scope="module")
def instance():
    return testinfra.get_host(f"ansible://instance-2?ansible_inventory={INVENTORY}", sudo=True)


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def call(port, path, client=None, sni=None, host="127.0.0.1", method="GET", headers=None):
    """One HTTPS request to instance-2; None if the connection closed unanswered."""
    ctx = unverified_context()
    if client:
        ctx.load_cert_chain(os.path.join(PKI, f"{client}.pem"), os.path.join(PKI, f"{client}.key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20)
    conn.sock = ctx.wrap_socket(raw, server_hostname=sni)
    try:
        conn.request(method, path, headers={"Host": host, **(headers or {})})
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()},
                      r.read().decode("utf-8", "replace"))
    except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLEOFError):
        return None
    finally:
        conn.close()


def test_the_settings_came_from_user_data(instance):
    settings = json.loads(instance.file("/etc/supermega-edge/settings.json").content_string)
    assert settings["server_names"] == [NAME] and settings["cors_origins"] == [ORIGIN]
    assert instance.service("supermega-edge-config").is_enabled
    assert "ssl_verify_client optional;" in instance.file(
        "/etc/nginx/supermega/server-tls.conf").content_string


def test_customer_data_needs_a_valid_client_certificate(port):
    answer = call(port, "/customers/111", client="web-tier")
    assert answer.status == 200 and answer.json()["id"] == "111", answer


@pytest.mark.parametrize("client", [None, "stranger", "expired", "intruder"],
                         ids=["no certificate", "another CA", "expired", "subject not allowed"])
def test_without_a_valid_allowed_certificate_json_403_and_no_data(port, client):
    answer = call(port, "/customers/111", client=client)
    assert answer is not None and answer.status == 403, answer
    assert answer.json() == {"error": "Forbidden"}
    assert answer.headers["content-type"].startswith("application/json")
    assert "Deadpool" not in answer.body


def test_healthz_needs_no_certificate(port):
    answer = call(port, "/healthz")
    assert answer.status == 200 and answer.json() == {"status": "ok"}, answer


def test_its_name_is_answered_and_an_unknown_one_gets_no_answer(port):
    assert call(port, "/customers", client="web-tier", sni=NAME, host=NAME).status == 200
    assert call(port, "/customers", client="web-tier", sni="attacker.example",
                host=NAME) is None
    assert call(port, "/customers", client="web-tier", host="attacker.example") is None


def test_cors_preflight_from_the_allowed_origin(port):
    answer = call(port, "/customers", method="OPTIONS",
                  headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert answer.status == 204, answer
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["access-control-allow-methods"] == "GET, HEAD"
    assert int(answer.headers["access-control-max-age"]) <= 600
    assert answer.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in answer.headers


def test_cors_get_from_the_allowed_origin_echoes_it_exactly(port):
    answer = call(port, "/customers", client="web-tier", headers={"Origin": ORIGIN})
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://app.bank.test.evil"])
def test_other_origins_get_no_cors_headers(port, origin):
    preflight = call(port, "/customers", method="OPTIONS",
                     headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert preflight.status == 405, preflight
    get = call(port, "/customers", client="web-tier", headers={"Origin": origin})
    assert get.status == 200     # the request itself behaves as without CORS
    for answer in (preflight, get):
        assert not [h for h in answer.headers if h.startswith("access-control-")], answer


def test_malformed_settings_are_refused_by_name_before_nginx_uses_them(instance):
    instance.run_expect([0], "printf '%s' '{\"cors_origins\": [\"*\"]}' > /root/bad-edge.json")
    out = instance.run("/usr/local/sbin/supermega-edge-config --check "
                       "--settings /root/bad-edge.json")
    assert out.rc == 1 and "cors_origins: '*'" in out.stderr, out
    assert "https://app.bank.test" in instance.file("/etc/nginx/supermega/http.conf").content_string


def test_behind_a_load_balancer_the_client_address_comes_from_it(port, instance):
    """The trusted proxy's X-Forwarded-For names the client in nginx's log
    (and so in its rate limit), and its X-Request-ID is kept; instance-1,
    with no trusted proxy, is checked by the roles' suite to ignore them."""
    answer = call(port, "/customers", headers={"X-Forwarded-For": "203.0.113.77",
                                               "X-Request-ID": "lb-given-id-0001"})
    assert answer.status == 403, answer      # no client certificate: logged, refused
    assert answer.headers.get("x-request-id") == "lb-given-id-0001", answer
    line = ""
    for _ in range(10):                        # the access log is flushed every second
        line = instance.run("grep -h lb-given-id-0001 /var/log/nginx/access.log").stdout
        if line:
            break
        time.sleep(1)
    assert json.loads(line.splitlines()[-1])["remote_addr"] == "203.0.113.77", line


def test_behind_a_load_balancer_fail2ban_has_no_nginx_jail(instance):
    """Banning from nginx's log would ban the load balancer (every request
    comes through it); instance-1, a single host, keeps the jail (roles'
    suite, test_fail2ban_jails)."""
    override = instance.file("/etc/fail2ban/jail.d/zz-supermega-edge.local")
    assert override.exists and "[nginx-limit-req]\nenabled = false" in override.content_string
    jails = instance.check_output("fail2ban-client status")
    assert "sshd" in jails and "nginx-limit-req" not in jails, jails


def test_without_a_monitoring_source_the_exporters_answer_on_loopback_only(instance):
    """No scrape settings in instance-2's user-data: the image's own (no
    source) hold, so ufw has no rule for the exporters and they listen on
    127.0.0.1 only (instance-1, with a source, is the roles' suite's and the
    live alert check's; the NFR scan checks both from another host)."""
    settings = json.loads(instance.file(METRICS_SETTINGS).content_string)
    assert settings == {"metrics_sources": []}, settings
    assert instance.service("supermega-metrics-config").is_running
    assert "supermega-metrics" not in instance.check_output("ufw status")
    for unit, exporter_port in EXPORTERS.items():
        listeners = instance.check_output(f"ss -H -tln 'sport = :{exporter_port}'")
        addresses = {line.split()[3].rpartition(":")[0] for line in listeners.splitlines()}
        assert addresses == {"127.0.0.1"}, (unit, listeners)


def test_malformed_scrape_settings_are_refused_by_name(instance):
    instance.run_expect([0], "printf '%s' '{\"metrics_sources\": [\"0.0.0.0/0\"]}' "
                             "> /root/bad-metrics.json")
    out = instance.run("/usr/local/sbin/supermega-metrics-config --check --ports 9100 "
                       "--settings /root/bad-metrics.json")
    assert out.rc == 1 and "'0.0.0.0/0' would open the exporters" in out.stderr, out
