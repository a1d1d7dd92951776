"""harness/pki.py: the test PKI is what the checks that use it assume."""

import datetime
import ipaddress
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness import pki


def cert(directory, name):
    return x509.load_pem_x509_certificate((directory / name).read_bytes())


def signed_by(leaf, issuer):
    try:
        issuer.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                   ec.ECDSA(leaf.signature_hash_algorithm))
        return True
    except Exception:  # noqa: BLE001 (any verification failure: not signed by it)
        return False


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    directory = tmp_path_factory.mktemp("image") / "pki"
    pki.main(["image", str(directory)])
    return directory


def test_the_image_set_has_one_allowed_caller_and_three_refusals(image):
    ca, other = cert(image, "ca.pem"), cert(image, "other-ca.pem")
    web, intruder = cert(image, "web-tier.pem"), cert(image, "intruder.pem")
    stranger, expired = cert(image, "stranger.pem"), cert(image, "expired.pem")
    now = datetime.datetime.now(datetime.UTC)
    assert signed_by(web, ca) and signed_by(intruder, ca) and signed_by(expired, ca)
    assert signed_by(stranger, other) and not signed_by(stranger, ca)
    assert web.subject.rfc4514_string() == "CN=web-tier,O=SuperMega Bank"
    assert stranger.subject == web.subject and intruder.subject != web.subject
    assert expired.not_valid_after_utc < now < web.not_valid_after_utc
    usage = web.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_private(image):
    assert stat.S_IMODE(os.stat(image).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(image / "web-tier.key").st_mode) == 0o600


def test_the_log_set_serves_the_vms_collector_address(tmp_path):
    pki.main(["log", str(tmp_path)])
    collector = cert(tmp_path, "collector.crt")
    names = collector.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.2.2"),
                                                          ipaddress.ip_address("127.0.0.1")]
    assert signed_by(collector, cert(tmp_path, "ca.pem"))
    assert signed_by(cert(tmp_path, "client.crt"), cert(tmp_path, "ca.pem"))
    assert not signed_by(cert(tmp_path, "stranger.crt"), cert(tmp_path, "ca.pem"))


def test_an_unknown_set_is_refused():
    with pytest.raises(SystemExit):
        pki.main(["fleet"])


def test_a_set_is_made_in_a_directory_that_does_not_exist_yet(tmp_path):
    """As the local fleet calls it (harness.pki.image_pki, not the CLI)."""
    from harness.pki import image_pki
    directory = tmp_path / "fleet" / "pki"
    image_pki(str(directory))
    assert (directory / "ca.pem").is_file() and (directory / "web-tier.key").is_file()
    assert (directory / "ca.key").stat().st_mode & 0o777 == 0o600
