"""A catalogue of inputs from every installed framework, each with its exact expected result.

The reliability tests (threads, lifetimes, leaks, fuzzing) share it, so that one
place says which inputs exist, what converting them must give, and which memory a
zero-copy result must share. Each case builds a *fresh* input on every call of
``make``, so a test can convert the same object many times, or a new one each time.

``OPERATIONS`` names the public entry points the reliability tests drive. Each one
takes an input and the keywords of :func:`interop.to_numpy` and returns the NumPy
array for that input, so a new entry point joins every reliability test as one
entry there.

:func:`cases` is the cross-section those tests drive (every case converts, from a
fresh input). :func:`catalogue` adds the cases only the entry-point test runs:
every nonstandard dtype each framework has, layouts, autograd, strings, DLPack-only
wrappers, and inputs that must fail, each with the error every entry point raises.
"""

from __future__ import annotations

import array
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

import interop
from interop import testing
from tests.support.dtype_sources import FLOAT_FORMATS


def _via_tree(x: Any, **kwargs: Any) -> np.ndarray:
    """``x`` as a leaf of a tree converted by :func:`interop.to_numpy_tree`.

    A Python value (a list, a number) is no array to a tree: it comes back with its
    structure, array leaves converted. Then :func:`interop.to_numpy` of that result
    must be what it is of ``x`` itself, which the reliability tests check.
    """
    out = interop.to_numpy_tree({"a": [x]}, **kwargs)["a"][0]
    if isinstance(out, np.ndarray):
        return out
    assert type(out) is type(x), f"the tree returned a `{type(out).__name__}`"
    return interop.to_numpy(out, **kwargs)


def _via_convert(x: Any, *, copy: bool | None = None, **kwargs: Any) -> Any:
    """:func:`interop.convert` to NumPy, then the dtype options applied by :func:`interop.to_numpy`.

    ``convert`` keeps the dtype (of an options block it follows ``copy`` and
    ``allow_transfer`` only); ``to_numpy`` of its result, with the same ``copy``, is
    the array itself unless a dtype option asks for a cast.
    """
    return interop.to_numpy(interop.convert(x, "numpy", copy=copy), copy=copy, **kwargs)


OPERATIONS: dict[str, Callable[..., np.ndarray]] = {
    "to_numpy": interop.to_numpy,
    "to_numpy_tree": _via_tree,
    "convert": _via_convert,
}

# Float payloads every case carries: NaN with a payload, a signalling-NaN bit
# pattern, both infinities and negative zero, which a conversion must keep bit for bit.
SPECIAL_BITS = np.array(
    [0x7F800001, 0x7FC00123, 0xFF800000, 0x7F800000, 0x80000000, 0xFFC00001, 0x3F800000, 0],
    dtype=np.uint32,
)
SPECIAL = SPECIAL_BITS.view(np.float32)
GRID = np.concatenate([SPECIAL, np.arange(4, dtype=np.float32)]).reshape(3, 4)


@dataclass(frozen=True)
class Case:
    """One kind of input and the result its conversion must have.

    Attributes:
        name: A short id for test reports.
        module: The module that must be importable for the case to exist.
        make: Builds a fresh input.
        expected: The result under the default options: values (bit for bit) and dtype.
        native: The memory the input owns, as NumPy sees it (for ``np.shares_memory``),
            or ``None`` when the input has no array memory (lists, scalars, variables).
        zero_copy: Whether ``copy=None`` shares ``native`` (and ``copy=False`` works).
        upcast: The result dtype under ``upcast=True`` when it differs from ``expected``'s.
        writeable: Whether the result under the default options is writable.
        error: The error every entry point raises instead of a result, if any
            (``expected`` is then ``None``).
        match: A pattern the message of ``error`` must contain.
        kind: ``"array"``: every entry point converts it. ``"buffer"``: a
            buffer-protocol object, which :func:`interop.numpy_function` hands to
            the function as it is. ``"value"``: a Python value (a list, a number),
            which trees, pipelines and ``numpy_function`` keep as structure.
        inside: Runs a conversion (a function of one input) on an input that only
            exists inside a context, such as a transform, and returns its result;
            ``make`` is then unused (``None``).
    """

    name: str
    module: str
    make: Callable[[], Any] | None
    expected: np.ndarray | None
    native: Callable[[Any], np.ndarray] | None
    zero_copy: bool
    upcast: np.dtype | None = None
    writeable: bool = True
    error: type[Exception] | None = None
    match: str | None = None
    kind: str = "array"
    inside: Callable[[Callable[[Any], Any]], Any] | None = None


class DLPackProducer:
    """A third-party DLPack producer over ``inner``: counts ``__dlpack__`` calls.

    With ``keep=True`` it also keeps every capsule it hands out, so a test can
    check afterwards that each one was consumed.
    """

    def __init__(self, inner: Any, *, keep: bool = False) -> None:
        self.inner = inner
        self.calls = 0
        self.capsules: list[Any] | None = [] if keep else None

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls += 1
        capsule = self.inner.__dlpack__(**kwargs)
        if self.capsules is not None:
            self.capsules.append(capsule)
        return capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.inner.__dlpack_device__()  # type: ignore[no-any-return]


def same_bits(result: Any, expected: np.ndarray) -> bool:
    """Whether ``result`` is a NumPy array equal to ``expected`` in dtype, shape and bits."""
    return (
        isinstance(result, np.ndarray)
        and result.dtype == expected.dtype
        and result.shape == expected.shape
        and result.tobytes() == expected.tobytes()
    )


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _numpy_cases() -> list[Case]:
    strided = np.arange(24, dtype=np.int64).reshape(4, 6)[::-1, ::2]
    return [
        Case("numpy-float32", "numpy", GRID.copy, GRID, lambda a: a, zero_copy=True),
        Case(
            "numpy-int64-strided",
            "numpy",
            lambda: np.arange(24, dtype=np.int64).reshape(4, 6)[::-1, ::2],
            strided.copy(),
            lambda a: a,
            zero_copy=True,
        ),
        Case(
            "numpy-scalar",
            "numpy",
            lambda: np.float64(2.5),
            np.array(2.5),
            None,
            zero_copy=False,
        ),
        Case(
            "array.array",
            "array",
            lambda: array.array("f", SPECIAL.tobytes()),
            SPECIAL.copy(),
            lambda a: np.frombuffer(a, np.float32),
            zero_copy=True,
            kind="buffer",
        ),
        Case(
            "bytearray",
            "array",
            lambda: bytearray(b"\x00\x01\xfe\xff"),
            np.array([0, 1, 254, 255], np.uint8),
            lambda b: np.frombuffer(b, np.uint8),
            zero_copy=True,
            kind="buffer",
        ),
        Case(
            "dlpack-numpy",
            "numpy",
            lambda: DLPackProducer(GRID.copy()),
            GRID,
            lambda p: p.inner,
            zero_copy=True,
        ),
        Case(
            "list",
            "numpy",
            lambda: [[1.5, -0.0], [float("inf"), 2.0]],
            np.array([[1.5, -0.0], [np.inf, 2.0]]),
            None,
            zero_copy=False,
            kind="value",
        ),
        Case(
            "python-float",
            "numpy",
            lambda: 0.25,
            np.array(0.25),
            None,
            zero_copy=False,
            kind="value",
        ),
    ]


def _torch_cases() -> list[Case]:
    fw = testing.framework("torch")
    bf16 = np.array([1.0, -2.5, np.inf, 0.0078125], dtype=ml_dtypes.bfloat16)
    ints = np.arange(12, dtype=np.int64).reshape(3, 4)
    floats = np.array([1.0, 2.0, 3.0], np.float32)
    complexes = np.array([1 + 2j, -3j], np.complex64)
    return [
        Case("torch-float32", "torch", lambda: fw.make(GRID), GRID, fw.native, zero_copy=True),
        Case(
            "torch-int64-transposed",
            "torch",
            lambda: fw.make(ints).T,
            ints.T.copy(),
            fw.native,
            zero_copy=True,
        ),
        Case(
            "torch-requires-grad",
            "torch",
            lambda: fw.make(floats).requires_grad_(),
            floats,
            fw.native,
            zero_copy=True,
            # Writing into it would bypass autograd's version counter.
            writeable=False,
        ),
        Case(
            "torch-bfloat16",
            "torch",
            lambda: fw.make(bf16),
            bf16,
            fw.native,
            zero_copy=True,
            upcast=np.dtype(np.float32),
        ),
        Case(
            "torch-conj",
            "torch",
            lambda: fw.make(complexes).conj(),
            complexes.conj(),
            None,
            zero_copy=False,
        ),
        Case(
            "dlpack-torch",
            "torch",
            lambda: DLPackProducer(fw.make(GRID)),
            GRID,
            lambda p: fw.native(p.inner),
            zero_copy=True,
        ),
        Case(
            "list-of-torch",
            "torch",
            lambda: [fw.make(np.ones(2, np.float32)), fw.make(np.zeros(2, np.float32))],
            np.array([[1.0, 1.0], [0.0, 0.0]], np.float32),
            None,
            zero_copy=False,
            kind="value",
        ),
    ]


def _tensorflow_cases() -> list[Case]:
    import tensorflow as tf

    fw = testing.framework("tensorflow")
    return [
        Case(
            "tensorflow-float32",
            "tensorflow",
            lambda: fw.make(GRID),
            GRID,
            fw.native,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "tensorflow-variable",
            "tensorflow",
            lambda: tf.Variable(np.arange(6, dtype=np.int32).reshape(2, 3)),
            np.arange(6, dtype=np.int32).reshape(2, 3),
            None,
            zero_copy=False,
        ),
    ]


def _jax_cases() -> list[Case]:
    fw = testing.framework("jax")
    ints = np.arange(10, dtype=np.int32)
    return [
        Case(
            "jax-float32",
            "jax",
            lambda: fw.make(GRID),
            GRID,
            fw.native,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "jax-int32",
            "jax",
            lambda: fw.make(ints)[::3],
            ints[::3].copy(),
            fw.native,
            zero_copy=True,
            writeable=False,
        ),
    ]


def _array_api_strict_cases() -> list[Case]:
    import array_api_strict as xp

    return [
        Case(
            "array-api-strict",
            "array_api_strict",
            lambda: xp.asarray(GRID),
            GRID,
            lambda x: np.from_dlpack(x),
            zero_copy=True,
        ),
    ]


# -- The catalogue's further cases: dtypes, layouts, autograd, strings, failures ------

# bfloat16 bit patterns: a signalling NaN, a quiet NaN with a payload, -inf, inf, -0,
# a negative NaN with a payload, 1.0 and the smallest subnormal.
BF16_BITS = np.array(
    [0x7F81, 0x7FC1, 0xFF80, 0x7F80, 0x8000, 0xFFC1, 0x3F80, 0x0001], dtype=np.uint16
)
FLOAT8 = tuple(name for name in FLOAT_FORMATS if name.startswith("float8"))


def _has_format(framework: str, fmt: str) -> bool:
    """Whether ``framework`` has a dtype for the ``ml_dtypes`` format ``fmt``."""
    if framework == "numpy":
        return True
    if framework == "torch":
        import torch

        return getattr(torch, fmt, None) is not None
    if framework == "tensorflow":
        from tensorflow.python.framework import dtypes

        return getattr(dtypes, fmt, None) is not None
    import jax.numpy as jnp

    return getattr(jnp, fmt, None) is not None


def _transpose(framework: str, x: Any) -> Any:
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.transpose(x)
    return x.T


def _framework_cases(name: str) -> list[Case]:
    """The same inputs for every framework, built by :mod:`interop.testing`."""
    fw = testing.framework(name)
    writeable = not fw.immutable

    def case(label: str, source: np.ndarray, **kwargs: Any) -> Case:
        defaults: dict[str, Any] = {
            "native": fw.native,
            "zero_copy": True,
            "writeable": writeable,
        }
        defaults.update(kwargs)
        return Case(
            f"{name}-{label}",
            fw.module,
            lambda: fw.make(source),
            source,
            **defaults,
        )

    grid = GRID.copy()
    found = [
        case("0d", np.array(2.5, np.float32)),
        # A zero-size array shares memory with nothing (np.shares_memory is False).
        case("empty", np.zeros((0, 3), np.float32), native=None),
        Case(
            f"{name}-transposed",
            fw.module,
            lambda: _transpose(name, fw.make(grid)),
            grid.T.copy(),
            fw.native,
            zero_copy=True,
            writeable=writeable,
        ),
        case("bfloat16-nan", BF16_BITS.view(ml_dtypes.bfloat16), upcast=np.dtype(np.float32)),
    ]
    patterns = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for fmt in FLOAT8:
        if _has_format(name, fmt):
            found.append(case(fmt, patterns.view(getattr(ml_dtypes, fmt))))
    return found


def _numpy_catalogue() -> list[Case]:
    def readonly() -> np.ndarray:
        a = GRID.copy()
        a.flags.writeable = False
        return a

    return [
        *_framework_cases("numpy"),
        Case("numpy-readonly", "numpy", readonly, GRID, lambda a: a, True, writeable=False),
    ]


INT4 = np.arange(-8, 8, dtype=np.int8).astype(ml_dtypes.int4)
UINT4 = np.arange(16, dtype=np.uint8).astype(ml_dtypes.uint4)


def _torch_catalogue() -> list[Case]:
    import torch

    fw = testing.framework("torch")

    def functional(op: Callable[[Any], Any]) -> Any:
        """``op`` of a tensor computed inside ``torch.func.functionalize``."""
        out: list[Any] = []

        def step(x: Any) -> Any:
            y = x + 1  # a functional wrapper, whose storage holds no values
            out.append(op(y))
            return y

        torch.func.functionalize(step)(torch.zeros(3))
        return out[0]

    ones = np.ones(2, np.complex64)
    return [
        *_framework_cases("torch"),
        Case(
            "torch-parameter",
            "torch",
            lambda: torch.nn.Parameter(fw.make(GRID)),
            GRID,
            fw.native,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "torch-conj-bit",
            "torch",
            lambda: torch.ones(2, dtype=torch.complex64).conj(),
            ones.conj(),
            lambda t: t.conj().numpy(),  # the storage, conjugate bit cleared
            zero_copy=False,
        ),
        Case(
            "torch-neg-bit",
            "torch",
            lambda: torch.ones(2, dtype=torch.complex64).conj().imag,
            ones.conj().imag.copy(),
            lambda t: torch._neg_view(t).numpy(),  # the storage, negative bit cleared
            zero_copy=False,
        ),
        Case(
            "torch-int4",
            "torch",
            lambda: fw.make(INT4),
            INT4,
            fw.native,
            zero_copy=True,
            upcast=np.dtype(np.int8),
        ),
        Case(
            "torch-uint4",
            "torch",
            lambda: fw.make(UINT4),
            UINT4,
            fw.native,
            zero_copy=True,
            upcast=np.dtype(np.uint8),
        ),
        Case(
            "torch-functionalize",
            "torch",
            None,
            None,
            None,
            zero_copy=False,
            error=interop.ConversionError,
            inside=functional,
        ),
        *(
            Case(
                f"torch-shrunk-storage-{name}",
                "torch",
                lambda view=view: _shrunk(view),
                None,
                None,
                zero_copy=False,
                error=interop.ConversionError,
                match="storage was freed or shrunk",
            )
            for name, view in (
                ("offset", lambda t: t[50:]),
                ("strided", lambda t: t[::10]),
                ("column", lambda t: t.view(10, 10)[:, :2]),
                ("freed", lambda t: t),
            )
        ),
        *(
            Case(
                f"dlpack-torch-{fmt}",
                "torch",
                lambda fmt=fmt: DLPackProducer(fw.make(BF16_OR_FLOAT8[fmt])),
                BF16_OR_FLOAT8[fmt],
                lambda p: fw.native(p.inner),
                zero_copy=True,
            )
            for fmt in ("bfloat16", "float8_e4m3fn", "float8_e5m2")
        ),
    ]


def _shrunk(view: Callable[[Any], Any]) -> Any:
    """``view`` of a tensor of 100 floats, after its storage shrank in place to 240 bytes.

    (0 bytes for the whole tensor, as FSDP frees the storage of a sharded parameter.)
    The view holds fewer bytes than the storage still has, but reaches past its end.
    """
    import torch

    t = torch.arange(100, dtype=torch.float32)
    v = view(t)
    t.untyped_storage().resize_(0 if v is t else 240)
    return v


BF16_OR_FLOAT8 = {
    "bfloat16": BF16_BITS.view(ml_dtypes.bfloat16),
    **{
        fmt: np.arange(256, dtype=np.uint8).view(getattr(ml_dtypes, fmt))
        for fmt in ("float8_e4m3fn", "float8_e5m2")
    },
}


def _tensorflow_catalogue() -> list[Case]:
    import tensorflow as tf

    def variant() -> Any:
        return tf.data.Dataset.range(3)._variant_tensor

    hint = r"hint: "
    return [
        *_framework_cases("tensorflow"),
        Case(
            "tensorflow-string",
            "tensorflow",
            lambda: tf.constant([b"a", b"", b"\x00bc"]),
            np.array([b"a", b"", b"\x00bc"], dtype=object),
            None,
            zero_copy=False,
        ),
        Case(
            "tensorflow-string-0d",
            "tensorflow",
            lambda: tf.constant(b"abc"),
            np.array(b"abc", dtype=object),
            None,
            zero_copy=False,
        ),
        Case(
            "tensorflow-resource",
            "tensorflow",
            lambda: tf.Variable(1.0).handle,
            None,
            None,
            zero_copy=False,
            error=interop.ConversionError,
            match=hint,
        ),
        Case(
            "tensorflow-variant",
            "tensorflow",
            variant,
            None,
            None,
            zero_copy=False,
            error=interop.ConversionError,
            match=hint,
        ),
    ]


def _jax_catalogue() -> list[Case]:
    fw = testing.framework("jax")
    return [
        *_framework_cases("jax"),
        # XLA stores int4 packed: the unpacked values are a copy of the caller's own.
        Case("jax-int4", "jax", lambda: fw.make(INT4), INT4, None, zero_copy=False),
        Case("jax-uint4", "jax", lambda: fw.make(UINT4), UINT4, None, zero_copy=False),
        *(
            Case(
                f"dlpack-jax-{fmt}",
                "jax",
                lambda fmt=fmt: DLPackProducer(fw.make(BF16_OR_FLOAT8[fmt])),
                BF16_OR_FLOAT8[fmt],
                lambda p: fw.native(p.inner),
                zero_copy=True,
                writeable=False,  # JAX exports its memory flagged read-only
            )
            for fmt in ("bfloat16", "float8_e4m3fn", "float8_e5m2")
        ),
    ]


def _dask_catalogue() -> list[Case]:
    import dask.array as da

    return [
        Case(
            "dask-chunked",
            "dask",
            lambda: da.from_array(GRID.copy(), chunks=(2, 2)),
            GRID,
            None,
            zero_copy=False,
        ),
    ]


def _arrow_catalogue() -> list[Case]:
    import pyarrow as pa

    def values(arr: Any) -> np.ndarray:
        """The memory of the values of a one-chunk (or plain) Arrow array, as NumPy sees it."""
        chunk = arr.chunk(0) if isinstance(arr, pa.ChunkedArray) else arr
        return np.frombuffer(chunk.buffers()[1], np.uint8)

    floats = np.arange(8.0)
    stamps = np.arange(4).astype("datetime64[s]")
    return [
        Case(
            "arrow-float64",
            "pyarrow",
            lambda: pa.array(floats),
            floats,
            values,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "arrow-sliced",
            "pyarrow",
            lambda: pa.array(floats).slice(2, 4),
            floats[2:6],
            values,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "arrow-timestamp",
            "pyarrow",
            lambda: pa.array(stamps),
            stamps,
            values,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "arrow-one-chunk",
            "pyarrow",
            lambda: pa.chunked_array([pa.array(floats)]),
            floats,
            values,
            zero_copy=True,
            writeable=False,
        ),
        Case(
            "arrow-table-column",
            "pyarrow",
            lambda: pa.table({"x": floats}).column("x"),
            floats,
            values,
            zero_copy=True,
            writeable=False,
        ),
    ]


_CATALOGUE: dict[str, Callable[[], list[Case]]] = {
    "numpy": _numpy_catalogue,
    "torch": _torch_catalogue,
    "tensorflow": _tensorflow_catalogue,
    "jax": _jax_catalogue,
    "dask": _dask_catalogue,
    "pyarrow": _arrow_catalogue,
}


_BUILDERS: dict[str, Callable[[], list[Case]]] = {
    "numpy": _numpy_cases,
    "torch": _torch_cases,
    "tensorflow": _tensorflow_cases,
    "jax": _jax_cases,
    "array_api_strict": _array_api_strict_cases,
}


def cases() -> list[Case]:
    """Every case of every installed framework."""
    found: list[Case] = []
    for module, build in _BUILDERS.items():
        if installed(module):
            found.extend(build())
    return found


def catalogue() -> list[Case]:
    """:func:`cases` and the further cases of every installed framework."""
    found = cases()
    for module, build in _CATALOGUE.items():
        if installed(module):
            found.extend(build())
    return found


def expected_under(case: Case, *, dtype: Any = None, upcast: bool = False) -> np.ndarray:
    """The expected result of ``case`` under the ``dtype`` and ``upcast`` options."""
    if dtype is not None:
        return case.expected.astype(dtype)
    if upcast and case.upcast is not None:
        return case.expected.astype(case.upcast)
    return case.expected
