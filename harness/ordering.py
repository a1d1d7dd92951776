"""The VM suites' module order, declared (a pytest plugin, loaded in every
session of the project venv through its entry point).

A pytest session may hold more than one suite: the image scenario runs the
roles' suite (testing/host) on instance-1, then the image checks
(testing/image). Where order matters it is written here, not spelled in
file names:

- suites run in SUITES' order;
- inside a suite, the modules listed under "first" run first and those
  under "last" run last, in the order given; every other module runs in
  between, by name.

A module named here that does not exist fails the session at collection
(testing/static/test_suites_collect.py collects every suite natively), so
the table cannot drift from the files.
"""

from harness import ROOT

TESTING = ROOT / "testing"

SUITES = {
    # the roles' suite: the live checks that stop the API or start
    # collectors on this machine run after every check of the host as built
    "host": {"first": [], "last": ["test_alerts_live.py", "test_journal_upload.py"]},
    # the image checks, after the roles' suite on the same instance: the
    # mutation check reuses its guards and must find the instance as the suite
    # left it; the build key's refusal last, as its failed logins get this
    # machine banned by instance-2
    "image": {"first": ["test_edge_settings.py", "test_image.py"],
              "last": ["test_mutants.py", "test_build_key.py"]},
    # the NFR suite: the network and hostile input on a fresh instance, then
    # TLS, the throughput rounds, the long load, the runbook's commands, and
    # the faults (a reboot among them) last
    "nfr": {"first": ["test_network.py", "test_bad_input.py", "test_tls.py",
                      "test_performance.py", "test_load.py", "test_runbook.py"],
            "last": ["test_faults.py"]},
}
ORDERED = list(SUITES)


def module_rank(path):
    """(suite rank, place in the suite) for a test module's path, or None
    for a module outside the ordered suites."""
    try:
        relative = path.resolve().relative_to(TESTING)
    except ValueError:
        return None
    suite = relative.parts[0] if len(relative.parts) > 1 else None
    if suite not in SUITES:
        return None
    order, name = SUITES[suite], relative.name
    if name in order["first"]:
        place = (0, order["first"].index(name), "")
    elif name in order["last"]:
        place = (2, order["last"].index(name), "")
    else:
        place = (1, 0, name)
    return (ORDERED.index(suite), place)


def missing_modules():
    """Modules the table names that are not on disk."""
    return [f"testing/{suite}/{name}" for suite, order in SUITES.items()
            for name in order["first"] + order["last"]
            if not (TESTING / suite / name).is_file()]


def pytest_collection_modifyitems(session, config, items):
    missing = missing_modules()
    if missing:
        raise RuntimeError(f"harness.ordering names modules that do not exist: {missing}")
    ranked = [(module_rank(item.path), index, item) for index, item in enumerate(items)]
    if all(rank is None for rank, _, _ in ranked):
        return
    # a stable sort: unordered modules keep their place before the ordered
    # suites, and tests inside a module keep pytest's order
    ranked.sort(key=lambda entry: (entry[0] is not None, entry[0] or (0, (0, 0, "")), entry[1]))
    items[:] = [item for _, _, item in ranked]
