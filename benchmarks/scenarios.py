"""The scenarios: each one a job, ``interop``'s way of doing it, and the other ways.

A scenario is built only when it is selected (building imports its framework and
allocates its data), and each is named so that ``--only`` can pick it before that.
The goals are the project's performance promises; see the README's "Performance".
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import interop
from benchmarks._frameworks import FRAMEWORKS, framework, keras_convert, namespace, shares
from benchmarks._harness import Config, Goal, Scenario, Unavailable, Variant

__all__ = ["REGISTRY", "select"]

Builder = Callable[[Config], Scenario]
REGISTRY: list[tuple[str, Builder]] = []

OURS = "interop.to_numpy(x)"


def _register(name: str, builder: Builder) -> None:
    REGISTRY.append((name, builder))


def select(only: list[str] | None) -> list[tuple[str, Builder]]:
    """The registered scenarios whose name contains one of ``only`` (all if empty)."""
    if not only:
        return list(REGISTRY)
    return [(n, b) for n, b in REGISTRY if any(s in n for s in only)]


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


# -- (1) per-call overhead on a 4x4 tensor ------------------------------------------------


def _overhead(name: str, config: Config) -> Scenario:
    fw = framework(name)
    x = fw.make(np.ones((4, 4), dtype=np.float32))
    ns = namespace(x=x)
    stmts = {OURS: "to_numpy(x)", f"{fw.native_stmt} (native)": fw.native_stmt}
    if name == "torch":
        stmts.update(
            {
                "x.numpy(force=True)": "x.numpy(force=True)",
                "x.detach().cpu().numpy()": "x.detach().cpu().numpy()",
                "np.asarray(x)": "np.asarray(x)",
            }
        )
    elif name == "tensorflow":
        stmts["x.numpy()"] = "x.numpy()"
        keras = keras_convert("tensorflow")
        if keras is not None:
            ns["keras_convert"] = keras
            stmts["keras.ops.convert_to_numpy(x)"] = "keras_convert(x)"
    else:
        stmts["jax.device_get(x)"] = "jax.device_get(x)"
    stmts["np.from_dlpack(x)"] = "np.from_dlpack(x)"
    variants = _checked([Variant(k, s, ns) for k, s in stmts.items()], fw.native(x))
    refs = tuple(v.label for v in variants[1:] if v.zero_copy)
    return Scenario(
        name=f"overhead/{name}",
        title=f"per-call overhead, 4x4 float32 {name} CPU tensor",
        group=1,
        variants=variants,
        goals=[
            Goal(
                "to_numpy / fastest zero-copy native call",
                "slowdown",
                OURS,
                refs,
                1.5,
            ),
            Goal(
                f"to_numpy minus {fw.native_stmt} (native)",
                "overhead",
                OURS,
                (f"{fw.native_stmt} (native)",),
                unit="us",
            ),
        ],
        notes=["reference: the fastest of the variants checked to be zero-copy, per round"],
        clock="cpu",
    )


def _overhead_numpy(config: Config) -> Scenario:
    def identity(a: Any, /) -> Any:
        return a

    a = np.ones((4, 4), dtype=np.float32)
    ns = namespace(a=a, identity=identity)
    return Scenario(
        name="overhead/numpy",
        title="per-call overhead on a NumPy input (returned as the same object)",
        group=1,
        variants=[
            Variant("interop.to_numpy(a)", "to_numpy(a)", ns, zero_copy=True),
            Variant("identity(a) (bare function)", "identity(a)", ns, zero_copy=True),
            Variant("np.asarray(a)", "np.asarray(a)", ns, zero_copy=True),
        ],
        goals=[
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


for _name in FRAMEWORKS:
    _register(f"overhead/{_name}", lambda c, n=_name: _overhead(n, c))
_register("overhead/numpy", _overhead_numpy)


# -- (2) a large CPU tensor, copy=None and copy=True ---------------------------------------


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
    ]
    if name == "tensorflow":
        variants.append(Variant("x.numpy()", "x.numpy()", ns))
    elif name == "torch":
        variants.append(Variant("x.detach().cpu().numpy()", "x.detach().cpu().numpy()", ns))
    else:
        variants.append(Variant("np.array(x)", "np.array(x)", ns))
    _checked(variants, view)
    mb = view.nbytes / 2**20
    return Scenario(
        name=f"large/{name}",
        title=f"{mb:.0f} MB float32 {name} CPU tensor, copy=None and copy=True",
        group=2,
        variants=variants,
        goals=[
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


for _name in FRAMEWORKS:
    _register(f"large/{_name}", lambda c, n=_name: _large(n, c))


# -- (3) a large bfloat16 tensor -----------------------------------------------------------


def _bf16(name: str, config: Config) -> Scenario:
    fw = framework(name)
    x = fw.bf16(config.large_bytes // 2)
    view = fw.native(x)
    keras = keras_convert(name)
    ns = namespace(x=x, keras_convert=keras)
    keras_label = f"keras.ops.convert_to_numpy(x) [{name} backend]"
    variants = [
        Variant(OURS + " (upcast=False)", "to_numpy(x)", ns),
        Variant("interop.to_numpy(x, upcast=True)", "to_numpy(x, upcast=True)", ns),
    ]
    if name == "torch":
        import ml_dtypes

        ns["bfloat16"] = ml_dtypes.bfloat16
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
    return Scenario(
        name=f"bf16/{name}",
        title=f"{mb:.0f} MB bfloat16 {name} CPU tensor, upcast=False and upcast=True",
        group=3,
        variants=variants,
        goals=goals,
        notes=notes,
    )


for _name in FRAMEWORKS:
    _register(f"bf16/{_name}", lambda c, n=_name: _bf16(n, c))


# -- (4) trees and pipelines -----------------------------------------------------------------


def _quick_rounds(config: Config) -> int | None:
    # One call of these takes milliseconds, so in quick mode a round times it only
    # once or twice; more rounds keep one disturbed round from setting the median.
    return 15 if config.quick else None


def _tree(name: str, config: Config) -> Scenario:
    fw = framework(name)
    to_numpy_tree = _api("to_numpy_tree")
    w = np.ones((4, 4), dtype=np.float32)
    b = np.ones(4, dtype=np.float32)
    tree = {f"layer{i}": {"weight": fw.make(w), "bias": fw.make(b)} for i in range(500)}
    leaf = fw.native_stmt.replace("x", "v")
    ns = namespace(tree=tree, to_numpy_tree=to_numpy_tree)
    hand = f"hand-written loop of {leaf}"
    variants = [
        Variant("interop.to_numpy_tree(tree)", "to_numpy_tree(tree)", ns),
        Variant(hand, f"{{k: {{n: {leaf} for n, v in d.items()}} for k, d in tree.items()}}", ns),
    ]
    goals = [Goal("to_numpy_tree / hand-written loop", "slowdown", variants[0].label, (hand,), 1.3)]
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
    for v in variants:
        assert v.stmt is not None
        out = eval(v.stmt, ns)
        leaf_out = out["layer0"]["weight"]
        v.zero_copy = shares(leaf_out, fw.native(tree["layer0"]["weight"]))
    notes = ["zero-copy: checked on one leaf"]
    if name == "jax":
        notes.append(
            "a JAX array keeps the NumPy view made by its first conversion, so every "
            "variant converts arrays seen before (a fresh array costs each variant more)"
        )
    return Scenario(
        name=f"tree/{name}",
        title=f"1,000-leaf dict of small {name} CPU tensors",
        group=4,
        rounds=_quick_rounds(config),
        variants=variants,
        goals=goals,
        notes=notes,
    )


for _name in FRAMEWORKS:
    _register(f"tree/{_name}", lambda c, n=_name: _tree(n, c))


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


def _pipeline_goals(ours: str, ours_eager: str, refs: tuple[str, ...], what: str) -> list[Goal]:
    """The same goal for the default prefetch and for ``prefetch=0``."""
    return [
        Goal(f"iter_numpy / {what}", "slowdown", ours, refs, 1.3),
        Goal(f"iter_numpy(prefetch=0) / {what}", "slowdown", ours_eager, refs, 1.3),
    ]


def _iter_dataloader(config: Config) -> Scenario:
    framework("torch")
    iter_numpy = _api("iter_numpy")
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
    ns = namespace(loader=loader, iter_numpy=iter_numpy)
    ours = "for b in interop.iter_numpy(loader): pass"
    eager = "... iter_numpy(loader, prefetch=0)"
    hand = "for b in loader: {k: v.numpy() for k, v in b.items()}"
    return Scenario(
        name="iter/dataloader",
        title=f"iter_numpy over a torch DataLoader ({len(loader)} dict batches of 32)",
        group=4,
        rounds=_quick_rounds(config),
        variants=[
            Variant(ours, "for b in iter_numpy(loader):\n    pass", ns),
            Variant(eager, "for b in iter_numpy(loader, prefetch=0):\n    pass", ns),
            Variant(hand, "for b in loader:\n    b = {k: v.numpy() for k, v in b.items()}", ns),
            Variant("for b in loader: pass (the loader alone)", "for b in loader:\n    pass", ns),
        ],
        goals=_pipeline_goals(ours, eager, (hand,), "hand-written loop"),
        notes=[
            "the same loader, the same batches, one process (num_workers=0); "
            "iter/collated times the conversion without the loader"
        ],
    )


def _iter_collated(config: Config) -> Scenario:
    # The batches a DataLoader yields, taken once and kept: what iter_numpy adds
    # per batch, which the loader's own work hides in iter/dataloader.
    framework("torch")
    iter_numpy = _api("iter_numpy")
    import torch

    data = _samples()
    batches = [
        {k: torch.from_numpy(v[i : i + 32]) for k, v in data.items()}
        for i in range(0, len(data["x"]), 32)
    ]
    ns = namespace(batches=batches, iter_numpy=iter_numpy)
    ours = "for b in interop.iter_numpy(batches): pass"
    eager = "... iter_numpy(batches, prefetch=0)"
    hand = "for b in batches: {k: v.numpy() for k, v in b.items()}"
    return Scenario(
        name="iter/collated",
        title=f"iter_numpy over {len(batches)} collated torch dict batches in a list (no loader)",
        group=4,
        rounds=_quick_rounds(config),
        variants=[
            Variant(ours, "for b in iter_numpy(batches):\n    pass", ns),
            Variant(eager, "for b in iter_numpy(batches, prefetch=0):\n    pass", ns),
            Variant(hand, "for b in batches:\n    b = {k: v.numpy() for k, v in b.items()}", ns),
        ],
        goals=[
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
        notes=["no goal of its own: it shows the cost per batch that iter/dataloader includes"],
    )


def _iter_tf_data(config: Config) -> Scenario:
    framework("tensorflow")
    iter_numpy = _api("iter_numpy")
    import tensorflow as tf

    # Autotuning off: this pipeline has nothing to tune, and on a busy machine its
    # bookkeeping makes a pass take either about 5 or about 20 ms, at random, which
    # buries what is measured here. Every variant iterates this same dataset.
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = tf.data.Dataset.from_tensor_slices(_samples()).batch(32).with_options(options)
    ns = namespace(ds=ds, iter_numpy=iter_numpy)
    ours = "for b in interop.iter_numpy(ds): pass"
    eager = "... iter_numpy(ds, prefetch=0)"
    hand = "for b in ds: {k: np.asarray(v) for k, v in b.items()}"
    native = "for b in ds.as_numpy_iterator(): pass"
    return Scenario(
        name="iter/tf.data",
        title=f"iter_numpy over a tf.data.Dataset ({len(ds)} dict batches of 32)",
        group=4,
        rounds=_quick_rounds(config),
        variants=[
            Variant(ours, "for b in iter_numpy(ds):\n    pass", ns),
            Variant(eager, "for b in iter_numpy(ds, prefetch=0):\n    pass", ns),
            Variant(hand, "for b in ds:\n    b = {k: np.asarray(v) for k, v in b.items()}", ns),
            Variant(native, "for b in ds.as_numpy_iterator():\n    pass", ns),
            Variant("for b in ds: pass (the dataset alone)", "for b in ds:\n    pass", ns),
        ],
        goals=_pipeline_goals(
            ours, eager, (hand, native), "fastest of hand-written loop and as_numpy_iterator"
        ),
        notes=["tf.data autotuning off (nothing to tune here): the same dataset for every variant"],
    )


_register("iter/dataloader", _iter_dataloader)
_register("iter/collated", _iter_collated)
_register("iter/tf.data", _iter_tf_data)


# -- (5) convert between frameworks ------------------------------------------------------------

_DLPACK = {
    "torch": "torch.from_dlpack(x)",
    "tensorflow": "tf.experimental.dlpack.from_dlpack(x.__dlpack__())",
    "jax": "jnp.from_dlpack(x)",
}


def _convert(src: str, dst: str, config: Config) -> Scenario:
    s = framework(src)
    d = framework(dst)
    convert = _api("convert")
    side = 64 if config.quick else 512
    x = s.make(np.arange(side * side, dtype=np.float32).reshape(side, side))
    ns = namespace(x=x, convert=convert)
    ours = f"interop.convert(x, to={dst!r})"
    from_numpy = d.from_numpy
    if dst == "torch" and not eval(s.by_hand, ns).flags.writeable:
        # torch.from_numpy warns on read-only memory (a JAX view); a user copies.
        from_numpy = "torch.tensor(a)"
    hand = f"a = {s.by_hand}; {from_numpy}"
    hand_stmt = f"a = {s.by_hand}\n{from_numpy}"
    variants = [
        Variant(ours, f"convert(x, to={dst!r})", ns),
        Variant(f"by hand: {hand}", hand_stmt, ns),
    ]
    notes = []
    try:
        eval(_DLPACK[dst], ns)
    except Exception as exc:  # a framework pair without a working DLPack path
        notes.append(f"{_DLPACK[dst]} fails here: {type(exc).__name__}")
    else:
        variants.append(Variant(_DLPACK[dst], _DLPACK[dst], ns))
    source = s.native(x)
    for v in variants:  # fail at build time, not in the middle of the rounds
        assert v.stmt is not None
        *before, last = v.stmt.splitlines()
        exec("\n".join(before), ns)
        v.zero_copy = shares(d.native(eval(last, ns)), source)
    return Scenario(
        name=f"convert/{src}->{dst}",
        title=f"convert a {x.shape[0]}x{x.shape[1]} float32 tensor from {src} to {dst}",
        group=5,
        variants=variants,
        goals=[
            Goal("convert / by hand through NumPy", "slowdown", ours, (variants[1].label,)),
        ],
        notes=[*notes, "zero-copy: the result shares memory with the source tensor"],
    )


for _src in FRAMEWORKS:
    for _dst in FRAMEWORKS:
        if _src != _dst:
            _register(f"convert/{_src}->{_dst}", lambda c, s=_src, d=_dst: _convert(s, d, c))


# -- (6) import time -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


_PYCACHE = tempfile.mkdtemp(prefix="interop-bench-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, ignore_errors=True)


def _import_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Imports are timed with their bytecode cached, as after an install (which
    # compiles it), not compiling the sources each time. The cache goes to a
    # temporary folder, never into the checkout.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


def _import_seconds(before: str, statement: str) -> float:
    """The CPU time of ``statement`` in a fresh interpreter, after running ``before``.

    CPU time, because on a busy machine the elapsed time also counts the time other
    processes held the CPU; the time of the main thread only, because NumPy's BLAS
    starts threads of its own whose start-up is not this import's cost.
    """
    code = (
        f"{before}\nimport time\nt = time.thread_time()\n{statement}\nprint(time.thread_time() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_import_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _importtime_note() -> str:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import numpy, interop"],
        cwd=ROOT,
        env=_import_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stderr.splitlines():
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
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_import_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = out.stdout.strip()
    return f"imported by `import interop`: {found or 'no framework, no ml_dtypes'}"


def _imports(config: Config) -> Scenario:
    ours = "import interop (after import numpy)"
    numpy = "import numpy"
    _import_seconds("", "import numpy, interop")  # compiles and caches the bytecode
    return Scenario(
        name="import",
        title="import time (CPU time) in a fresh interpreter",
        group=6,
        variants=[
            Variant(ours, measure=lambda: _import_seconds("import numpy", "import interop")),
            Variant(numpy, measure=lambda: _import_seconds("", "import numpy")),
        ],
        goals=[Goal("time added to `import numpy`", "time", ours, (), 10, unit="ms")],
        notes=[
            "each figure from a fresh interpreter; bytecode cached, as after an install",
            _importtime_note(),
            _heavy_modules_note(),
        ],
        rounds=3 if config.quick else 20,
        clock="cpu",
    )


_register("import", _imports)


# -- (7) GPU ------------------------------------------------------------------------------------


def _cuda() -> Any:
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("torch is not installed")
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("no CUDA device")
    return torch


def _gpu_d2h(config: Config) -> Scenario:
    torch = _cuda()
    n = (16 << 20 if config.quick else 256 << 20) // 4
    x = torch.ones(n, device="cuda")
    pinned = torch.empty(n, pin_memory=True)
    ns = namespace(x=x, pinned=pinned)
    pinned_label = "pinned.copy_(x, non_blocking=True); synchronize()"
    ours = OURS
    variants = [
        Variant(ours, "to_numpy(x)", ns),
        Variant(pinned_label, "pinned.copy_(x, non_blocking=True)\ntorch.cuda.synchronize()", ns),
        Variant("x.cpu().numpy()", "x.cpu().numpy()", ns),
        Variant("x.numpy(force=True)", "x.numpy(force=True)", ns),
    ]
    return Scenario(
        name="gpu/d2h",
        title=f"device-to-host copy of {n * 4 >> 20} MB float32 ({torch.cuda.get_device_name()})",
        group=7,
        variants=variants,
        goals=[
            Goal(
                "bandwidth vs PyTorch's pinned buffer",
                "speedup",
                ours,
                (pinned_label,),
                0.8,
            )
        ],
        nbytes=n * 4,
    )


def _gpu_tree(config: Config) -> Scenario:
    torch = _cuda()
    to_numpy_tree = _api("to_numpy_tree")
    tree = {f"t{i}": torch.ones(16, 16, device="cuda") for i in range(256)}
    ns = namespace(tree=tree, to_numpy_tree=to_numpy_tree)
    loop = "{k: v.cpu().numpy() for k, v in tree.items()}"
    return Scenario(
        name="gpu/tree",
        title="256-leaf dict of small CUDA tensors",
        group=7,
        variants=[
            Variant("interop.to_numpy_tree(tree)", "to_numpy_tree(tree)", ns),
            Variant(f"per-leaf loop {loop}", loop, ns),
        ],
        goals=[
            Goal(
                "to_numpy_tree vs a per-leaf .cpu().numpy() loop",
                "speedup",
                "interop.to_numpy_tree(tree)",
                (f"per-leaf loop {loop}",),
                2,
            )
        ],
    )


_register("gpu/d2h", _gpu_d2h)
_register("gpu/tree", _gpu_tree)
