"""Hostile and malformed inputs: each ends in a documented error with a hint, or a correct result.

Never a crash, a hang, a stray warning or a mutated input. Inputs that could crash
the interpreter if the library trusted them (declared shapes larger than their
buffer, capsules that are not DLPack) run in a subprocess, whose exit status and
output the test checks, so that a segfault fails one test instead of the run.
"""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import interop
from tests.conftest import Framework

ROOT = Path(__file__).resolve().parents[2]


def raises(exc: type[Exception], x: Any, *fragments: str, **kwargs: Any) -> Exception:
    """Assert that converting ``x`` raises ``exc`` whose message holds every fragment."""
    with pytest.raises(exc) as info:
        interop.to_numpy(x, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


def run_isolated(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; it must exit 0 and print one JSON line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- __array__ ------------------------------------------------------------------------


class ArrayRaises:
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise RuntimeError("the device is on fire")


class ArrayReturns:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self.value


class LegacyArray:
    """An ``__array__`` written before NumPy 2: no ``copy`` keyword, returns its own memory."""

    def __init__(self) -> None:
        self.data = np.arange(4.0)

    def __array__(self, dtype: Any = None) -> Any:
        return self.data


def test_array_that_raises_is_a_conversion_error_with_its_cause() -> None:
    err = raises(
        interop.ConversionError, ArrayRaises(), "ArrayRaises`", "the device is on fire", "hint:"
    )
    assert isinstance(err.__cause__, RuntimeError)
    with pytest.raises(interop.ConversionError, match="ArrayRaises"):
        interop.explain(ArrayRaises())


@pytest.mark.parametrize(
    "value", [None, [1, 2], "text", 3.5, object()], ids=["None", "list", "str", "float", "object"]
)
def test_array_returning_a_non_array_is_a_conversion_error(value: Any) -> None:
    raises(interop.ConversionError, ArrayReturns(value), "ArrayReturns`", "hint:")


def test_array_returning_python_objects_is_refused() -> None:
    raises(interop.ConversionError, ArrayReturns(np.array([None, 1])), "hint:")


def test_legacy_array_works_without_deprecation_warning() -> None:
    obj = LegacyArray()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = interop.to_numpy(obj)
        owned = interop.to_numpy(obj, copy=True)
        plan = interop.explain(obj)
        with pytest.raises(interop.CopyRequiredError, match="NumPy 1"):
            interop.to_numpy(obj, copy=False)
    np.testing.assert_array_equal(out, np.arange(4.0))
    # It hands out its own memory: a view, claimed as one (one call cannot tell it
    # from a new array, so it is never claimed as a copy); copy=True shares nothing,
    # and copy=False, which no such __array__ can promise, is refused as NumPy 2 does.
    assert plan.zero_copy
    assert np.shares_memory(out, obj.data)
    assert not np.shares_memory(owned, obj.data)
    owned[0] = 99
    assert obj.data[0] == 0


def test_legacy_array_inside_a_list() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = interop.to_numpy([LegacyArray(), LegacyArray()])
    assert out.shape == (2, 4)


# -- __array_interface__ and risky declarations (in a subprocess) ---------------------

_RISKY = """
import json, ctypes, numpy as np, interop

class Declared:
    def __init__(self, buf, **fields):
        self.buf = buf
        self.fields = fields
    @property
    def __array_interface__(self):
        return {"typestr": "<f8", "data": self.buf, "version": 3, **self.fields}

class Capsule:
    def __init__(self, capsule):
        self.capsule = capsule
    def __dlpack__(self, **kwargs):
        return self.capsule
    def __dlpack_device__(self):
        return (1, 0)

new_capsule = ctypes.pythonapi.PyCapsule_New
new_capsule.restype = ctypes.py_object
new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
buffer = ctypes.create_string_buffer(64)
name = b"not_dltensor"  # the capsule keeps a pointer to this name: keep it alive

cases = {
    "huge shape": Declared(bytearray(8), shape=(10**15,)),
    "overflowing shape": Declared(bytearray(8), shape=(10**10, 10**10)),
    "offset past the end": Declared(bytearray(16), shape=(2,), offset=8),
    "negative stride before the start": Declared(bytearray(16), shape=(2,), strides=(-8,)),
    "stride past the end": Declared(bytearray(16), shape=(2,), strides=(4096,)),
    "huge shape over an ndarray": Declared(np.zeros(2), shape=(10**12,)),
    "not a dict": Declared(None),
    "capsule with another name": Capsule(new_capsule(ctypes.addressof(buffer), name, None)),
    "capsule already consumed": Capsule(np.ones(3).__dlpack__()),
}
np.from_dlpack(cases["capsule already consumed"])  # NumPy takes it: a second use must fail
results = {}
for name, obj in cases.items():
    for copy in (None, True):
        try:
            out = interop.to_numpy(obj, copy=copy)
            results[f"{name} copy={copy}"] = ["converted", str(out.shape)]
        except Exception as exc:
            results[f"{name} copy={copy}"] = [type(exc).__name__, str(exc)]
print(json.dumps(results))
"""


def test_risky_declarations_raise_instead_of_crashing() -> None:
    results = run_isolated(_RISKY)
    for key, (kind, message) in results.items():
        assert kind == "ConversionError", f"{key}: {kind}: {message}"
        assert "hint:" in message, f"{key}: {message}"
    assert "of a buffer of 8 bytes" in results["huge shape copy=None"][1]
    assert "reach bytes 8 to 24 of a buffer of 16" in results["offset past the end copy=None"][1]


def test_declared_interface_that_fits_converts_as_a_view() -> None:
    buf = bytearray(np.arange(4.0).tobytes())

    class Declared:
        @property
        def __array_interface__(self) -> dict[str, Any]:
            return {"typestr": "<f8", "data": buf, "shape": (2,), "offset": 16, "version": 3}

    out = interop.to_numpy(Declared())
    assert out.tolist() == [2.0, 3.0]
    assert np.shares_memory(out, np.frombuffer(buf))


def test_interface_property_that_raises() -> None:
    class Broken:
        @property
        def __array_interface__(self) -> Any:
            raise KeyError("shape")

    raises(interop.ConversionError, Broken(), "Broken`", "KeyError", "hint:")


# -- DLPack ---------------------------------------------------------------------------


class Producer:
    """A DLPack producer whose methods the tests replace with hostile ones."""

    def __init__(self, device: Any = (1, 0), capsule: Any = None) -> None:
        self.device = device
        self.capsule = capsule
        self.calls = 0
        self.data = np.arange(3.0)

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if isinstance(self.capsule, Exception):
            raise self.capsule
        return self.data.__dlpack__(**kwargs) if self.capsule is None else self.capsule

    def __dlpack_device__(self) -> Any:
        if isinstance(self.device, Exception):
            raise self.device
        return self.device


@pytest.mark.parametrize(
    "device",
    [
        RuntimeError("no device"),
        None,
        (1,),
        (1, 0, 0),
        "cpu",
        ("cpu", 0),
        (1.0, 0),
        (-1, 0),
        (0, 0),
        (1, -1),
    ],
    ids=repr,
)
def test_nonsense_dlpack_device(device: Any) -> None:
    producer = Producer(device=device)
    raises(interop.ConversionError, producer, "__dlpack_device__", "Producer`", "hint:")
    with pytest.raises(interop.ConversionError):
        interop.explain(producer)
    assert producer.calls == 0


@pytest.mark.parametrize(
    "capsule", [RuntimeError("exporter broke"), 42, "capsule", b"bytes"], ids=repr
)
def test_nonsense_dlpack_capsule(capsule: Any) -> None:
    producer = Producer(capsule=capsule)
    raises(interop.ConversionError, producer, "Producer`", "DLPack", "hint:")
    assert producer.calls == 1


def test_dlpack_ignoring_max_version_gives_a_legacy_capsule_once() -> None:
    data = np.arange(3.0)

    class IgnoresMaxVersion:
        calls = 0

        def __dlpack__(self, **kwargs: Any) -> Any:
            IgnoresMaxVersion.calls += 1
            return data.__dlpack__()  # a legacy (unversioned) capsule, whatever was asked

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    out = interop.to_numpy(IgnoresMaxVersion())
    assert IgnoresMaxVersion.calls == 1
    np.testing.assert_array_equal(out, data)
    assert np.shares_memory(out, data)


def test_dlpack_without_keywords_is_asked_once() -> None:
    data = np.arange(3.0)

    class NoKeywords:
        calls = 0

        def __dlpack__(self) -> Any:
            NoKeywords.calls += 1
            return data.__dlpack__()

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    np.testing.assert_array_equal(interop.to_numpy(NoKeywords()), data)
    assert NoKeywords.calls == 1


def test_dlpack_claiming_an_accelerator_respects_allow_transfer() -> None:
    producer = Producer(device=(2, 0))
    raises(interop.TransferError, producer, "cuda:0", "hint:", allow_transfer=False)
    raises(interop.CopyRequiredError, producer, "cuda:0", "hint:", copy=False)
    assert producer.calls == 0


def test_dlpack_of_non_native_byte_order_is_refused_by_the_exporter() -> None:
    class BigEndian(Producer):
        def __init__(self) -> None:
            super().__init__()
            self.data = np.arange(3.0, dtype=">f8")

    raises(interop.ConversionError, BigEndian(), "BigEndian`", "native byte order")


# -- Array API ------------------------------------------------------------------------


def test_array_namespace_that_raises() -> None:
    class Namespaced:
        device = "cpu"

        def __array_namespace__(self, api_version: Any = None) -> Any:
            raise RuntimeError("no namespace")

    raises(interop.ConversionError, Namespaced(), "Namespaced`", "hint:")


def test_array_namespace_without_data_is_refused() -> None:
    class Hollow:
        device = "cpu"

        def __array_namespace__(self, api_version: Any = None) -> Any:
            return 42

    raises(interop.ConversionError, Hollow(), "Hollow`", "hint:")


# -- objects that claim to be framework tensors -----------------------------------------

_FAKE_NAMES = [
    ("torch", "Tensor"),
    ("tensorflow.python.framework.ops", "EagerTensor"),
    ("jaxlib._jax", "ArrayImpl"),
]


def _fake(module: str, name: str) -> type:
    return type(name, (), {"__module__": module, "__qualname__": name})


@pytest.mark.parametrize(("module", "name"), _FAKE_NAMES)
def test_fake_framework_tensor_is_not_mistaken(module: str, name: str, fw: Framework) -> None:
    # ``fw`` imports the real framework first: the fake must not be taken for its tensors.
    fake = _fake(module, name)()
    assert interop.framework_of(fake) is None
    raises(interop.UnsupportedTypeError, fake, f"`{module}.{name}`")


def test_fake_framework_tensor_with_an_array_protocol_converts_through_it() -> None:
    cls = type("Tensor", (), {"__module__": "torch", "__array__": LegacyArray.__array__})
    obj = cls()
    obj.data = np.arange(4.0)
    assert interop.framework_of(obj) == "array_protocol"
    np.testing.assert_array_equal(interop.to_numpy(obj), np.arange(4.0))


def test_object_spoofing_its_class_is_not_mistaken() -> None:
    import torch

    class Spoof:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return torch.Tensor

    spoof = Spoof()
    assert isinstance(spoof, torch.Tensor)  # the spoof fools isinstance...
    assert interop.framework_of(spoof) is None  # ...but not dispatch, which uses type()
    raises(interop.UnsupportedTypeError, spoof, "Spoof`")


def test_object_whose_getattr_raises() -> None:
    class Touchy:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"do not touch {name}")

    raises(interop.UnsupportedTypeError, Touchy(), "Touchy`")


def test_fake_framework_tensors_before_the_framework_is_imported() -> None:
    results = run_isolated(
        """
        import json, sys, interop
        out = {}
        for module, name in NAMES:
            fake = type(name, (), {"__module__": module, "__qualname__": name})()
            try:
                interop.to_numpy(fake)
                out[name] = ["converted", ""]
            except Exception as exc:
                out[name] = [type(exc).__name__, str(exc)]
        out["imported"] = sorted(m for m in ("torch", "tensorflow", "jax") if m in sys.modules)
        print(json.dumps(out))
        """.replace("NAMES", repr(_FAKE_NAMES))
    )
    assert results.pop("imported") == []  # converting a fake imported no framework
    for name, (kind, message) in results.items():
        assert kind == "UnsupportedTypeError", (name, kind, message)
        assert f".{name}`" in message and "not imported, so not tried" in message


# -- Python values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("abc", "text is not an array"),
        ("", "text is not an array"),
        (b"abc", "np.frombuffer"),
        (None, "None has no data"),
        ({"a": 1}, "to_numpy_tree"),
        ({1, 2}, "sorted"),
        ((i for i in range(3)), "materialise"),
        (range(3), "materialise"),
    ],
    ids=["str", "empty-str", "bytes", "None", "dict", "set", "generator", "range"],
)
def test_non_arrays_are_unsupported_with_a_hint(value: Any, hint: str) -> None:
    raises(interop.UnsupportedTypeError, value, "hint:", hint)


def test_bytes_like_buffers_are_arrays() -> None:
    data = bytearray(b"\x00\x7f\xff")
    out = interop.to_numpy(data)
    assert out.dtype == np.uint8 and out.tolist() == [0, 127, 255]
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))
    assert interop.to_numpy(memoryview(b"ab")).tolist() == [97, 98]


@pytest.mark.parametrize(
    "value",
    [[None], [1.0, None], [[1.0], [None]], [decimal.Decimal(1)], [10**40], 10**40],
    ids=["[None]", "[1.0, None]", "nested None", "Decimal", "big int in list", "big int"],
)
def test_values_numpy_can_only_hold_as_objects_are_refused(value: Any) -> None:
    before = repr(value)
    raises(interop.ConversionError, value, "expected numbers", "hint:", "dtype=object")
    assert repr(value) == before
    # Asking for Python objects explicitly is honoured.
    assert interop.to_numpy(value, dtype=object).dtype == object


def test_ragged_list_is_a_conversion_error() -> None:
    raises(interop.ConversionError, [[1, 2], [3]], "list`", "inhomogeneous", "hint:")


def test_list_that_contains_itself() -> None:
    loop: list[Any] = [1.0]
    loop.append(loop)
    raises(interop.ConversionError, loop, "contains itself")
    assert loop[1] is loop and len(loop) == 2


@pytest.mark.parametrize("depth", [65, 10_000])
def test_very_deep_list(depth: int) -> None:
    deep: list[Any] = [0.0]
    for _ in range(depth):
        deep = [deep]
    raises(interop.ConversionError, deep, "list`", "hint:")


def test_list_mixing_text_and_numbers_follows_numpy() -> None:
    assert interop.to_numpy([1, "a"]).tolist() == ["1", "a"]


# -- NaN and infinity payloads, bit for bit -----------------------------------------------

_PAYLOADS = {
    np.float16: [0x7C01, 0x7E05, 0xFC00, 0x7C00, 0x8000, 0xFE01],
    np.float32: [0x7F800001, 0x7FC00123, 0xFF800000, 0x7F800000, 0x80000000, 0xFFC00001],
    np.float64: [0x7FF0000000000001, 0x7FF8000000000123, 0xFFF0000000000000, 0x8000000000000000],
}


@pytest.mark.parametrize("copy", [None, True])
@pytest.mark.parametrize("ftype", list(_PAYLOADS), ids=lambda t: np.dtype(t).name)
def test_nan_and_inf_payloads_are_preserved_bit_for_bit(
    fw: Framework, ftype: Any, copy: bool | None
) -> None:
    utype = np.dtype(f"u{np.dtype(ftype).itemsize}")
    bits = np.array(_PAYLOADS[ftype], dtype=utype)
    with np.errstate(invalid="ignore"):  # JAX without x64 casts float64 to float32 itself
        x = fw.make(bits.view(ftype))
    held = fw.native(x)
    out = interop.to_numpy(x, copy=copy)
    assert out.dtype == held.dtype
    held_bits = held.view(f"u{held.dtype.itemsize}")
    np.testing.assert_array_equal(out.view(f"u{out.dtype.itemsize}"), held_bits)
    if held.dtype == ftype:  # (JAX keeps float64 only with x64 enabled)
        np.testing.assert_array_equal(out.view(utype), bits)


def test_bfloat16_nan_payloads_are_preserved() -> None:
    import torch

    bits = torch.tensor([0x7F81, 0x7FC1, -128, 0x7F80, -32768], dtype=torch.int16)
    t = bits.view(torch.bfloat16)
    out = interop.to_numpy(t)
    np.testing.assert_array_equal(out.view(np.int16), bits.numpy())


def test_python_float_payloads_in_lists() -> None:
    values = [float("nan"), float("-inf"), -0.0, 5e-324]
    out = interop.to_numpy(values)
    expected = np.array(values)
    np.testing.assert_array_equal(out.view(np.uint64), expected.view(np.uint64))


# -- unusual NumPy layouts ------------------------------------------------------------------


def _snapshot(a: np.ndarray) -> tuple[Any, ...]:
    return (a.tobytes(), a.dtype, a.shape, a.strides, a.flags.writeable)


def _layouts() -> dict[str, np.ndarray]:
    base = np.arange(12.0)
    readonly = np.arange(4.0)
    readonly.flags.writeable = False
    return {
        "big-endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "little-endian-on-purpose": np.arange(6, dtype="<i8"),
        "negative-stride": base[::-1],
        "negative-2d": base.reshape(3, 4)[::-1, ::-2],
        "zero-stride": as_strided(base[:3], shape=(4, 3), strides=(0, 8)),
        "zero-stride-scalar": np.broadcast_to(np.float32(7), (5, 5)),
        "fortran": np.asfortranarray(base.reshape(3, 4)),
        "read-only": readonly,
        "empty": np.empty((0, 3)),
    }


@pytest.mark.parametrize("name", list(_layouts()))
def test_unusual_numpy_layouts(name: str) -> None:
    a = _layouts()[name]
    before = _snapshot(a)
    assert interop.to_numpy(a) is a
    assert interop.to_numpy(a, copy=False) is a
    owned = interop.to_numpy(a, copy=True)
    assert owned.dtype == a.dtype and np.array_equal(owned, a)
    assert owned.flags.writeable and not np.shares_memory(owned, a)
    if owned.size:
        owned.flat[0] = -1  # a write reaches one element of the copy, none of the source
        assert (owned == -1).sum() == 1 or owned.dtype.kind == "u"
    native = interop.to_numpy(a, dtype=np.float64)
    assert native.dtype == np.float64 and native.dtype.isnative
    np.testing.assert_array_equal(native, a.astype(np.float64))
    assert _snapshot(a) == before


# -- errors that are always the library's own ---------------------------------------------


def test_a_complex_to_real_cast_is_refused_without_a_warning() -> None:
    # The library never warns: NumPy's ComplexWarning would be the only sign that the
    # imaginary parts were dropped.
    with pytest.raises(interop.ConversionError, match=r"imaginary parts.*hint: take the real"):
        interop.to_numpy(np.array([1 + 2j], dtype=np.complex64), dtype=np.float32)
    with pytest.raises(interop.ConversionError, match="imaginary"):
        interop.explain(np.array([1j]), dtype=np.float64)
    out = interop.to_numpy(np.array([1 + 2j], dtype=np.complex64), dtype=np.complex128)
    assert out.dtype == np.complex128 and out[0] == 1 + 2j


def test_a_real_imag_float16_record_upcasts_as_explain_says() -> None:
    a = np.zeros(3, dtype=[("real", np.float16), ("imag", np.float16)])
    a["real"], a["imag"] = [1, 2, 3], [-1, 0, 0.5]
    plan = interop.explain(a, upcast=True)
    out = interop.to_numpy(a, upcast=True)
    assert out.dtype == plan.dtype == np.complex64
    np.testing.assert_array_equal(out, [1 - 1j, 2, 3 + 0.5j])


def test_a_conversion_during_interpreter_shutdown_is_the_librarys_error() -> None:
    code = (
        "import numpy as np, interop\n"
        "class Late:\n"
        "    def __del__(self):\n"
        "        try:\n"
        "            interop.to_numpy(np.float32(1))\n"
        "        except interop.InteropError as exc:\n"
        "            print('ours', type(exc).__name__)\n"
        "        except BaseException as exc:\n"
        "            print('foreign', type(exc).__name__)\n"
        "import builtins\n"
        "builtins.late = Late()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ours ConversionError", out.stdout + out.stderr


def test_a_conversion_from_a_gc_callback_during_the_first_one_is_the_librarys() -> None:
    # A collection can run a callback at any allocation, also while the first
    # conversion imports the backends' modules: a conversion from that callback must
    # work or raise the library's error (it met a half-imported module), and the
    # registry must not list its backends twice.
    code = """
import gc, sys, numpy as np, interop
seen, busy = [], []
def half_imported():
    return any(
        getattr(getattr(m, "__spec__", None), "_initializing", False)
        for n, m in list(sys.modules.items()) if n.startswith("interop.backends.")
    )
def callback(phase, info):
    if phase == "start" and not busy and not seen and half_imported():
        busy.append(1)
        try:
            seen.append(interop.to_numpy([1.0, 2.0]).tolist())
        except interop.InteropError as exc:
            seen.append(type(exc).__name__)
        except Exception as exc:
            seen.append("foreign " + type(exc).__name__)
        busy.pop()
gc.callbacks.append(callback)
gc.set_threshold(1)
out = interop.to_numpy([3.0])
gc.set_threshold(700)
names = [b.name for b in interop.backends()]
print(seen, out.tolist(), len(names) == len(set(names)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    # The callback ran mid-import and got an answer or the library's error; the
    # outer conversion finished; every backend is listed once.
    assert out.stdout.startswith("[") and not out.stdout.startswith("[]"), out.stdout
    assert "foreign" not in out.stdout, out.stdout
    assert out.stdout.rstrip().endswith("[3.0] True"), out.stdout


def test_longdouble_to_jax_is_the_librarys_error() -> None:
    pytest.importorskip("jax")
    for dtype in (np.longdouble, np.clongdouble):
        if np.dtype(dtype).itemsize <= 8 * (2 if np.dtype(dtype).kind == "c" else 1):
            continue  # a platform whose longdouble is a double
        with pytest.raises(interop.ConversionError, match="expected a dtype JAX can hold"):
            interop.convert(np.ones(2, dtype=dtype), "jax")
