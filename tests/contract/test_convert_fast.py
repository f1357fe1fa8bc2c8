"""The fast path of ``interop.convert`` against the planned path it stands in for.

Under the default options ``convert`` skips planning where it can (see the fast
path in ``interop/_convert/fast.py``). Each case here converts once by the fast path and
once by the plan itself, and checks that both give the same kind of result, the same
dtype and values, the same aliasing (``np.shares_memory``), which is also what
``explain`` promises, or the same error.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import _convert
from interop._errors import retell_policy
from tests.contract.test_convert import Taker, aligned, make, native

TARGETS = ["numpy", "torch", "tensorflow", "jax"]


def _numpy_sources() -> dict[str, Callable[[], Any]]:
    def readonly() -> np.ndarray:
        a = aligned(12)
        a.flags.writeable = False
        return a

    return {
        "aligned": lambda: aligned(12).reshape(3, 4),
        "unaligned": lambda: aligned(12, offset=16).reshape(3, 4),
        "readonly": readonly,
        "reversed": lambda: aligned(12)[::-1],
        "strided": lambda: aligned(24)[::2],
        "fortran": lambda: np.asfortranarray(aligned(12).reshape(3, 4)),
        "big-endian": lambda: aligned(12).astype(">f4"),
        "zero-d": lambda: np.array(3.5, np.float32),
        "empty": lambda: np.zeros((0, 3), np.float32),
        "float64": lambda: aligned(6, np.float64),
        "int64-large": lambda: np.array([2**40, -1], np.int64),
        "int64": lambda: aligned(6, np.int64),
        "uint16": lambda: aligned(6, np.uint16),
        "bool": lambda: aligned(6, np.bool_),
        "complex64": lambda: aligned(6, np.complex64),
        "bfloat16": lambda: aligned(6, ml_dtypes.bfloat16),
        "float8": lambda: aligned(6, ml_dtypes.float8_e4m3fn),
        "scalar": lambda: np.float32(1.5),
        "subclass": lambda: np.ma.masked_array(aligned(4)),
        "structured": lambda: np.zeros(2, dtype=[("a", "f4")]),
    }


def _torch_sources() -> dict[str, Callable[[], Any]]:
    import torch

    def grad() -> Any:
        return torch.arange(4.0, requires_grad=True)

    return {
        "plain": lambda: torch.arange(6.0),
        "unaligned": lambda: torch.from_numpy(aligned(6, offset=16)),
        "grad": grad,
        "parameter": lambda: torch.nn.Parameter(torch.arange(3.0)),
        "conj": lambda: torch.tensor([1 + 2j, 3 - 1j]).conj(),
        "neg": lambda: torch.tensor([1 + 2j, 3 - 1j]).conj().imag,
        "transposed": lambda: torch.arange(6.0).reshape(2, 3).t(),
        "bfloat16": lambda: torch.arange(4.0).to(torch.bfloat16),
        "int64": lambda: torch.arange(4),
        "float64": lambda: torch.arange(4.0, dtype=torch.float64),
        "zero-d": lambda: torch.tensor(2.0),
        "sparse": lambda: torch.eye(2).to_sparse(),
    }


def _tensorflow_sources() -> dict[str, Callable[[], Any]]:
    import tensorflow as tf

    return {
        "plain": lambda: tf.range(6.0),
        "bfloat16": lambda: tf.cast(tf.range(4.0), tf.bfloat16),
        "zero-d-bfloat16": lambda: tf.constant(1.5, tf.bfloat16),
        "zero-d": lambda: tf.constant(1.5),
        "int64": lambda: tf.range(4, dtype=tf.int64),
        "string": lambda: tf.constant(["a", "b"]),
        "variable": lambda: tf.Variable([1.0, 2.0]),
    }


def _jax_sources() -> dict[str, Callable[[], Any]]:
    import jax.numpy as jnp

    return {
        "plain": lambda: jnp.arange(6.0),
        "bfloat16": lambda: jnp.arange(4.0, dtype=jnp.bfloat16),
        "int4": lambda: jnp.arange(4, dtype=jnp.int4),
        "zero-d": lambda: jnp.asarray(2.0),
        "bool": lambda: jnp.arange(4) > 1,
    }


def _other_sources() -> dict[str, Callable[[], Any]]:
    return {
        "list": lambda: [[1.0, 2.0], [3.0, 4.0]],
        "array_api_strict": lambda: make("array_api_strict", aligned(6)),
    }


SOURCES = {
    **{f"numpy-{k}": v for k, v in _numpy_sources().items()},
    **{f"torch-{k}": v for k, v in _torch_sources().items()},
    **{f"tensorflow-{k}": v for k, v in _tensorflow_sources().items()},
    **{f"jax-{k}": v for k, v in _jax_sources().items()},
    **_other_sources(),
}

LIKES: dict[str, Callable[[], Any]] = {
    "like-numpy": lambda: np.zeros(1, np.float32),
    "like-torch": lambda: make("torch", np.zeros(1, np.float32)),
    "like-tensorflow": lambda: make("tensorflow", np.zeros(1, np.float32)),
    "like-jax": lambda: make("jax", np.zeros(1, np.float32)),
    "like-array_api_strict": lambda: make("array_api_strict", np.zeros(1, np.float32)),
}


def _outcome(fn: Callable[[], Any], x: Any) -> tuple[Any, ...]:
    """What a conversion gives, in comparable terms: (kind, dtype, values, aliases x)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither path may warn where the other does not
            out = fn()
    except Exception as exc:
        return ("error", type(exc), str(exc))
    back = interop.to_numpy(out, sparse="dense")
    if back.dtype == object:
        values: Any = [np.asarray(v).tolist() for v in back]
    else:
        values = back.tolist() if back.dtype.kind != "V" else back.tobytes()
    aliases: bool | None = None  # (no memory to share: an empty array, a list, ...)
    if out is x:
        aliases = True
    elif back.size:
        with contextlib.suppress(Exception):  # no native NumPy view (lists, sparse, ...)
            aliases = bool(np.shares_memory(native(out), native(x)))
    return (type(out), back.dtype, values, aliases)


def _planned(x: Any, to: Any, like: Any) -> Any:
    """convert by its plan, with the hints convert gives (see retell_policy)."""
    try:
        return _convert._planned(x, to, like, None, None)
    except interop.ConversionError as exc:
        retell_policy(exc, "convert")
        raise


def _check(x: Any, kwargs: dict[str, Any]) -> None:
    to, like = kwargs.get("to"), kwargs.get("like")
    fast = _outcome(lambda: interop.convert(x, **kwargs), x)
    if to == "numpy" or isinstance(like, np.ndarray):
        # To NumPy, convert is the source's to_numpy, fast path included (its errors
        # too; a hint for a sparse or ragged source adds that convert has no keyword
        # for them).
        direct = _outcome(lambda: interop.to_numpy(x), x)
        if fast[0] == "error" == direct[0] and "convert_tree and iter_convert take no" in fast[2]:
            assert fast[1] is direct[1] and fast[2].startswith(direct[2])
        else:
            assert fast == direct
    assert fast == _outcome(lambda: _planned(x, to, like), x)
    if fast[0] != "error" and fast[3] is not None:
        assert fast[3] is interop.explain(x, **kwargs).zero_copy


@pytest.fixture
def planned_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the conversions that left the fast path for the planner."""
    calls: list[int] = []
    original = _convert._planned

    def counting(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(_convert, "_planned", counting)
    return calls


@pytest.mark.parametrize("dst", TARGETS + list(LIKES))
@pytest.mark.parametrize("src", list(SOURCES))
def test_fast_path_matches_the_plan(src: str, dst: str) -> None:
    x = SOURCES[src]()
    kwargs = {"like": LIKES[dst]()} if dst in LIKES else {"to": dst}
    _check(x, kwargs)
    _check(x, kwargs)  # the second call uses the routes the first made


# The common conversions the fast path must take (the second call of a pair: the
# first may plan, to learn the target's name).
FAST = [
    ("numpy-aligned", "torch"),
    ("numpy-unaligned", "torch"),
    ("numpy-readonly", "torch"),
    ("numpy-aligned", "tensorflow"),
    ("numpy-unaligned", "tensorflow"),
    ("numpy-aligned", "jax"),
    ("numpy-aligned", "like-torch"),
    ("numpy-unaligned", "like-jax"),
    ("torch-plain", "numpy"),
    ("torch-plain", "torch"),
    ("torch-plain", "tensorflow"),
    ("torch-plain", "jax"),
    ("torch-grad", "torch"),
    ("tensorflow-plain", "torch"),
    ("tensorflow-plain", "jax"),
    ("tensorflow-plain", "tensorflow"),
    ("jax-plain", "torch"),
    ("jax-plain", "tensorflow"),
    ("jax-plain", "jax"),
    ("jax-plain", "numpy"),
    ("numpy-unaligned", "jax"),
    ("numpy-readonly", "jax"),
    ("numpy-float64", "jax"),
    ("numpy-scalar", "torch"),
    ("numpy-scalar", "like-torch"),
    ("numpy-scalar", "jax"),
    ("torch-plain", "like-jax"),
    ("torch-grad", "tensorflow"),
    ("torch-unaligned", "jax"),
    ("tensorflow-plain", "numpy"),
    ("jax-bfloat16", "torch"),
]


@pytest.mark.parametrize("src,dst", FAST)
def test_common_conversions_skip_planning(src: str, dst: str, planned_calls: list[int]) -> None:
    x = SOURCES[src]()
    kwargs = {"like": LIKES[dst]()} if dst in LIKES else {"to": dst}
    interop.convert(x, **kwargs)
    del planned_calls[:]
    interop.convert(x, **kwargs)
    assert not planned_calls


def test_options_and_keywords_take_the_plan(planned_calls: list[int]) -> None:
    a = aligned(4)
    interop.convert(a, "torch")
    del planned_calls[:]
    out = interop.convert(a, "torch", copy=True)
    assert not np.shares_memory(out.numpy(), a)
    with interop.options(copy=True):
        out = interop.convert(a, "torch")
    assert not np.shares_memory(out.numpy(), a)
    interop.convert(a, "torch", device="cpu")
    assert len(planned_calls) == 3


def test_default_device_of_torch_is_followed() -> None:
    import torch

    a = aligned(4)
    interop.convert(a, "torch")
    # A default device set by a context (or torch.set_default_device) is the target,
    # as planned: here one that holds no data, which the planner refuses.
    with torch.device("meta"), pytest.raises(ValueError, match="meta"):
        interop.convert(a, "torch")
    with torch.device("cpu"):
        assert np.shares_memory(interop.convert(a, "torch").numpy(), a)
    assert np.shares_memory(interop.convert(a, "torch").numpy(), a)


def test_an_unregistered_target_name_is_not_used() -> None:
    class Toy(Taker):
        name = "toy_target"
        tag = "toy"

    interop.register_backend(Toy())
    try:
        a = aligned(4)
        assert interop.convert(a, "toy_target")[0] == "toy"
        assert interop.convert(a, "toy_target")[1] is a
    finally:
        interop._registry.unregister_backend("toy_target")
    with pytest.raises(ValueError, match="expected a framework name"):
        interop.convert(aligned(4), "toy_target")
