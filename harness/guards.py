"""The mutation check's verdicts on one run of a guarding test, read from
the JUnit report of that pytest run (testing/image/test_mutants.py runs
the guards; harness/report.py prints the verdicts)."""

from xml.etree import ElementTree


def junit_outcomes(path):
    """Counts of a JUnit report's test cases by outcome. "failed": the test's
    body raised (an assertion, or any exception in it); "errors": a fixture's
    setup or teardown raised, which is not the guard failing."""
    counts = dict(failed=0, errors=0, skipped=0, passed=0)
    # (the report of our own pytest run, written a moment before)
    for case in ElementTree.parse(path).getroot().iter("testcase"):  # noqa: S314
        kinds = {child.tag for child in case}
        if "error" in kinds:
            counts["errors"] += 1
        elif "failure" in kinds:
            counts["failed"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def failed_in_its_body(code, outcomes):
    """The guard failed the way a missing protection makes it fail: exit 1,
    at least one case failed in its body, none errored in a fixture."""
    return code == 1 and outcomes.get("failed", 0) >= 1 and outcomes.get("errors", 0) == 0


def passed_wholly(code, outcomes):
    """The guard passed, and really ran: exit 0, at least one case passed,
    none failed, errored or was skipped."""
    return (code == 0 and outcomes.get("passed", 0) >= 1
            and not any(outcomes.get(k, 0) for k in ("failed", "errors", "skipped")))
