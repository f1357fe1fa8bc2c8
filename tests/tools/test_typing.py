"""What a caller's type checker sees: the public API's types under ``mypy --strict``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

pytestmark = pytest.mark.slow  # (a mypy run takes seconds)

CALLER = textwrap.dedent(
    """
    from typing import Any, assert_type

    import numpy as np

    import interop

    a = np.ones(2)
    assert_type(interop.to_numpy(a), np.ndarray[Any, Any])
    assert_type(interop.to_numpy(a, copy=True, sparse="dense"), np.ndarray[Any, Any])
    # A sparse tensor under sparse="scipy" gives a scipy.sparse array.
    assert_type(interop.to_numpy(a, sparse="scipy", copy=False), Any)
    assert_type(interop.convert(a, "numpy"), np.ndarray[Any, Any])
    assert_type(interop.convert(a, "numpy", copy=True), np.ndarray[Any, Any])
    assert_type(interop.convert(a, "torch"), Any)
    assert_type(interop.convert(a, like=a), Any)
    assert_type(interop.explain(a), interop.Plan)
    assert_type(interop.explain(a, dtype=np.float32, upcast=True), interop.Plan)
    assert_type(interop.explain(a, to="torch", device="cpu", copy=True), interop.Plan)
    assert_type(interop.explain(a, like=a), interop.Plan)
    batches: interop.Batches[Any] = interop.iter_numpy([a])
    assert_type(len(batches) + len(interop.iter_convert([a], "torch")), int)
    for batch in interop.iter_convert([a], "numpy"):
        assert_type(batch, Any)
    """
)

WRONG = textwrap.dedent(
    """
    import numpy as np

    import interop

    interop.to_numpy(np.ones(2), sparse="sciPy")
    interop.to_numpy(np.ones(2), kopy=True)
    interop.explain(np.ones(2), to="torch", dtype=np.float32)
    interop.explain(np.ones(2), device="cpu")
    """
)


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    path = tmp_path / "caller.py"
    path.write_text(source)
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)]
    )
    return out + err, status


def test_a_callers_types_are_the_documented_ones(tmp_path: Path) -> None:
    said, status = _mypy(tmp_path, CALLER)
    assert status == 0, said


def test_a_wrong_option_is_a_type_error(tmp_path: Path) -> None:
    said, status = _mypy(tmp_path, WRONG)
    assert status == 1
    assert 'caller.py:6: error: No overload variant of "to_numpy" matches' in said
    assert "caller.py:7: error" in said and '"kopy"' in said
    assert 'caller.py:8: error: No overload variant of "explain" matches' in said
    assert 'caller.py:9: error: No overload variant of "explain" matches' in said
