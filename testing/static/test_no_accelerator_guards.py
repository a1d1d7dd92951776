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


def reads_the_setting(node, derived):
    """The expression reads the accelerator setting (a name, attribute or key
    naming it), or a variable computed from it."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and (inner.id in derived or "accel" in inner.id.lower()):
            return True
        if isinstance(inner, ast.Attribute) and "accel" in inner.attr.lower():
            return True
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str) and \
                "accel" in inner.value.lower():
            return True
    return False


def derived_from_the_setting(tree):
    """Names assigned, directly or through other such names, from the
    accelerator setting: `bound = 5 if kvm else 60` makes `bound` one."""
    derived = set()
    while True:
        grown = set(derived)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and \
                    node.value is not None and reads_the_setting(node.value, derived):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                grown |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if grown == derived:
            return derived
        derived = grown


def guarded_checks(source):
    """(line, guard) of every assert, pytest.skip or skip marker that runs
    only when a condition on the accelerator holds, or whose bound is chosen
    by it (a conditional expression, or a value computed from the setting)."""
    found = []
    tree = ast.parse(source)
    derived = derived_from_the_setting(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and reads_the_setting(node.test, derived) and any(
                isinstance(inner, (ast.Name, ast.IfExp)) for inner in ast.walk(node.test)):
            found.append((node.lineno, ast.unparse(node.test)))
        if isinstance(node, ast.If) and (mentions_accelerator(node.test)
                                         or reads_the_setting(node.test, derived)):
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
    # the bound chosen by the accelerator: a conditional expression, directly
    # or through variables computed from the setting
    'assert healed <= (5 if os.environ.get("VM_ACCEL") == "kvm" else 60)\n',
    'bound = 5 if vm["accel"] == "kvm" else 60\nassert healed <= bound\n',
    'slow = ACCEL == "tcg"\nlimit = 60 if slow else 5\nassert healed <= limit\n',
    'fast = accelerator() == "kvm"\nif fast:\n    assert healed <= 5\n',
])
def test_the_guard_finder_finds_them(snippet):
    assert guarded_checks(snippet)


@pytest.mark.parametrize("snippet", [
    # a check on the accelerator itself, and a module named kvm, are no guard
    'modules = host.modules()\nassert not {"kvm", "kvm_amd"} & set(modules)\n',
    'timeout = 900 if os.environ.get("VM_ACCEL") == "tcg" else 300\nwait(timeout)\n',
])
def test_the_guard_finder_leaves_alone_what_guards_nothing(snippet):
    assert guarded_checks(snippet) == []
