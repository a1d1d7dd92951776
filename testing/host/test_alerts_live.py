"""The project's alert rules in a real Prometheus, scraping a real host.

On this machine (the controller), Debian's Prometheus server and blackbox
exporter run on loopback; they scrape the host through qemu's forwarded
ports, the way an operator's Prometheus would from a monitoring source:
blackbox probes HTTPS /healthz as a client (job api-https), the node
exporter, nginx exporter and mtail are scraped directly (api-node,
api-nginx, api-mtail). Every target must be up. Then the API's units are
stopped: ApiDown must fire, not before its `for` and within a bound after
it (measured from the stop), and resolve once the units are back.

The mutation row runs in the same outage: a second Prometheus, identical
but for a careless change to its copy of ApiDown (the rule is still there,
by the same name, but its expression reads a job that does not exist),
scrapes the same targets and sees the outage (its probe_success is 0) yet
must NOT fire, read by the very same code that sees the project's rule
fire: were the detection independent of the rule's expression (reading
the wrong state, counting pending as firing), this row would fail.

Runs on a baked instance: the image scenario's instance-1, given qemu's
gateway (whence this machine's scrapes come) as its monitoring source in
user-data. Skipped elsewhere, saying so: on a host without a source (its
exporters answer on loopback only), and on the roles' VM, whose exporters
and rules are the same and whose scrape would cost the CI a second outage
for no new fact (its exporters' listening and rules are checked there).
Figures: build/alerts-live.json -> docs/verification.md.
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from harness import ROOT
from harness.deployment import API, metrics_sources
from harness.processes import terminate

RULES = os.path.join(ROOT, "monitoring", "prometheus", "alerts.yml")
RESULTS = os.path.join(ROOT, "build", "alerts-live.json")
RUN_DIR = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
SCRAPE, EVALUATE = 5, 2          # seconds: the probe's own timeout (3 s) fits a scrape
# after `for`, the alert must be firing within this: the first failed probe
# (<= one scrape), the pending -> firing evaluation (<= one evaluation), plus
# room for a starved controller; measured figures go to docs/verification.md
FIRING_BOUND_AFTER_FOR = 30
RESOLVE_BOUND = 30
UNITS = [f"{API}.socket", f"{API}.service"]



@pytest.fixture(scope="module", autouse=True)
def scraped_from_here(host):
    if not metrics_sources(host):
        pytest.skip("no monitoring source on this host: its exporters answer on loopback only")
    if os.environ.get("MOLECULE_SCENARIO_NAME") != "image":
        pytest.skip("the live alert check scrapes a baked instance (molecule test -s image)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:   # noqa: S310 (loopback)
        return json.loads(r.read())


class Prometheus:
    """One Prometheus server on loopback, started and stopped by PID."""

    def __init__(self, workdir, name, rules, targets):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "data"))
        with open(os.path.join(self.dir, "alerts.yml"), "w") as f:
            yaml.safe_dump(rules, f)
        blackbox, probe_url = targets["api-https"]
        config = {
            "global": {"scrape_interval": f"{SCRAPE}s", "scrape_timeout": f"{SCRAPE - 1}s",
                       "evaluation_interval": f"{EVALUATE}s"},
            "rule_files": [os.path.join(self.dir, "alerts.yml")],
            "scrape_configs": [
                {"job_name": "api-https", "metrics_path": "/probe",
                 "params": {"module": ["https_healthz"]},
                 "static_configs": [{"targets": [probe_url]}],
                 "relabel_configs": [
                     {"source_labels": ["__address__"], "target_label": "__param_target"},
                     {"source_labels": ["__param_target"], "target_label": "instance"},
                     {"target_label": "__address__", "replacement": blackbox}]},
                *({"job_name": job, "static_configs": [{"targets": [address]}]}
                  for job, address in targets.items() if job != "api-https")]}
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(os.path.join(self.dir, "log"), "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address={self.url[len('http://'):]}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2):  # noqa: S310
                    return
            except OSError:
                assert self.proc.poll() is None, self.logged()
                time.sleep(0.5)
        raise AssertionError(f"prometheus not ready in {timeout} s: {self.logged()}")

    def logged(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()[-3000:]

    def query(self, expr):
        q = urllib.parse.urlencode({"query": expr})
        return get(f"{self.url}/api/v1/query?{q}")["data"]["result"]

    def alert_state(self, name):
        alerts = get(f"{self.url}/api/v1/alerts")["data"]["alerts"]
        states = {a["state"] for a in alerts if a["labels"]["alertname"] == name}
        return "firing" if "firing" in states else ("pending" if states else "inactive")

    def stop(self):
        terminate(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def forwards(host):
    """The host's forwarded ports on this machine (its vm.json from create)."""
    name = host.backend.host
    (state,) = glob.glob(os.path.join(RUN_DIR, "vms", name, "vm.json"))
    with open(state) as f:
        return {k: v["host"] for k, v in json.load(f)["forwards"].items()}


@pytest.fixture(scope="module")
def monitoring(forwards, tmp_path_factory):
    """blackbox + two Prometheus servers (the project's rules; the same
    without ApiDown), scraping the host; stopped by PID afterwards."""
    work = str(tmp_path_factory.mktemp("prometheus"))
    blackbox_address = f"127.0.0.1:{free_port()}"
    with open(os.path.join(work, "blackbox.yml"), "w") as f:
        yaml.safe_dump({"modules": {"https_healthz": {
            "prober": "http", "timeout": f"{SCRAPE - 2}s",
            "http": {"method": "GET", "valid_status_codes": [200], "fail_if_not_ssl": True,
                     "preferred_ip_protocol": "ip4",
                     # the host's own self-signed certificate (a test host)
                     "tls_config": {"insecure_skip_verify": True}}}}}, f)
    targets = {"api-https": (blackbox_address, f"https://127.0.0.1:{forwards['https']}/healthz"),
               "api-node": f"127.0.0.1:{forwards['node']}",
               "api-nginx": f"127.0.0.1:{forwards['nginxexp']}",
               "api-mtail": f"127.0.0.1:{forwards['mtail']}"}
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    muted = json.loads(json.dumps(rules))
    changed = 0
    for group in muted["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ApiDown":
                assert 'job="api-https"' in rule["expr"], rule
                rule["expr"] = rule["expr"].replace('job="api-https"', 'job="api-https-typo"')
                changed += 1
    assert changed == 1, "the project's rules have no single ApiDown to change"
    blackbox_log = open(os.path.join(work, "blackbox.log"), "w")  # noqa: SIM115
    servers, blackbox = {}, None
    try:
        blackbox = subprocess.Popen(
            ["/usr/bin/prometheus-blackbox-exporter", f"--config.file={work}/blackbox.yml",
             f"--web.listen-address={blackbox_address}"],
            stdout=blackbox_log, stderr=subprocess.STDOUT)
        for name, server_rules in (("project", rules), ("apidown-miswired", muted)):
            servers[name] = Prometheus(work, name, server_rules, targets)
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        if blackbox:
            terminate(blackbox)
        blackbox_log.close()
        shutil.rmtree(work, ignore_errors=True)


def api_down_for():
    """ApiDown's `for`, in seconds, as the project's rules file says."""
    with open(RULES) as f:
        for group in yaml.safe_load(f)["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "ApiDown":
                    return seconds(rule["for"])
    raise AssertionError("no ApiDown rule in " + RULES)


def save(figures):
    """Under this host's name, beside the other hosts' runs (the roles' VM and
    the image's instance-1 run this in CI, minutes apart)."""
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    try:
        with open(RESULTS) as f:
            runs = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        runs = {}
    runs[f"{os.environ.get('MOLECULE_SCENARIO_NAME')}/{figures['host']}"] = figures
    with open(RESULTS, "w") as f:
        json.dump(runs, f, indent=1)


def test_every_target_is_up(monitoring):
    prom = monitoring["project"]
    deadline = time.monotonic() + 90
    up = {}
    while time.monotonic() < deadline:
        up = {r["metric"]["job"]: r["value"][1] for r in prom.query('up{job=~"api-.*"}')}
        if len(up) == 4 and set(up.values()) == {"1"}:
            break
        time.sleep(2)
    assert up == {"api-https": "1", "api-node": "1", "api-nginx": "1", "api-mtail": "1"}, up
    # and each says what the rules read
    assert prom.query('probe_success{job="api-https"}')[0]["value"][1] == "1"
    unit = prom.query(f'node_systemd_unit_state{{job="api-node", name="{API}.service", '
                      'state="active"}')
    assert unit and unit[0]["value"][1] == "1", unit
    assert prom.query('nginx_up{job="api-nginx"}')[0]["value"][1] == "1"
    assert prom.query('probe_ssl_earliest_cert_expiry{job="api-https"}')
    for server in monitoring.values():
        assert server.alert_state("ApiDown") == "inactive"


def test_api_down_fires_after_its_for_and_resolves(host, monitoring):
    prom, muted = monitoring["project"], monitoring["apidown-miswired"]
    hold = api_down_for()
    figures = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "scrape_interval_seconds": SCRAPE, "evaluation_interval_seconds": EVALUATE,
               "api_down_for_seconds": hold, "host": host.backend.host}
    host.run_expect([0], "systemctl stop " + " ".join(UNITS))
    stopped = time.monotonic()
    try:
        fired = pending = None
        muted_states, muted_saw_outage = set(), False
        deadline = stopped + hold + FIRING_BOUND_AFTER_FOR
        while time.monotonic() < deadline:
            state = prom.alert_state("ApiDown")
            muted_states.add(muted.alert_state("ApiDown"))
            seen = muted.query('probe_success{job="api-https"}')
            muted_saw_outage = muted_saw_outage or (bool(seen) and seen[0]["value"][1] == "0")
            now = time.monotonic() - stopped
            if state == "pending" and pending is None:
                pending = round(now, 1)
            if state == "firing":
                fired = round(now, 1)
                break
            time.sleep(1)
        # the unit is seen stopped by the node exporter too (ApiUnitNotActive's input)
        unit = prom.query(f'node_systemd_unit_state{{job="api-node", name="{API}.service", '
                          'state="active"}')
        figures.update(pending_after_seconds=pending, fired_after_seconds=fired,
                       unit_inactive_seen=bool(unit) and unit[0]["value"][1] == "0",
                       miswired_rule_states=sorted(muted_states),
                       miswired_saw_outage=muted_saw_outage)
    finally:
        host.run_expect([0], "systemctl start " + " ".join(UNITS))
        restarted = time.monotonic()
    resolved = None
    while time.monotonic() < restarted + RESOLVE_BOUND:
        if prom.alert_state("ApiDown") == "inactive":
            resolved = round(time.monotonic() - restarted, 1)
            break
        time.sleep(1)
    figures["resolved_after_seconds"] = resolved
    figures["caught_when_miswired"] = muted_states == {"inactive"} and fired is not None
    save(figures)
    assert fired is not None, f"ApiDown not firing {hold + FIRING_BOUND_AFTER_FOR} s after the " \
                              f"stop: {figures}"
    # Prometheus cannot fire before `for` has passed since a failed probe, and
    # the first failed probe comes after the stop
    assert fired >= hold, figures
    assert figures["unit_inactive_seen"], figures
    # the miswired copy saw the same outage and stayed silent
    assert muted_saw_outage, f"the second Prometheus never saw the outage: {figures}"
    assert muted_states == {"inactive"}, f"a miswired ApiDown fired: {figures}"
    assert resolved is not None, f"ApiDown still active {RESOLVE_BOUND} s after the start"
