"""scripts/report.py: the README's figure block is replaced, whatever it held."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from report import replace_block  # noqa: E402

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@pytest.mark.parametrize("inside", ["", "| old | 1 |\n", "| a |\n| b |\n"])
def test_the_block_is_replaced_empty_or_not(inside):
    readme = f"intro\n{START}\n{inside}{END}\nrest\n"
    assert replace_block(readme, "| new | 2 |") == f"intro\n{START}\n| new | 2 |\n{END}\nrest\n"


def test_running_twice_gives_the_same_readme():
    once = replace_block(f"{START}\n{END}\n", "| x |")
    assert replace_block(once, "| x |") == once


def test_a_readme_without_markers_is_refused():
    with pytest.raises(SystemExit, match="markers"):
        replace_block("no markers here\n", "| x |")
