"""harness/ordering.py: modules are ranked by the declared table, and a
table naming a file that does not exist is refused."""

import pytest

from harness import ordering


def test_first_and_last_are_as_declared_and_the_rest_between_by_name():
    rank = {name: ordering.module_rank(ordering.TESTING / "nfr" / name)
            for name in ("test_network.py", "test_new.py", "test_faults.py")}
    assert rank["test_network.py"] < rank["test_new.py"] < rank["test_faults.py"]


def test_suites_run_in_the_declared_order():
    host = ordering.module_rank(ordering.TESTING / "host" / "test_journal_upload.py")
    image = ordering.module_rank(ordering.TESTING / "image" / "test_edge_settings.py")
    assert host < image


def test_modules_outside_the_ordered_suites_are_not_ranked():
    assert ordering.module_rank(ordering.TESTING / "unit" / "test_api.py") is None
    assert ordering.module_rank(ordering.ROOT / "app" / "app.py") is None


def test_a_table_naming_a_missing_module_fails_the_session(monkeypatch):
    monkeypatch.setitem(ordering.SUITES, "host", {"first": ["test_gone.py"], "last": []})
    with pytest.raises(RuntimeError, match="testing/host/test_gone.py"):
        ordering.pytest_collection_modifyitems(None, None, [])
