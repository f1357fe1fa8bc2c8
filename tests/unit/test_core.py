"""The core logic, one rule per test: options, plans, the registry, the public functions.

Only NumPy and PyTorch are used, so that this file is fast: it is the test set that
mutation testing (``tools/mutation.sh``) runs against every mutant of the core.
"""

from __future__ import annotations

import mmap
import pickle
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import _core, _options, _plan, _registry
from interop._convert import plan_convert
from interop._errors import CopyRequiredError
from interop._options import DEFAULT, Options
from interop._plan import Plan
from interop.backends.generic import base

# -- options ----------------------------------------------------------------------------


def test_default_options() -> None:
    assert Options() == Options(None, None, True, False, "error", "error")
    with interop.options() as active:
        assert active is DEFAULT


def test_options_blocks_nest_and_restore() -> None:
    with interop.options(copy=True) as outer:
        assert outer.copy is True and outer.dtype is None
        with interop.options(dtype=np.float32, upcast=True) as inner:
            assert inner == Options(copy=True, dtype=np.dtype(np.float32), upcast=True)
            with interop.options(allow_transfer=False, sparse="dense", ragged="pad") as most:
                assert most.copy is True and most.dtype == np.float32
                assert (most.allow_transfer, most.sparse, most.ragged) == (False, "dense", "pad")
            assert _options.current() is inner
        assert _options.current() is outer
    assert _options.current() is DEFAULT


def test_options_block_restores_after_an_exception() -> None:
    with pytest.raises(KeyError), interop.options(copy=False):
        raise KeyError
    assert _options.current() is DEFAULT


def test_call_keywords_win_over_the_block() -> None:
    a = np.arange(3, dtype=np.int64)
    with interop.options(copy=True, dtype=np.float32):
        out = interop.to_numpy(a, dtype=np.int16)
        assert out.dtype == np.int16 and not np.shares_memory(out, a)
        assert interop.to_numpy(a, copy=False, dtype=np.int64) is a


def test_resolve_keeps_the_active_options_object_when_nothing_changes() -> None:
    with interop.options(copy=True) as active:
        assert _options.resolve(None, None, None, None, None, None) is active
        assert _options.resolve(True, None, None, None, None, None) is active
        changed = _options.resolve(False, None, None, None, None, None)
        assert changed.copy is False and changed is not active


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("copy", [None, True, False]),
        ("allow_transfer", [True, False]),
        ("upcast", [True, False]),
        ("sparse", ["error", "dense", "scipy"]),
        ("ragged", ["error", "object", "pad"]),
    ],
)
def test_each_option_takes_each_documented_value(field: str, values: list[Any]) -> None:
    for value in values:
        assert getattr(DEFAULT.replace(**{field: value}), field) == value


def test_defaults_come_back_as_the_default_singleton() -> None:
    assert DEFAULT.replace(copy=None, upcast=False) is DEFAULT
    assert DEFAULT.replace(dtype=np.float64) is not DEFAULT
    assert DEFAULT.replace(dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"copy": "yes"}, TypeError, r"copy to be None, True or False, got 'yes'"),
        ({"copy": 2}, TypeError, "copy"),
        ({"allow_transfer": "no"}, TypeError, r"allow_transfer to be True or False, got 'no'"),
        ({"upcast": 0.5}, TypeError, r"upcast to be True or False, got 0.5"),
        ({"sparse": "csr"}, ValueError, r"sparse to be one of \('error', 'dense', 'scipy'\)"),
        ({"ragged": "list"}, ValueError, r"ragged to be one of \('error', 'object', 'pad'\)"),
        (
            {"dtype": "not a dtype"},
            TypeError,
            r"a NumPy dtype or None, got 'not a dtype'; hint: pass a NumPy dtype such as "
            r"np\.float32 or ml_dtypes\.bfloat16$",
        ),
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        DEFAULT.replace(**kwargs)
    with pytest.raises(exc, match=match), interop.options(**kwargs):
        pass
    with pytest.raises(exc, match=match):
        interop.to_numpy(np.zeros(1, np.int8), **kwargs)


def test_replace_takes_no_none_for_booleans() -> None:
    # None means "not given" in a call or a block, but an Options field has a value.
    with pytest.raises(TypeError, match="allow_transfer to be True or False, got None"):
        DEFAULT.replace(allow_transfer=None)


def test_options_normalise_their_values() -> None:
    assert DEFAULT.replace(dtype="float32").dtype == np.dtype(np.float32)
    assert DEFAULT.replace(allow_transfer=False).allow_transfer is False
    # NumPy booleans (and 1/0) are the booleans they equal, never ignored.
    assert DEFAULT.replace(copy=np.True_).copy is True
    assert DEFAULT.replace(copy=0).copy is False
    assert DEFAULT.replace(upcast=np.True_).upcast is True
    a = np.arange(3)
    assert not np.shares_memory(interop.to_numpy(a, copy=np.True_), a)
    with pytest.raises(interop.CopyRequiredError):
        interop.to_numpy(a, copy=np.False_, dtype=np.int8)


# -- plans ---------------------------------------------------------------------------------


def _finish(**kwargs: Any) -> Plan:
    options = kwargs.pop("options", DEFAULT)
    base = {"source_dtype": np.dtype(np.float32), "copy_reason": None}
    return _plan.finish("fw", "cpu", ["view"], options=options, **{**base, **kwargs})


def test_finish_a_view() -> None:
    plan = _finish()
    assert plan == Plan("fw", "cpu", True, False, ("view",), np.dtype(np.float32))
    assert plan.copy_reason is None and not plan.readonly and plan.target is None


def test_finish_a_read_only_view() -> None:
    plan = _finish(readonly=True)
    assert plan.steps == ("view", "readonly") and plan.readonly and plan.zero_copy
    # A copy is the caller's own memory: never read-only.
    copied = _finish(readonly=True, copy_reason="it copies")
    assert copied.steps == ("view",) and not copied.readonly and not copied.zero_copy


def test_finish_copy_true() -> None:
    plan = _finish(options=DEFAULT.replace(copy=True), readonly=True)
    assert plan.steps == ("view", "copy") and plan.copy_reason == "copy=True"
    assert not plan.zero_copy and not plan.readonly
    # A plan that copies anyway copies once.
    once = _finish(options=DEFAULT.replace(copy=True), copy_reason="moved")
    assert once.steps == ("view",) and once.copy_reason == "moved"


def test_finish_cast() -> None:
    plan = _finish(options=DEFAULT.replace(dtype=np.float64))
    assert plan.steps == ("view", "cast") and plan.dtype == np.float64
    assert plan.copy_reason == "casting float32 to float64 copies"
    same = _finish(options=DEFAULT.replace(dtype=np.float32))
    assert same.steps == ("view",) and same.zero_copy
    # The dtype comes with the data: the cast is planned, with or without copy=True.
    unknown = _finish(source_dtype=None, options=DEFAULT.replace(dtype=np.float64, copy=True))
    assert unknown.steps == ("view", "cast") and unknown.copy_reason == "casting to float64 copies"


def test_finish_upcast() -> None:
    bf16 = np.dtype(ml_dtypes.bfloat16)
    up = np.dtype(np.float32)
    opts = DEFAULT.replace(upcast=True)
    plan = _finish(source_dtype=bf16, upcast_to=up, options=opts)
    assert plan.steps == ("view", "upcast") and plan.dtype == up
    assert plan.copy_reason == "upcasting bfloat16 to float32 copies"
    assert _finish(upcast_to=up).steps == ("view",)  # upcast=False
    # An explicit dtype wins over the upcast.
    both = _finish(upcast_to=up, options=opts.replace(dtype=np.float16))
    assert both.steps == ("view", "cast") and both.dtype == np.float16
    # An upcast that already copies needs no further cast or copy.
    opts = opts.replace(copy=True)
    assert _finish(source_dtype=bf16, upcast_to=up, options=opts).steps == ("view", "upcast")


def test_finish_a_copy_the_source_keeps() -> None:
    # JAX's and TensorFlow's host copy of device data: a copy (nothing shared with
    # the device data, copy=False refuses it) that is read-only, shared by every
    # reader of the array.
    reason = "the data is on gpu:0 and must be copied to host memory"
    plan = _finish(readonly=True, kept=True, transfer=True, copy_reason=reason)
    assert plan.steps == ("view",) and plan.readonly and not plan.zero_copy
    assert "read-only" in str(plan) and plan.copy_reason == reason
    with pytest.raises(CopyRequiredError):
        plan.check(DEFAULT.replace(copy=False))
    # copy=True copies it again into the caller's own memory; a cast does anyway.
    copied = _finish(kept=True, copy_reason=reason, options=DEFAULT.replace(copy=True))
    assert copied.steps == ("view", "copy") and not copied.readonly
    assert copied.copy_reason == reason
    cast = _finish(kept=True, copy_reason=reason, options=DEFAULT.replace(dtype=np.float64))
    assert cast.steps == ("view", "cast") and not cast.readonly
    both = DEFAULT.replace(dtype=np.float64, copy=True)
    assert _finish(kept=True, copy_reason=reason, options=both).steps == ("view", "cast")


def test_finish_keeps_transfer_and_prepared() -> None:
    marker = object()
    plan = _finish(transfer=True, copy_reason="moved", prepared=marker)
    assert plan.transfer and plan.prepared is marker


def test_plan_check() -> None:
    moved = _finish(transfer=True, copy_reason="the data is on gpu")
    moved.check(DEFAULT)
    with pytest.raises(interop.TransferError, match=r"got fw data on cpu.*hint: move it"):
        moved.check(DEFAULT.replace(allow_transfer=False))
    with pytest.raises(interop.CopyRequiredError, match=r"needs a copy: the data is on gpu\. hint"):
        moved.check(DEFAULT.replace(copy=False))
    _finish().check(DEFAULT.replace(copy=False, allow_transfer=False))


def test_plan_str() -> None:
    view = Plan("torch", "cpu", True, False, ("numpy_view",), np.dtype(np.float32), readonly=True)
    assert str(view) == ("torch on cpu: zero-copy, dtype float32, read-only; steps: numpy_view")
    moved = Plan("jax", "gpu:0", False, True, ("to_host", "cast"), None, False, "moved", "torch")
    assert str(moved) == (
        "jax on gpu:0 -> torch: copy (moved), device-to-host transfer; steps: to_host -> cast"
    )


def test_plan_str_without_steps() -> None:
    plan = Plan("numpy", "cpu", True, False, ())
    assert str(plan) == "numpy on cpu: zero-copy; steps: none"


def test_plan_check_messages() -> None:
    moved = Plan("torch", "cuda:1", False, True, ("to_host",), copy_reason="on the gpu")
    with pytest.raises(interop.TransferError) as info:
        moved.check(DEFAULT.replace(allow_transfer=False))
    assert str(info.value) == (
        "expected data in host memory, got torch data on cuda:1; allow_transfer=False "
        "forbids the device-to-host copy. hint: move it to the CPU first, or allow the transfer"
    )
    with pytest.raises(interop.CopyRequiredError) as info2:
        moved.check(DEFAULT.replace(copy=False))
    assert str(info2.value) == (
        "copy=False, but converting torch data on cuda:1 needs a copy: on the gpu. "
        "hint: use copy=None to allow a copy when needed"
    )


def test_tail_steps() -> None:
    a = np.arange(4, dtype=np.int16)[::-1]
    plan = Plan("fw", "cpu", False, False, ("cast",), np.dtype(np.float32))
    cast = _plan.TAIL_STEPS["cast"](a, plan)
    assert cast.dtype == np.float32 and not np.shares_memory(cast, a)
    assert _plan.TAIL_STEPS["upcast"] is _plan.cast
    copied = _plan.TAIL_STEPS["copy"](a, plan)
    assert copied.flags.owndata and not np.shares_memory(copied, a)
    assert np.array_equal(copied, a) and copied.dtype == a.dtype
    fortran = np.asfortranarray(np.zeros((2, 3)))
    assert _plan.copy(fortran, plan).flags.f_contiguous  # the source's memory order
    ro = _plan.TAIL_STEPS["readonly"](a, plan)
    assert not ro.flags.writeable and np.shares_memory(ro, a)
    assert a.flags.writeable  # the framework's own array is left alone
    assert _plan.readonly(ro, plan) is ro


# -- the registry --------------------------------------------------------------------------


def test_lookup_is_cached_per_type() -> None:
    import torch

    backend = _registry.lookup(torch.Tensor)
    assert backend is not None and backend.name == "torch" and backend.loaded
    assert _registry._cache[torch.Tensor] is backend
    assert _registry.lookup(torch.Tensor) is backend
    assert _registry.lookup(torch.nn.Parameter) is backend
    assert _registry.lookup(dict) is None and _registry._cache[dict] is None


def test_dispatch_order() -> None:
    names = [b.name for b in interop.backends()]
    assert names[:4] == ["numpy", "torch", "tensorflow", "jax"]
    assert names[-4:] == ["array_api", "dlpack", "array_protocol", "python"]
    info = interop.backends()[0]
    assert (info.name, info.module, info.generic) == ("numpy", "numpy", False)
    assert interop.backends()[-1].generic and interop.backends()[-1].module is None
    assert repr(info) == "BackendInfo(name='numpy', module='numpy', loaded)"


def test_framework_of() -> None:
    import torch

    assert interop.framework_of(np.zeros(1)) == "numpy"
    assert interop.framework_of(np.float32(1)) == "numpy"
    assert interop.framework_of(torch.zeros(1)) == "torch"
    assert interop.framework_of([1, 2]) == "python"
    assert interop.framework_of(bytearray(1)) == "array_protocol"
    assert interop.framework_of(None) is None


def test_get_and_by_name() -> None:
    assert _registry.get(np.zeros(1)).name == "numpy"
    assert _registry.by_name("torch").name == "torch" and _registry.by_name("torch").loaded
    with pytest.raises(ValueError, match=r"expected a framework name \(numpy, torch"):
        _registry.by_name("mxnet")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ({"a": 1}, "to_numpy_tree"),
        ("text", "text is not an array"),
        (b"raw", "np.frombuffer"),
        ({1}, "sorted(values)"),
        (None, "handle missing values"),
        (iter([1]), "materialise iterables"),
    ],
)
def test_unsupported_types_get_a_hint(value: Any, hint: str) -> None:
    with pytest.raises(interop.UnsupportedTypeError) as info:
        interop.to_numpy(value)
    message = str(info.value)
    assert message.startswith(f"expected an array or tensor, got `{type(value).__name__}`")
    assert "(tried: numpy, torch" in message and message.count("hint: ") == 1
    assert hint in message.split("hint: ")[1]


def test_unsupported_without_a_hint() -> None:
    with pytest.raises(interop.UnsupportedTypeError) as info:
        interop.explain(object())
    message = str(info.value)
    assert ", array_api, dlpack, array_protocol, python" in message
    assert message.endswith(")") and "hint" not in message


class _Doubled:
    """A third-party array type its own backend converts (doubling, to tell them apart)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return np.asarray(self.values)


class DoublingBackend(interop.Backend):
    name = "doubling"

    def __init__(self) -> None:
        super().__init__()
        self.steps["double"] = lambda x, plan: np.asarray(x.values) * 2

    def matches(self, cls: type) -> bool:
        return issubclass(cls, _Doubled)

    def plan(self, x: Any, options: Options, /) -> Plan:
        return _plan.finish(
            self.name, "cpu", ["double"], source_dtype=None, options=options, copy_reason="new"
        )


def test_register_backend_is_consulted_before_the_generic_protocols() -> None:
    x = _Doubled([1.0, 2.0])
    assert interop.framework_of(x) == "array_protocol"
    interop.register_backend(DoublingBackend())
    try:
        assert interop.framework_of(x) == "doubling"
        assert interop.to_numpy(x).tolist() == [2.0, 4.0]
        assert interop.explain(x).steps == ("double",)
        with pytest.raises(ValueError, match="'doubling', which is already registered"):
            interop.register_backend(DoublingBackend())
    finally:
        _registry.unregister_backend("doubling")
    assert interop.framework_of(x) == "array_protocol"
    with pytest.raises(ValueError, match="expected a registered backend name, got 'doubling'"):
        _registry.unregister_backend("doubling")


class ScalarBackend(interop.Backend):
    """A backend whose last step hands back a NumPy scalar, as a 0-d ``.numpy()`` does."""

    name = "scalar"

    def __init__(self) -> None:
        super().__init__()
        self.steps["item"] = lambda x, plan: np.float32(x)

    def plan(self, x: Any, options: Options, /) -> Plan:
        return _plan.finish(
            self.name, "cpu", ["item"], source_dtype=None, options=options, copy_reason="new"
        )


def test_run_always_hands_back_an_array() -> None:
    out = ScalarBackend().to_numpy(2.5, DEFAULT)
    assert type(out) is np.ndarray and out.shape == () and out == np.float32(2.5)


def test_backend_info_of_a_backend_not_loaded_yet() -> None:
    backend = DoublingBackend()
    interop.register_backend(backend)
    try:
        info = next(i for i in interop.backends() if i.name == "doubling")
        assert info.backend is backend and info.loaded is False and info.generic
        assert repr(info) == "BackendInfo(name='doubling', module=None, not loaded)"
    finally:
        _registry.unregister_backend("doubling")


class MissingFrameworkBackend(DoublingBackend):
    name = "missing"
    module = "a_framework_nobody_installed"


def test_unsupported_lists_what_was_tried_and_what_was_not_imported() -> None:
    interop.register_backend(MissingFrameworkBackend())
    try:
        with pytest.raises(interop.UnsupportedTypeError) as info:
            interop.to_numpy(object())
    finally:
        _registry.unregister_backend("missing")
    message = str(info.value)
    tried = message.split("(tried: ")[1].split(";")[0].split(")")[0].split(", ")
    skipped = message.split("not imported, so not tried: ")[1].rstrip(")").split(", ")
    assert "missing" in skipped and "missing" not in tried
    assert tried[:2] == ["numpy", "torch"] and tried[-4:] == [
        "array_api",
        "dlpack",
        "array_protocol",
        "python",
    ]
    assert not set(tried) & set(skipped)


def test_explain_passes_every_option_to_the_backend() -> None:
    seen: list[Options] = []

    class Recording(DoublingBackend):
        name = "recording"

        def plan(self, x: Any, options: Options, /) -> Plan:
            seen.append(options)
            return _plan.finish(
                self.name,
                "cpu",
                [],
                source_dtype=None,
                options=options,
                copy_reason="new",
                prepared=options,
            )

    interop.register_backend(Recording())
    try:
        kwargs = {"allow_transfer": False, "upcast": True, "sparse": "dense", "ragged": "pad"}
        plan = interop.explain(_Doubled([1.0]), copy=True, dtype=np.int8, **kwargs)
    finally:
        _registry.unregister_backend("recording")
    assert seen == [Options(True, np.dtype(np.int8), False, True, "dense", "pad")]
    assert plan.prepared is None  # the working state stays with the conversion


def test_register_backend_validates() -> None:
    with pytest.raises(TypeError) as info:
        interop.register_backend(3)  # type: ignore[arg-type]
    assert str(info.value) == (
        "expected an instance of interop.Backend, got `int`; "
        "hint: subclass interop.Backend and pass an instance"
    )

    class Nameless(DoublingBackend):
        name = ""

    with pytest.raises(ValueError) as info2:
        interop.register_backend(Nameless())
    assert str(info2.value) == (
        "expected a backend with a non-empty name of letters, digits, '_', '-' and '.' that "
        "starts with a letter, got '' for "
        "`tests.unit.test_core.test_register_backend_validates.<locals>.Nameless`. hint: use "
        'the framework\'s short name, as in name = "gridlib"'
    )

    class Unnamed(DoublingBackend):
        name = None  # type: ignore[assignment]

    with pytest.raises(TypeError) as info3:
        interop.register_backend(Unnamed())
    assert str(info3.value) == (
        "expected a backend whose name is a string, got None (`NoneType`) for "
        "`tests.unit.test_core.test_register_backend_validates.<locals>.Unnamed`. hint: set "
        'the class attribute name, as in name = "gridlib"'
    )


def test_backend_base_class() -> None:
    backend = interop.Backend()
    assert backend.loaded is False and set(backend.steps) == {
        "upcast",
        "cast",
        "cast_floats",
        "copy",
        "readonly",
    }
    backend.load()
    with pytest.raises(NotImplementedError):
        backend.matches(int)
    with pytest.raises(NotImplementedError):
        backend.plan(1, DEFAULT)


@pytest.fixture
def plugin_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real installed distribution (a .dist-info on sys.path) declaring three backends.

    One entry point fails to import, one names a Backend class, one a Backend instance.
    """
    (tmp_path / "interop_plugin.py").write_text(
        textwrap.dedent(
            """
            from tests.unit.test_core import DoublingBackend

            class PluginBackend(DoublingBackend):
                name = "plugin"

            class OtherBackend(DoublingBackend):
                name = "plugin_instance"

            instance = OtherBackend()
            """
        )
    )
    info = tmp_path / "interop_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: interop-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[interop.backends]\n"
        "broken = interop_plugin_missing:Backend\n"
        "plugin = interop_plugin:PluginBackend\n"
        "plugin_instance = interop_plugin:instance\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    yield
    for name in ("plugin", "plugin_instance"):
        if any(b.name == name for b in interop.backends()):
            _registry.unregister_backend(name)
    sys.modules.pop("interop_plugin", None)


def test_backends_from_entry_points(plugin_distribution: Any) -> None:
    with pytest.warns(RuntimeWarning, match="could not load backend entry point 'broken'") as w:
        names = [b.name for b in interop.backends()]
    # A broken plugin stops no other plugin.
    assert len(w) == 1
    assert "plugin" in names and "plugin_instance" in names and "broken" not in names
    assert names.index("plugin") < names.index("array_api")
    assert interop.to_numpy(_Doubled([3.0])).tolist() == [6.0]
    assert _registry._entry_points_loaded


def test_by_name_loads_entry_points_first(plugin_distribution: Any) -> None:
    with pytest.warns(RuntimeWarning, match="'broken'"):
        backend = _registry.by_name("plugin")
    assert backend.name == "plugin" and backend.loaded


# -- the public functions -------------------------------------------------------------------


def test_numpy_comes_back_as_itself_unless_asked_otherwise() -> None:
    a = np.arange(3.0)
    assert interop.to_numpy(a) is a
    with interop.options(allow_transfer=False):
        assert interop.to_numpy(a) is a
    assert interop.to_numpy(a, copy=False) is a
    assert interop.to_numpy(a, copy=True) is not a
    assert interop.to_numpy(a, dtype=np.float64) is a
    assert interop.to_numpy(a, dtype=np.float32).dtype == np.float32


def test_to_numpy_runs_the_plan_explain_returns() -> None:
    import torch

    t = torch.arange(4.0, requires_grad=True)
    for kwargs in ({}, {"copy": True}, {"dtype": np.float64}, {"copy": False}):
        plan = interop.explain(t, **kwargs)
        out = interop.to_numpy(t, **kwargs)
        assert out.dtype == plan.dtype
        assert np.shares_memory(out, t.detach().numpy()) is plan.zero_copy
    assert interop.explain(t).steps == ("detach", "numpy_view", "readonly")
    with interop.options(copy=True):
        assert interop.explain(t).steps == ("detach", "numpy_view", "copy")


def test_explain_keywords() -> None:
    a = np.arange(3, dtype=np.int32)
    plan = interop.explain(a, dtype=np.int64, upcast=True, allow_transfer=False)
    assert plan.steps == ("cast",) and plan.dtype == np.int64
    assert interop.explain(a, sparse="dense", ragged="pad").zero_copy


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        (2**63 - 1, True),
        (-(2**63), True),
        (2**64 - 1, True),
        (2**64, False),
        (-(2**63) - 1, False),
        (True, True),
        (1.5, True),
        (1j, True),
        (np.int8(1), True),
        (None, False),
        ("1", False),
    ],
)
def test_fits_numpy(value: Any, fits: bool) -> None:
    assert base.fits_numpy(value) is fits


def test_object_result_of_items_that_only_fit_one_by_one() -> None:
    # A datetime and an int each fit a NumPy dtype, but no dtype holds both.
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy([np.datetime64("2020-01-01"), 1])
    assert str(info.value) == (
        "expected numbers, got `list` holding `numpy.datetime64` values, which NumPy can "
        "only keep as Python objects. hint: replace None and other non-numbers first (for "
        "example with float('nan')), convert big or exact numbers with float(...), or pass "
        "dtype=object to keep the objects"
    )


def test_object_results_name_the_odd_item() -> None:
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy([1, 2, 2**70])
    assert "`list` holding `int` values" in str(info.value)
    with pytest.raises(interop.ConversionError, match="got `list` holding `str` values"):
        interop.to_numpy([1, "a", None])
    with pytest.raises(interop.ConversionError, match=r"got `int`, which NumPy"):
        interop.to_numpy(2**70)
    assert interop.to_numpy([1, None], dtype=object).tolist() == [1, None]


def test_protocol_errors_name_the_protocol() -> None:
    class Raises:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            raise OSError("disk")

    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy(Raises())
    message = str(info.value)
    assert "through `__array__`, `__array_interface__` or the buffer protocol" in message
    assert "failed with OSError: disk. hint: the error comes from" in message
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(interop.ConversionError, match="failed with OSError: disk"):
        interop.explain(Raises())


class RaisesOnArray:
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise OSError("disk")


class FailingBackend(DoublingBackend):
    """A third-party backend without a framework module: generic, so its errors are wrapped."""

    name = "failing"

    def plan(self, x: Any, options: Options, /) -> Plan:
        raise KeyError("no plan")


def test_protocol_error_messages() -> None:
    loop: list[Any] = []
    loop.append(loop)
    cases: list[tuple[Any, str, str]] = [
        (
            RaisesOnArray(),
            "expected `tests.unit.test_core.RaisesOnArray` to hand over its data through "
            "`__array__`, `__array_interface__` or the buffer protocol, but it failed with "
            "OSError: disk. hint: the error comes from `tests.unit.test_core.RaisesOnArray` "
            "itself; convert it with its own library's API first",
            "",
        ),
        (
            [[1.0], [1.0, 2.0]],
            "expected a scalar or a rectangular nested sequence of numbers, got `list`, from "
            "which NumPy cannot build an array (ValueError: ",
            "). hint: give nested sequences equal lengths, or convert the items one by one",
        ),
        (
            loop,
            "expected a finitely nested sequence, got `list` nested too deeply to walk "
            "(RecursionError: ",
            "). hint: a list that contains itself has no array form; NumPy arrays have at "
            "most 64 dimensions",
        ),
    ]
    for value, start, end in cases:
        with pytest.raises(interop.ConversionError) as info:
            interop.to_numpy(value)
        message = str(info.value)
        assert message.startswith(start) and message.endswith(end), message
    interop.register_backend(FailingBackend())
    try:
        with pytest.raises(interop.ConversionError) as info:
            interop.explain(_Doubled([1.0]))
    finally:
        _registry.unregister_backend("failing")
    assert str(info.value) == (
        "expected `tests.unit.test_core._Doubled` to hand over its data through the failing "
        "protocol, but it failed with KeyError: 'no plan'. hint: the error comes from "
        "`tests.unit.test_core._Doubled` itself; convert it with its own library's API first"
    )


def test_framework_errors_are_not_rewrapped() -> None:
    import torch

    # A framework backend's own documented error passes through unchanged.
    with pytest.raises(interop.ConversionError, match="meta device"):
        interop.to_numpy(torch.empty(2, device="meta"))
    with pytest.raises(interop.ConversionError, match="meta device"):
        interop.explain(torch.empty(2, device="meta"))


def test_memory_errors_are_not_rewrapped() -> None:
    class Huge:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            raise MemoryError("out of memory")

    with pytest.raises(MemoryError):
        interop.to_numpy(Huge())
    with pytest.raises(MemoryError):
        interop.explain(Huge())


def test_no_warnings_from_a_plain_conversion() -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interop.to_numpy(torch.ones(2))
        interop.to_numpy([torch.ones(2)], upcast=True)


def test_plans_are_immutable_values() -> None:
    plan = Plan(
        "fw", "cpu", False, True, ("to_host", "cast"), np.dtype(np.float64), copy_reason="x"
    )
    with pytest.raises(AttributeError, match="immutable"):
        plan.steps = ()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del plan.device
    # Equal plans compare and hash equal; what the steps reuse (prepared) is not compared.
    same = plan.replace(prepared=object())
    assert same == plan and hash(same) == hash(plan) and same.prepared is not None
    # A cast to float64 is not "no dtype" (NumPy compares float64 == None as True).
    assert plan.replace(dtype=None) != plan and plan.replace(cast_to=plan.dtype) != plan
    for field, value in [("framework", "other"), ("zero_copy", True), ("readonly", True)]:
        assert plan.replace(**{field: value}) != plan
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert repr(plan) == (
        "Plan(framework='fw', device='cpu', zero_copy=False, transfer=True, "
        "steps=('to_host', 'cast'), dtype=dtype('float64'), readonly=False, copy_reason='x', "
        "target=None)"
    )
    assert plan != ("fw", "cpu") and plan.replace() == plan and plan.replace() is not plan


def test_plans_that_compare_equal_hash_equal_whatever_the_dtype_spelling() -> None:
    # np.float32 == np.dtype("float32"), so the plans must hash alike too (they key caches).
    spelt = Plan("fw", "cpu", False, False, ("cast",), np.float32, cast_to=np.float64)
    made = Plan("fw", "cpu", False, False, ("cast",), np.dtype("float32"), cast_to=np.dtype("f8"))
    assert spelt == made and hash(spelt) == hash(made) and len({spelt, made}) == 1
    assert type(spelt.dtype) is type(np.dtype(np.float32)) and spelt.cast_to == np.float64
    assert spelt.replace(dtype="float32") == made
    assert Plan("fw", "cpu", True, False, ()).dtype is None


def test_a_pickled_plan_leaves_out_the_work_of_its_conversion() -> None:
    # prepared is one conversion's working state (here a 1 MB view of the data): not
    # part of the plan's value, so neither pickled nor compared.
    data = memoryview(bytearray(1 << 20))
    plan = _core.plan(data, _registry.get(data), DEFAULT)
    assert plan.prepared is not None
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and hash(again) == hash(plan) and again.prepared is None
    assert len(pickle.dumps(plan)) < 1000
    # A plan of convert holds its route's closures there, which no pickle can hold.
    route = plan_convert(data, "numpy")
    assert route.prepared is not None and pickle.loads(pickle.dumps(route)) == route
    # What explain hands out holds neither.
    assert interop.explain(data) == plan and interop.explain(data).prepared is None
    assert interop.explain(data, to="numpy") == route


@pytest.mark.parametrize("to", [None, "numpy", "torch"])
def test_a_plan_from_explain_holds_no_export_of_the_callers_buffer(to: str | None) -> None:
    """A kept plan (a log, a notebook's history) must not pin the object it describes.

    The protocol backends plan with a NumPy view of the object, which holds its buffer
    exported: while it lived, a bytearray could not be resized nor an mmap closed.
    """
    if to == "torch":
        pytest.importorskip("torch")
    buf = bytearray(8)
    plans = [interop.explain(buf, to=to), interop.explain(buf, to=to, copy=True)]
    if to is None:
        plans.append(interop.explain(buf, dtype=np.float32))
    assert [p.prepared for p in plans] == [None] * len(plans)
    assert plans[1].copy_reason is not None  # (a copy shares nothing, yet pinned the buffer)
    buf.extend(b"more")  # raised BufferError while a plan held a view
    assert len(buf) == 12
    m = mmap.mmap(-1, 4096)
    kept = interop.explain(m, to=to, copy=True)
    m.close()  # raised BufferError: cannot close exported pointers exist
    assert kept.prepared is None and kept.steps
    # The conversion itself still works from a fresh plan.
    assert interop.to_numpy(buf).tolist() == list(buf)


@pytest.mark.parametrize("x", [-1, [300], [[1, 2**70]]], ids=["scalar", "list", "nested"])
def test_a_number_that_overflows_the_dtype_is_named_as_such(x: Any) -> None:
    # Not as a ragged sequence, which it is not.
    with pytest.raises(interop.ConversionError, match=r"fit the dtype.*hint: ask for a wider"):
        interop.to_numpy(x, dtype=np.uint8)


def test_plans_stay_immutable_and_check_what_they_are_given() -> None:
    plan = interop.Plan("numpy", "cpu", False, False, ["copy"], copy_reason="copy=True")
    assert plan.steps == ("copy",) and hash(plan) == hash(plan.replace())
    with pytest.raises(TypeError, match=r"expected interop\.Options, got `dict`"):
        plan.check({"copy": False})  # type: ignore[arg-type]
    with pytest.raises(interop.CopyRequiredError):
        plan.check(interop.Options(copy=False))
