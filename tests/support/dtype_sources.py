"""Nonstandard dtypes as each framework holds them, and an independent decoder of their bits.

A :class:`Source` builds a framework array of one format from an ``ml_dtypes`` array
(through the framework's own constructors), reads back the bits the framework
stores (through its own API), and, where the framework has one, gives its own
float64/complex128 rendering of the values. :func:`reference` decodes bits from
the format's definition (sign, exponent, mantissa, bias, special values), without
``ml_dtypes`` and without :mod:`interop`, so that tests compare against something
neither of them computed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from interop import testing

# name -> (signed, exponent bits, mantissa bits, bias, specials), where specials is
# "ieee" (all-ones exponent: inf and NaN), "fn" (finite; only the all-ones pattern is
# NaN), "fnuz" (finite, no negative zero; the pattern of -0 is NaN), "none" (finite,
# no NaN) or "e8m0" (unsigned powers of two; all ones is NaN).
FLOAT_FORMATS: dict[str, tuple[bool, int, int, int, str]] = {
    "bfloat16": (True, 8, 7, 127, "ieee"),
    "float8_e4m3fn": (True, 4, 3, 7, "fn"),
    "float8_e5m2": (True, 5, 2, 15, "ieee"),
    "float8_e4m3fnuz": (True, 4, 3, 8, "fnuz"),
    "float8_e5m2fnuz": (True, 5, 2, 16, "fnuz"),
    "float8_e4m3b11fnuz": (True, 4, 3, 11, "fnuz"),
    "float8_e4m3": (True, 4, 3, 7, "ieee"),
    "float8_e3m4": (True, 3, 4, 3, "ieee"),
    "float8_e8m0fnu": (False, 8, 0, 127, "e8m0"),
    "float6_e2m3fn": (True, 2, 3, 1, "none"),
    "float6_e3m2fn": (True, 3, 2, 3, "none"),
    "float4_e2m1fn": (True, 2, 1, 1, "none"),
}
INT_FORMATS = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2, "int1": 1, "uint1": 1}

#: What ``upcast=True`` must give, written out independently of interop._dtypes.
UPCAST = {
    **{name: np.dtype(np.float32) for name in FLOAT_FORMATS},
    "int4": np.dtype(np.int8),
    "int2": np.dtype(np.int8),
    "int1": np.dtype(np.int8),
    "uint4": np.dtype(np.uint8),
    "uint2": np.dtype(np.uint8),
    "uint1": np.dtype(np.uint8),
    "complex32": np.dtype(np.complex64),
}

STANDARD = (
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)


def ml(name: str) -> np.dtype[Any]:
    """The NumPy dtype of format ``name`` (``ml_dtypes`` or NumPy's own)."""
    if name in STANDARD:
        return np.dtype(name)
    return np.dtype(getattr(ml_dtypes, name))


def width(name: str) -> int:
    """Bits per value of format ``name``."""
    if name in FLOAT_FORMATS:
        signed, e, m, _, _ = FLOAT_FORMATS[name]
        return int(signed) + e + m
    if name in INT_FORMATS:
        return INT_FORMATS[name]
    return 8 * ml(name).itemsize


def uint_of(name: str) -> np.dtype[Any]:
    """The unsigned integer dtype with one value of format ``name`` per element.

    complex128 has no 16-byte integer twin: its bits are pairs of uint64.
    """
    return np.dtype(f"u{min(ml(name).itemsize, 8)}")


def _decode_float(name: str, bits: np.ndarray) -> np.ndarray:
    signed, ebits, mbits, bias, specials = FLOAT_FORMATS[name]
    b = bits.astype(np.int64) & ((1 << width(name)) - 1)
    sign = ((b >> (ebits + mbits)) & 1) if signed else np.zeros_like(b)
    exp = (b >> mbits) & ((1 << ebits) - 1)
    man = b & ((1 << mbits) - 1)
    frac = man / float(1 << mbits)
    value = np.where(
        exp == 0,
        frac * 2.0 ** (1 - bias),
        (1.0 + frac) * np.exp2((exp - bias).astype(np.float64)),
    )
    if specials == "e8m0":
        value = np.exp2((exp - bias).astype(np.float64))
    value = np.where(sign == 1, -value, value)
    top = (1 << ebits) - 1
    if specials == "ieee":
        value = np.where((exp == top) & (man == 0), np.where(sign == 1, -np.inf, np.inf), value)
        value = np.where((exp == top) & (man != 0), np.nan, value)
    elif specials == "fn":
        value = np.where((exp == top) & (man == (1 << mbits) - 1), np.nan, value)
    elif specials == "fnuz":
        value = np.where((sign == 1) & (exp == 0) & (man == 0), np.nan, value)
    elif specials == "e8m0":
        value = np.where(exp == top, np.nan, value)
    return value


def reference(name: str, bits: np.ndarray) -> np.ndarray:
    """The values (float64, complex128 or int64) that ``bits`` encode in format ``name``."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _reference(name, np.asarray(bits))


def to_bits(a: np.ndarray, fmt: str) -> np.ndarray:
    """A copy of the bits of ``a`` (format ``fmt``); complex128 gives uint64 pairs."""
    a = np.array(a, copy=True, order="C")
    unsigned = uint_of(fmt)
    if a.dtype.itemsize > unsigned.itemsize:
        return a[..., None].view(unsigned)
    return a.view(unsigned)


def wide_of(a: np.ndarray) -> np.ndarray:
    """``a`` as float64 or complex128, NaN casts allowed."""
    with np.errstate(invalid="ignore", over="ignore"):
        complex_ = a.dtype.kind == "c" or "complex" in a.dtype.name  # ml_dtypes.complex32 too
        return np.asarray(a).astype(np.complex128 if complex_ else np.float64)


def wide(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a`` cast to the dtype of ``like`` (a reference result), NaN casts allowed."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(a).astype(like.dtype)


def _reference(name: str, bits: np.ndarray) -> np.ndarray:
    if name in FLOAT_FORMATS:
        return _decode_float(name, bits)
    if name in INT_FORMATS:
        w = INT_FORMATS[name]
        v = bits.astype(np.int64) & ((1 << w) - 1)
        if name.startswith("int"):
            v = np.where(v >= 1 << (w - 1), v - (1 << w), v)
        return v
    if name == "complex32":
        pairs = np.asarray(bits.astype(np.uint32), order="C")
        real = (pairs & 0xFFFF).astype(np.uint16).view(np.float16)
        imag = (pairs >> 16).astype(np.uint16).view(np.float16)
        # Set part by part: `real + 1j * imag` makes an infinite imaginary part's
        # 0 * inf a NaN real part.
        out = np.empty(real.shape, dtype=np.complex128)
        out.real = real
        out.imag = imag
        return out
    values = as_format(bits, name)
    dtype = values.dtype
    if dtype.kind == "c":
        return values.astype(np.complex128)
    if dtype.kind in "iub":
        return values.astype(np.int64) if dtype != np.uint64 else values
    return values.astype(np.float64)


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN equal to NaN (in real and imaginary parts alike)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


@dataclass(frozen=True)
class Source:
    """One format as one framework holds it."""

    framework: str
    label: str
    fmt: str
    #: ml_dtypes (or NumPy) array -> framework array holding the same values.
    make: Callable[[np.ndarray], Any]
    #: framework array -> its stored bits, one unsigned integer per value.
    raw: Callable[[Any], np.ndarray]
    #: framework array -> the framework's own float64/complex128 rendering, if it has one.
    own: Callable[[Any], np.ndarray] | None
    #: The NumPy view the framework itself gives of the same memory, if any (it
    #: may return None for an array that has no such view).
    native: Callable[[Any], np.ndarray | None] | None
    #: Whether ``upcast=False`` on the host is zero-copy.
    zero_copy: bool = True
    #: Arrays of this source that must be copied all the same (a predicate), if any.
    must_copy: Callable[[Any], bool] | None = None
    #: Shape of the result for a source array of shape ``s`` (float4_e2m1fn_x2 unpacks).
    packed_pairs: bool = False
    note: str = ""


# -- PyTorch ------------------------------------------------------------------------

_TORCH_FLOATS = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
)
_TORCH_SHELL = ("int4", "uint4", "int2", "uint2", "int1", "uint1")


def torch_sources() -> list[Source]:
    import torch

    fw = testing.framework("torch")

    def bit_source(fmt: str, tdt: Any, own: Callable[[Any], np.ndarray] | None) -> Source:
        unsigned = uint_of(fmt)

        def raw(t: Any) -> np.ndarray:
            return fw.native(t).view(unsigned).copy()

        return Source("torch", str(tdt), fmt, fw.make, raw, own, native=fw.native)

    sources = []
    for fmt in _TORCH_FLOATS:
        tdt = getattr(torch, fmt, None)
        if tdt is not None:
            sources.append(bit_source(fmt, tdt, lambda t: t.double().numpy()))
    for fmt in _TORCH_SHELL:
        tdt = getattr(torch, fmt, None)
        if tdt is not None:
            sources.append(bit_source(fmt, tdt, None))  # shell dtypes have no arithmetic
    sources.append(
        bit_source("complex32", torch.complex32, lambda t: t.to(torch.complex128).numpy())
    )
    fp4 = getattr(torch, "float4_e2m1fn_x2", None)
    if fp4 is not None:

        def make_fp4(a: np.ndarray) -> Any:
            nibbles = np.asarray(a, order="C").view(np.uint8)
            packed = nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)
            return torch.from_numpy(np.asarray(packed, order="C")).view(fp4)

        def raw_fp4(t: Any) -> np.ndarray:
            b = t.view(torch.uint8)
            if b.dim() == 0:
                b = b.reshape(1)
            pairs = torch.stack([b & 0x0F, b >> 4], dim=-1)
            return pairs.reshape(*b.shape[:-1], 2 * b.shape[-1]).numpy().copy()

        sources.append(
            Source(
                "torch",
                "torch.float4_e2m1fn_x2",
                "float4_e2m1fn",
                make_fp4,
                raw_fp4,
                None,
                native=lambda t: t.view(torch.uint8).numpy(),
                zero_copy=False,
                packed_pairs=True,
                note="copy (unpacks two values per byte; the last axis doubles)",
            )
        )
    for fmt in STANDARD:
        tdt = getattr(torch, fmt, None)
        if tdt is None:
            continue
        wide = torch.complex128 if tdt.is_complex else torch.float64
        sources.append(
            Source(
                "torch",
                str(tdt),
                fmt,
                fw.make,
                lambda t, fmt=fmt: to_bits(t.numpy(), fmt),
                (lambda t, wide=wide: t.to(wide).numpy()) if fmt != "uint64" else None,
                native=fw.native,
            )
        )
    return sources


# -- TensorFlow ---------------------------------------------------------------------

_TF_FORMATS = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float4_e2m1fn",
    "int4",
    "uint4",
    "int2",
    "uint2",
)


def tf_sources() -> list[Source]:
    import tensorflow as tf
    from tensorflow.python.framework import dtypes

    fw = testing.framework("tensorflow")

    def native(t: Any) -> np.ndarray | None:
        try:
            return fw.native(t)
        except ValueError:  # a 0-d tensor of an ml_dtypes format
            return None

    def own_cast(tdt: Any, fmt: str) -> Callable[[Any], np.ndarray] | None:
        if fmt in STANDARD:  # TensorFlow's own export (its casts to 64 bits flush subnormals)
            return lambda t: wide_of(np.asarray(t.numpy()))
        # TF casts to float32 exactly (its bfloat16 -> float64 cast flushes subnormals).
        wide = tf.int64 if fmt.startswith(("int", "uint")) else tf.float32
        try:
            tf.cast(tf.zeros([1], tdt), wide)
        except Exception:  # no cast kernel for this dtype on this build
            return None
        return lambda t: wide_of(tf.cast(t, wide).numpy())

    sources = []
    for fmt in (*_TF_FORMATS, *STANDARD):
        tdt = getattr(dtypes, fmt, None)
        if tdt is None:
            continue
        label = f"tf.{fmt}"
        sources.append(
            Source(
                "tensorflow",
                label,
                fmt,
                fw.make,
                lambda t, fmt=fmt: to_bits(np.array(t.numpy()), fmt),
                own_cast(tdt, fmt),
                native=native,
            )
        )
    return sources


# -- JAX ----------------------------------------------------------------------------

_JAX_FORMATS = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float8_e4m3",
    "float8_e3m4",
    "float8_e8m0fnu",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
    "int4",
    "uint4",
    "int2",
    "uint2",
    "int1",
    "uint1",
)


def jax_sources() -> list[Source]:
    import jax.numpy as jnp

    fw = testing.framework("jax")

    sources = []
    for fmt in (*_JAX_FORMATS, *STANDARD):
        jdt = getattr(jnp, fmt, None)
        if jdt is None:
            continue
        try:  # some formats exist as dtypes but cannot hold arrays on this backend
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # 64-bit types without x64
                probe = np.asarray(jnp.zeros(2, jdt))
        except Exception:
            continue
        if probe.dtype != np.dtype(jdt):
            continue  # 64-bit types become 32-bit ones unless jax_enable_x64 is set
        sub_byte = width(fmt) < 8 if fmt not in STANDARD else False
        wide = jnp.complex64 if fmt.startswith("complex") else jnp.float32
        sources.append(
            Source(
                "jax",
                f"jnp.{fmt}",
                fmt,
                fw.make,
                lambda x, fmt=fmt: to_bits(np.asarray(x), fmt),
                lambda x, wide=wide: wide_of(np.asarray(x.astype(wide))),
                native=None if sub_byte else fw.native,
                zero_copy=not sub_byte,
                note="copy (XLA stores it packed)" if sub_byte else "",
            )
        )
    return sources


def numpy_sources() -> list[Source]:
    fw = testing.framework("numpy")
    out = []
    for fmt in (*FLOAT_FORMATS, *INT_FORMATS, "complex32", *STANDARD):
        if fmt == "complex32" and not hasattr(ml_dtypes, "complex32"):
            continue
        out.append(
            Source(
                "numpy",
                f"ml_dtypes.{fmt}" if fmt not in STANDARD else f"np.{fmt}",
                fmt,
                fw.make,
                lambda a, fmt=fmt: to_bits(a, fmt),
                None,
                native=fw.native,
            )
        )
    return out


SOURCES: dict[str, Callable[[], list[Source]]] = {
    "numpy": numpy_sources,
    "torch": torch_sources,
    "tensorflow": tf_sources,
    "jax": jax_sources,
}


def all_sources(frameworks: tuple[str, ...] = tuple(SOURCES)) -> list[Source]:
    """Every source of the installed frameworks among ``frameworks``."""
    out: list[Source] = []
    for name in frameworks:
        if testing.available(name):
            out.extend(SOURCES[name]())
    return out


def random_bits(fmt: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random valid bit patterns of format ``fmt`` (sub-byte values in the low bits)."""
    unsigned = uint_of(fmt)
    top = (1 << width(fmt)) - 1 if width(fmt) < 64 else np.iinfo(np.uint64).max
    if ml(fmt).itemsize > unsigned.itemsize:  # complex128: pairs of uint64
        shape = (*shape, 2)
    return np.asarray(rng.integers(0, top, size=shape, dtype=unsigned, endpoint=True))


def as_format(bits: np.ndarray, fmt: str) -> np.ndarray:
    """Reinterpret an array of bits as format ``fmt``."""
    if fmt == "bool":
        return np.asarray(bits & 1).astype(np.bool_)
    dtype = ml(fmt)
    out = np.asarray(bits, order="C").view(dtype)
    if dtype.itemsize > bits.dtype.itemsize:  # complex128 from pairs of uint64
        out = out[..., 0]
    return out
