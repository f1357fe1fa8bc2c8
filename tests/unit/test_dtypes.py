"""Nonstandard dtypes from every framework: exact bits, one dtype object, upcast, round trip.

Values are checked against :func:`tests.support.dtype_sources.reference`, a decoder written
from each format's definition, and against the framework's own rendering where it
has one. The dtype table of the documentation (``docs/dtypes.md``) is generated from
the same conversions (:func:`dtype_table`), and a test fails if the page drifts from
it; run ``python -m tests.unit.test_dtypes`` to print the current table.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import _dtypes
from tests.support.dtype_sources import (
    FLOAT_FORMATS,
    INT_FORMATS,
    STANDARD,
    UPCAST,
    Source,
    all_sources,
    as_format,
    ml,
    random_bits,
    reference,
    same_values,
    uint_of,
    wide,
    width,
)

SOURCES = all_sources()
NONSTANDARD = [s for s in SOURCES if s.fmt not in STANDARD]
FRAMEWORK_NONSTANDARD = [s for s in NONSTANDARD if s.framework != "numpy"]
STANDARD_SOURCES = [s for s in SOURCES if s.fmt in STANDARD and s.framework != "numpy"]


def _id(s: Source) -> str:
    return f"{s.framework}-{s.label.rsplit('.', 1)[-1]}"


def _all_bits(fmt: str) -> np.ndarray:
    """Every bit pattern of a format of at most 16 bits; 4096 random ones otherwise."""
    if width(fmt) <= 16:
        bits = np.arange(1 << width(fmt), dtype=np.uint32).astype(uint_of(fmt))
        return bits if bits.size % 2 == 0 else np.append(bits, bits[:1])
    return random_bits(fmt, (4096,), np.random.default_rng(0))


def _is_float(fmt: str) -> bool:
    return fmt in FLOAT_FORMATS or fmt == "complex32" or ml(fmt).kind in "fc"


@pytest.mark.parametrize("source", FRAMEWORK_NONSTANDARD, ids=_id)
def test_exact_ml_dtype_with_the_same_bits(source: Source) -> None:
    bits = _all_bits(source.fmt)
    x = source.make(as_format(bits, source.fmt))
    out = interop.to_numpy(x)
    assert out.dtype.type is getattr(ml_dtypes, source.fmt)
    np.testing.assert_array_equal(out.view(uint_of(source.fmt)), bits)
    expected = reference(source.fmt, bits)
    assert same_values(wide(out, expected), expected)
    if source.own is not None:
        assert same_values(source.own(x), expected)  # the oracle agrees with the framework


@pytest.mark.parametrize("source", FRAMEWORK_NONSTANDARD, ids=_id)
def test_zero_copy_where_the_bits_are_in_host_memory(source: Source) -> None:
    x = source.make(
        as_format(random_bits(source.fmt, (3, 4), np.random.default_rng(1)), source.fmt)
    )
    plan = interop.explain(x)
    assert plan.zero_copy is source.zero_copy
    if source.zero_copy:
        assert source.native is not None
        out = interop.to_numpy(x, copy=False)
        assert np.shares_memory(out, source.native(x))
        assert "bit_view" in plan.steps or source.framework != "torch"
    else:
        with pytest.raises(interop.CopyRequiredError, match=r"copy=False.*(packs|packed)"):
            interop.to_numpy(x, copy=False)


@pytest.mark.parametrize("source", FRAMEWORK_NONSTANDARD, ids=_id)
def test_upcast_is_a_copy_into_the_nearest_standard_dtype(source: Source) -> None:
    bits = _all_bits(source.fmt)
    x = source.make(as_format(bits, source.fmt))
    out = interop.to_numpy(x, upcast=True)
    assert out.dtype == UPCAST[source.fmt]
    assert same_values(wide(out, reference(source.fmt, bits)), reference(source.fmt, bits))
    assert out.flags.writeable
    plan = interop.explain(x, upcast=True)
    assert "upcast" in plan.steps and not plan.zero_copy and plan.dtype == UPCAST[source.fmt]
    with pytest.raises(interop.CopyRequiredError, match=r"copy=False.*hint: use copy=None"):
        interop.to_numpy(x, upcast=True, copy=False)


@pytest.mark.parametrize("source", FRAMEWORK_NONSTANDARD, ids=_id)
def test_round_trip_restores_the_bits(source: Source) -> None:
    x = source.make(
        as_format(random_bits(source.fmt, (2, 6), np.random.default_rng(2)), source.fmt)
    )
    back = source.make(interop.to_numpy(x))
    np.testing.assert_array_equal(source.raw(back), source.raw(x))


@pytest.mark.parametrize(
    "fmt", sorted({s.fmt for s in FRAMEWORK_NONSTANDARD}, key=_dtypes.NONSTANDARD.index)
)
def test_every_framework_gives_the_same_dtype_object(fmt: str) -> None:
    bits = random_bits(fmt, (4,), np.random.default_rng(3))
    dtypes = [interop.to_numpy(s.make(as_format(bits, fmt))).dtype for s in SOURCES if s.fmt == fmt]
    assert all(d is dtypes[0] for d in dtypes)
    assert dtypes[0] is np.dtype(getattr(ml_dtypes, fmt))


@pytest.mark.parametrize("source", STANDARD_SOURCES, ids=_id)
def test_standard_dtypes_map_to_numpy_and_never_upcast(source: Source) -> None:
    bits = random_bits(source.fmt, (8,), np.random.default_rng(4))
    x = source.make(as_format(bits, source.fmt))
    out = interop.to_numpy(x)
    assert out.dtype == np.dtype(source.fmt)
    assert same_values(out, as_format(bits, source.fmt))
    plan = interop.explain(x, upcast=True)
    assert "upcast" not in plan.steps and plan.zero_copy


@pytest.mark.parametrize("fmt", [*FLOAT_FORMATS, *INT_FORMATS, "complex32"])
def test_numpy_ml_dtypes_arrays_upcast_too(fmt: str) -> None:
    a = as_format(random_bits(fmt, (5,), np.random.default_rng(5)), fmt)
    assert interop.to_numpy(a) is a
    out = interop.to_numpy(a, upcast=True)
    assert out.dtype == UPCAST[fmt]
    expected = reference(fmt, a.view(uint_of(fmt)))
    assert same_values(wide(out, expected), expected)


@pytest.mark.parametrize("fmt", _dtypes.NONSTANDARD)
def test_dtype_facts(fmt: str) -> None:
    dtype = ml(fmt)
    assert _dtypes.upcast_target(dtype) == UPCAST[fmt]
    assert _dtypes.bit_width(dtype) == width(fmt)
    assert not _dtypes.is_standard(dtype)


@pytest.mark.parametrize("name", STANDARD)
def test_standard_dtypes_have_no_upcast(name: str) -> None:
    assert _dtypes.upcast_target(np.dtype(name)) is None
    assert _dtypes.is_standard(np.dtype(name))


def test_complex32_fallback_is_a_float16_pair() -> None:
    # Without ml_dtypes.complex32 (ml_dtypes < 0.6) the same bits come back as a pair.
    pair = np.dtype([("real", np.float16), ("imag", np.float16)])
    assert _dtypes.upcast_target(pair) == np.complex64
    assert _dtypes.bit_width(pair) == 32
    assert _dtypes.complex32() is np.dtype(ml_dtypes.complex32)


# -- error cases ------------------------------------------------------------------


def test_torch_shell_dtype_without_counterpart_raises() -> None:
    torch = pytest.importorskip("torch")
    t = torch.zeros(3, dtype=torch.int8).view(torch.int3)
    with pytest.raises(interop.ConversionError, match=r"got torch\.int3.*shell dtype.*view\(torch"):
        interop.to_numpy(t)
    with pytest.raises(interop.ConversionError, match="shell dtype"):
        interop.explain(t, upcast=True)


def test_torch_float4_pairs_refuse_copy_false_with_the_bytes_hint() -> None:
    torch = pytest.importorskip("torch")
    t = torch.tensor([0x21, 0x43], dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    with pytest.raises(
        interop.CopyRequiredError, match=r"two values per byte.*view\(torch.uint8\)"
    ):
        interop.to_numpy(t, copy=False)
    out = interop.to_numpy(t)
    # Low nibble first: 0x21 holds 0b0001 (0.5) then 0b0010 (1.0).
    np.testing.assert_array_equal(out.astype(np.float32), [0.5, 1.0, 1.5, 2.0])
    assert interop.explain(t).steps == ("unpack_fp4",)


def test_torch_float4_pairs_zero_d_unpacks_to_two_values() -> None:
    torch = pytest.importorskip("torch")
    t = torch.tensor(0x61, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    out = interop.to_numpy(t, upcast=True)
    assert out.shape == (2,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.5, 4.0])


def test_jax_sub_byte_dtypes_refuse_copy_false() -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.array([1, -2, 3], dtype=jnp.int4)
    with pytest.raises(interop.CopyRequiredError, match="JAX stores int4 packed"):
        interop.to_numpy(x, copy=False)
    out = interop.to_numpy(x, copy=True)
    assert out.flags.writeable and out.dtype == np.dtype(ml_dtypes.int4)


# PyTorch announces compressed sparse layouts as beta, once per process, when the first
# one is built: here by the test's own input (the library builds no sparse tensor).
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state:UserWarning")
def test_scipy_refuses_nonstandard_values_with_a_hint() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("scipy")
    s = torch.eye(3, dtype=torch.bfloat16).to_sparse_csr()
    with pytest.raises(
        interop.ConversionError, match=r"got bfloat16 values.*hint: pass upcast=True"
    ):
        interop.to_numpy(s, sparse="scipy")
    out = interop.to_numpy(s, sparse="scipy", upcast=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.toarray(), np.eye(3, dtype=np.float32))


def test_tensorflow_strings_become_object_arrays_of_bytes() -> None:
    tf = pytest.importorskip("tensorflow")
    s = tf.constant([[b"ab", b"c"], [b"", b"\xff"]])
    out = interop.to_numpy(s)
    assert out.dtype == object and out.tolist() == [[b"ab", b"c"], [b"", b"\xff"]]
    assert all(type(v) is bytes for v in out.ravel())
    assert interop.to_numpy(s, copy=True).flags.writeable
    with pytest.raises(interop.CopyRequiredError, match="string tensor becomes a new object"):
        interop.to_numpy(s, copy=False)


@pytest.mark.gpu
def test_torch_nonstandard_dtypes_from_cuda() -> None:
    import torch

    for tdt in (torch.bfloat16, torch.float8_e4m3fn, torch.int4, torch.float4_e2m1fn_x2):
        host = torch.arange(8, dtype=torch.uint8 if tdt.itemsize == 1 else torch.int16).view(tdt)
        cuda = host.to("cuda") if tdt.itemsize == 2 else host.view(torch.uint8).cuda().view(tdt)
        np.testing.assert_array_equal(
            interop.to_numpy(cuda).view(np.uint8), interop.to_numpy(host).view(np.uint8)
        )
        with pytest.raises(interop.TransferError):
            interop.to_numpy(cuda, allow_transfer=False)


# -- DLPack-only producers -----------------------------------------------------------

_DLPACK_FORMATS = {
    "torch": [
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    ],
    "jax": [
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e4m3b11fnuz",
        "float8_e4m3",
        "float8_e3m4",
        "float8_e8m0fnu",
    ],
}


def _tensor_and_bits(framework: str, a: np.ndarray) -> tuple[Any, np.ndarray]:
    """A ``framework`` tensor holding ``a``'s values, and its memory as unsigned integers."""
    bits = a.view(uint_of(a.dtype.name))
    if framework == "torch":
        torch = pytest.importorskip("torch")
        t = torch.from_numpy(bits.copy()).view(getattr(torch, a.dtype.name))
        unsigned = torch.uint16 if a.dtype.itemsize == 2 else torch.uint8
        return t, t.view(unsigned).numpy()
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray(a)
    return x, np.asarray(x).view(bits.dtype)


@pytest.mark.parametrize(
    ("framework", "name"), [(f, n) for f, names in _DLPACK_FORMATS.items() for n in names]
)
def test_dlpack_only_producer_of_an_ml_dtype_gives_that_dtype_zero_copy(
    framework: str, name: str
) -> None:
    from tests.support.entry_points import results
    from tests.support.producers import DLPackProducer

    dtype = np.dtype(getattr(ml_dtypes, name))
    a = np.array([[0.5, 1.0], [2.0, 4.0]]).astype(dtype)
    tensor, memory = _tensor_and_bits(framework, a)
    plan = interop.explain(DLPackProducer(tensor))
    assert plan.zero_copy and plan.dtype == dtype and plan.steps[0] == "from_dlpack"
    for where, _, out in results(lambda: DLPackProducer(tensor)):
        assert out.dtype == dtype, where
        np.testing.assert_array_equal(out.view(memory.dtype), memory)
        assert np.shares_memory(out, memory), where
    up = interop.to_numpy(DLPackProducer(tensor), upcast=True)
    assert up.dtype == np.float32 and up.tolist() == [[0.5, 1.0], [2.0, 4.0]]

    def dropped() -> np.ndarray:
        # The result keeps the producer's memory alive once nothing else holds it.
        return interop.to_numpy(DLPackProducer(_tensor_and_bits(framework, a)[0]))

    out = dropped()
    gc.collect()
    assert out.astype(np.float32).tolist() == [[0.5, 1.0], [2.0, 4.0]]


def test_dlpack_only_producer_of_data_without_a_numpy_form_is_refused_with_a_hint() -> None:
    from tests.support.producers import DLPackProducer

    jnp = pytest.importorskip("jax.numpy")
    packed = DLPackProducer(jnp.zeros(3, dtype=jnp.float4_e2m1fn))
    with pytest.raises(interop.ConversionError, match=r"float4_e2m1fn packed.*hint:"):
        interop.to_numpy(packed)
    torch = pytest.importorskip("torch")
    pairs = DLPackProducer(torch.zeros(3, dtype=torch.float4_e2m1fn_x2))
    with pytest.raises(interop.ConversionError, match=r"2 lanes\).*hint:"):
        interop.to_numpy(pairs)


# -- the table of docs/dtypes.md -----------------------------------------------------

_COLUMNS = (("torch", "PyTorch"), ("tensorflow", "TensorFlow"), ("jax", "JAX"))
PAGE = Path(__file__).resolve().parents[2] / "docs" / "dtypes.md"
_MARKERS = ("<!-- dtype-table:begin -->", "<!-- dtype-table:end -->")


def _cell(source: Source) -> str:
    rng = np.random.default_rng(6)
    x = source.make(as_format(random_bits(source.fmt, (2, 4), rng), source.fmt))
    kind = "zero-copy" if interop.explain(x).zero_copy else (source.note or "copy")
    return f"`{source.label}`: {kind}"


def _arrow_cell(a: np.ndarray) -> str:
    """How ``interop.convert(a, "arrow")`` stores ``a`` (1-d), and whether both ways alias."""
    pa = pytest.importorskip("pyarrow")
    x = interop.convert(a, "arrow")
    storage = x.type.storage_type if isinstance(x.type, pa.ExtensionType) else x.type
    both = interop.explain(a, to="arrow").zero_copy and interop.explain(x).zero_copy
    back = interop.to_numpy(x)
    assert back.dtype == a.dtype and back.tobytes() == a.tobytes()
    return f"`{storage}` as `interop.dtype`: {'zero-copy' if both else 'copy'}"


def dtype_table() -> str:
    """The dtype table of docs/dtypes.md, computed from real conversions."""
    lines = [
        "| Format | `upcast=False` | `upcast=True` | PyTorch | TensorFlow | JAX | Arrow |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt in _dtypes.NONSTANDARD:
        a = as_format(random_bits(fmt, (2,), np.random.default_rng(7)), fmt)
        exact = interop.to_numpy(a).dtype
        up = interop.to_numpy(a, upcast=True).dtype
        cells = []
        for framework, _ in _COLUMNS:
            found = [s for s in NONSTANDARD if s.framework == framework and s.fmt == fmt]
            cells.append("; ".join(_cell(s) for s in found) or "—")
        cells.append(_arrow_cell(a))
        lines.append(
            f"| {fmt} | `ml_dtypes.{exact.name}` | `{up.name}` | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def test_docs_dtype_table_is_current() -> None:
    frameworks = {s.framework for s in SOURCES}
    if not {"torch", "tensorflow", "jax"} <= frameworks:
        pytest.skip("the table lists all three frameworks")
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(re.escape(_MARKERS[0]) + r"\n(.*?)\n" + re.escape(_MARKERS[1]), text, re.S)
    assert match, "docs/dtypes.md lacks the dtype table markers"
    assert match.group(1) == dtype_table(), "regenerate with: python -m tests.unit.test_dtypes"


def test_docs_dtypes_example_runs() -> None:
    pytest.importorskip("torch")
    match = re.search(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert match
    exec(compile(match.group(1), "docs/dtypes.md", "exec"), {})


if __name__ == "__main__":
    print(dtype_table())


def test_complex32_reference_keeps_an_infinite_imaginary_part_apart() -> None:
    # The reference decoder itself: building `real + 1j * imag` would turn the real
    # part of 41248+inf j into NaN (0 * inf), and the property tests would then fail
    # on a correct conversion.
    halves = np.array([41248.0, np.inf, np.nan, -606.0], dtype=np.float16).view(np.uint16)
    pairs = halves.astype(np.uint32).reshape(2, 2)
    bits = pairs[:, 0] | (pairs[:, 1] << 16)
    got = reference("complex32", bits)
    assert got[0].real == 41248.0 and got[0].imag == np.inf
    assert np.isnan(got[1].real) and got[1].imag == -606.0


def test_the_dtype_caches_are_bounded() -> None:
    # Programs meet string and structured dtypes made on the fly, each its own key.
    from interop import _dtypes

    for n in range(1, 2000):
        _dtypes.upcast_target(np.dtype(f"<U{n}"))
        _dtypes.bit_width(np.dtype([("a", f"S{n}")]))
    for cached in (_dtypes.upcast_target, _dtypes.bit_width):
        assert cached.cache_info().currsize <= 256


def test_the_jax_catalogue_constructor_never_wraps_integers() -> None:
    from interop import testing

    jax = pytest.importorskip("jax")
    fw = testing.framework("jax")
    small = fw.make(np.array([1, -2], dtype=np.int64))
    assert np.asarray(small).tolist() == [1, -2]
    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match="would wrap around"):
            fw.make(np.array([2**40, 3], dtype=np.int64))
        with pytest.raises(ValueError, match="would wrap around"):
            fw.make(np.array([2**63 + 5], dtype=np.uint64))
