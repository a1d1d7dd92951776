"""The exporters (role metrics): up, sandboxed, listening where they should,
and exporting what monitoring/prometheus/alerts.yml reads."""

import re
import time

import pytest

from harness.deployment import API, EXPORTERS, metrics_sources

# The sandbox drop-in brings each exporter to about the API unit's level
# (its test: <= 1.5). Debian's units as shipped measure 9.2-9.6 ("UNSAFE").
MAX_EXPOSURE = 2.0


def scrape(http, port):
    response = http("/metrics", scheme="http", port=port)
    assert response.status == 200, response
    return response.body


def sample(text, metric, **labels):
    """The value of the first sample of METRIC whose labels include LABELS, or None."""
    for line in text.splitlines():
        match = re.match(rf"{metric}{{([^}}]*)}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


@pytest.mark.parametrize("unit", sorted(EXPORTERS))
def test_exporter_runs_enabled_and_not_as_root(host, unit):
    assert host.service(unit).is_running and host.service(unit).is_enabled
    user = host.check_output(f"systemctl show -p User --value {unit}")
    assert user not in ("", "root")


@pytest.mark.parametrize("unit", sorted(EXPORTERS))
def test_exporter_is_sandboxed(host, unit):
    out = host.check_output(f"systemd-analyze security --no-pager {unit}")
    exposure = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert exposure <= MAX_EXPOSURE, out.splitlines()[-1]


def test_scrape_settings_were_applied_before_the_exporters(host):
    """supermega-metrics-config.service ran (at this boot, or the converge's
    package start) and every exporter requires it and starts after it."""
    assert host.service("supermega-metrics-config").is_running   # oneshot: active (exited)
    for unit in EXPORTERS:
        props = host.check_output(f"systemctl show -p Requires -p After {unit}")
        assert props.count("supermega-metrics-config.service") == 2, (unit, props)


@pytest.mark.parametrize("unit", sorted(EXPORTERS))
def test_exporter_listens_on_loopback_unless_sources_are_listed(host, unit):
    port = EXPORTERS[unit]
    addresses = {line.split()[3].rpartition(":")[0]
                 for line in host.check_output(f"ss -H -tln 'sport = :{port}'").splitlines()}
    if metrics_sources(host):   # every address (Go listens on one dual-stack socket: "*")
        assert addresses and addresses <= {"*", "0.0.0.0", "[::]"}, addresses  # noqa: S104
    else:
        assert addresses == {"127.0.0.1"}, addresses


def test_node_exporter_reports_the_api_units(http):
    text = scrape(http, EXPORTERS["prometheus-node-exporter.service"])
    assert sample(text, "node_systemd_unit_state", name=f"{API}.service", state="active") == 1
    assert sample(text, "node_systemd_unit_state", name="nginx.service", state="active") == 1
    # what the disk, memory and clock alerts read
    for name in ("node_filesystem_avail_bytes", "node_memory_MemAvailable_bytes",
                 "node_timex_sync_status"):
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), name


def test_nginx_exporter_reads_the_loopback_stub_status(http):
    text = scrape(http, EXPORTERS["prometheus-nginx-exporter.service"])
    assert re.search(r"^nginx_up 1$", text, re.MULTILINE)
    assert re.search(r"^nginx_connections_accepted \d+", text, re.MULTILINE)


def test_stub_status_is_not_served_to_clients(http):
    for scheme in ("https", "http"):
        response = http("/stub_status", scheme=scheme)
        assert "Active connections" not in response.body, (scheme, response)


def test_mtail_counts_requests_by_route_and_status(http):
    port = EXPORTERS["mtail.service"]

    def count():
        return sample(scrape(http, port), "api_http_requests_total",
                      route="/customers/:id", status="200") or 0

    before = count()
    assert [r.status for r in http("/customers/222", repeat=3)] == [200] * 3
    deadline = time.monotonic() + 20   # nginx flushes its log buffer every second
    while count() < before + 3 and time.monotonic() < deadline:
        time.sleep(1)
    assert count() >= before + 3
