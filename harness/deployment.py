"""The deployment's names, read from the roles (not restated by the tests).

A module of its own, not conftest.py: the suite runs in one pytest session
with other suites (the image scenario adds its checks and testing/nfr), and
each has a conftest.py; `from conftest import` would get whichever was
loaded last.
"""

import glob
import json
import os

import jinja2
import yaml

from harness import ROOT

ANSIBLE = os.path.join(ROOT, "ansible")


def deployment_names():
    """The deployment's names as the play resolves them: the api role's
    defaults under the inventory's group_vars, templates resolved. Read, not
    restated: a renamed service or socket changes the suite with it."""
    values = {}
    # every role's defaults, then the group_vars that wire them to each other
    paths = sorted(glob.glob(os.path.join(ANSIBLE, "roles", "*", "defaults", "main.yml")))
    for path in paths + [os.path.join(ANSIBLE, "group_vars", "api", "main.yml")]:
        with open(path) as f:
            values.update(yaml.safe_load(f))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701 (names, not HTML)
    for _ in range(5):   # names built from names (api_root from api_name, ...)
        values = {k: env.from_string(v).render(**values) if isinstance(v, str) else v
                  for k, v in values.items() if not (isinstance(v, str) and "playbook_dir" in v)}
    return values


NAMES = deployment_names()
API = NAMES["api_name"]
API_ROOT = NAMES["api_root"]
API_CONFIG_DIR = NAMES["api_config_dir"]
API_LOG_DIR = NAMES["api_log_dir"]
API_SOCKET = NAMES["api_socket_path"]


def role_defaults(role):
    with open(os.path.join(ANSIBLE, "roles", role, "defaults", "main.yml")) as f:
        return yaml.safe_load(f)


METRICS = role_defaults("metrics")
# the exporters' units and ports (the metrics role's management range)
EXPORTERS = {"prometheus-node-exporter.service": METRICS["metrics_node_port"],
             "prometheus-nginx-exporter.service": METRICS["metrics_nginx_port"],
             "mtail.service": METRICS["metrics_mtail_port"]}
METRICS_SETTINGS = METRICS["metrics_settings_file"]


def metrics_sources(host):
    """The monitoring sources this host applies, read from its settings file
    (a converge writes it from metrics_sources; an image's instance gets it
    from user-data): the same source either way."""
    text = host.file(METRICS_SETTINGS).content_string
    return json.loads(text).get("metrics_sources", [])


def https_port_clients_see():
    """The HTTPS port the host's clients use (its HTTP redirect names it): the
    deployment's setting, as the runner of the suite states it
    (SUPERMEGA_HTTPS_PORT: Vagrant forwards 8443), else the nginx role's."""
    return int(os.environ.get("SUPERMEGA_HTTPS_PORT") or NAMES["nginx_redirect_https_port"])
