"""No check in the VM suites runs only under one accelerator: an assertion
guarded by KVM never runs in CI (TCG), so the claim it holds is not held
anywhere. Timing goals that depend on the machine are written as ratios to
a reference measured in the same run instead (testing/nfr/test_faults.py,
testing/boot)."""

import ast
import glob
import os

import pytest

from harness import ROOT

SUITES = ["host", "image", "nfr", "fleet", "boot"]
WORDS = ("accel", "kvm", "tcg")


def mentions_accelerator(node):
    text = ast.unparse(node).lower()
    return any(word in text for word in WORDS)


def guarded_checks(source):
    """(line, guard) of every assert, pytest.skip or skip marker that runs
    only when a condition on the accelerator holds."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and mentions_accelerator(node.test):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Assert) or (
                        isinstance(inner, ast.Call) and "skip" in ast.unparse(inner.func)):
                    found.append((inner.lineno, ast.unparse(node.test)))
        if isinstance(node, ast.Call) and "skip" in ast.unparse(node.func) and any(
                mentions_accelerator(arg) for arg in [*node.args, *node.keywords]):
            found.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.BoolOp) and \
                isinstance(node.test.op, ast.Or) and mentions_accelerator(node.test):
            found.append((node.lineno, ast.unparse(node.test)))
    return found


@pytest.mark.parametrize("path", sorted(p for suite in SUITES for p in glob.glob(
    os.path.join(ROOT, "testing", suite, "*.py"))), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_check_depends_on_the_accelerator(path):
    with open(path) as f:
        assert guarded_checks(f.read()) == []


@pytest.mark.parametrize("snippet", [
    'if vm.get("accel") == "kvm":\n    assert healed <= 5\n',
    'if os.environ.get("VM_ACCEL") != "tcg":\n    assert x\n',
    'pytestmark = pytest.mark.skipif(os.environ.get("VM_ACCEL") == "tcg", reason="slow")\n',
    'assert os.environ["VM_ACCEL"] == "tcg" or healed <= 5\n',
])
def test_the_guard_finder_finds_them(snippet):
    assert guarded_checks(snippet)
