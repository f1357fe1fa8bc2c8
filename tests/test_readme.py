"""The README's examples are tested: every ``python`` block in it runs here.

Convention: a fenced ``python`` block whose first line is ``# example: <framework>``
is an example that needs ``<framework>`` (``numpy``, ``torch``, ``tensorflow`` or
``jax``) installed. Every ``python`` block must follow it, so that no untested code
can appear in the README; snippets that are not meant to run use another fence
language (``bash``, ``text``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"\A# example: (\w+)[ \t]*\n")
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")


def python_blocks() -> list[tuple[int, str]]:
    """(line number, source) of every fenced ``python`` block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks()


def test_readme_has_an_example_for_every_framework() -> None:
    labels = {MARKER.match(source).group(1) for _, source in BLOCKS if MARKER.match(source)}
    assert labels >= set(FRAMEWORKS)


@pytest.mark.parametrize(("line", "source"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_every_python_block_is_a_runnable_example(line: int, source: str) -> None:
    marker = MARKER.match(source)
    assert marker, f"README.md:{line}: a python block must start with '# example: <framework>'"
    framework = marker.group(1)
    assert framework in FRAMEWORKS, f"README.md:{line}: unknown framework {framework!r}"
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    code = compile(source, f"README.md:{line}", "exec")
    exec(code, {"__name__": f"readme_example_line{line}"})
