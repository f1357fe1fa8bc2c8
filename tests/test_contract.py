"""The copy contract of ``to_numpy``, one body per rule, for every framework."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from tests.conftest import Framework

DATA = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_copy_none_is_zero_copy_on_cpu(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x)
    assert np.shares_memory(out, fw.native(x))
    np.testing.assert_array_equal(out, DATA)
    assert interop.explain(x).zero_copy


def test_copy_true_owns_memory(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, copy=True)
    assert out.flags.writeable and out.flags.owndata
    assert not np.shares_memory(out, fw.native(x))
    out[0, 0] = -1
    assert fw.native(x)[0, 0] == 0


def test_copy_false_never_copies(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, copy=False)
    assert np.shares_memory(out, fw.native(x))


def test_readonly_rule(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x)
    assert out.flags.writeable is (not fw.immutable)
    if fw.mutable_view:
        out[0, 0] = 42
        assert fw.native(x)[0, 0] == 42


def test_numpy_identity() -> None:
    a = np.ones(3)
    assert interop.to_numpy(a) is a


def test_unsupported_type_names_type_and_backends() -> None:
    with pytest.raises(interop.UnsupportedTypeError, match=r"got `dict`.*tried: numpy.*hint"):
        interop.to_numpy({"a": 1})
