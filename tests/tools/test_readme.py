"""The README's examples are tested: every ``python`` block in it runs here.

Convention: a fenced ``python`` block whose first line is ``# example: <framework>``
is an example that needs ``<framework>`` (``numpy``, ``torch``, ``tensorflow``,
``jax`` or ``ray``) installed. A ``ray`` example starts a local Ray cluster: it is in
the slow tier, and its workers import this checkout. ``# example: <framework>,
continued`` marks a block that goes on from the block before it (it runs after it,
in the same namespace). Every ``python`` block must follow the convention, so that
no untested code can appear in the README; snippets that are not meant to run use
another fence language (``bash``, ``text``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"\A# example: (\w+)(, continued)?[ \t]*\n")
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")
# Examples that need more than one of the frameworks above, run in the slow tier.
SLOW = ("ray",)


def python_blocks() -> list[tuple[int, str]]:
    """(line number, source) of every fenced ``python`` block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks()


def _params() -> list[object]:
    params = []
    for line, source in BLOCKS:
        marker = MARKER.match(source)
        slow = marker is not None and marker.group(1) in SLOW
        # Ray's own deprecation notices about its settings, raised inside Ray.
        ray_notices = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")
        # JAX, once imported, warns at every fork; Ray starts its processes with one.
        jax_fork = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
        marks = [pytest.mark.slow, ray_notices, jax_fork] if slow else []
        params.append(pytest.param(line, source, id=f"line{line}", marks=marks))
    return params


def test_readme_has_an_example_for_every_framework() -> None:
    labels = {MARKER.match(source).group(1) for _, source in BLOCKS if MARKER.match(source)}
    assert labels >= set(FRAMEWORKS)


@pytest.mark.parametrize(("line", "source"), _params())
def test_every_python_block_is_a_runnable_example(
    line: int, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = MARKER.match(source)
    assert marker, f"README.md:{line}: a python block must start with '# example: <framework>'"
    framework = marker.group(1)
    assert framework in FRAMEWORKS + SLOW, f"README.md:{line}: unknown framework {framework!r}"
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    if framework in SLOW:
        # Ray's workers inherit the environment: they import this checkout.
        path = os.pathsep.join(filter(None, [str(README.parent), os.environ.get("PYTHONPATH")]))
        monkeypatch.setenv("PYTHONPATH", path)
    namespace = {"__name__": f"readme_example_line{line}"}
    for first_line, code in _chain(line):
        exec(compile(code, f"README.md:{first_line}", "exec"), namespace)


def _chain(line: int) -> list[tuple[int, str]]:
    """The block at ``line`` and, if it is continued, the blocks it goes on from."""
    index = next(i for i, (start, _) in enumerate(BLOCKS) if start == line)
    chain = [BLOCKS[index]]
    while (marker := MARKER.match(chain[0][1])) and marker.group(2) and index > 0:
        index -= 1
        chain.insert(0, BLOCKS[index])
    return chain
