"""The local fleet's load balancer (harness/fleet.py's HAProxy, as `make
fleet-check` runs it) in front of the roles' nginx and gunicorn on loopback
(harness/native.py) with the edge settings the fleet's user-data gives
(client_auth load_balancer, the balancer as the only trusted proxy): the
whole chain of mutual TLS at the balancer, natively, in seconds. The same
chain with instances of the image runs in `make fleet-check`."""

import json
import shutil

import pytest

from harness.fleet import ALLOWED_SUBJECT, SERVER_NAME, Haproxy, request
from harness.native import NativeStack
from harness.pki import image_pki

pytestmark = pytest.mark.skipif(not (shutil.which("nginx") and shutil.which("haproxy")),
                                reason="needs nginx and haproxy (make deps)")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    pki = tmp_path_factory.mktemp("pki")
    image_pki(str(pki))
    settings = {"server_names": [SERVER_NAME],
                "trusted_proxies": ["127.0.0.1/32"], "behind_load_balancer": True,
                "client_auth": "load_balancer", "client_subjects": [ALLOWED_SUBJECT]}
    with NativeStack({"https": 18743, "http": 18380}, settings):
        lb = Haproxy(str(tmp_path_factory.mktemp("lb")), {"s1": 18743},
                     ca_file=str(pki / "ca.pem"), check_host="127.0.0.1")
        try:
            lb.start()
            lb.wait_for("s1", "UP", 30)
            yield lb.port, {n: (str(pki / f"{n}.pem"), str(pki / f"{n}.key"))
                            for n in ("web-tier", "intruder", "stranger", "expired")}
        finally:
            lb.stop()


def test_a_certificate_of_the_callers_ca_with_an_allowed_subject_reads_data(chain):
    port, certs = chain
    status, body = request(port, certs["web-tier"])
    assert status == 200 and json.loads(body)["id"] == "111"


@pytest.mark.parametrize("cert", [None, "stranger", "expired"])
def test_no_certificate_or_a_bad_one_is_refused_at_the_balancer(chain, cert):
    port, certs = chain
    status, _ = request(port, certs.get(cert))
    assert status in ("SSLError", "ConnectionResetError", "RemoteDisconnected"), status


def test_the_callers_ca_with_another_subject_gets_json_403_from_the_instance(chain):
    port, certs = chain
    assert request(port, certs["intruder"]) == (403, '{"error": "Forbidden"}\n')


def test_a_subject_header_the_client_sends_is_replaced_by_the_balancer(chain):
    """The intruder names the allowed subject itself: the balancer passes the
    subject it verified instead, so the instance still refuses."""
    port, certs = chain
    status, _ = request(port, certs["intruder"],
                        headers={"X-Amzn-Mtls-Clientcert-Subject": ALLOWED_SUBJECT})
    assert status == 403
