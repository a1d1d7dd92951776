"""supermega-journal-ship (the journal_upload role's boot-time shipping),
natively, against moto's server on loopback (harness/aws.py: the real
Secrets Manager protocol and IMDSv2's paths): a malformed setting, a missing
secret, a pair from another CA, a key that is not the certificate's and an
endpoint that does not answer are each refused by name with nothing
written; a good secret becomes root-only files and the uploader's
configuration. Its SigV4 signature is checked against botocore's, an
implementation it shares no code with. The same program runs at boot on the
image's instances in `make fleet-check` (testing/fleet)."""

import datetime
import json
import os
import stat

import pytest

from harness import ROOT, program
from harness.aws import Emulator
from harness.pki import log_pki
from harness.vm import free_port

TOOL = os.path.join(ROOT, "ansible", "roles", "journal_upload", "files", "supermega-journal-ship")
TEMPLATE = os.path.join(ROOT, "ansible", "roles", "journal_upload", "templates",
                        "journal-upload.conf.j2")


ship = program(TOOL)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The emulator with three secrets (the fleet's pair, a pair of another
    CA, a key that is not its certificate's), and the log PKI."""
    pki = str(tmp_path_factory.mktemp("pki"))
    log_pki(pki)
    emulator = Emulator(str(tmp_path_factory.mktemp("moto")))
    try:
        arns = {
            "good": emulator.put_pair("fleet/journal-client", f"{pki}/client.crt",
                                      f"{pki}/client.key"),
            "other_ca": emulator.put_pair("fleet/other-ca", f"{pki}/stranger-client.crt",
                                          f"{pki}/stranger-client.key"),
            "mismatch": emulator.put_pair("fleet/mismatch", f"{pki}/client.crt",
                                          f"{pki}/stranger-client.key"),
        }
        emulator.client().create_secret(Name="fleet/not-a-pair", SecretString="hello")
        yield {"pki": pki, "emulator": emulator, "arns": arns}
    finally:
        emulator.stop()


def run(world, tmp_path, **settings):
    """The program's main() on SETTINGS, its outputs under TMP_PATH; returns
    (exit status, stderr, the files it wrote)."""
    settings = {"collector_url": "https://10.0.2.2:19532", "client_secret": world["arns"]["good"],
                "aws_endpoint_url": world["emulator"].url,
                "imds_endpoint": world["emulator"].url, **settings}
    settings = {k: v for k, v in settings.items() if v is not None}
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    out = tmp_path / "out"
    args = ["--settings", str(path), "--ca", f"{world['pki']}/ca.pem",
            "--config-dir", str(out / "conf"), "--upload-conf", str(out / "upload.conf"),
            "--metric-file", str(out / "metric.prom"), "--no-start"]
    return ship.main(args, environ={}), out


def written(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_good_secret_becomes_root_only_files_and_the_uploaders_configuration(
        world, tmp_path, capsys):
    status, out = run(world, tmp_path)
    err = capsys.readouterr().err
    assert status == 0, err
    assert written(out) == ["conf/ca.pem", "conf/client.crt", "conf/client.key",
                            "metric.prom", "upload.conf"]
    for name in ("ca.pem", "client.crt", "client.key"):
        assert stat.S_IMODE(os.stat(out / "conf" / name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(out / "conf").st_mode) == 0o700
    with open(f"{world['pki']}/client.key") as f:
        assert (out / "conf" / "client.key").read_text().strip() == f.read().strip()
    assert 'supermega_journal_shipping_configured{reason="ok"} 1' in (
        out / "metric.prom").read_text()
    assert "PRIVATE KEY" not in err, "the key reached the journal"


def test_the_uploaders_configuration_is_the_roles_template_for_the_same_collector(
        world, tmp_path):
    """Boot time and converge time write the same file (no drift)."""
    from jinja2 import Template
    run(world, tmp_path)
    with open(TEMPLATE) as f:
        rendered = Template(f.read()).render(ansible_managed="managed",
                                             journal_upload_url="https://10.0.2.2:19532")
    lines = [line for line in rendered.splitlines() if line and not line.startswith("#")]
    assert (tmp_path / "out" / "upload.conf").read_text().splitlines() == lines


@pytest.mark.parametrize("case, settings, reason, named", [
    ("secret missing", {"client_secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
                        "fleet/none-AbCdEf"}, "secret_not_found", "not found"),
    ("another CA's pair", {"client_secret": "@other_ca"}, "other_ca",
     "not issued by the collector's CA"),
    ("a key not the certificate's", {"client_secret": "@mismatch"}, "key_mismatch",
     "not the certificate's"),
    ("not a pair", {"client_secret": "fleet/not-a-pair"}, "malformed_secret",
     "\"certificate\" and \"private_key\""),
    ("endpoint unreachable", {"aws_endpoint_url": "http://127.0.0.1:{closed}"},
     "endpoint_unreachable", "Secrets Manager at http://127.0.0.1:"),
    ("metadata service unreachable", {"imds_endpoint": "http://127.0.0.1:{closed}"},
     "endpoint_unreachable", "instance metadata service at"),
    ("collector not https", {"collector_url": "http://10.0.2.2:19532"}, "malformed_setting",
     "setting collector_url"),
    ("collector with a path", {"collector_url": "https://logs/upload"}, "malformed_setting",
     "setting collector_url"),
    ("no secret", {"client_secret": None}, "malformed_setting", "setting client_secret is missing"),
    ("secret not an ARN or name", {"client_secret": "a secret; rm -rf /"}, "malformed_setting",
     "setting client_secret"),
    ("bad region", {"region": "mars"}, "malformed_setting", "setting region"),
    ("unknown setting", {"colector_url": "x"}, "malformed_setting", "colector_url"),
])
def test_each_fault_is_refused_by_name_and_nothing_is_written(
        world, tmp_path, capsys, monkeypatch, case, settings, reason, named):
    monkeypatch.setattr(ship, "PAUSE", 0)
    closed = free_port()
    settings = {k: (world["arns"][v[1:]] if isinstance(v, str) and v.startswith("@") else
                    v.format(closed=closed) if isinstance(v, str) else v)
                for k, v in settings.items()}
    status, out = run(world, tmp_path, **settings)
    err = capsys.readouterr().err
    assert status == 1, (case, err)
    assert f"journal shipping refused ({reason})" in err and named in err, (case, err)
    assert written(out) == ["metric.prom"], (case, written(out))
    assert f'supermega_journal_shipping_configured{{reason="{reason}"}} 0' in (
        out / "metric.prom").read_text()
    assert "PRIVATE KEY" not in err


def test_a_denied_fetch_is_named_as_denied(world, tmp_path, capsys, monkeypatch):
    """moto does not enforce IAM here: AWS's answer to a role without
    GetSecretValue on the secret, as Secrets Manager sends it."""
    def denied(request, what):
        return 400, json.dumps({"__type": "AccessDeniedException",
                                "Message": "not authorized to perform GetSecretValue"}).encode()
    monkeypatch.setattr(ship, "http", denied)
    settings = ship.validate({"collector_url": "https://logs", "client_secret": "fleet/x",
                              "region": "eu-west-2"})
    with pytest.raises(ship.Refused) as e:
        ship.get_secret(settings, {"AccessKeyId": "a", "SecretAccessKey": "b", "Token": ""})
    assert e.value.reason == "fetch_denied" and "secret fleet/x: fetch denied" in str(e.value)


def test_the_signature_is_botocores(monkeypatch):
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    now = datetime.datetime(2026, 12, 7, 23, 0, 0, tzinfo=datetime.UTC)
    url = "https://secretsmanager.eu-west-2.amazonaws.com/"
    body = b'{"SecretId": "fleet/journal-client"}'
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": "secretsmanager.GetSecretValue"}
    creds = {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX",
             "Token": "session-token"}
    ours = ship.sign("POST", url, "eu-west-2", "secretsmanager", headers, body, creds, now)
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", creds["SecretAccessKey"], "session-token"),
                     "secretsmanager", "eu-west-2")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now)  # a fixed clock
    auth.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Security-Token"] == "session-token"


def test_the_flush_waits_for_the_uploaders_cursor_bounded(tmp_path, monkeypatch):
    """--flush: done once the saved cursor reaches the journal's last entry
    at the stop; a cursor that stays behind is reported, within the bound."""
    tail = "s=abc;i=1f;b=x;m=1;t=2;x=3"
    monkeypatch.setattr(ship.subprocess, "run", lambda *a, **k: type(
        "R", (), {"stdout": f"__CURSOR={tail}\n"})())
    state = tmp_path / "state"
    args = type("A", (), {"state": str(state), "timeout": 1.0})
    state.write_text("LAST_CURSOR=s=abc;i=1f;b=x\n")
    assert ship.flush(args) == 0
    state.write_text("LAST_CURSOR=s=abc;i=1e;b=x\n")
    assert ship.flush(args) == 1


def test_a_reply_that_is_not_an_object_is_refused_not_a_crash(monkeypatch):
    monkeypatch.setattr(ship, "http", lambda request, what: (400, b"[]"))
    settings = ship.validate({"collector_url": "https://logs", "client_secret": "fleet/x",
                              "region": "eu-west-2"})
    with pytest.raises(ship.Refused) as e:
        ship.get_secret(settings, {"AccessKeyId": "a", "SecretAccessKey": "b", "Token": ""})
    assert e.value.reason == "fetch_refused"


def test_any_other_fault_is_named_and_seen_by_monitoring(world, tmp_path, capsys, monkeypatch):
    def broken(*args):
        raise OSError("No space left on device")
    monkeypatch.setattr(ship, "configure", broken)
    status, out = run(world, tmp_path)
    err = capsys.readouterr().err
    assert status == 1 and "journal shipping refused (internal_error): OSError" in err, err
    assert 'supermega_journal_shipping_configured{reason="internal_error"} 0' in (
        out / "metric.prom").read_text()


def test_a_url_with_a_password_is_refused_without_echoing_it(world, tmp_path, capsys):
    status, _ = run(world, tmp_path, collector_url="https://user:hunter2@logs:19532")
    err = capsys.readouterr().err
    assert status == 1 and "setting collector_url" in err and "hunter2" not in err, err
