"""supermega-metrics-config (the metrics role's scrape settings), natively,
against a stand-in ufw that keeps its rules the way ufw does (tuple lines in
user.rules/user6.rules; the real ufw is exercised on the VMs: the roles'
suite, the image's instance-2 and the NFR scan): malformed settings are
refused by name with nothing changed, the tool's rules become exactly
sources x ports, every other rule is left alone, and the exporters' listen
address follows."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness import ROOT

TOOL = os.path.join(ROOT, "ansible", "roles", "metrics", "files", "supermega-metrics-config")
PORTS = "9100,9101,9102"
OTHER_RULE = "### tuple ### limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=737368\n"

# ufw's CLI as the tool calls it, keeping rules as ufw 0.36 writes them
# (backend_iptables.py: "### tuple ### action proto dport dst sport src dir
# comment=<hex>"; a /32 or /128 source is kept as the bare address).
FAKE_UFW = textwrap.dedent("""\
    #!/usr/bin/env python3
    import ipaddress, os, sys
    d, args = os.environ["FAKE_UFW_DIR"], sys.argv[1:]
    with open(os.path.join(d, "calls"), "a") as f:
        f.write(" ".join(args) + "\\n")
    delete = args[0] == "delete"
    if delete:
        args = args[1:]
    assert args[:2] == ["allow", "from"] and args[3:6] == ["to", "any", "port"], args
    net = ipaddress.ip_network(args[2])
    src = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    v6 = net.version == 6
    comment = args[args.index("comment") + 1].encode().hex() if "comment" in args else ""
    line = (f"### tuple ### allow tcp {args[6]} {'::/0' if v6 else '0.0.0.0/0'} any {src} in")
    path = os.path.join(d, "user6.rules" if v6 else "user.rules")
    lines = open(path).readlines() if os.path.exists(path) else []
    if delete:
        kept = [x for x in lines if not x.startswith(line)]
        if len(kept) == len(lines):
            sys.exit("Could not delete non-existent rule")
        lines = kept
    else:
        lines.append(f"{line} comment={comment}\\n")
    open(path, "w").writelines(lines)
    """)


@pytest.fixture
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ufw").write_text(FAKE_UFW)
    (bin_dir / "ufw").chmod(0o755)
    ufw_dir = tmp_path / "ufw"
    ufw_dir.mkdir()
    (ufw_dir / "user.rules").write_text(OTHER_RULE)
    (ufw_dir / "ufw.conf").write_text("ENABLED=yes\n")
    saver = tmp_path / "firewall-boot"
    saver.write_text(f"#!/bin/sh\necho \"$1\" >> {tmp_path}/saved\necho changed\n")
    saver.chmod(0o755)
    return tmp_path


def run(env, settings, check=False):
    path = env / "settings.json"
    if settings is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(settings if isinstance(settings, str) else json.dumps(settings))
    return subprocess.run(
        [sys.executable, TOOL, "--settings", str(path), "--ports", PORTS,
         "--env-file", str(env / "run" / "listen.env"), "--ufw-dir", str(env / "ufw"),
         "--firewall-boot", str(env / "firewall-boot"), *(["--check"] if check else [])],
        capture_output=True, text=True,
        env={**os.environ, "PATH": f"{env / 'bin'}:{os.environ['PATH']}",
             "FAKE_UFW_DIR": str(env / "ufw")})


def rules(env):
    """Every rule the stand-in ufw keeps, as (port, source, comment)."""
    found = []
    for name in ("user.rules", "user6.rules"):
        path = env / "ufw" / name
        for line in path.read_text().splitlines() if path.exists() else []:
            parts = line.split()
            found.append((parts[5], parts[8], bytes.fromhex(parts[10].split("=")[1]).decode()))
    return sorted(found)


def listen(env):
    return (env / "run" / "listen.env").read_text().splitlines()[-1]


def calls(env):
    path = env / "calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("settings,named", [
    ("{not json", "is not JSON"),
    (["10.0.0.0/8"], "must be a JSON object"),
    ({"metric_sources": ["10.0.0.0/8"]}, "unknown setting(s) ['metric_sources']"),
    ({"metrics_sources": "10.0.0.0/8"}, "metrics_sources must be a list"),
    ({"metrics_sources": [10]}, "metrics_sources must be a list"),
    ({"metrics_sources": ["prometheus.bank"]}, "metrics_sources: 'prometheus.bank'"),
    ({"metrics_sources": ["10.0.0.1/8"]}, "metrics_sources: '10.0.0.1/8'"),
    ({"metrics_sources": ["10.0.0.0/33"]}, "metrics_sources: '10.0.0.0/33'"),
    ({"metrics_sources": ["10.1.0.0/16", "0.0.0.0/0"]}, "'0.0.0.0/0' would open the exporters"),
    ({"metrics_sources": ["::/0"]}, "'::/0' would open the exporters"),
])
def test_malformed_settings_are_refused_by_name_and_change_nothing(env, settings, named):
    assert run(env, {"metrics_sources": ["10.1.0.0/16"]}).returncode == 0
    before = (rules(env), listen(env), calls(env))
    for check in (True, False):
        out = run(env, settings, check=check)
        assert out.returncode == 1 and named in out.stderr, out
        assert "nothing changed" in out.stderr
    assert (rules(env), listen(env), calls(env)) == before


def test_bad_ports_are_refused(env):
    path = env / "settings.json"
    path.write_text("{}")
    out = subprocess.run([sys.executable, TOOL, "--settings", str(path), "--ports", "9100,x",
                          "--check"], capture_output=True, text=True)
    assert out.returncode == 1 and "--ports" in out.stderr


def test_check_validates_without_touching_anything(env):
    out = run(env, {"metrics_sources": ["10.1.0.0/16"]}, check=True)
    assert out.returncode == 0 and out.stdout.strip() == "valid"
    assert calls(env) == [] and not (env / "run").exists()


@pytest.mark.parametrize("settings", [None, {}, {"metrics_sources": []}])
def test_no_sources_loopback_only_and_no_rule(env, settings):
    out = run(env, settings)
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    assert listen(env) == "METRICS_LISTEN_ADDRESS=127.0.0.1"
    assert rules(env) == [("22", "0.0.0.0/0", "ssh")]     # the other rule, untouched
    assert calls(env) == [] and not (env / "saved").exists()
    assert run(env, settings).stdout.strip() == "unchanged"


def test_sources_open_exactly_their_ports_to_them(env):
    out = run(env, {"metrics_sources": ["10.20.0.0/24", "192.0.2.7/32", "2001:db8::/64"]})
    assert out.returncode == 0 and out.stdout.strip() == "changed", out
    assert listen(env) == "METRICS_LISTEN_ADDRESS=0.0.0.0"
    assert rules(env) == sorted(
        [("22", "0.0.0.0/0", "ssh")]
        + [(port, src, "supermega-metrics") for port in PORTS.split(",")
           for src in ("10.20.0.0/24", "192.0.2.7", "2001:db8::/64")])
    # the boot's kept ruleset follows the change
    assert (env / "saved").read_text() == "save\n"
    # a second run: nothing to do, ufw not called again
    n = len(calls(env))
    assert run(env, {"metrics_sources": ["192.0.2.7/32", "2001:db8::/64", "10.20.0.0/24"]}
               ).stdout.strip() == "unchanged"
    assert len(calls(env)) == n and (env / "saved").read_text() == "save\n"


def test_a_removed_source_loses_its_rules_and_none_closes_everything(env):
    run(env, {"metrics_sources": ["10.20.0.0/24", "10.30.0.0/24"]})
    out = run(env, {"metrics_sources": ["10.30.0.0/24"]})
    assert out.stdout.strip() == "changed", out
    assert [r for r in rules(env) if r[2] == "supermega-metrics"] == [
        (port, "10.30.0.0/24", "supermega-metrics") for port in PORTS.split(",")]
    assert listen(env) == "METRICS_LISTEN_ADDRESS=0.0.0.0"
    assert run(env, {"metrics_sources": []}).stdout.strip() == "changed"
    assert rules(env) == [("22", "0.0.0.0/0", "ssh")]
    assert listen(env) == "METRICS_LISTEN_ADDRESS=127.0.0.1"


def test_a_rule_on_an_exporter_port_it_did_not_make_is_left_alone(env):
    """An operator's own rule (another comment) is theirs: neither counted nor deleted."""
    with open(env / "ufw" / "user.rules", "a") as f:
        f.write("### tuple ### allow tcp 9100 0.0.0.0/0 any 10.9.0.0/16 in comment="
                + b"ops".hex() + "\n")
    run(env, {"metrics_sources": ["10.20.0.0/24"]})
    run(env, {})
    assert ("9100", "10.9.0.0/16", "ops") in rules(env)


def test_a_failing_ufw_is_loud(env):
    (env / "bin" / "ufw").write_text("#!/bin/sh\necho 'ERROR: problem running' >&2\nexit 1\n")
    out = run(env, {"metrics_sources": ["10.20.0.0/24"]})
    assert out.returncode == 1 and "ERROR: problem running" in out.stderr
    assert not (env / "run" / "listen.env").exists()     # never listening beyond loopback
