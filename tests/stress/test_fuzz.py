"""Property-based fuzzing of every entry point in ``tests/support/cases.OPERATIONS``.

Hypothesis generates arbitrary nested Python values, NumPy arrays of random dtypes,
shapes, byte orders and strides (negative, zero), framework tensors, lists of
tensors, and malformed protocol objects, each converted under random options. The
property: the conversion either gives the correct result (checked against an
independent oracle: NumPy itself, or the framework's own NumPy view) with the
promised memory sharing, or raises one of the documented exceptions (an
``InteropError``; NumPy's own ``ValueError``/``TypeError`` when a requested
``dtype`` cast is impossible). Nothing else: no other exception, no warning
except NumPy's own for a lossy cast that was asked for, and the input unchanged.

CI runs ``EXAMPLES`` examples per target (about a minute in all);
``INTEROP_FUZZ_SCALE=20 python -m pytest -m slow tests/stress/test_fuzz.py`` fuzzes twenty times
longer (the fuzz targets are the slow tier, which the default run leaves out).
Every failure ever found is kept in ``tests/stress/regressions/`` and as an ``@example``.
"""

from __future__ import annotations

import decimal
import os
import warnings
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import interop
from tests.support.cases import OPERATIONS, installed

# The slow tier: run with `python -m pytest -m slow`.
pytestmark = pytest.mark.slow

SCALE = float(os.environ.get("INTEROP_FUZZ_SCALE", "1"))
EXAMPLES = 1500


def budget(n: int = EXAMPLES) -> Any:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- options --------------------------------------------------------------------------

DTYPES = [None, np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_]
DTYPES += [np.complex128, ml_dtypes.bfloat16]
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "copy": st.sampled_from([None, True, False]),
        "dtype": st.sampled_from(DTYPES),
        "upcast": st.sampled_from([None, True, False]),
    },
)


def _cast_warning(w: warnings.WarningMessage) -> bool:
    # NumPy's own warning for a cast the caller asked for (NaN to int, overflow,
    # complex to real): the same as ndarray.astype gives.
    return issubclass(w.category, RuntimeWarning) and (
        "cast" in str(w.message) or "imaginary" in str(w.message)
    )


def convert(op: str, x: Any, opts: dict[str, Any]) -> tuple[Any, BaseException | None]:
    """Run ``op``; return (result, None) or (None, a documented exception)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out, error = OPERATIONS[op](x, **opts), None
        except interop.InteropError as exc:
            out, error = None, exc
        except (ValueError, TypeError) as exc:
            # Documented only for an impossible cast to the requested dtype.
            assert opts.get("dtype") is not None, f"undocumented {exc!r}"
            out, error = None, exc
    for w in caught:
        assert opts.get("dtype") is not None and _cast_warning(w), f"warning: {w.message!r}"
    if error is not None:
        assert str(error), "an error must say what went wrong"
    if isinstance(error, interop.ConversionError) and "imaginary parts" in str(error):
        # A real dtype for complex data is refused (the imaginary parts would be
        # dropped); the oracles below describe conversions that happen.
        target = np.dtype(opts["dtype"])
        assert target.kind != "c", repr(error)
        assume(False)
    return out, error


def same(out: Any, expected: np.ndarray) -> None:
    """``out`` equals ``expected`` in type, dtype, shape and, for numbers, bit for bit."""
    assert isinstance(out, np.ndarray), type(out)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    if expected.dtype.hasobject:
        assert np.array_equal(out, expected)
    else:
        assert out.tobytes() == expected.tobytes()


def expected_dtype(source: np.dtype[Any], opts: dict[str, Any]) -> np.dtype[Any]:
    if opts.get("dtype") is not None:
        return np.dtype(opts["dtype"])
    if opts.get("upcast"):
        from interop._dtypes import upcast_target

        return upcast_target(source) or source
    return source


def cast(a: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
    target = expected_dtype(a.dtype, opts)
    if target == a.dtype:
        return a
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return a.astype(target)


def check_sharing(out: np.ndarray, memory: np.ndarray | None, opts: dict[str, Any]) -> None:
    """copy=True shares nothing (and a write to it changes nothing); copy=False shares."""
    if memory is None:
        return
    if opts.get("copy") is True:
        assert not np.shares_memory(out, memory)
        assert out.flags.writeable
    elif opts.get("copy") is False and out.size:
        assert np.shares_memory(out, memory)


# -- NumPy arrays ---------------------------------------------------------------------

NUMPY_DTYPES = (
    hnp.boolean_dtypes()
    | hnp.integer_dtypes(endianness="?")
    | hnp.unsigned_integer_dtypes(endianness="?")
    | hnp.floating_dtypes(endianness="?")
    | hnp.complex_number_dtypes(endianness="?")
    | hnp.datetime64_dtypes(endianness="?")
    | hnp.unicode_string_dtypes(endianness="?", max_len=3)
    | hnp.byte_string_dtypes(max_len=3)
)


@st.composite
def numpy_arrays(draw: st.DrawFn) -> np.ndarray:
    a = draw(hnp.arrays(NUMPY_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
    layout = draw(st.sampled_from(["plain", "reversed", "stepped", "transposed", "broadcast"]))
    if layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "stepped" and a.ndim:
        a = a[..., :: draw(st.sampled_from([-2, 2, 3]))]
    elif layout == "transposed":
        a = a.T
    elif layout == "broadcast":
        a = np.broadcast_to(a, (2, *a.shape))  # zero strides, read-only
    if draw(st.booleans()):
        a = a.view()
        a.flags.writeable = False
    return a


def _snapshot(a: np.ndarray) -> tuple[Any, ...]:
    return (a.tobytes(), a.dtype, a.shape, a.strides, a.flags.writeable)


@budget()
@given(a=numpy_arrays(), opts=OPTIONS, op=st.sampled_from(list(OPERATIONS)))
@example(a=np.arange(3, dtype=np.float32), opts={"dtype": np.float64}, op="to_numpy")
@example(a=np.arange(3, dtype=">f4"), opts={"copy": True}, op="to_numpy")
def test_fuzz_numpy_arrays(a: np.ndarray, opts: dict[str, Any], op: str) -> None:
    before = _snapshot(a)
    out, error = convert(op, a, opts)
    assert _snapshot(a) == before, "the input changed"
    changes_dtype = expected_dtype(a.dtype, opts) != a.dtype
    if error is not None:
        target = expected_dtype(a.dtype, opts)
        if isinstance(error, interop.CopyRequiredError):
            assert opts.get("copy") is False and changes_dtype
        elif not np.can_cast(a.dtype, target, "unsafe"):
            # A cast NumPy makes for no values of the dtype: refused by the plan.
            assert isinstance(error, interop.ConversionError), repr(error)
            assert f"got dtype={target}, which NumPy casts no such data to" in str(error)
        else:
            # NumPy's own cast error; a tree names the leaf in a ConversionError
            # around it when the error's class cannot carry the path.
            if op == "to_numpy_tree" and isinstance(error, interop.ConversionError):
                error = error.__cause__
            assert not isinstance(error, interop.InteropError), repr(error)
        return
    same(out, cast(a, opts))
    check_sharing(out, a, opts)
    if opts.get("copy") is not True and not changes_dtype:
        assert out is a, "a NumPy array needing no work comes back as itself"
    if opts.get("copy") is True and out.size:
        out.fill(out.flat[0])  # write-then-read: the source is untouched
        assert _snapshot(a) == before


# -- nested Python values ---------------------------------------------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.complex_numbers()
    | st.text(max_size=3)
    | st.binary(max_size=3)
    | st.decimals(allow_nan=False, places=2)
)
PYTHON_VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=2), inner, max_size=2)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=12,
)


def _numpy_oracle(x: Any, opts: dict[str, Any]) -> np.ndarray | None:
    """What NumPy itself builds from ``x`` (None: nothing numeric)."""
    dtype = opts.get("dtype")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = np.asarray(x, dtype=dtype)
        except (ValueError, TypeError, OverflowError):
            return None
    if ref.dtype.hasobject and dtype is None:
        return None
    return ref


@budget()
@given(x=PYTHON_VALUES, opts=OPTIONS, op=st.sampled_from(list(OPERATIONS)))
@example(x=[1.0, None], opts={}, op="to_numpy")
@example(x=[[1], [1, 2]], opts={}, op="to_numpy")
@example(x=10**40, opts={}, op="to_numpy")
@example(x=decimal.Decimal("0.00"), opts={"copy": False}, op="to_numpy")
def test_fuzz_python_values(x: Any, opts: dict[str, Any], op: str) -> None:
    if op == "convert" and not isinstance(x, (str, bytes, dict, frozenset, type(None))):
        # convert(x, "numpy") skips to_numpy's checks for lists, tuples and scalars: a
        # known bug kept as a strict xfail in tests/stress/regressions/test_seeds.py.
        op = "to_numpy"
    before = repr(x)
    out, error = convert(op, x, opts)
    assert repr(x) == before, "the input changed"
    if isinstance(x, (str, bytes, dict, frozenset, type(None))):
        assert isinstance(error, interop.UnsupportedTypeError), error
        return
    if opts.get("copy") is False:
        assert isinstance(error, interop.CopyRequiredError), error
        return
    ref = _numpy_oracle(x, opts)
    if ref is None:
        assert error is not None, f"converted something NumPy cannot: {out!r}"
        return
    assert error is None, repr(error)
    same(out, ref)


# -- framework tensors ------------------------------------------------------------------

FRAMEWORK_DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]


Native = Callable[[Any], np.ndarray]


def _framework_makers() -> dict[str, Callable[[np.ndarray, bool], tuple[Any, Native]]]:
    """name -> make(a, odd layout?) returning (tensor, the framework's own NumPy view of it)."""
    makers: dict[str, Callable[[np.ndarray, bool], tuple[Any, Native]]] = {}
    if installed("torch"):
        import torch

        def make_torch(a: np.ndarray, odd: bool) -> tuple[Any, Native]:
            t = torch.from_numpy(a.copy())
            if odd and t.ndim >= 2:
                t = t.transpose(0, 1)
            elif odd and t.dtype.is_floating_point:
                t = t.requires_grad_()
            elif odd and t.is_complex():
                t = t.conj()
            return t, lambda t: t.detach().resolve_conj().numpy()

        def make_bf16(a: np.ndarray, odd: bool) -> tuple[Any, Native]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f32 = np.ascontiguousarray(np.real(a), dtype=np.float32)
            high = (f32.view(np.uint32) >> 16).astype(np.uint16)
            t = torch.from_numpy(high.view(np.int16)).view(torch.bfloat16)
            return t, lambda t: t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)

        makers["torch"] = make_torch
        makers["torch-bfloat16"] = make_bf16
    if installed("tensorflow"):
        import tensorflow as tf

        def make_tf(a: np.ndarray, odd: bool) -> tuple[Any, Native]:
            return (tf.Variable(a) if odd else tf.constant(a)), lambda t: t.numpy()

        makers["tensorflow"] = make_tf
    if installed("jax"):
        import jax.numpy as jnp

        def make_jax(a: np.ndarray, odd: bool) -> tuple[Any, Native]:
            with np.errstate(all="ignore"):  # without x64, JAX narrows 64-bit types itself
                x = jnp.asarray(a)
            return (x[::-1] if odd and x.ndim else x), np.asarray

        makers["jax"] = make_jax
    if installed("array_api_strict"):
        import array_api_strict as xp

        def make_xp(a: np.ndarray, odd: bool) -> tuple[Any, Native]:
            if a.dtype == np.float16:
                a = a.astype(np.float32)  # the Array API has no float16
            return xp.asarray(a), np.from_dlpack

        makers["array_api_strict"] = make_xp
    return makers


MAKERS = _framework_makers()


@st.composite
def tensors(draw: st.DrawFn) -> tuple[Any, Native]:
    dtype = draw(st.sampled_from(FRAMEWORK_DTYPES))
    a = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
    name = draw(st.sampled_from(sorted(MAKERS)))
    return MAKERS[name](a, draw(st.booleans()))


def _tf_scalar_variable() -> tuple[Any, Native]:
    return MAKERS["tensorflow"](np.array(False), True)


@budget()
@given(t=tensors(), opts=OPTIONS, op=st.sampled_from(list(OPERATIONS)))
@example(t=_tf_scalar_variable(), opts={}, op="to_numpy")
def test_fuzz_framework_tensors(t: tuple[Any, Native], opts: dict[str, Any], op: str) -> None:
    x, native_of = t
    native = np.array(native_of(x), copy=True)
    out, error = convert(op, x, opts)
    if error is not None:
        # Only a copy=False that a copy (a cast, a conj bit, a variable) makes impossible.
        assert isinstance(error, interop.CopyRequiredError) and opts.get("copy") is False, error
        return
    same(out, cast(native, opts))
    if opts.get("copy") is True and out.size:
        out.fill(out.flat[0])  # write-then-read: the tensor is untouched
    assert native_of(x).tobytes() == native.tobytes(), "the input changed"


# -- lists of tensors -------------------------------------------------------------------


def _bf16_vector() -> tuple[Any, Native]:
    return MAKERS["torch-bfloat16"](np.zeros(1, np.float32), False)


def _bf16_128() -> tuple[Any, Native]:
    return MAKERS["torch-bfloat16"](np.array([128.0, 0.0], np.float32), False)


def _xp_scalar() -> tuple[Any, Native]:
    return MAKERS["array_api_strict"](np.array(128.0, np.float32), False)


@budget(EXAMPLES // 2)
@given(
    items=st.lists(tensors(), min_size=1, max_size=3),
    opts=OPTIONS,
    op=st.sampled_from(list(OPERATIONS)),
)
@example(items=[_xp_scalar()], opts={"dtype": np.int8}, op="to_numpy")
@example(items=[_bf16_vector()], opts={"upcast": True}, op="to_numpy")
# A dtype wins over upcast for each item too: 128 in bfloat16 cast to int8 directly,
# not through float32 (an out-of-range cast, whose result depends on the path).
@example(items=[_bf16_128()], opts={"upcast": True, "dtype": np.int8}, op="to_numpy")
def test_fuzz_lists_of_tensors(
    items: list[tuple[Any, Native]], opts: dict[str, Any], op: str
) -> None:
    xs = [x for x, _ in items]
    natives = [np.array(native_of(x), copy=True) for x, native_of in items]
    out, error = convert(op, xs, opts)
    # Items take the call's upcast (a bfloat16 tensor becomes float32) before the
    # list is stacked, so NumPy never has to promote an ml_dtypes dtype.
    upcast_items = opts.get("upcast") and opts.get("dtype") is None
    parts = [cast(n, {"upcast": True}) for n in natives] if upcast_items else natives
    stacked = _numpy_oracle(parts, {"dtype": opts.get("dtype")})
    if opts.get("copy") is False:
        assert isinstance(error, interop.CopyRequiredError), error
        return
    if stacked is None:
        assert error is not None, f"stacked what NumPy cannot: {out!r}"
        return
    assert error is None, repr(error)
    same(out, stacked if opts.get("dtype") is not None else cast(stacked, opts))
    for (x, native_of), native in zip(items, natives, strict=True):
        assert native_of(x).tobytes() == native.tobytes(), "an input changed"


# -- malformed protocol objects --------------------------------------------------------

JUNK = st.sampled_from([None, 42, 1.5, "cpu", b"x", [], {}, object()])
JUNK_DEVICES = st.sampled_from([None, (), (1,), (1, 0, 0), (-1, 0), (1, -1), (1.0, 0), ("cpu", 0)])
BEHAVIOURS = st.sampled_from(["valid", "valid", "raise", "junk"])


class Fuzzed:
    """A third-party array whose protocol methods are valid, raise, or return junk."""

    def __init__(self, data: np.ndarray, behaviour: str, junk: Any, variant: int) -> None:
        self.data, self.behaviour, self.junk, self.variant = data, behaviour, junk, variant
        self.calls = 0


class FuzzArray(Fuzzed):
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        if self.behaviour == "raise":
            raise RuntimeError("fuzzed __array__")
        if self.behaviour == "junk":
            return self.junk
        return self.data.copy() if copy else self.data


class FuzzLegacyArray(Fuzzed):
    def __array__(self, dtype: Any = None) -> Any:
        if self.behaviour == "raise":
            raise RuntimeError("fuzzed __array__")
        return self.junk if self.behaviour == "junk" else self.data


class FuzzInterface(Fuzzed):
    @property
    def __array_interface__(self) -> Any:
        if self.behaviour == "raise":
            raise RuntimeError("fuzzed __array_interface__")
        spec = {"shape": self.data.shape, "typestr": self.data.dtype.str, "version": 3}
        spec["data"] = self.data
        if self.behaviour == "junk":
            # A declaration that reaches past its buffer, or no declaration at all.
            n = self.data.size
            overrun = [{"shape": (n + 1,)}, {"offset": self.data.nbytes}, {"shape": (10**12,)}]
            if self.variant == len(overrun):
                return self.junk
            spec.update(overrun[self.variant])
        return spec


class FuzzDLPack(Fuzzed):
    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.behaviour == "raise":
            raise BufferError("fuzzed __dlpack__")
        if self.behaviour == "junk" and self.variant % 2:
            return self.junk
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        if self.behaviour == "junk" and not self.variant % 2:
            return self.device_junk
        return (1, 0)


class FuzzNamespace(FuzzDLPack):
    device = "cpu"

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return np

    def __dlpack_device__(self) -> Any:
        return (1, 0)


PROTOCOLS = [FuzzArray, FuzzLegacyArray, FuzzInterface, FuzzDLPack, FuzzNamespace]
PROTOCOL_DTYPES = [np.bool_, np.int32, np.uint8, np.float32, np.float64, np.complex64]


@st.composite
def protocol_objects(draw: st.DrawFn) -> tuple[Any, np.ndarray, str]:
    dtype = draw(st.sampled_from(PROTOCOL_DTYPES))
    data = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    cls = draw(st.sampled_from(PROTOCOLS))
    behaviour = draw(BEHAVIOURS)
    variant = draw(st.integers(0, 3))
    if cls is FuzzNamespace and behaviour == "junk":
        variant |= 1  # its device is the Array API's, so only the capsule can be junk
    obj = cls(data, behaviour, draw(JUNK), variant)
    obj.device_junk = draw(JUNK_DEVICES)
    return obj, data, behaviour


def _legacy() -> tuple[Any, np.ndarray, str]:
    data = np.arange(3.0)
    return FuzzLegacyArray(data, "valid", None, 0), data, "valid"


def _overrun() -> tuple[Any, np.ndarray, str]:
    data = np.arange(2.0)
    return FuzzInterface(data, "junk", None, 2), data, "junk"


@budget()
@given(p=protocol_objects(), opts=OPTIONS, op=st.sampled_from(list(OPERATIONS)))
@example(p=_legacy(), opts={}, op="to_numpy")
@example(p=_overrun(), opts={"copy": True}, op="to_numpy")
def test_fuzz_protocol_objects(
    p: tuple[Any, np.ndarray, str], opts: dict[str, Any], op: str
) -> None:
    obj, data, behaviour = p
    before = _snapshot(data)
    out, error = convert(op, obj, opts)
    assert _snapshot(data) == before, "the input changed"
    if isinstance(obj, FuzzDLPack):
        # A tree that fails is walked a second time to name the failing leaf's path,
        # so a refusing producer is asked twice there (each ask is a new capsule;
        # none is consumed twice, see test_lifetimes).
        asks = 2 if op == "to_numpy_tree" and error is not None else 1
        assert obj.calls <= asks, "a DLPack capsule was asked for more than once"
    if behaviour != "valid":
        assert isinstance(error, (interop.ConversionError, interop.CopyRequiredError)), error
        return
    if error is not None:
        # A valid object fails only where copy=False meets a copy.
        assert isinstance(error, interop.CopyRequiredError) and opts.get("copy") is False, error
        return
    same(out, cast(data, opts))
    if expected_dtype(data.dtype, opts) == data.dtype:
        check_sharing(out, data, opts)
