"""The examples in the library's docstrings run, and show what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import interop

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(interop.__path__, "interop.")
    if info.name != "interop.__main__"  # (runs the command line when imported)
)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_a_module_run(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} of the examples in {name} failed"


def test_the_public_functions_show_examples() -> None:
    finder = doctest.DocTestFinder()
    public = [getattr(interop, name) for name in interop.__all__]
    examples = [t for obj in public if callable(obj) for t in finder.find(obj) if t.examples]
    assert len(examples) >= 10, [t.name for t in examples]
