"""harness/deployment.py: the names the suites read from the roles resolve
to plain values (no template left), so a renamed unit changes the suites."""

from harness import deployment


def test_names_resolve_without_templates():
    for key in ("api_name", "api_root", "api_config_dir", "api_log_dir", "api_socket_path"):
        value = deployment.NAMES[key]
        assert isinstance(value, str) and value and "{{" not in value, (key, value)
    assert deployment.API_SOCKET.endswith(".sock")


def test_the_exporters_ports_are_the_metrics_roles():
    assert sorted(deployment.EXPORTERS.values()) == [9100, 9101, 9102]
