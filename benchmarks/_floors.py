"""The contract's checks written inline: how fast a conversion that keeps the contract can be.

A host view may hand out a framework's zero-copy NumPy array only after proving that the
answer is the one the plan would give (see docs/contract.md): for a PyTorch tensor, that
its dispatch key set is that of an ordinary dense CPU tensor (no other device or layout,
no conjugate or negative bit, no ZeroTensor, no ``torch.func`` wrapper), that no
``torch.func`` transform or dispatch mode is active, its dtype, its grad flag and that
its storage holds every byte it reaches (not freed or shrunk in place); for a JAX array,
its sharding, that it is not deleted, and that its dtype is not packed; for a TensorFlow
tensor, its device and that it holds values.

Each statement here is the native call behind exactly those checks, written by hand
as one expression: no function call of the library's, no dispatch by type, no plan.
Timed next to the native call and ``interop``, it shows how much of a gap is the
checks themselves (which no implementation that keeps the contract can skip) and how
much is the library's own dispatch. Each answers what ``to_numpy`` answers for the
scenario's input, which the scenario checks bit for bit before timing.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["FLOOR", "floor", "tree_floor"]

#: The label of the inline variant in every scenario that shows one.
FLOOR = "native call behind the contract's checks, inline"

# (The ``seal`` calls below return None: ``not seal(a, False)`` is true, and the
# expression goes on with the array sealed read-only, as the contract has it.)


def _torch_ns() -> dict[str, Any]:
    torch = sys.modules["torch"]
    C = torch._C
    keys = C._dispatch_keys
    return {
        "keys": keys,
        "K": keys(torch.from_numpy(np.empty(0, dtype=np.float32))),
        "transforms": C._are_functorch_transforms_active,
        "modes": C._len_torch_dispatch_stack,
        "storage": torch.Tensor.untyped_storage,
        "seal": np.ndarray.setflags,
    }


def _torch_leaf(dtype: str, grad: bool, bits: str | None) -> str:
    """The per-tensor part of the PyTorch checks and the native call, as an expression."""
    # (Its storage holds every byte it reaches: proved by its size for a tensor at the
    # start of its storage without gaps, as the benchmarks' tensors are.)
    checks = (
        f"keys(x) == K and x.dtype is torch.{dtype} and storage(x).nbytes() >= x.nbytes "
        "and not x.storage_offset() and x.is_contiguous()"
    )
    if bits is None:
        call = "x.numpy(force=True)" if grad else "x.numpy()"
    else:
        # An integer view never requires grad: torch's own NumPy view of the bits.
        call = f"x.view(torch.{bits}).numpy()"
    if not grad:
        out = call if bits is None else f"{call}.view({dtype})"
        return f"({out} if {checks} and not x.requires_grad else None)"
    out = "a" if bits is None else f"a.view({dtype})"
    return f"({out} if {checks} and x.requires_grad and not seal(a := {call}, False) else None)"


def floor(
    name: str, x: Any, dtype: str = "float32", grad: bool = False, examples: tuple[Any, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """The inline statement for ``to_numpy(x)`` of framework ``name`` and its globals.

    ``dtype``/``grad`` describe a PyTorch ``x`` (bfloat16 and float8 go through the
    integer view of their bits, as ``to_numpy`` does). ``examples``: the arrays the
    statement will see (``x`` by default), where the checks depend on more than the
    type (the sharding objects of JAX arrays).
    """
    examples = examples or (x,)
    if name == "torch":
        ns = _torch_ns()
        bits = None
        if dtype != "float32":
            bits = "int16" if dtype == "bfloat16" else "uint8"
        leaf = _torch_leaf(dtype, grad, bits)
        return f"{leaf} if not transforms() and not modes() else None", ns
    if name == "tensorflow":
        tf = sys.modules["tensorflow"]
        eager = type(x)
        ns = {
            "internal": eager._numpy_internal,
            "enum": eager._datatype_enum,
            "host": {x.device},
            "no_values": {d.as_datatype_enum for d in (tf.string, tf.resource, tf.variant)},
            "ndarray": np.ndarray,
            "seal": np.ndarray.setflags,
        }
        stmt = (
            "a if x.device in host and enum(x) not in no_values "
            "and type(a := internal(x)) is ndarray and not seal(a, False) else None"
        )
        return stmt, ns
    if name == "jax":
        # The sharding objects in host memory, by id (the arrays hold them alive), and
        # the classes of NumPy's own dtypes, which np.asarray reads through jaxlib's
        # buffer protocol (the dtype of ``aval``: a fraction of the ``dtype`` property).
        ns = {
            "hosts": {id(a._sharding) for a in examples},
            "asarray": np.asarray,
            "plain": {type(np.dtype(c)) for c in "?bBhHiIlLqQefdFD"},
        }
        stmt = (
            "asarray(x) if id(x._sharding) in hosts and not x.is_deleted() "
            "and type(x.aval.dtype) in plain else None"
        )
        return stmt, ns
    raise ValueError(f"expected torch, tensorflow or jax, got {name!r}")


def tree_floor(
    name: str, tree: dict[str, dict[str, Any]], grad: bool = False
) -> tuple[str, dict[str, Any]]:
    """The inline statement for ``to_numpy_tree(tree)`` of a two-level dict of tensors.

    Checks that hold for the whole call (PyTorch's active transforms and modes) are
    made once per tree, as a hand-written loop would; the rest once per leaf.
    """
    if name == "torch":
        ns = _torch_ns()
        leaf = _torch_leaf("float32", grad, None)
        loop = f"{{k: {{n: {leaf} for n, x in d.items()}} for k, d in tree.items()}}"
        return f"{loop} if not transforms() and not modes() else None", ns
    leaves = tuple(x for d in tree.values() for x in d.values())
    stmt, ns = floor(name, leaves[0], examples=leaves)
    return f"{{k: {{n: {stmt} for n, x in d.items()}} for k, d in tree.items()}}", ns
