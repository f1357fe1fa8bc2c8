"""The scenarios: each one a job, ``interop``'s way of doing it, and the other ways.

A scenario is built only when it is selected (building imports its framework and
allocates its data), and each is named so that ``--only`` can pick it before that:
``overhead``, ``grad``, ``bf16``, ``fp8``, ``tree``, ``iter``, ``convert``,
``function``, ``import``, ``gpu``, ``arrow`` and ``ray`` each select a family. The
goals are the project's performance promises; see docs/performance.md.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import interop
from benchmarks._floors import FLOOR, floor, tree_floor
from benchmarks._frameworks import (
    NATIVE_CALLS,
    ROUTES,
    TENSORS,
    framework,
    keras_convert,
    namespace,
    shares,
)
from benchmarks._harness import Config, Goal, Scenario, Unavailable, Variant

__all__ = ["REGISTRY", "group", "select"]

Builder = Callable[[Config], Scenario]
REGISTRY: list[tuple[str, Builder]] = []

OURS = "interop.to_numpy(x)"

# The table's sections, by the first part of a scenario's name.
_GROUPS = {
    "overhead": 1,
    "options": 1,
    "large": 2,
    "bf16": 3,
    "tree": 4,
    "list": 4,
    "iter": 4,
    "ray": 4,
    "convert": 5,
    "arrow": 5,
    "function": 6,
    "import": 7,
    "gpu": 8,
}


def group(name: str) -> int:
    """The section of the table that the scenario ``name`` is printed in."""
    return _GROUPS[name.split("/")[0]]


def _register(name: str, builder: Builder) -> None:
    REGISTRY.append((name, builder))


def select(only: list[str] | None) -> list[tuple[str, Builder]]:
    """The registered scenarios whose name contains one of ``only`` (all if empty)."""
    if not only:
        return list(REGISTRY)
    return [(n, b) for n, b in REGISTRY if any(s in n for s in only)]


def _scenario(
    name: str, title: str, variants: list[Variant], goals: list[Goal], **kw: Any
) -> Scenario:
    return Scenario(name, title, group(name), variants, goals, **kw)


def _api(name: str) -> Any:
    """A public ``interop`` function that this build may not have yet."""
    fn = getattr(interop, name, None)
    if fn is None:
        raise Unavailable(f"interop.{name} is not available in this build")
    return fn


def _checked(variants: list[Variant], view: np.ndarray[Any, Any]) -> list[Variant]:
    """Run each variant once and record whether it returned a view of ``view``."""
    for v in variants:
        assert v.stmt is not None
        result = eval(v.stmt, v.ns)
        v.zero_copy = shares(result, view)
    return variants


def _same(a: Any, b: Any, what: str) -> None:
    """Fail the scenario's build unless ``a`` and ``b`` hold the same dtype, shape and bits."""
    if not (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and (a.dtype, a.shape) == (b.dtype, b.shape)
        and a.tobytes() == b.tobytes()
    ):
        raise AssertionError(f"{what}: got {a!r}, expected {b!r}")


# -- (1) per-call overhead on a 4x4 tensor ------------------------------------------------


def _per_call(
    name: str,
    title: str,
    x: Any,
    view: np.ndarray[Any, Any],
    calls: dict[str, str],
    limit: float,
    refs: tuple[str, ...] | None = None,
    inline: tuple[str, dict[str, Any]] | None = None,
    **ns_extra: Any,
) -> Scenario:
    """``to_numpy(x)`` against native calls on ``x``, each a statement by its label.

    The goal compares with the fastest of ``refs`` in each round (by default every
    call checked to be zero-copy); each of them has to return exactly what
    ``to_numpy`` returns, bit for bit, and ``to_numpy`` has to be zero-copy too.
    ``inline``: the statement of :mod:`benchmarks._floors` and its globals, shown
    for information (the contract's checks written by hand around the native call).
    """
    ns = namespace(x=x, **ns_extra)
    variants = [Variant(OURS, "to_numpy(x)", ns)]
    variants += [Variant(label, stmt, ns) for label, stmt in calls.items()]
    if inline is not None:
        variants.append(Variant(FLOOR, inline[0], namespace(x=x, **ns_extra, **inline[1])))
    _checked(variants, view)
    what = f"to_numpy / {refs[0]}" if refs else "to_numpy / fastest zero-copy native call"
    if refs is None:
        refs = tuple(v.label for v in variants[1:] if v.zero_copy and v.label != FLOOR)
    if not refs or not all(v.zero_copy for v in variants if v.label in refs):
        raise AssertionError(f"{name}: a reference is not zero-copy, or there is none")
    ours = eval("to_numpy(x)", ns)
    for ref in refs:
        _same(eval(calls[ref], ns), ours, f"{ref} differs from to_numpy")
    if not variants[0].zero_copy:
        raise AssertionError(f"to_numpy copies where {refs[0]} does not")
    goals = [
        Goal(what, "slowdown", OURS, refs, limit),
        Goal(f"to_numpy minus {refs[0]}", "overhead", OURS, (refs[0],), unit="us"),
    ]
    if inline is not None:
        _same(eval(inline[0], variants[-1].ns), ours, "the inline checks differ from to_numpy")
        goals += _floor_goals(what.removeprefix("to_numpy / "), refs)
    return _scenario(
        name,
        f"per-call overhead, {title}",
        variants,
        goals,
        notes=["reference: the fastest of the zero-copy calls, per round"] if len(refs) > 1 else [],
        clock="cpu",
    )


def _floor_goals(reference: str, refs: tuple[str, ...], ours: str = OURS) -> list[Goal]:
    """The two comparisons of the inline checks, for information: see :mod:`benchmarks._floors`."""
    return [
        Goal(f"inline checks / {reference}", "slowdown", FLOOR, refs),
        Goal("ours / inline checks", "slowdown", ours, (FLOOR,)),
    ]


def _overhead(name: str, config: Config) -> Scenario:
    fw = framework(name)
    x = fw.make(np.ones((4, 4), dtype=np.float32))
    calls = {stmt: stmt for stmt in NATIVE_CALLS[name]}
    keras = keras_convert(name) if name == "tensorflow" else None
    if keras is not None:
        calls["keras.ops.convert_to_numpy(x)"] = "keras_convert(x)"
    return _per_call(
        f"overhead/{name}",
        f"4x4 float32 {name} CPU tensor",
        x,
        fw.native(x),
        calls,
        1.3,
        inline=floor(name, x),
        keras_convert=keras,
    )


# torch's float8 dtypes; a build without one reports its scenario as unavailable.
_FP8 = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu")


def _torch_overhead(dtype: str, grad: str, config: Config) -> Scenario:
    """A 4x4 torch tensor of ``dtype``; ``grad``: "", "grad" or "parameter" (nn.Parameter)."""
    fw = framework("torch")
    import ml_dtypes
    import torch

    if not hasattr(torch, dtype):
        raise Unavailable(f"torch {torch.__version__} has no {dtype}")
    np_dtype = np.dtype(np.float32 if dtype == "float32" else getattr(ml_dtypes, dtype))
    x = fw.make(np.ones((4, 4), dtype=np_dtype))
    if grad == "parameter":
        x = torch.nn.Parameter(x)
    elif grad:
        x.requires_grad_()
    detached = "x.detach()" if grad else "x"
    if dtype == "float32":
        ref = f"{detached}.numpy()"
        calls = {ref: ref, "x.numpy(force=True)": "x.numpy(force=True)"}
    else:
        # The hand-written bit view: torch's own NumPy view of the same bytes as
        # integers, viewed as the ml_dtypes type (NumPy has no such dtype).
        bits = "torch.int16" if np_dtype.itemsize == 2 else "torch.uint8"
        ref = f"{detached}.view({bits}).numpy().view({dtype})"
        calls = {ref: ref}
    what = {
        "": "CPU tensor",
        "grad": "CPU tensor that requires grad",
        "parameter": "nn.Parameter (CPU, requires grad)",
    }
    return _per_call(
        _torch_overhead_name(dtype, grad),
        f"4x4 {dtype} torch {what[grad]}",
        x,
        fw.native(x),
        calls,
        1.3 if dtype == "float32" else 1.5,
        (ref,),
        inline=floor("torch", x, dtype, bool(grad)),
        **{dtype: np_dtype.type},
    )


def _torch_overhead_name(dtype: str, grad: str) -> str:
    short = {"float32": "", "bfloat16": "-bf16"}.get(dtype, "-fp8-" + dtype.removeprefix("float8_"))
    suffix = {"": "", "grad": "-grad", "parameter": "-grad-parameter"}[grad]
    return f"overhead/torch{short}{suffix}"


def _overhead_numpy(config: Config) -> Scenario:
    def identity(a: Any, /) -> Any:
        return a

    a = np.ones((4, 4), dtype=np.float32)
    ns = namespace(a=a, identity=identity)
    return _scenario(
        "overhead/numpy",
        "per-call overhead on a NumPy input (returned as the same object)",
        [
            Variant("interop.to_numpy(a)", "to_numpy(a)", ns, zero_copy=True),
            Variant("identity(a) (bare function)", "identity(a)", ns, zero_copy=True),
            Variant("np.asarray(a)", "np.asarray(a)", ns, zero_copy=True),
        ],
        [
            Goal(
                "to_numpy(a) minus a bare identity call",
                "overhead",
                "interop.to_numpy(a)",
                ("identity(a) (bare function)",),
                0.3,
                unit="us",
            )
        ],
        clock="cpu",
    )


_register("overhead/torch", lambda c: _overhead("torch", c))
for _dtype, _grad in [
    ("float32", "grad"),
    ("float32", "parameter"),
    *[(d, g) for d in ("bfloat16", *_FP8) for g in ("", "grad")],
]:
    _register(
        _torch_overhead_name(_dtype, _grad),
        lambda c, d=_dtype, g=_grad: _torch_overhead(d, g, c),
    )
_register("overhead/tensorflow", lambda c: _overhead("tensorflow", c))
_register("overhead/jax", lambda c: _overhead("jax", c))


def _jax_overhead(dtype: str, config: Config) -> Scenario:
    """A 4x4 JAX array of an ``ml_dtypes`` dtype, against JAX's own NumPy calls.

    JAX's buffer protocol carries NumPy's dtypes only: ``np.asarray`` of a bfloat16
    or float8 array tries it, fails, and falls back to ``__array__``.
    """
    fw = framework("jax")
    import ml_dtypes

    x = fw.make(np.ones((4, 4), dtype=getattr(ml_dtypes, dtype)))
    calls = {stmt: stmt for stmt in ("np.asarray(x)", "jax.device_get(x)")}
    return _per_call(
        _jax_overhead_name(dtype),
        f"4x4 {dtype} JAX CPU array",
        x,
        fw.native(x),
        calls,
        1.5,
    )


def _jax_overhead_name(dtype: str) -> str:
    short = "bf16" if dtype == "bfloat16" else "fp8-" + dtype.removeprefix("float8_")
    return f"overhead/jax-{short}"


for _dtype in ("bfloat16", "float8_e4m3fn"):
    _register(_jax_overhead_name(_dtype), lambda c, d=_dtype: _jax_overhead(d, c))
_register("overhead/numpy", _overhead_numpy)


def _options_call(name: str, what: str, config: Config) -> Scenario:
    """``to_numpy`` with ``copy=True`` or ``dtype=np.float64`` against the same by hand.

    Options other than the defaults take the planned path: the keywords are
    resolved, the plan is found in the cache by the tensor's signature, and its
    steps run. The hand-written call copies (or casts) the framework's own NumPy view.
    """
    fw = framework(name)
    x = fw.make(np.ones((4, 4), dtype=np.float32))
    view = "x.numpy()" if name == "torch" else "np.asarray(x)"
    if what == "copy":
        ours, ref = "to_numpy(x, copy=True)", f"{view}.copy()"
    else:
        ours, ref = "to_numpy(x, dtype=np.float64)", f"{view}.astype(np.float64)"
    ns = namespace(x=x)
    variants = [Variant(f"interop.{ours}", ours, ns), Variant(ref, ref, ns)]
    _same(eval(ours, ns), eval(ref, ns), f"{ours} differs from {ref}")
    if np.shares_memory(eval(ours, ns), fw.native(x)):
        raise AssertionError(f"{ours} shares memory with its source")
    return _scenario(
        f"options/{name}-{what}",
        f"per-call cost of {ours} on a 4x4 float32 {name} CPU tensor",
        variants,
        [Goal(f"{ours} / {ref}", "slowdown", variants[0].label, (ref,))],
        notes=["options other than the defaults: the planned path (cached per signature)"],
        clock="cpu",
    )


for _name in ("torch", "tensorflow", "jax"):
    for _what in ("copy", "cast"):
        _register(f"options/{_name}-{_what}", lambda c, n=_name, w=_what: _options_call(n, w, c))


# -- (2) a large CPU tensor, copy=None and copy=True ---------------------------------------

# A native call that copies a CPU tensor into a new NumPy array, per framework.
_NATIVE_COPY = {
    "torch": "x.detach().cpu().numpy()",
    "tensorflow": "x.numpy()",
    "jax": "np.array(x)",
}


def _large(name: str, config: Config) -> Scenario:
    fw = framework(name)
    side = int((config.large_bytes // 4) ** 0.5)
    x = fw.make(np.arange(side * side, dtype=np.float32).reshape(side, side))
    view = fw.native(x)
    ns = namespace(x=x, view=view)
    copy_label = "np.copy(view) (copying the bytes)"
    variants = [
        Variant(OURS, "to_numpy(x)", ns),
        Variant("interop.to_numpy(x, copy=True)", "to_numpy(x, copy=True)", ns),
        Variant(copy_label, "np.copy(view)", ns),
        Variant(_NATIVE_COPY[name], _NATIVE_COPY[name], ns),
    ]
    _checked(variants, view)
    mb = view.nbytes / 2**20
    return _scenario(
        f"large/{name}",
        f"{mb:.0f} MB float32 {name} CPU tensor, copy=None and copy=True",
        variants,
        [
            Goal(
                "copy=None is zero-copy (np.shares_memory)", "check", passed=variants[0].zero_copy
            ),
            Goal("copy=None vs copying the bytes", "speedup", OURS, (copy_label,), 1000),
            Goal(
                "copy=True / np.copy of the native view",
                "slowdown",
                "interop.to_numpy(x, copy=True)",
                (copy_label,),
                1.15,
            ),
        ],
        nbytes=view.nbytes,
    )


for _name in TENSORS:
    _register(f"large/{_name}", lambda c, n=_name: _large(n, c))


# -- (3) a large bfloat16 tensor -----------------------------------------------------------


def _bf16(name: str, config: Config) -> Scenario:
    fw = framework(name)
    import ml_dtypes

    x = fw.make(np.full(config.large_bytes // 2, 1.5, dtype=ml_dtypes.bfloat16))
    view = fw.native(x)
    keras = keras_convert(name)
    ns = namespace(x=x, keras_convert=keras, bfloat16=ml_dtypes.bfloat16)
    keras_label = f"keras.ops.convert_to_numpy(x) [{name} backend]"
    variants = [
        Variant(OURS + " (upcast=False)", "to_numpy(x)", ns),
        Variant("interop.to_numpy(x, upcast=True)", "to_numpy(x, upcast=True)", ns),
    ]
    if name == "torch":
        native = "x.view(torch.int16).numpy().view(bfloat16)"
        upcast = "x.float().numpy()"
    else:
        native = "np.asarray(x)"
        upcast = "np.asarray(x).astype(np.float32)"
    variants += [
        Variant(f"{native} (native, bf16)", native, ns),
        Variant(f"{upcast} (native, float32)", upcast, ns),
    ]
    notes = []
    if keras is not None:
        variants.append(Variant(keras_label, "keras_convert(x)", ns))
    else:
        notes.append("keras is not installed: the keras.ops.convert_to_numpy goal is not judged")
    _checked(variants, view)
    goals = [
        Goal("upcast=False is zero-copy (np.shares_memory)", "check", passed=variants[0].zero_copy)
    ]
    if keras is not None:
        goals.append(
            Goal(
                "upcast=False vs keras.ops.convert_to_numpy",
                "speedup",
                variants[0].label,
                (keras_label,),
                100,
            )
        )
    goals.append(
        Goal(
            "upcast=True / the native float32 upcast",
            "slowdown",
            variants[1].label,
            (variants[3].label,),
        )
    )
    mb = config.large_bytes / 2**20
    return _scenario(
        f"bf16/{name}",
        f"{mb:.0f} MB bfloat16 {name} CPU tensor, upcast=False and upcast=True",
        variants,
        goals,
        notes=notes,
    )


for _name in TENSORS:
    _register(f"bf16/{_name}", lambda c, n=_name: _bf16(n, c))


# -- (4) trees and pipelines -----------------------------------------------------------------


def _quick_rounds(config: Config) -> int | None:
    # One call of these takes milliseconds, so in quick mode a round times it only
    # once or twice; more rounds keep one disturbed round from setting the median.
    return 15 if config.quick else None


def _tree(name: str, grad: bool, config: Config) -> Scenario:
    fw = framework(name)
    to_numpy_tree = _api("to_numpy_tree")
    w = np.ones((4, 4), dtype=np.float32)
    b = np.ones(4, dtype=np.float32)
    tree = {f"layer{i}": {"weight": fw.make(w), "bias": fw.make(b)} for i in range(500)}
    leaf = fw.native_stmt
    if grad:
        for layer in tree.values():
            for t in layer.values():
                t.requires_grad_()
        leaf = "x.detach().numpy()"
    ns = namespace(tree=tree, to_numpy_tree=to_numpy_tree)
    hand = f"hand-written loop of {leaf}"
    variants = [
        Variant("interop.to_numpy_tree(tree)", "to_numpy_tree(tree)", ns),
        Variant(hand, f"{{k: {{n: {leaf} for n, x in d.items()}} for k, d in tree.items()}}", ns),
    ]
    goals = [Goal("to_numpy_tree / hand-written loop", "slowdown", variants[0].label, (hand,), 1.2)]
    inline, checks = tree_floor(name, tree, grad)
    variants.append(Variant(FLOOR, inline, {**ns, **checks}))
    goals += _floor_goals("hand-written loop", (hand,), variants[0].label)
    keras = keras_convert(name)
    if keras is not None:
        import keras as keras_module

        ns["keras"] = keras_module
        ns["keras_convert"] = keras
        keras_label = f"keras.tree.map_structure(keras.ops.convert_to_numpy, tree) [{name} backend]"
        variants.append(Variant(keras_label, "keras.tree.map_structure(keras_convert, tree)", ns))
        goals.append(
            Goal(
                "to_numpy_tree vs keras.tree.map_structure",
                "speedup",
                variants[0].label,
                (keras_label,),
            )
        )
    if name == "jax":
        variants.append(Variant("jax.device_get(tree)", "jax.device_get(tree)", ns))
        goals.append(
            Goal(
                "to_numpy_tree vs jax.device_get",
                "speedup",
                variants[0].label,
                ("jax.device_get(tree)",),
                3,
            )
        )
    view = fw.native(tree["layer0"]["weight"])
    for v in variants:
        assert v.stmt is not None
        leaf_out = eval(v.stmt, v.ns)["layer0"]["weight"]
        v.zero_copy = shares(leaf_out, view)
        _same(np.asarray(leaf_out), view, f"{v.label}: a leaf")
    notes = ["zero-copy: checked on one leaf"]
    if name == "jax":
        notes.append(
            "a JAX array keeps the NumPy view made by its first conversion, so every "
            "variant converts arrays seen before (a fresh array costs each variant more)"
        )
    return _scenario(
        f"tree/{name}{'-grad' if grad else ''}",
        f"1,000-leaf dict of small {name} CPU tensors{' that require grad' if grad else ''}",
        variants,
        goals,
        rounds=_quick_rounds(config),
        notes=notes,
    )


for _name in TENSORS:
    _register(f"tree/{_name}", lambda c, n=_name: _tree(n, False, c))
_register("tree/torch-grad", lambda c: _tree("torch", True, c))


def _list(grad: bool, config: Config) -> Scenario:
    fw = framework("torch")
    rng = np.random.default_rng(0)
    items = [fw.make(rng.standard_normal((4, 4), dtype=np.float32)) for _ in range(100)]
    leaf = "x.numpy()"
    if grad:
        for t in items:
            t.requires_grad_()
        leaf = "x.detach().numpy()"
    ns = namespace(items=items)
    loop = f"np.stack([{leaf} for x in items])"
    stack = f"torch.stack(items){'.detach()' if grad else ''}.numpy()"
    variants = [
        Variant("interop.to_numpy(items)", "to_numpy(items)", ns),
        Variant(loop, loop, ns),
        Variant(stack, stack, ns),
    ]
    goals = [
        Goal("to_numpy / hand-written loop", "slowdown", variants[0].label, (loop,), 1.3),
        Goal("to_numpy / torch.stack", "slowdown", variants[0].label, (stack,)),
    ]
    for v in variants:
        assert v.stmt is not None
        _same(eval(v.stmt, v.ns), eval(loop, ns), f"{v.label}: the array")
    return _scenario(
        f"list/torch{'-grad' if grad else ''}",
        f"a list of 100 4x4 float32 torch CPU tensors{' that require grad' if grad else ''}",
        variants,
        goals,
        notes=["a new array in every variant: a list has no memory of its own to share"],
    )


_register("list/torch", lambda c: _list(False, c))
_register("list/torch-grad", lambda c: _list(True, c))


def _samples() -> dict[str, np.ndarray[Any, Any]]:
    """The data of the pipelines: features and labels, 16 batches of 32.

    A pass takes a few milliseconds, so that a round keeps the fastest of several
    passes, as for every other scenario: a pass of tens of milliseconds on a busy
    machine is nearly always interrupted, which adds noise and no information.
    """
    n = 32 * 16
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((n, 64), dtype=np.float32),
        "y": np.arange(n, dtype=np.int64),
    }


def _iter_variants(source: str, leaf: str, ns: dict[str, Any]) -> list[Variant]:
    """``iter_numpy`` over ``source`` (prefetch 1 and 0) and the hand-written loop.

    ``leaf`` is the native call that the hand-written loop applies to each tensor
    ``v`` of a dict batch.
    """
    ns["iter_numpy"] = _api("iter_numpy")
    return [
        Variant(
            f"for b in interop.iter_numpy({source}): pass",
            f"for b in iter_numpy({source}):\n    pass",
            ns,
        ),
        Variant(
            f"... iter_numpy({source}, prefetch=0)",
            f"for b in iter_numpy({source}, prefetch=0):\n    pass",
            ns,
        ),
        Variant(
            f"for b in {source}: {{k: {leaf} for k, v in b.items()}}",
            f"for b in {source}:\n    b = {{k: {leaf} for k, v in b.items()}}",
            ns,
        ),
    ]


def _pipeline_goals(variants: list[Variant], refs: tuple[str, ...], what: str) -> list[Goal]:
    """The same goal for the default prefetch and for ``prefetch=0``."""
    ours, eager = variants[0].label, variants[1].label
    return [
        Goal(f"iter_numpy / {what}", "slowdown", ours, refs, 1.3),
        Goal(f"iter_numpy(prefetch=0) / {what}", "slowdown", eager, refs, 1.3),
    ]


def _iter_dataloader(config: Config) -> Scenario:
    framework("torch")
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Samples(Dataset[dict[str, Any]]):
        """A map-style dataset of dict samples, batched by the default collate."""

        def __init__(self, data: dict[str, np.ndarray[Any, Any]]) -> None:
            self.tensors = {k: torch.from_numpy(v) for k, v in data.items()}
            self.n = len(data["x"])

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {k: t[i] for k, t in self.tensors.items()}

    loader = DataLoader(Samples(_samples()), batch_size=32)
    ns = namespace(loader=loader)
    variants = _iter_variants("loader", "v.numpy()", ns)
    variants.append(
        Variant("for b in loader: pass (the loader alone)", "for b in loader:\n    pass", ns)
    )
    return _scenario(
        "iter/dataloader",
        f"iter_numpy over a torch DataLoader ({len(loader)} dict batches of 32)",
        variants,
        _pipeline_goals(variants, (variants[2].label,), "hand-written loop"),
        rounds=_quick_rounds(config),
        notes=[
            "the same loader, the same batches, one process (num_workers=0); "
            "iter/collated times the conversion without the loader"
        ],
    )


def _iter_collated(config: Config) -> Scenario:
    # The batches a DataLoader yields, taken once and kept: what iter_numpy adds
    # per batch, which the loader's own work hides in iter/dataloader.
    framework("torch")
    import torch

    data = _samples()
    batches = [
        {k: torch.from_numpy(v[i : i + 32]) for k, v in data.items()}
        for i in range(0, len(data["x"]), 32)
    ]
    ns = namespace(batches=batches)
    variants = _iter_variants("batches", "v.numpy()", ns)
    ours, hand = variants[0].label, variants[2].label
    return _scenario(
        "iter/collated",
        f"iter_numpy over {len(batches)} collated torch dict batches in a list (no loader)",
        variants,
        [
            Goal("iter_numpy / hand-written loop, conversion alone", "slowdown", ours, (hand,)),
            Goal(
                "iter_numpy minus hand-written loop, per batch",
                "overhead",
                ours,
                (hand,),
                unit="us",
                per=len(batches),
            ),
        ],
        rounds=_quick_rounds(config),
        notes=["no goal of its own: it shows the cost per batch that iter/dataloader includes"],
    )


def _iter_tf_data(config: Config) -> Scenario:
    framework("tensorflow")
    import tensorflow as tf

    # Autotuning off: this pipeline has nothing to tune, and on a busy machine its
    # bookkeeping makes a pass take either about 5 or about 20 ms, at random, which
    # buries what is measured here. Every variant iterates this same dataset.
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = tf.data.Dataset.from_tensor_slices(_samples()).batch(32).with_options(options)
    ns = namespace(ds=ds)
    variants = _iter_variants("ds", "np.asarray(v)", ns)
    native = "for b in ds.as_numpy_iterator(): pass"
    variants += [
        Variant(native, "for b in ds.as_numpy_iterator():\n    pass", ns),
        Variant("for b in ds: pass (the dataset alone)", "for b in ds:\n    pass", ns),
    ]
    return _scenario(
        "iter/tf.data",
        f"iter_numpy over a tf.data.Dataset ({len(ds)} dict batches of 32)",
        variants,
        _pipeline_goals(
            variants,
            (variants[2].label, native),
            "fastest of hand-written loop and as_numpy_iterator",
        ),
        rounds=_quick_rounds(config),
        notes=["tf.data autotuning off (nothing to tune here): the same dataset for every variant"],
    )


_register("iter/dataloader", _iter_dataloader)
_register("iter/collated", _iter_collated)
_register("iter/tf.data", _iter_tf_data)


# -- (5) convert between frameworks ------------------------------------------------------------


# The alignment that TensorFlow's and JAX's allocators give their own arrays.
_ALIGN = 64


def _aligned_source(name: str, values: np.ndarray[Any, Any]) -> Any:
    """An array of framework ``name`` holding ``values``, its memory ``_ALIGN``-aligned.

    TensorFlow, JAX and ``interop`` alias host memory only where it is aligned
    for them, and NumPy's allocator aligns small arrays to 16 bytes only: a source
    at NumPy's address would be zero-copy in one run and copied in the next.
    TensorFlow and JAX copy into memory of their own; a NumPy or torch source is a
    view of an aligned NumPy buffer, made with the zero-copy route from NumPy.
    """
    fw = framework(name)
    if fw.immutable:
        x = fw.make(values)
    else:
        buf = np.empty(values.nbytes + _ALIGN, dtype=np.uint8)
        start = -buf.ctypes.data % _ALIGN
        a = buf[start : start + values.nbytes].view(values.dtype).reshape(values.shape)
        a[...] = values
        x = a if name == "numpy" else eval(ROUTES["numpy", name][0], namespace(x=a))
    if fw.native(x).ctypes.data % _ALIGN:
        raise AssertionError(f"the {name} source is not {_ALIGN}-byte aligned")
    return x


def _convert(src: str, dst: str, side: int, limit: float | None) -> Scenario:
    """``interop.convert`` of a ``side`` x ``side`` float32 array against the native routes.

    Each route is run once first: its result must be the target's array type and
    hold the source's values, and a route that hands out a writable alias of memory
    its source framework treats as immutable (which the contract forbids) is timed
    for scale but is not a reference. The goal compares with the fastest of the
    remaining, safe routes in each round.
    """
    s = framework(src)
    d = framework(dst)
    convert = _api("convert")
    values = np.arange(side * side, dtype=np.float32).reshape(side, side)
    x = _aligned_source(src, values)
    # A JAX result is ready only once its computation has run: every variant that
    # makes one waits for it, and the source is ready before any timing.
    sync = ".block_until_ready()" if dst == "jax" else ""
    if src == "jax":
        x.block_until_ready()
    ns = namespace(x=x, convert=convert)
    target = type(d.make(values))
    source = s.native(x)
    ours = f"interop.convert(x, to={dst!r})"
    variants = [Variant(ours, f"convert(x, to={dst!r}){sync}", ns)]
    safe: list[str] = []
    notes: list[str] = []
    for route in [f"convert(x, to={dst!r})", *ROUTES[src, dst]]:
        try:
            result = eval(route, ns)
        except Exception as exc:  # a route that this build of the frameworks lacks
            notes.append(f"{route} fails here: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        if not isinstance(result, target):
            raise AssertionError(f"{route} returned {type(result).__name__}, not {target}")
        out = d.native(result)
        _same(out, values, f"{route}: the values")
        zero_copy = bool(np.shares_memory(out, source))
        unsafe = zero_copy and s.immutable and out.flags.writeable
        if route.startswith("convert("):
            if unsafe:
                raise AssertionError(f"{ours} is a writable alias of {src}'s immutable memory")
            variants[0].zero_copy = zero_copy
            continue
        label = route + (" (unsafe: writable alias of immutable memory)" if unsafe else "")
        variants.append(Variant(label, route + sync, ns, zero_copy=zero_copy))
        if not unsafe:
            safe.append(label)
    if not safe:
        raise Unavailable(f"no safe native route from {src} to {dst} works here")
    shared = ", ".join(
        f"{v.label.split(' (')[0]} {'yes' if v.zero_copy else 'no'}" for v in variants
    )
    notes.append(f"zero-copy (np.shares_memory with the source): {shared}")
    if sync:
        notes.append("JAX results are timed until .block_until_ready()")
    notes.append(f"the source's memory is {_ALIGN}-byte aligned")
    size = "" if limit is not None else "large/"
    return _scenario(
        f"convert/{size}{src}->{dst}",
        f"convert a {side}x{side} float32 array from {src} to {dst}",
        variants,
        [Goal("convert / fastest safe native route", "slowdown", ours, tuple(safe), limit)],
        notes=notes,
    )


for _src in ("numpy", *TENSORS):
    for _dst in ("numpy", *TENSORS):
        if _src != _dst:
            _register(f"convert/{_src}->{_dst}", lambda c, s=_src, d=_dst: _convert(s, d, 4, 1.3))
for _src in TENSORS:
    for _dst in TENSORS:
        if _src != _dst:
            _register(
                f"convert/large/{_src}->{_dst}",
                lambda c, s=_src, d=_dst: _convert(s, d, 64 if c.quick else 512, None),
            )


# -- (6) the numpy_function decorator -----------------------------------------------------------


def _mse(a: Any, b: Any) -> Any:
    return np.mean((a - b) ** 2)


def _function(config: Config) -> Scenario:
    fw = framework("torch")
    numpy_function = _api("numpy_function")
    convert = _api("convert")
    to_numpy = interop.to_numpy

    def mse_to(a: Any, b: Any) -> Any:
        return convert(_mse(to_numpy(a), to_numpy(b)), to="torch")

    def mse_like(a: Any, b: Any) -> Any:
        return convert(_mse(to_numpy(a), to_numpy(b)), like=a)

    rng = np.random.default_rng(0)
    a, b = (fw.make(rng.standard_normal((4, 4), dtype=np.float32)) for _ in range(2))
    a.requires_grad_()
    b.requires_grad_()
    ns = namespace(a=a, b=b, mse=numpy_function(_mse), mse_to=mse_to, mse_like=mse_like)
    ours = "@numpy_function mse(a, b)"
    by_hand = {
        "by hand: convert(mse(to_numpy(a), to_numpy(b)), to='torch')": "mse_to(a, b)",
        "by hand: convert(mse(to_numpy(a), to_numpy(b)), like=a)": "mse_like(a, b)",
    }
    torch_label = "((a - b) ** 2).mean() in torch (with autograd)"
    variants = [Variant(ours, "mse(a, b)", ns)]
    variants += [Variant(label, stmt, ns) for label, stmt in by_hand.items()]
    variants.append(Variant(torch_label, "((a - b) ** 2).mean()", ns))
    expected = fw.native(eval("mse_to(a, b)", ns))
    for v in variants[:3]:
        assert v.stmt is not None
        result = eval(v.stmt, ns)
        if result.requires_grad:
            raise AssertionError(f"{v.label} requires grad")
        _same(fw.native(result), expected, v.label)
    return _scenario(
        "function/torch-grad",
        "@numpy_function call: mean squared error of two 4x4 float32 torch tensors "
        "that require grad, returning a torch tensor",
        variants,
        [
            Goal(
                "numpy_function / the same function by hand",
                "slowdown",
                ours,
                tuple(by_hand),
                1.3,
            ),
            Goal(
                "numpy_function minus the same function by hand",
                "overhead",
                ours,
                (variants[1].label,),
                unit="us",
            ),
        ],
        notes=["reference: the faster of the two hand-written functions, per round"],
        clock="cpu",
    )


_register("function/torch-grad", _function)


# -- (7) import time -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


_PYCACHE = tempfile.mkdtemp(prefix="interop-bench-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, ignore_errors=True)


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a fresh interpreter with ``args`` on this checkout; its output, as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Imports are timed with their bytecode cached, as after an install (which
    # compiles it), not compiling the sources each time. The cache goes to a
    # temporary folder, never into the checkout.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )


def _import_seconds(before: str, statement: str) -> float:
    """The CPU time of ``statement`` in a fresh interpreter, after running ``before``.

    CPU time, because on a busy machine the elapsed time also counts the time other
    processes held the CPU; the time of the main thread only, because NumPy's BLAS
    starts threads of its own whose start-up is not this import's cost.
    """
    code = (
        f"{before}\nimport time\nt = time.thread_time()\n{statement}\nprint(time.thread_time() - t)"
    )
    return float(_python("-c", code).stdout.strip().splitlines()[-1])


def _importtime_note() -> str:
    for line in _python("-X", "importtime", "-c", "import numpy, interop").stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "interop":
            ms = int(parts[1]) / 1000
            return f"-X importtime (elapsed): interop and what it imports take {ms:.1f} ms"
    return "-X importtime: interop not found in the report"


def _heavy_modules_note() -> str:
    code = (
        "import sys, numpy, interop; "
        "print(','.join(m for m in ('torch', 'tensorflow', 'jax', 'ml_dtypes', "
        "'array_api_compat') if m in sys.modules))"
    )
    found = _python("-c", code).stdout.strip()
    return f"imported by `import interop`: {found or 'no framework, no ml_dtypes'}"


def _imports(config: Config) -> Scenario:
    ours = "import interop (after import numpy)"
    numpy = "import numpy"
    _import_seconds("", "import numpy, interop")  # compiles and caches the bytecode
    # One fresh interpreter per variant and round: the goal is the median of them.
    rounds = 7 if config.quick else 20
    return _scenario(
        "import",
        "import time (CPU time) in a fresh interpreter",
        [
            Variant(ours, measure=lambda: _import_seconds("import numpy", "import interop")),
            Variant(numpy, measure=lambda: _import_seconds("", "import numpy")),
        ],
        [Goal("time added to `import numpy`", "time", ours, (), 10, unit="ms")],
        notes=[
            f"the median of {rounds} fresh interpreters; bytecode cached, as after an install",
            _importtime_note(),
            _heavy_modules_note(),
        ],
        rounds=rounds,
        clock="cpu",
    )


_register("import", _imports)


# -- (8) GPU ------------------------------------------------------------------------------------
#
# Every variant of a GPU scenario hands back host data that is complete when its
# statement ends (a blocking copy, or an asynchronous one that was waited for), and
# every variant copies into memory allocated by that call: the comparisons are of
# like with like. A preallocated buffer reused by every call is not a reference
# (its result would be overwritten by the next call). Each builder raises
# Unavailable where its framework or a GPU is missing, and checks bit for bit that
# every variant returns the source's values before any timing.

# The hand-written asynchronous copy: a new pinned buffer, a non-blocking copy into
# it on the current stream, and a wait for that stream.
_PINNED_COPY = (
    "p = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)\n"
    "p.copy_(x, non_blocking=True)\n"
    "torch.cuda.current_stream().synchronize()\n"
    "r = p.numpy()"
)
_PINNED_LABEL = "new pinned buffer, copy_(x, non_blocking=True), stream sync"


def _cuda() -> Any:
    """torch, where it is installed and sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("torch is not installed")
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("no CUDA device")
    return torch


def _release_cuda() -> None:
    """Teardown: hand torch's cached device blocks back, for the scenarios that follow."""
    torch = sys.modules["torch"]
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def _run(stmt: str, ns: dict[str, Any], result: str = "r") -> Any:
    """Run a timed statement once, outside the timing, and return its ``result``."""
    scope = dict(ns)
    exec(stmt, scope)
    return scope[result]


def _gpu_d2h(name: str, n: int, config: Config) -> Scenario:
    """``to_numpy`` of one CUDA tensor of ``n`` float32 values against the native copies."""
    torch = _cuda()
    x = torch.arange(n, dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    ns = namespace(x=x)
    cpu = "x.cpu().numpy()"
    variants = [
        Variant(OURS, "r = to_numpy(x)", ns),
        Variant(f"{cpu} (blocking copy into new pageable memory)", f"r = {cpu}", ns),
        Variant(_PINNED_LABEL, _PINNED_COPY, ns),
        Variant("x.numpy(force=True)", "r = x.numpy(force=True)", ns),
    ]
    expected = np.arange(n, dtype=np.float32)
    for v in variants:
        assert v.stmt is not None
        _same(np.asarray(_run(v.stmt, ns)), expected, v.label)
        v.zero_copy = False
    refs = (variants[1].label, _PINNED_LABEL)
    size = f"{n * 4 >> 20} MB" if n * 4 >= 1 << 20 else f"{n * 4} bytes"
    return _scenario(
        name,
        f"device-to-host copy of a {size} float32 CUDA tensor ({torch.cuda.get_device_name()})",
        variants,
        [
            Goal(
                "to_numpy / fastest native copy into new memory",
                "slowdown",
                OURS,
                refs,
                1.1 if n * 4 >= 1 << 20 else 1.3,
            ),
            Goal(f"to_numpy / {cpu}", "slowdown", OURS, (refs[0],)),
            Goal("to_numpy / pinned non_blocking copy", "slowdown", OURS, (refs[1],)),
        ],
        notes=[
            "every variant copies into memory allocated by the call and returns complete data",
            "reference: the faster of the blocking and the pinned asynchronous copy, per round",
        ],
        nbytes=n * 4 if n * 4 >= 1 << 20 else None,
        teardown=_release_cuda,
    )


_TREE_LEAVES = 256


def _gpu_tree(name: str, leaf_values: int, config: Config) -> Scenario:
    """``to_numpy_tree`` of 256 CUDA tensors against per-leaf and hand-batched copies."""
    torch = _cuda()
    to_numpy_tree = _api("to_numpy_tree")
    tree = {
        f"t{i}": torch.arange(leaf_values, dtype=torch.float32, device="cuda") + i
        for i in range(_TREE_LEAVES)
    }
    torch.cuda.synchronize()
    ns = namespace(tree=tree, to_numpy_tree=to_numpy_tree)
    loop = "{k: v.cpu().numpy() for k, v in tree.items()}"
    loop_label = f"per-leaf loop {loop}"
    batched_label = "hand-written: every leaf into a new pinned buffer (non_blocking), one sync"
    batched = (
        "p = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True).copy_(v, non_blocking=True)"
        " for k, v in tree.items()}\n"
        "torch.cuda.current_stream().synchronize()\n"
        "r = {k: t.numpy() for k, t in p.items()}"
    )
    ours = "interop.to_numpy_tree(tree)"
    variants = [
        Variant(ours, "r = to_numpy_tree(tree)", ns),
        Variant(loop_label, f"r = {loop}", ns),
        Variant(batched_label, batched, ns),
    ]
    expected = np.arange(leaf_values, dtype=np.float32)
    for v in variants:
        assert v.stmt is not None
        out = _run(v.stmt, ns)
        for i in (0, _TREE_LEAVES - 1):
            _same(np.asarray(out[f"t{i}"]), expected + np.float32(i), f"{v.label}: leaf t{i}")
        v.zero_copy = False
    leaf = leaf_values * 4
    size = f"{leaf >> 10} KB" if leaf >= 1 << 10 else f"{leaf} bytes"
    small = leaf_values <= 1024
    return _scenario(
        name,
        f"{_TREE_LEAVES}-leaf dict of {size} CUDA tensors ({torch.cuda.get_device_name()})",
        variants,
        [
            Goal(
                "to_numpy_tree vs the per-leaf .cpu().numpy() loop",
                "speedup",
                ours,
                (loop_label,),
                1.5 if small else None,
            ),
            Goal(
                "to_numpy_tree / hand-written batched pinned copies",
                "slowdown",
                ours,
                (batched_label,),
                1.2,
            ),
        ],
        notes=["every variant returns complete data; checked on the first and the last leaf"],
        nbytes=leaf * _TREE_LEAVES,
        rounds=_quick_rounds(config),
        teardown=_release_cuda,
    )


def _busy(seconds: float) -> Callable[[Any], None]:
    """The consumer's work on one batch: ``seconds`` of CPU time on the calling thread."""

    def work(batch: Any) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return work


def _gpu_iter(config: Config) -> Scenario:
    """``iter_numpy`` over CUDA batches with a consumer that works on each batch.

    Prefetching starts the copies of the next batch before the current one is
    handed out, so they run while the consumer works: the gain is the wall time of
    a pass with ``prefetch=1`` against ``prefetch=0``. The consumer's work per batch
    is set to the measured time of one batch's conversion, where full overlap would
    nearly halve the pass.
    """
    torch = _cuda()
    iter_numpy = _api("iter_numpy")
    to_numpy_tree = _api("to_numpy_tree")
    n_batches = 16
    rows = 256 if config.quick else 2048
    gen = torch.Generator(device="cuda").manual_seed(0)
    batches = [
        {
            "x": torch.randn(rows, 1024, device="cuda", generator=gen),
            "y": torch.arange(rows, device="cuda") + i * rows,
        }
        for i in range(n_batches)
    ]
    torch.cuda.synchronize()
    for i in (0, n_batches - 1):
        got = to_numpy_tree(batches[i])
        _same(got["x"], batches[i]["x"].cpu().numpy(), f"batch {i}: x")
        _same(got["y"], batches[i]["y"].cpu().numpy(), f"batch {i}: y")
    timings = []
    for _ in range(7):
        start = time.perf_counter()
        to_numpy_tree(batches[n_batches // 2])
        timings.append(time.perf_counter() - start)
    copy_s = min(timings)
    work = _busy(copy_s)
    ns = namespace(batches=batches, iter_numpy=iter_numpy, work=work)
    prefetch = "iter_numpy(batches) (prefetch=1) + work"
    eager = "iter_numpy(batches, prefetch=0) + work"
    hand = "hand-written .cpu().numpy() per tensor + work"
    alone = "the work alone (no copy)"
    variants = [
        Variant(prefetch, "for b in iter_numpy(batches):\n    work(b)", ns),
        Variant(eager, "for b in iter_numpy(batches, prefetch=0):\n    work(b)", ns),
        Variant(
            hand,
            "for b in batches:\n    work({k: v.cpu().numpy() for k, v in b.items()})",
            ns,
        ),
        Variant(alone, "for b in batches:\n    work(b)", ns),
        Variant(
            "iter_numpy(batches, prefetch=0), no work (the copies alone)",
            "for b in iter_numpy(batches, prefetch=0):\n    pass",
            ns,
        ),
    ]
    for v in variants:
        v.zero_copy = False
    batch_mb = rows * 1024 * 4 / 2**20
    return _scenario(
        "gpu/iter",
        f"iter_numpy over {n_batches} CUDA dict batches of {batch_mb:.0f} MB "
        f"with {copy_s * 1e3:.2g} ms of consumer work per batch ({torch.cuda.get_device_name()})",
        variants,
        [
            Goal("prefetch=1 vs prefetch=0 (overlap)", "speedup", prefetch, (eager,), 1.3),
            Goal("iter_numpy vs the hand-written loop", "speedup", prefetch, (hand,)),
            Goal(
                "iter_numpy minus the work alone, per batch (copy time not hidden)",
                "overhead",
                prefetch,
                (alone,),
                unit="ms",
                per=n_batches,
            ),
        ],
        notes=[
            f"the consumer spins {copy_s * 1e3:.3g} ms per batch, the fastest of 7 "
            "conversions of one batch: full overlap would nearly halve a prefetch=0 pass",
        ],
        rounds=_quick_rounds(config),
        teardown=_release_cuda,
    )


def _jax_gpu() -> Any:
    """jax, where it is installed and its default backend is a GPU."""
    if importlib.util.find_spec("jax") is None:
        raise Unavailable("jax is not installed")
    import jax

    backend = jax.default_backend()
    if backend != "gpu":
        raise Unavailable(f"jax has no GPU (its default backend is {backend})")
    return jax


def _gpu_jax(config: Config) -> Scenario:
    """``to_numpy`` of a JAX GPU array against ``np.asarray`` and ``jax.device_get``.

    A JAX array keeps the host copy made by its first conversion, so every variant
    converts a fresh array: a device-side copy of the source (``y = x.copy()``),
    the same in every variant and timed alone for scale.
    """
    jax = _jax_gpu()
    n = (16 << 20 if config.quick else 256 << 20) // 4
    x = jax.device_put(np.arange(n, dtype=np.float32), jax.devices("gpu")[0])
    x.block_until_ready()
    ns = namespace(x=x)
    fresh = "y = x.copy()\n"
    ours = "y = x.copy(); interop.to_numpy(y)"
    refs = ("y = x.copy(); np.asarray(y)", "y = x.copy(); jax.device_get(y)")
    variants = [
        Variant(ours, fresh + "r = to_numpy(y)", ns),
        Variant(refs[0], fresh + "r = np.asarray(y)", ns),
        Variant(refs[1], fresh + "r = jax.device_get(y)", ns),
        Variant(
            "y = x.copy(); y.block_until_ready() (the fresh copy alone)",
            fresh + "r = y.block_until_ready()",
            ns,
        ),
    ]
    expected = np.arange(n, dtype=np.float32)
    for v in variants[:3]:
        assert v.stmt is not None
        _same(np.asarray(_run(v.stmt, ns)), expected, v.label)
    for v in variants:
        v.zero_copy = False
    return _scenario(
        "gpu/jax",
        f"device-to-host copy of a {n * 4 >> 20} MB float32 JAX array on {x.devices().pop()}",
        variants,
        [Goal("to_numpy / fastest of np.asarray and jax.device_get", "slowdown", ours, refs, 1.1)],
        notes=["each call converts a fresh device copy of x (a JAX array caches its host copy)"],
        nbytes=n * 4,
    )


def _gpu_jax_tree(config: Config) -> Scenario:
    """``to_numpy_tree`` of 256 JAX GPU arrays against ``jax.device_get`` of the tree."""
    jax = _jax_gpu()
    to_numpy_tree = _api("to_numpy_tree")
    gpu = jax.devices("gpu")[0]
    leaf_values = 256
    tree = {
        f"t{i}": jax.device_put(np.arange(leaf_values, dtype=np.float32) + i, gpu)
        for i in range(_TREE_LEAVES)
    }
    jax.block_until_ready(tree)
    ns = namespace(tree=tree, to_numpy_tree=to_numpy_tree)
    fresh = "y = {k: v.copy() for k, v in tree.items()}\n"
    ours = "fresh copies; interop.to_numpy_tree(y)"
    get = "fresh copies; jax.device_get(y)"
    loop = "fresh copies; {k: np.asarray(v) for k, v in y.items()}"
    variants = [
        Variant(ours, fresh + "r = to_numpy_tree(y)", ns),
        Variant(get, fresh + "r = jax.device_get(y)", ns),
        Variant(loop, fresh + "r = {k: np.asarray(v) for k, v in y.items()}", ns),
        Variant("fresh copies alone", fresh + "r = jax.block_until_ready(y)", ns),
    ]
    expected = np.arange(leaf_values, dtype=np.float32)
    for v in variants[:3]:
        assert v.stmt is not None
        out = _run(v.stmt, ns)
        _same(np.asarray(out["t7"]), expected + np.float32(7), f"{v.label}: leaf t7")
    for v in variants:
        v.zero_copy = False
    return _scenario(
        "gpu/jax-tree",
        f"{_TREE_LEAVES}-leaf dict of 1 KB JAX arrays on {gpu}",
        variants,
        [
            Goal("to_numpy_tree / jax.device_get", "slowdown", ours, (get,), 1.2),
            Goal("to_numpy_tree vs the per-leaf np.asarray loop", "speedup", ours, (loop,)),
        ],
        notes=["each call converts fresh device copies of the leaves (JAX caches host copies)"],
        rounds=_quick_rounds(config),
    )


def _gpu_cupy(config: Config) -> Scenario:
    """``to_numpy`` of a CuPy array against ``x.get()`` and ``cupy.asnumpy``."""
    if importlib.util.find_spec("cupy") is None:
        raise Unavailable("cupy is not installed")
    import cupy

    if not cupy.cuda.is_available():
        raise Unavailable("no CUDA device")
    n = (16 << 20 if config.quick else 256 << 20) // 4
    x = cupy.arange(n, dtype=cupy.float32)
    cupy.cuda.Device().synchronize()
    ns = namespace(x=x, cupy=cupy)
    refs = ("x.get()", "cupy.asnumpy(x)")
    variants = [Variant(OURS, "r = to_numpy(x)", ns)]
    variants += [Variant(ref, f"r = {ref}", ns) for ref in refs]
    expected = np.arange(n, dtype=np.float32)
    for v in variants:
        assert v.stmt is not None
        _same(np.asarray(_run(v.stmt, ns)), expected, v.label)
        v.zero_copy = False

    def release() -> None:
        cupy.cuda.Device().synchronize()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()

    return _scenario(
        "gpu/cupy",
        f"device-to-host copy of a {n * 4 >> 20} MB float32 CuPy array",
        variants,
        [Goal("to_numpy / fastest of x.get() and cupy.asnumpy", "slowdown", OURS, refs, 1.1)],
        nbytes=n * 4,
        teardown=release,
    )


_register("gpu/d2h", lambda c: _gpu_d2h("gpu/d2h", (16 << 20 if c.quick else 256 << 20) // 4, c))
_register("gpu/d2h-small", lambda c: _gpu_d2h("gpu/d2h-small", 16, c))
_register("gpu/tree", lambda c: _gpu_tree("gpu/tree", 256, c))
_register(
    "gpu/tree-large",
    lambda c: _gpu_tree("gpu/tree-large", (4 << 10 if c.quick else 256 << 10), c),
)
_register("gpu/iter", _gpu_iter)
_register("gpu/cupy", _gpu_cupy)
_register("gpu/jax", _gpu_jax)
_register("gpu/jax-tree", _gpu_jax_tree)


# -- (9) Arrow columns and Ray Data pipelines ---------------------------------------------------


def _arrow_convert(name: str, config: Config) -> Scenario:
    """``interop.convert(x, "arrow")`` of a large tensor: wraps its memory, copies nothing."""
    if importlib.util.find_spec("pyarrow") is None:
        raise Unavailable("pyarrow is not installed")
    import pyarrow as pa

    fw = framework(name)
    side = int((config.large_bytes // 4) ** 0.5)
    x = fw.make(np.arange(side * side, dtype=np.float32).reshape(side, side))
    view = fw.native(x)
    result = interop.convert(x, "arrow")
    zero_copy = bool(np.shares_memory(interop.to_numpy(result), view))
    _same(interop.to_numpy(result), view, "convert(x, 'arrow')")
    ns = namespace(x=x, view=view, pa=pa)
    ours = 'interop.convert(x, "arrow")'
    copy_label = "np.copy(view) (copying the bytes)"
    variants = [
        Variant(ours, 'interop.convert(x, "arrow")', ns),
        Variant(copy_label, "np.copy(view)", ns),
        Variant(
            "pa.FixedShapeTensorArray.from_numpy_ndarray(view)",
            "pa.FixedShapeTensorArray.from_numpy_ndarray(view)",
            ns,
        ),
    ]
    mb = view.nbytes / 2**20
    return _scenario(
        f"arrow/from-{name}",
        f"convert a {mb:.0f} MB float32 {name} tensor to an Arrow tensor column",
        variants,
        [
            Goal("zero-copy (np.shares_memory with the source)", "check", passed=zero_copy),
            # "At most 1e-3 of a memcpy": copying the bytes takes 1000 times as long.
            Goal("convert vs copying the bytes", "speedup", ours, (copy_label,), 1000),
        ],
        nbytes=view.nbytes,
    )


for _name in ("numpy", "torch"):
    _register(f"arrow/from-{_name}", lambda c, n=_name: _arrow_convert(n, c))


_RAY_FEATURES = 64


def _ray_pipeline(config: Config) -> Scenario:
    """A Ray Data pipeline whose UDF runs a small torch model: interop.ray vs by hand.

    The hand-written UDF is what Ray needs without this library: take NumPy, return
    NumPy, so ``.detach().cpu()`` and a float32 upcast of the bfloat16 output (Ray's
    blocks have no bfloat16). interop's keeps bfloat16, exactly. Each timing runs the
    whole pipeline once over the same materialized input: map_batches, then every
    batch iterated.
    """
    for module in ("ray", "torch", "pyarrow"):
        if importlib.util.find_spec(module) is None:
            raise Unavailable(f"{module} is not installed")
    import ml_dtypes
    import pyarrow as pa
    import ray
    import torch

    import interop.ray as iray

    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    rows = 8_192 if config.quick else 262_144
    batch = 1_024 if config.quick else 8_192
    rng = np.random.default_rng(0)
    features = rng.standard_normal((rows, _RAY_FEATURES), dtype=np.float32)
    table = pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": pa.FixedShapeTensorArray.from_numpy_ndarray(features),
        }
    )
    source = ray.data.from_arrow(table).repartition(8).materialize()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(_RAY_FEATURES, 256), torch.nn.ReLU(), torch.nn.Linear(256, 16)
    )

    def ours_udf(b: dict[str, Any]) -> dict[str, Any]:
        return {"id": b["id"], "y": model(b["x"]).to(torch.bfloat16)}  # grad-carrying

    def hand_udf(b: dict[str, Any]) -> dict[str, Any]:
        x = torch.tensor(b["x"])  # Ray's batch is read-only: torch needs its own copy
        y = model(x).to(torch.bfloat16).detach().cpu().float().numpy()
        return {"id": b["id"], "y": y}

    def ours() -> float:
        start = time.perf_counter()
        ds = iray.map_batches(source, ours_udf, to="torch", batch_size=batch)
        for _ in iray.iter_batches(ds, batch_size=batch):
            pass
        return time.perf_counter() - start

    def hand() -> float:
        start = time.perf_counter()
        ds = source.map_batches(hand_udf, batch_format="numpy", batch_size=batch)
        for _ in ds.iter_batches(batch_format="numpy", batch_size=batch):
            pass
        return time.perf_counter() - start

    # The check: interop's output is bfloat16 and holds the bits of the hand-written
    # one's float32 values rounded to bfloat16 (the same batches, the same model).
    ds = iray.map_batches(source, ours_udf, to="torch", batch_size=batch)
    got = ds.take_batch(rows)
    want = source.map_batches(hand_udf, batch_format="numpy", batch_size=batch).take_batch(rows)
    got_y = got["y"][np.argsort(got["id"])]
    want_y = want["y"][np.argsort(want["id"])].astype(ml_dtypes.bfloat16)
    exact = got_y.dtype == ml_dtypes.bfloat16 and np.array_equal(
        got_y.view(np.uint16), want_y.view(np.uint16)
    )
    ours_label = "iray.map_batches(..., to='torch') + iray.iter_batches (bfloat16 kept)"
    hand_label = "hand-written UDF: .detach().cpu().float().numpy() (float32 upcast)"
    return _scenario(
        "ray/map_batches-torch-bf16",
        f"Ray Data pipeline, {rows} rows, a torch MLP in the UDF returning bfloat16 with grad",
        [Variant(ours_label, measure=ours), Variant(hand_label, measure=hand)],
        [
            Goal("bfloat16 kept exactly through Ray's blocks", "check", passed=exact),
            Goal(
                "throughput: interop.ray / hand-written", "slowdown", ours_label, (hand_label,), 1.1
            ),
        ],
        notes=[
            "ray.init(num_cpus=2) on this machine; one timing = one full pipeline run",
            f"batch_size={batch}; the input is materialized once, before any timing",
        ],
        rounds=3 if config.quick else 9,
        teardown=ray.shutdown,
    )


_register("ray/map_batches-torch-bf16", _ray_pipeline)
