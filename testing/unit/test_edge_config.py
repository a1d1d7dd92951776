"""supermega-edge-config (the nginx role's per-host edge settings), natively:
every malformed setting is refused by name before nginx could start with
it, and valid settings become the nginx maps the site relies on."""

import json
import os
import subprocess
import sys

import pytest

from harness import ROOT

TOOL = os.path.join(ROOT, "ansible", "roles", "nginx", "files", "supermega-edge-config")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, and a leaf certificate that is not a CA."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "leaf.key", "-out", "leaf.pem", "-days", "2", "-subj", "/CN=leaf",
            "-addext", "basicConstraints=critical,CA:FALSE", cwd=d)
    return {name: (d / f"{name}.pem").read_text() for name in ("ca", "leaf")}


def run(tmp_path, settings, check=False):
    """The tool with its outputs under tmp_path (a fail2ban jail.d there too)."""
    path = tmp_path / "settings.json"
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings))
    out = tmp_path / "out"
    (tmp_path / "jail.d").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, TOOL, "--settings", str(path), "--out", str(out),
                           "--jail-dir", str(tmp_path / "jail.d"),
                           *(["--check"] if check else [])], capture_output=True, text=True)


@pytest.mark.parametrize("settings,named", [
    ("{not json", "not valid JSON"),
    ({"server_name": ["a.example"]}, "unknown setting"),
    ({"server_names": "api.example"}, "server_names must be a list"),
    ({"server_names": ["api example"]}, "server_names: 'api example'"),
    ({"server_names": ["*.example.com"]}, "server_names: '*.example.com'"),
    ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies: '10.0.0.0/33'"),
    ({"trusted_proxies": ["10.0.0.1/8"]}, "trusted_proxies: '10.0.0.1/8'"),
    ({"trusted_proxies": ["0.0.0.0/0"]}, "would trust every address"),
    ({"cors_origins": ["*"]}, "cors_origins: '*'"),
    ({"cors_origins": ["null"]}, "cors_origins: 'null'"),
    ({"cors_origins": ["https://app.example/path"]}, "cors_origins: 'https://app.example/path'"),
    ({"cors_origins": ["https://App.example"]}, "cors_origins: 'https://App.example'"),
    ({"client_subjects": ["CN=web"]}, "client_subjects without client_ca_bundle"),
    ({"client_ca_bundle": "not a certificate"}, "client_ca_bundle: no PEM certificate"),
    ({"behind_load_balancer": "yes"}, "behind_load_balancer must be true or false"),
    ({"behind_load_balancer": True}, "behind_load_balancer without trusted_proxies"),
    ({"client_auth": "alb"}, "client_auth must be one of ['tls', 'load_balancer', 'none']"),
    ({"client_auth": "tls"}, "client_auth tls without client_ca_bundle"),
    ({"client_auth": "load_balancer", "trusted_proxies": ["10.0.0.0/24"]},
     "client_auth load_balancer without behind_load_balancer"),
    ({"client_auth": "none", "client_subjects": ["CN=web"]}, "client_subjects without"),
])
def test_malformed_settings_are_refused_by_name(tmp_path, settings, named):
    out = run(tmp_path, settings)
    assert out.returncode == 1, out
    assert named in out.stderr and "nginx will not start" in out.stderr, out.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written from refused settings"
    assert not list((tmp_path / "jail.d").iterdir())


@pytest.mark.parametrize("auth", ["load_balancer", "none"])
def test_a_ca_bundle_this_host_would_not_use_is_refused(tmp_path, pki, auth):
    """Behind a load balancer that checks certificates (or with none), a CA
    bundle here would suggest a check this host does not make."""
    out = run(tmp_path, {"client_auth": auth, "client_ca_bundle": pki["ca"],
                         "trusted_proxies": ["10.0.0.0/24"], "behind_load_balancer": True})
    assert out.returncode == 1 and f"client_ca_bundle with client_auth {auth}" in out.stderr, out


def test_a_leaf_certificate_is_not_a_client_ca(tmp_path, pki):
    out = run(tmp_path, {"client_ca_bundle": pki["leaf"]})
    assert out.returncode == 1 and "is not a CA" in out.stderr, out


def test_no_settings_is_a_single_host_with_nothing_extra(tmp_path):
    out = subprocess.run([sys.executable, TOOL, "--settings", str(tmp_path / "none.json"),
                          "--out", str(tmp_path / "out"), "--jail-dir", str(tmp_path / "jail.d")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    http = (tmp_path / "out" / "http.conf").read_text()
    assert '"localhost" 1;' in http and '"127.0.0.1" 1;' in http
    # the addresses are allowed as TLS server names too (wrk sends one)
    sni = http[http.index("map $ssl_server_name"):]
    assert '"127.0.0.1" 1;' in sni[:sni.index("}")]
    assert "set_real_ip_from" not in http
    assert "ssl_verify_client" not in (tmp_path / "out" / "server-tls.conf").read_text()
    assert "$http_origin;" not in http     # no origin is echoed


def test_settings_become_nginx_maps(tmp_path, pki):
    settings = {"server_names": ["API.bank.example."], "trusted_proxies": ["10.0.0.0/16"],
                "cors_origins": ["https://app.bank.example"], "client_ca_bundle": pki["ca"],
                "client_subjects": ["CN=web-tier,O=SuperMega Bank"]}
    assert run(tmp_path, settings, check=True).stdout.strip() == "valid"
    assert not (tmp_path / "out").exists()
    out = run(tmp_path, settings)
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    http = (tmp_path / "out" / "http.conf").read_text()
    assert '"api.bank.example" 1;' in http
    assert "set_real_ip_from 10.0.0.0/16;" in http and "    10.0.0.0/16 1;" in http
    assert '"https://app.bank.example" $http_origin;' in http
    assert '"SUCCESS|CN=web-tier,O=SuperMega Bank" 1;' in http
    tls = (tmp_path / "out" / "server-tls.conf").read_text()
    assert "ssl_verify_client optional;" in tls
    assert (tmp_path / "out" / "client-ca.pem").read_text().strip() == pki["ca"].strip()
    assert oct((tmp_path / "out" / "client-ca.pem").stat().st_mode & 0o777) == "0o640"
    # applied again unchanged: nothing rewritten (a converge reports no change)
    assert run(tmp_path, settings).stdout.strip() == "unchanged"


def test_behind_a_load_balancer_fail2bans_nginx_jail_is_off(tmp_path):
    """The fleet's user-data (aws/fleet.yml) sets behind_load_balancer: the
    nginx jail would ban the load balancer's node (or clients whose packets
    never reach the host); off, and on again when the setting goes."""
    jail = tmp_path / "jail.d" / "zz-supermega-edge.local"
    behind = {"trusted_proxies": ["10.0.0.0/16"], "behind_load_balancer": True}
    assert run(tmp_path, behind).stdout.strip() == "changed"
    text = jail.read_text()
    assert "[nginx-limit-req]\nenabled = false\n" in text
    assert oct(jail.stat().st_mode & 0o777) == "0o644"
    assert run(tmp_path, behind).stdout.strip() == "unchanged"
    # the same proxies without the setting (a reverse proxy, not a fleet): jail on
    out = run(tmp_path, {"trusted_proxies": ["10.0.0.0/16"]})
    assert out.stdout.strip() == "changed" and not jail.exists(), out
    assert run(tmp_path, {"trusted_proxies": ["10.0.0.0/16"]}).stdout.strip() == "unchanged"


def test_without_fail2ban_the_jail_override_is_skipped(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"trusted_proxies": ["10.0.0.0/16"], "behind_load_balancer": True}))
    out = subprocess.run([sys.executable, TOOL, "--settings", str(path), "--out",
                          str(tmp_path / "out"), "--jail-dir", str(tmp_path / "no-fail2ban")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    assert not (tmp_path / "no-fail2ban").exists()


def test_behind_a_load_balancer_that_checks_certificates(tmp_path):
    """client_auth load_balancer (the fleet's user-data): the subject the
    load balancer verified counts only when the peer is a trusted proxy,
    and must be one of client_subjects; nginx asks for no certificate."""
    settings = {"trusted_proxies": ["10.20.1.0/24", "10.20.2.0/24"],
                "behind_load_balancer": True, "client_auth": "load_balancer",
                "client_subjects": ["CN=web-tier,O=SuperMega Bank"]}
    out = run(tmp_path, settings)
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    http = (tmp_path / "out" / "http.conf").read_text()
    client_map = http[http.index("$api_client_ok {") - 80:]
    client_map = client_map[:client_map.index("}")]
    assert 'map "$api_trusted_peer|$http_x_amzn_mtls_clientcert_subject" $api_client_ok {' \
        in client_map
    assert "    default 0;" in client_map
    assert '    "1|CN=web-tier,O=SuperMega Bank" 1;' in client_map
    assert "~" not in client_map          # only the listed subject, no pattern
    # the peer is trusted only when it is one of the load balancer's ranges
    geo = http[http.index("geo $realip_remote_addr $api_trusted_peer"):]
    geo = geo[:geo.index("}")]
    assert "    default 0;" in geo and "    10.20.1.0/24 1;" in geo
    tls = (tmp_path / "out" / "server-tls.conf").read_text()
    assert "ssl_verify_client" not in tls and not (tmp_path / "out" / "client-ca.pem").read_text()


def test_behind_a_load_balancer_any_verified_subject_without_a_list(tmp_path):
    out = run(tmp_path, {"trusted_proxies": ["10.20.1.0/24"], "behind_load_balancer": True,
                         "client_auth": "load_balancer"})
    assert out.returncode == 0, out
    http = (tmp_path / "out" / "http.conf").read_text()
    assert '    "~^1\\|." 1;' in http    # a trusted peer and a non-empty subject
