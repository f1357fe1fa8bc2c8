"""Properties of ``to_numpy`` over framework x dtype x shape x layout x copy x upcast.

Every framework x dtype pair (standard and nonstandard formats, as each framework
holds them) is a test of its own, so none goes unexercised; hypothesis draws the
shape (0-d, zero-size, up to 4-d), the layout (contiguous, transposed, sliced with
steps), ``copy`` and ``upcast``, and a seed for random valid bits. Each example
converts the array and checks:

* the values equal the framework's own float64/complex128 rendering where it has
  one, and always the reference decoding of the bits the framework stores;
* the dtype is the exact format (``upcast=False``) or its upcast target;
* ``copy=False`` aliases the framework's own NumPy view, or raises
  ``CopyRequiredError`` exactly where a copy is unavoidable, as ``explain`` says;
* ``copy=True`` shares nothing and is writable; a zero-copy view of immutable
  memory is read-only;
* the input holds the same bits afterwards (also after writing into a copy).

For TensorFlow and JAX, whose arrays have no strided layouts, the layout is
applied to the NumPy source before the array is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import interop
from tests.support.dtype_sources import (
    STANDARD,
    UPCAST,
    Source,
    all_sources,
    as_format,
    ml,
    random_bits,
    reference,
    same_values,
    wide,
    wide_of,
)

SOURCES = all_sources()
# Mutable-memory frameworks get real strided views; the others get new arrays.
STRIDED = ("numpy", "torch")


def _layout(x: Any, layout: str, framework: str) -> Any:
    ndim = x.ndim if framework != "torch" else x.dim()
    if layout == "transposed" and ndim >= 2:
        order = tuple(reversed(range(ndim)))
        return x.permute(order) if framework == "torch" else x.transpose(order)
    if layout == "sliced" and ndim >= 1:
        return x[tuple(slice(i % 2, None, 2) for i in range(ndim))]
    return x


@st.composite
def examples(draw: st.DrawFn, source: Source) -> tuple[Any, str, bool | None, bool]:
    shape = draw(array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    if shape and draw(st.integers(0, 7)) == 0:  # now and then a zero-size array
        k = draw(st.integers(0, len(shape) - 1))
        shape = (*shape[:k], 0, *shape[k + 1 :])
    layout = draw(st.sampled_from(["contiguous", "transposed", "sliced"]))
    if layout == "sliced":
        shape = tuple(2 * n + 1 for n in shape)
    if source.packed_pairs:  # float4_e2m1fn_x2 holds pairs along the last axis
        shape = (*shape[:-1], 2 * shape[-1]) if shape else (2,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = as_format(random_bits(source.fmt, shape, rng), source.fmt)
    if source.framework in STRIDED:
        x = _layout(source.make(a), layout, source.framework)
    else:
        x = source.make(_layout(a, layout, "numpy"))
    copy = draw(st.sampled_from([None, True, False]))
    upcast = draw(st.booleans())
    return x, layout, copy, upcast


def _is_float(fmt: str) -> bool:
    return fmt not in STANDARD or ml(fmt).kind in "fc"


def _id(s: Source) -> str:
    return f"{s.framework}-{s.label.rsplit('.', 1)[-1]}"


# Every framework x dtype pair is a test of its own, so each one is exercised; the
# examples of each draw shape, layout, copy and upcast.
@pytest.mark.parametrize("source", SOURCES, ids=_id)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_conversion_properties(source: Source, data: st.DataObject) -> None:
    x, _, copy, upcast = data.draw(examples(source))
    fmt = source.fmt
    before = source.raw(x)
    upcasts = upcast and fmt in UPCAST
    zero_copy = source.zero_copy and not upcasts
    if source.must_copy is not None and source.must_copy(x):
        zero_copy = False
    plan = interop.explain(x, copy=copy, upcast=upcast)
    assert plan.zero_copy is (zero_copy and copy is not True)

    if copy is False and not zero_copy:
        with pytest.raises(interop.CopyRequiredError, match="copy=False"):
            interop.to_numpy(x, copy=copy, upcast=upcast)
        np.testing.assert_array_equal(source.raw(x), before)
        return
    out = interop.to_numpy(x, copy=copy, upcast=upcast)

    assert out.dtype == (UPCAST[fmt] if upcasts else ml(fmt))
    expected = reference(fmt, before)
    assert same_values(wide(out, expected), expected)
    if source.own is not None and _is_float(fmt):
        assert same_values(wide_of(out), source.own(x))

    native = source.native(x) if source.native is not None else None
    if copy is False and native is not None:
        assert np.shares_memory(out, native) or out.size == 0
    if plan.zero_copy and source.framework in ("tensorflow", "jax"):
        assert not out.flags.writeable
    if copy is True:
        assert out.flags.writeable
        if native is not None:
            assert not np.shares_memory(out, native)
        np.copyto(out, np.zeros_like(out))  # writing into the copy leaves the input alone
    np.testing.assert_array_equal(source.raw(x), before)
