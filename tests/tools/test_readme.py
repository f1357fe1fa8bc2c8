"""The examples of the README and of the documentation site run here, every one.

Convention, the same in ``README.md`` and in every page of ``docs/``: a fenced
``python`` block whose first line is ``# example: <framework>`` is an example that
needs ``<framework>`` (``numpy``, ``torch``, ``tensorflow``, ``jax`` or ``ray``)
installed; a ``ray`` example starts a local Ray cluster, is in the slow tier, and
its workers import this checkout.
``# example: <framework>, continued`` marks a block that goes on from the block
before it in the same file (it runs after it, in the same namespace). Every
``python`` block must follow the convention, so that no untested code can appear in
the README or on the site; snippets that are not meant to run use another fence
language (``bash``, ``text``, ``toml``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop import _registry

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"\A# example: (\w+)(, continued)?[ \t]*\n")
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")
# Examples that need more than one of the frameworks above, run in the slow tier.
SLOW = ("ray",)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, source) of every fenced ``python`` block in the file at ``path``."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = {path: python_blocks(path) for path in (README, *PAGES)}
CASES = [(path, line, source) for path, blocks in BLOCKS.items() for line, source in blocks]


def _params() -> list[object]:
    params = []
    for path, line, source in CASES:
        marker = MARKER.match(source)
        slow = marker is not None and marker.group(1) in SLOW
        # Ray's own deprecation notices about its settings, raised inside Ray.
        ray_notices = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")
        # JAX, once imported, warns at every fork; Ray starts its processes with one.
        jax_fork = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
        marks = [pytest.mark.slow, ray_notices, jax_fork] if slow else []
        name = path.relative_to(ROOT).as_posix()
        params.append(pytest.param(path, line, source, id=f"{name}:{line}", marks=marks))
    return params


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_site_has_pages_with_examples() -> None:
    assert PAGES, "docs/ has no pages"
    assert sum(len(BLOCKS[page]) for page in PAGES) >= len(BLOCKS[README])


def test_readme_and_home_page_have_an_example_for_every_framework() -> None:
    for path in (README, ROOT / "docs" / "index.md"):
        labels = {m.group(1) for _, source in BLOCKS[path] if (m := MARKER.match(source))}
        assert labels >= set(FRAMEWORKS), _name(path)


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Backends an example registers (docs/backends.md) are removed after it."""
    before = {info.name for info in _registry.backends()}
    yield
    for info in _registry.backends():
        if info.name not in before:
            _registry.unregister_backend(info.name)


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize(("path", "line", "source"), _params())
def test_every_python_block_is_a_runnable_example(
    path: Path, line: int, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = f"{_name(path)}:{line}"
    marker = MARKER.match(source)
    assert marker, f"{where}: a python block must start with '# example: <framework>'"
    framework = marker.group(1)
    assert framework in FRAMEWORKS + SLOW, f"{where}: unknown framework {framework!r}"
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    if framework in SLOW:
        # Ray's workers inherit the environment: they import this checkout.
        paths = [str(ROOT), os.environ.get("PYTHONPATH")]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    namespace = {"__name__": f"example_{path.stem}_line{line}".replace("-", "_")}
    for first_line, code in _chain(path, line):
        exec(compile(code, f"{_name(path)}:{first_line}", "exec"), namespace)


def _chain(path: Path, line: int) -> list[tuple[int, str]]:
    """The block at ``line`` and, if it is continued, the blocks it goes on from."""
    blocks = BLOCKS[path]
    index = next(i for i, (start, _) in enumerate(blocks) if start == line)
    chain = [blocks[index]]
    while (marker := MARKER.match(chain[0][1])) and marker.group(2):
        assert index > 0, f"{_name(path)}:{chain[0][0]}: a continued block with no block before it"
        index -= 1
        chain.insert(0, blocks[index])
    return chain
