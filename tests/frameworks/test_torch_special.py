"""PyTorch special cases: conj/neg bits, sparse layouts, nested tensors, quantized
tensors, tensors without data, and tensor subclasses (Parameter, plain, DTensor).

Every case is checked in ``to_numpy`` and in ``explain`` (its steps name what happens).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop

torch = pytest.importorskip("torch")

DENSE = np.array([[0.0, 1, 0, 0], [2, 0, 0, 3], [0, 0, 0, 0], [4, 5, 0, 6]], dtype=np.float32)


def _dense() -> Any:
    return torch.from_numpy(DENSE.copy())


# PyTorch announces some input kinds with a UserWarning, once per process, when the
# first such tensor is built: compressed sparse layouts ("in beta state"), strided
# nested tensors ("in prototype stage") and quantized tensors ("deprecated"). The
# tests' own constructions trigger these (the library builds none of these tensors),
# in whichever test builds one first; each construction ignores exactly its notice.
_SPARSE_BETA = r"Sparse (CSR|CSC|BSR|BSC) tensor support is in beta state"
_NESTED_PROTOTYPE = r"The PyTorch API of nested tensors is in prototype stage"
_QUANTIZED_DEPRECATED = r"torch.quantize_per_tensor, torch.quantize_per_channel"


@contextlib.contextmanager
def _building(notice: str) -> Iterator[None]:
    """Build a test input whose construction PyTorch announces with ``notice``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=notice, category=UserWarning)
        yield


# -- conjugate and negative bits ------------------------------------------------------


def test_conj_bit_is_resolved_into_a_copy() -> None:
    z = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    before = z.numpy().copy()
    c = z.conj()
    out = interop.to_numpy(c)
    np.testing.assert_array_equal(out, c.resolve_conj().numpy())
    assert not np.shares_memory(out, z.numpy())
    np.testing.assert_array_equal(z.numpy(), before)
    assert c.is_conj()  # the caller's view is untouched
    plan = interop.explain(c)
    assert plan.steps == ("resolve_conj", "numpy_view") and not plan.zero_copy
    with pytest.raises(interop.CopyRequiredError, match=r"conjugate bit.*resolve_conj\(\)"):
        interop.to_numpy(c, copy=False)


def test_conj_bit_with_grad_and_complex32() -> None:
    z = torch.tensor([1 + 2j, -3j], dtype=torch.complex64, requires_grad=True)
    assert interop.explain(z.conj()).steps == ("detach", "resolve_conj", "numpy_view")
    np.testing.assert_array_equal(interop.to_numpy(z.conj()), [1 - 2j, 3j])
    # Built as a view of float16 pairs: allocating a complex32 tensor makes PyTorch
    # warn that ComplexHalf is experimental, and resolving the conjugate bit must not.
    pairs = torch.tensor([1.0, 2.0, 0.0, -3.0], dtype=torch.float16)
    h = pairs.view(torch.complex32).conj()
    out = interop.to_numpy(h)
    assert out.dtype == np.dtype(ml_dtypes.complex32)
    np.testing.assert_array_equal(out.astype(np.complex64), [1 - 2j, 3j])
    assert interop.explain(h).steps == ("resolve_conj", "bit_view")


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch._neg_view(torch.tensor([1.0, -2.0, 3.0])),
        lambda: torch.tensor([1 + 2j, 3 - 4j]).conj().imag,
    ],
    ids=["neg_view", "conj_imag"],
)
def test_neg_bit_is_resolved_into_a_copy(make: Callable[[], Any]) -> None:
    t = make()
    assert t.is_neg()
    out = interop.to_numpy(t)
    np.testing.assert_array_equal(out, t.resolve_neg().numpy())
    assert interop.explain(t).steps == ("resolve_neg", "numpy_view")
    with pytest.raises(interop.CopyRequiredError, match=r"negative bit.*resolve_neg\(\)"):
        interop.to_numpy(t, copy=False)


# -- sparse layouts -------------------------------------------------------------------

LAYOUTS: dict[str, Callable[[Any], Any]] = {
    "coo": lambda d: d.to_sparse(),
    "csr": lambda d: d.to_sparse_csr(),
    "csc": lambda d: d.to_sparse_csc(),
    "bsr": lambda d: d.to_sparse_bsr((2, 2)),
    "bsc": lambda d: d.to_sparse_bsc((2, 2)),
}
SCIPY_CLASS = {
    "coo": "coo_array",
    "csr": "csr_array",
    "csc": "csc_array",
    "bsr": "bsr_array",
    "bsc": "bsr_array",  # scipy has no BSC class: the same blocks as a bsr_array
}


@pytest.fixture(params=list(LAYOUTS))
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _sparse(layout: str, dense: Any) -> Any:
    with _building(_SPARSE_BETA):
        return LAYOUTS[layout](dense)


def test_sparse_default_raises_naming_the_options(layout: str) -> None:
    s = _sparse(layout, _dense())
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(
            interop.ConversionError,
            match=rf"got a sparse_{layout} tensor.*sparse='dense'.*sparse='scipy'",
        ):
            call(s)


def test_sparse_dense_densifies(layout: str) -> None:
    s = _sparse(layout, _dense())
    out = interop.to_numpy(s, sparse="dense")
    np.testing.assert_array_equal(out, DENSE)
    assert out.flags.writeable and out.dtype == np.float32
    plan = interop.explain(s, sparse="dense")
    assert plan.steps == ("validate", "densify", "numpy_view") and not plan.zero_copy
    with pytest.raises(interop.CopyRequiredError, match="densifying"):
        interop.to_numpy(s, sparse="dense", copy=False)


def test_sparse_scipy_gives_the_matching_array(layout: str) -> None:
    import scipy.sparse

    s = _sparse(layout, _dense())
    out = interop.to_numpy(s, sparse="scipy")
    assert type(out) is getattr(scipy.sparse, SCIPY_CLASS[layout])
    np.testing.assert_array_equal(out.toarray(), DENSE)
    if layout in ("bsr", "bsc"):
        assert out.blocksize == (2, 2)
    assert not np.shares_memory(out.data, s.values().numpy())
    assert interop.explain(s, sparse="scipy").steps == ("validate", "to_scipy")
    with pytest.raises(interop.CopyRequiredError, match=r"scipy.sparse array is built"):
        interop.to_numpy(s, sparse="scipy", copy=False)


def test_sparse_with_grad_uncoalesced_and_bfloat16() -> None:
    g = _dense().to_sparse().requires_grad_()
    assert interop.explain(g, sparse="dense").steps == (
        "detach",
        "validate",
        "densify",
        "numpy_view",
    )
    np.testing.assert_array_equal(interop.to_numpy(g, sparse="dense"), DENSE)
    # Checked invariants, chosen explicitly (PyTorch warns when the choice is implicit).
    dup = torch.sparse_coo_tensor(
        torch.tensor([[0, 0, 1], [1, 1, 0]]), torch.tensor([1.0, 2, 5]), check_invariants=True
    )
    assert not dup.is_coalesced()
    expected = [[0.0, 3.0], [5.0, 0.0]]
    np.testing.assert_array_equal(interop.to_numpy(dup, sparse="scipy").toarray(), expected)
    np.testing.assert_array_equal(interop.to_numpy(dup, sparse="dense"), expected)
    b = _sparse("csr", _dense().bfloat16())
    out = interop.to_numpy(b, sparse="dense")
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    assert interop.explain(b, sparse="dense").steps == ("validate", "densify", "bit_view")
    np.testing.assert_array_equal(interop.to_numpy(b, sparse="dense", upcast=True), DENSE)


# Indices out of the tensor's shape, which PyTorch keeps when invariants are not checked:
# to_dense() dropped the COO value silently and wrote out of bounds with the coalesced
# one and the CSR one (a crash of the process).
_BROKEN: dict[str, Callable[[], Any]] = {
    "coo": lambda: torch.sparse_coo_tensor(
        torch.tensor([[0, 10**8]]), torch.tensor([1.0, 2.0]), (3,), check_invariants=False
    ),
    "coo-coalesced": lambda: torch.sparse_coo_tensor(
        torch.tensor([[0, 10**8]]),
        torch.tensor([1.0, 2.0]),
        (3,),
        check_invariants=False,
        is_coalesced=True,
    ),
    "csr": lambda: torch.sparse_csr_tensor(
        torch.tensor([0, 1, 2]),
        torch.tensor([0, 10**8]),
        torch.tensor([1.0, 2.0]),
        (2, 2),
        check_invariants=False,
    ),
    "csr-rows": lambda: torch.sparse_csr_tensor(
        torch.tensor([0, 1, 5]),
        torch.tensor([0, 1]),
        torch.tensor([1.0, 2.0]),
        (2, 2),
        check_invariants=False,
    ),
}


@pytest.mark.parametrize("sparse", ["dense", "scipy"])
@pytest.mark.parametrize("kind", list(_BROKEN))
def test_a_sparse_tensor_with_indices_out_of_its_shape_is_refused(kind: str, sparse: str) -> None:
    with _building(_SPARSE_BETA):
        broken = _BROKEN[kind]()
    with pytest.raises(interop.ConversionError, match="check_invariants=True") as info:
        interop.to_numpy(broken, sparse=sparse)  # type: ignore[arg-type]
    assert "breaks its invariants" in str(info.value)
    assert "validate" in interop.explain(broken, sparse=sparse).steps  # type: ignore[arg-type]


def test_sparse_scipy_refuses_hybrid_and_batched_tensors() -> None:
    hybrid = torch.zeros(3, 4, 2)
    hybrid[1, 2] = torch.tensor([1.0, 2.0])
    with pytest.raises(interop.ConversionError, match=r"hybrid.*hint: pass sparse='dense'"):
        interop.to_numpy(hybrid.to_sparse(2), sparse="scipy")
    batched = _sparse("csr", torch.stack([_dense(), _dense()]))
    with pytest.raises(interop.ConversionError, match=r"batched \(3-d\).*sparse='dense'"):
        interop.to_numpy(batched, sparse="scipy")
    np.testing.assert_array_equal(interop.to_numpy(batched, sparse="dense"), [DENSE, DENSE])


def test_scipy_is_imported_only_for_sparse_scipy() -> None:
    code = (
        "import sys, torch, interop\n"
        "s = torch.eye(3).to_sparse()\n"
        "interop.to_numpy(s, sparse='dense')\n"
        "try:\n    interop.to_numpy(s)\nexcept interop.ConversionError:\n    pass\n"
        "assert 'scipy' not in sys.modules, 'scipy imported too early'\n"
        "interop.to_numpy(s, sparse='scipy')\n"
        "assert 'scipy.sparse' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- nested and jagged tensors ----------------------------------------------------------

COMPONENTS = [np.arange(3, dtype=np.float32), np.arange(5, dtype=np.float32) + 10]


@pytest.fixture(params=["strided", "jagged"])
def nested(request: pytest.FixtureRequest) -> Any:
    layout = torch.strided if request.param == "strided" else torch.jagged
    with _building(_NESTED_PROTOTYPE):
        return torch.nested.nested_tensor([torch.from_numpy(c) for c in COMPONENTS], layout=layout)


def test_nested_default_raises_naming_the_options(nested: Any) -> None:
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(
            interop.ConversionError,
            match=r"nested tensor.*2 components.*ragged='object'.*ragged='pad'",
        ):
            call(nested)


def test_nested_object_is_an_array_of_owned_arrays(nested: Any) -> None:
    out = interop.to_numpy(nested, ragged="object")
    assert out.dtype == object and out.shape == (2,)
    parts = nested.unbind()
    for got, want, part in zip(out, COMPONENTS, parts, strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable and not np.shares_memory(got, part.numpy())
    plan = interop.explain(nested, ragged="object")
    assert plan.steps == ("unbind",) and plan.dtype == object and not plan.zero_copy
    with pytest.raises(interop.CopyRequiredError, match="object array"):
        interop.to_numpy(nested, ragged="object", copy=False)
    upcast = interop.to_numpy(nested.to(torch.bfloat16), ragged="object", upcast=True)
    assert [a.dtype for a in upcast] == [np.float32, np.float32]


def test_nested_pad_matches_torch_padding(nested: Any) -> None:
    out = interop.to_numpy(nested, ragged="pad")
    np.testing.assert_array_equal(out, [[0, 1, 2, 0, 0], [10, 11, 12, 13, 14]])
    np.testing.assert_array_equal(out, torch.nested.to_padded_tensor(nested, 0.0).numpy())
    assert interop.explain(nested, ragged="pad").steps == ("pad", "numpy_view")
    with pytest.raises(interop.CopyRequiredError, match="padding"):
        interop.to_numpy(nested, ragged="pad", copy=False)


def test_nested_pad_two_ragged_dims_and_dtypes_torch_cannot_pad() -> None:
    with _building(_NESTED_PROTOTYPE):
        n = torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(4, 1) * 2])
    out = interop.to_numpy(n, ragged="pad")
    expected = np.zeros((2, 4, 3), np.float32)
    expected[0, :2, :3] = 1
    expected[1, :4, :1] = 2
    np.testing.assert_array_equal(out, expected)
    # No padding kernel for float8 in PyTorch: its bits are padded as integers.
    f8 = torch.nested.nested_tensor(
        [
            torch.tensor([1.0, 2.0]).to(torch.float8_e4m3fn),
            torch.tensor([3.0]).to(torch.float8_e4m3fn),
        ],
        layout=torch.jagged,
    )
    out8 = interop.to_numpy(f8, ragged="pad")
    assert out8.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(out8.astype(np.float32), [[1, 2], [3, 0]])
    assert interop.explain(f8, ragged="pad").steps == ("pad", "bit_view")


def test_nested_with_grad() -> None:
    with _building(_NESTED_PROTOTYPE):
        n = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], requires_grad=True)
    assert interop.explain(n, ragged="pad").steps == ("detach", "pad", "numpy_view")
    np.testing.assert_array_equal(interop.to_numpy(n, ragged="pad"), [[1, 1, 0], [1, 1, 1]])


# -- quantized tensors, tensors without data -----------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.quantize_per_tensor(torch.tensor([1.0, 2.0]), 0.1, 0, torch.qint8),
        lambda: torch.quantize_per_channel(
            torch.ones(2, 2), torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0, torch.quint8
        ),
    ],
    ids=["per_tensor", "per_channel"],
)
def test_quantized_raises_naming_dequantize_and_int_repr(make: Callable[[], Any]) -> None:
    with _building(_QUANTIZED_DEPRECATED):
        q = make()
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(
            interop.ConversionError, match=r"quantized.*dequantize\(\).*int_repr\(\)"
        ):
            call(q)


def test_meta_tensor_raises() -> None:
    m = torch.empty(3, device="meta")
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(interop.ConversionError, match=r"meta device.*no values.*hint"):
            call(m)


def test_fake_tensor_raises() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = torch.ones(3)
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(interop.ConversionError, match=r"FakeTensor.*no values.*hint"):
            call(fake)


@pytest.mark.parametrize("mode", ["fake", "fake_allowing_real_inputs", "flop_counter"])
def test_real_tensors_convert_inside_dispatch_modes(mode: str) -> None:
    # Inside a FakeTensorMode, a real tensor's own .numpy() fails, or, where the mode
    # accepts real inputs, reads the storage of the fake tensor its detach() gives.
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    real = torch.arange(3.0)
    grad = torch.arange(3.0, requires_grad=True)
    half = torch.arange(3.0).to(torch.bfloat16)
    for t in (real, grad, half):  # the host view knows every dtype here
        interop.to_numpy(t)
    if mode == "flop_counter":
        context: Any = FlopCounterMode(display=False)
    else:
        context = FakeTensorMode(allow_non_fake_inputs=mode != "fake")
    with context:
        outs = [
            interop.to_numpy(real),
            interop.to_numpy(grad),
            interop.to_numpy(half).astype(np.float32),
            interop.to_numpy(real, copy=True),
            interop.to_numpy_tree({"t": real})["t"],
        ]
        if mode != "flop_counter":
            fake = torch.ones(2)
            with pytest.raises(interop.ConversionError, match="FakeTensor"):
                interop.to_numpy(fake)
    for out in outs:
        np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
    assert np.shares_memory(outs[0], real.numpy())


def _inside(transform: str, fn: Callable[[Any], Any], x: Any) -> None:
    func = torch.func
    if transform == "vmap":
        func.vmap(fn)(x)
    elif transform == "grad":
        func.grad(fn)(x)
    elif transform == "jvp":
        func.jvp(fn, (x,), (torch.ones_like(x),))
    elif transform == "jacrev":
        func.jacrev(fn)(x)
    else:
        func.functionalize(fn)(x)


# torch.func.jvp itself (the test's harness, not the library) loads decompositions
# through torch.jit.script, deprecated in PyTorch, the first time it runs.
_JIT_SCRIPT_DEPRECATED = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


@pytest.mark.parametrize(
    "transform",
    ["vmap", "grad", pytest.param("jvp", marks=_JIT_SCRIPT_DEPRECATED), "jacrev", "functionalize"],
)
def test_tensors_inside_torch_func_transforms_raise(transform: str) -> None:
    outside = torch.arange(3.0)
    seen: list[Any] = []

    def fn(x: Any) -> Any:
        for call in (interop.to_numpy, interop.explain, lambda y: interop.to_numpy_tree({"y": y})):
            with pytest.raises(interop.ConversionError, match=r"torch.func transform.*hint"):
                call(x)
        # A real tensor captured from outside still converts, with its values.
        seen.append(interop.to_numpy(outside))
        return (x * 2).sum()

    _inside(transform, fn, torch.ones(2, 3) if transform == "vmap" else torch.ones(3))
    assert seen and all(np.array_equal(s, [0.0, 1.0, 2.0]) for s in seen)


@pytest.mark.parametrize("transform", ["vmap", "grad", "functionalize"])
def test_wrappers_that_escaped_their_transform_raise(transform: str) -> None:
    # A wrapper kept past the end of its transform holds no values: its own
    # .numpy() reads whatever lies at its storage's address (functionalize) or
    # raises PyTorch's RuntimeError (vmap).
    escaped: list[Any] = []

    def fn(x: Any) -> Any:
        escaped.append(x * 2)
        return (x * 2).sum()

    _inside(transform, fn, torch.ones(2, 3) if transform == "vmap" else torch.ones(3))
    (y,) = escaped
    # A plain tensor's plan is cached first: the wrapper must not reuse it.
    interop.to_numpy(torch.ones(3), copy=True)
    calls: list[Callable[[Any], Any]] = [
        interop.to_numpy,
        interop.explain,
        lambda t: interop.to_numpy(t, copy=True),
        lambda t: interop.to_numpy_tree({"y": t}),
        lambda t: interop.to_numpy_tree([t], copy=True),
    ]
    for call in calls:
        with pytest.raises(interop.ConversionError, match=r"torch.func transform.*hint"):
            call(y)


class _Wrapper(torch.Tensor):
    """A wrapper subclass: its storage is a placeholder, its values live in ``elem``."""

    elem: Any

    @staticmethod
    def __new__(cls, elem: Any) -> Any:
        out = torch.Tensor._make_wrapper_subclass(cls, elem.shape, dtype=elem.dtype)
        out.elem = elem
        return out

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from torch.utils._pytree import tree_map

        def unwrap(x: Any) -> Any:
            return x.elem if isinstance(x, _Wrapper) else x

        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))


def test_dispatch_subclass_without_its_own_data_raises() -> None:
    w = _Wrapper(torch.arange(3.0))
    with pytest.raises(interop.ConversionError, match=r"_Wrapper`.*__torch_dispatch__.*hint"):
        interop.to_numpy(w)


# -- subclasses -------------------------------------------------------------------------


def test_parameter_converts_zero_copy() -> None:
    p = torch.nn.Parameter(torch.arange(4.0))
    out = interop.to_numpy(p)
    assert np.shares_memory(out, p.detach().numpy())
    assert interop.explain(p).steps == ("detach", "numpy_view", "readonly")
    assert p.requires_grad and p.grad_fn is None and p.grad is None


class _Plain(torch.Tensor):
    pass


def test_plain_subclass_converts_zero_copy() -> None:
    t = torch.arange(4.0).as_subclass(_Plain)
    out = interop.to_numpy(t)
    np.testing.assert_array_equal(out, [0, 1, 2, 3])
    assert np.shares_memory(out, t.as_subclass(torch.Tensor).numpy())
    assert interop.framework_of(t) == "torch"
    assert interop.explain(t).steps == ("numpy_view",)


# -- tensors that require grad: read-only views --------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.arange(4.0).requires_grad_(),
        lambda: torch.nn.Parameter(torch.arange(4.0)),
        lambda: torch.arange(4.0).requires_grad_() * 1,  # not a leaf
        lambda: torch.arange(4.0).to(torch.bfloat16).requires_grad_(),
    ],
    ids=["leaf", "parameter", "non_leaf", "bfloat16"],
)
def test_views_of_tensors_that_require_grad_are_read_only(make: Callable[[], Any]) -> None:
    w = make()
    before = w.detach().clone()
    results = {
        "to_numpy": interop.to_numpy(w),
        "again": interop.to_numpy(w),  # the host view, once the dtype is known
        "copy=False": interop.to_numpy(w, copy=False),
        "tree": interop.to_numpy_tree({"w": w})["w"],
    }
    with torch.no_grad():
        results["no_grad"] = interop.to_numpy(w)
    memory = w.detach().view(torch.int16).numpy() if w.dtype == torch.bfloat16 else None
    for where, out in results.items():
        assert not out.flags.writeable, where
        assert np.shares_memory(out, w.detach().numpy() if memory is None else memory), where
        with pytest.raises(ValueError, match="read-only"):
            out[0] = 7
        with pytest.raises(ValueError, match="WRITEABLE"):
            out.flags.writeable = True
    assert torch.equal(w.detach(), before) and w.requires_grad
    owned = interop.to_numpy(w, copy=True)
    owned[0] = 7
    assert owned.flags.writeable and torch.equal(w.detach(), before)


def test_plain_tensors_stay_writable_views() -> None:
    t = torch.arange(4.0)
    with torch.inference_mode():
        inference = torch.arange(4.0)
    for x in (t, t, inference, torch.arange(4.0).to(torch.bfloat16)):
        out = interop.to_numpy(x)
        assert out.flags.writeable
        out[1] = 9
        assert float(x[1]) == 9.0  # the write shows through, as with Tensor.numpy()


# -- ZeroTensor ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float8_e4m3fn", "complex64"])
def test_zero_tensor_gives_new_zeros(dtype: str) -> None:
    # PyTorch's efficient zeros (as autograd's forward mode uses) have no memory, and
    # their own .numpy() raises.
    tdt = getattr(torch, dtype)
    z = torch._efficientzerotensor(2, 3, dtype=tdt)
    plain = torch.ones(2, 3, dtype=tdt)
    # Plans of ordinary tensors of the same dtype are cached first: not reused here.
    interop.to_numpy(plain)
    interop.to_numpy(plain, copy=True)
    for out in (
        interop.to_numpy(z),
        interop.to_numpy(z),
        interop.to_numpy(z, copy=True),
        interop.to_numpy_tree({"z": z})["z"],
    ):
        assert out.shape == (2, 3) and out.dtype == interop.to_numpy(plain).dtype
        np.testing.assert_array_equal(out.astype(np.complex64), 0)
        assert out.flags.writeable
        out[0, 0] = plain[0, 0].item()  # new memory: the next result is zeros again
    plan = interop.explain(z)
    assert plan.steps[0] == "zeros" and not plan.zero_copy
    with pytest.raises(interop.CopyRequiredError, match=r"ZeroTensor.*hint"):
        interop.to_numpy(z, copy=False)
    # ... and the zero tensor's plan is not reused for an ordinary tensor either.
    np.testing.assert_array_equal(interop.to_numpy(plain, copy=True).astype(np.complex64), 1)


def test_zero_tensor_that_requires_grad() -> None:
    z = torch._efficientzerotensor(3, requires_grad=True)
    out = interop.to_numpy(z)
    np.testing.assert_array_equal(out, [0, 0, 0])
    assert out.flags.writeable  # a new array, not a view of the tensor
    assert interop.explain(z).steps == ("zeros", "numpy_view")


# -- the host view agrees with the plan -------------------------------------------------


def _special_tensors() -> dict[str, Any]:
    base = torch.arange(6.0).reshape(2, 3)
    with torch.inference_mode():
        inference = torch.arange(6.0).reshape(2, 3)
    out = {
        "plain": base,
        "transposed": base.t(),
        "0-d": torch.tensor(1.5),
        "empty": torch.empty(0, 3),
        "int": torch.arange(6),
        "bool": base > 2,
        "complex": torch.complex(base, base),
        "conj": torch.complex(base, base).conj(),
        "conj_imag": torch.complex(base, base).conj().imag,
        "neg_int": torch._neg_view(torch.arange(3)),
        "grad": base.clone().requires_grad_(),
        "grad_conj": torch.complex(base, base).requires_grad_().conj(),
        "parameter": torch.nn.Parameter(base.clone()),
        "frozen_parameter": torch.nn.Parameter(base.clone(), requires_grad=False),
        "inference": inference,
        "bfloat16": base.to(torch.bfloat16),
        "bfloat16_grad": base.to(torch.bfloat16).requires_grad_(),
        "float8": base.to(torch.float8_e5m2),
        "zero": torch._efficientzerotensor(2, 3),
        "zero_bfloat16": torch._efficientzerotensor(2, 3, dtype=torch.bfloat16),
        "meta": torch.empty(2, 3, device="meta"),
        "sparse": base.to_sparse(),
    }
    with _building(_NESTED_PROTOTYPE):
        out["nested"] = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with _building(_QUANTIZED_DEPRECATED):
        out["quantized"] = torch.quantize_per_tensor(base, 0.1, 0, torch.quint8)
    return out


def _host_views() -> dict[str, Callable[[Any], Any]]:
    from interop import _registry

    backend = _registry.lookup(torch.Tensor)
    assert backend is not None
    by_keys = backend.host_view_for(torch.Tensor)
    by_attributes = backend._host_view_by_attributes()  # type: ignore[attr-defined]
    assert by_keys is not None
    return {"dispatch_keys": by_keys, "attributes": by_attributes}


@pytest.mark.parametrize("view", ["dispatch_keys", "attributes"])
def test_host_view_is_the_plans_zero_copy_answer_or_none(view: str) -> None:
    from interop import _core, _registry
    from interop._options import DEFAULT

    tensors = _special_tensors()
    for x in tensors.values():  # the plans meet every dtype (bit-view dtypes join then)
        with contextlib.suppress(interop.InteropError):
            interop.explain(x)
    host_view = _host_views()[view]
    answered = set()
    for name, x in tensors.items():
        v = x.as_subclass(torch.Tensor) if type(x) is torch.nn.Parameter else x
        got = host_view(v)  # never raises
        if got is None:
            continue
        answered.add(name)
        backend = _registry.lookup(type(x))
        assert backend is not None
        plan = interop.explain(x)
        assert plan.zero_copy, name
        want = _core.convert_planned(x, backend, DEFAULT)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.strides == want.strides, name
        assert got.flags.writeable is want.flags.writeable, name
        if got.size:  # (NumPy gives each empty array a dummy address of its own)
            assert got.__array_interface__["data"] == want.__array_interface__["data"], name
    ordinary = {"plain", "transposed", "0-d", "int", "bool", "complex", "grad", "parameter"}
    ordinary |= {"frozen_parameter", "inference", "bfloat16", "bfloat16_grad", "float8"}
    assert answered == ordinary | {"empty"}


def test_nested_pad_of_complex_jagged_tensors() -> None:
    # PyTorch has no jagged padding kernel for complex dtypes, nor an integer of 16 bytes.
    parts = [
        torch.tensor([1 + 1j, 2j], dtype=torch.complex128),
        torch.tensor([3.0 + 0j], dtype=torch.complex128),
    ]
    with _building(_NESTED_PROTOTYPE):
        n = torch.nested.nested_tensor(parts, layout=torch.jagged)
    out = interop.to_numpy(n, ragged="pad")
    np.testing.assert_array_equal(out, [[1 + 1j, 2j], [3, 0]])
    assert out.dtype == np.complex128


@pytest.fixture(scope="module")
def process_group() -> Iterator[Any]:
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("placement", ["shard", "replicate"])
def test_dtensor_gathers_its_full_tensor(process_group: Any, placement: str) -> None:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    place = Shard(0) if placement == "shard" else Replicate()
    full = torch.arange(6.0).reshape(2, 3)
    dt = distribute_tensor(full, process_group, [place])
    out = interop.to_numpy(dt)
    np.testing.assert_array_equal(out, full.numpy())
    # full_tensor() hands back the local shard itself here; the result is new memory.
    assert not np.shares_memory(out, dt.to_local().numpy())
    plan = interop.explain(dt)
    assert plan.steps == ("gather", "numpy_view") and not plan.zero_copy
    with pytest.raises(interop.CopyRequiredError, match=r"DTensor.*full_tensor"):
        interop.to_numpy(dt, copy=False)
    b = distribute_tensor(full.bfloat16().requires_grad_(), process_group, [place])
    assert interop.explain(b).steps == ("gather", "detach", "bit_view")
    np.testing.assert_array_equal(interop.to_numpy(b, upcast=True), full.numpy())


def test_a_copy_leaves_the_tensor_resizable() -> None:
    # Tensor.numpy() marks a storage as never to be resized again (its array may
    # alias it); a copy must not change its source, or FSDP's resize_(0) of the
    # storage fails after a snapshot of the parameters.
    calls = [
        lambda t: interop.to_numpy(t, copy=True),
        lambda t: interop.to_numpy(t, dtype=np.float64),
        lambda t: interop.to_numpy(t, upcast=True, copy=True),
        lambda t: interop.to_numpy_tree({"w": t}, copy=True),
        lambda t: interop.convert(t, "torch", copy=True),
        lambda t: interop.explain(t, to="torch"),
        # Across frameworks: explain converts nothing, and a copy leaves its source.
        lambda t: interop.explain(t, to="jax"),
        lambda t: interop.explain(t, to="tensorflow", copy=True),
        lambda t: interop.convert(t, "jax", copy=True),
        lambda t: interop.convert(t, "tensorflow", copy=True),
    ]
    for dtype in (torch.float32, torch.bfloat16, torch.bool):
        for grad in (False, True):
            for call in calls:
                t = torch.ones(4, 3, dtype=dtype).T
                if grad and dtype.is_floating_point:
                    t = torch.nn.Parameter(t)
                call(t)
                call(t)  # (and through a cached plan)
                t.untyped_storage().resize_(0)  # raises where the storage was marked
    t = torch.arange(6.0)
    out = interop.to_numpy(t, copy=True)
    assert out.flags.writeable and out.tolist() == list(range(6))
    assert not np.shares_memory(out, t.numpy())


@pytest.mark.parametrize(
    ("make", "to"),
    [
        (lambda: torch.ones(4, 3, dtype=torch.float64), "jax"),  # (no x64: a cast)
        (lambda: torch.ones(4, 3, dtype=torch.int64), "jax"),
        (lambda: torch.ones(4, 3).T, "tensorflow"),
        (lambda: torch.ones(4, 3).T, "jax"),
        (lambda: torch.ones(4, dtype=torch.bool), "arrow"),
        (lambda: torch.nn.Parameter(torch.ones(4, 3).T), "jax"),
        (lambda: torch.nn.Parameter(torch.ones(4, 3).T), "tensorflow"),
    ],
)
def test_the_fast_path_of_convert_leaves_a_tensor_it_copies_resizable(make: Any, to: str) -> None:
    t = make()
    for _ in range(3):  # (the route is made on the first call, then reused)
        out = interop.convert(t, to)
        assert not interop.explain(t, to=to).zero_copy
    t.untyped_storage().resize_(0)  # raises where the storage was marked
    assert interop.framework_of(out) == to


@pytest.mark.parametrize("planned", [False, True])
@pytest.mark.parametrize("to", ["jax", "tensorflow"])
@pytest.mark.parametrize("grad", ["requires_grad", "parameter"])
def test_a_dlpack_alias_of_a_tensor_with_grad_marks_its_storage(
    grad: str, to: str, planned: bool
) -> None:
    # Its view is read-only: the target imports the tensor's own DLPack export.
    t = torch.arange(64.0).requires_grad_()
    t = torch.nn.Parameter(t.detach()) if grad == "parameter" else t
    assert interop.explain(t, to=to).steps == ("dlpack",)
    out = interop.convert(t, to, device="cpu" if planned else None)  # (device=: the plan)
    with pytest.raises(RuntimeError, match="not resizable"):
        t.untyped_storage().resize_(0)
    assert np.shares_memory(interop.to_numpy(out), t.detach().numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.complex64])
@pytest.mark.parametrize("to", ["jax", "tensorflow", "arrow", "dask"])
def test_a_result_that_aliases_a_tensor_marks_its_storage(to: str, dtype: Any) -> None:
    # As Tensor.numpy() does: the storage must not be freed under the alias.
    def make() -> torch.Tensor:
        return torch.arange(64.0).to(dtype)

    t = make()
    assert interop.explain(t, to=to).zero_copy
    for _ in range(2):
        out = interop.convert(t, to)
        with pytest.raises(RuntimeError, match="not resizable"):
            t.untyped_storage().resize_(0)
        t = make()
    expected = interop.to_numpy(make())
    assert interop.to_numpy(out).tobytes() == expected.tobytes()


@pytest.mark.parametrize("name", ["int1", "int4", "uint2", "int3", "uint7", "float8_e4m3fn"])
def test_copy_true_within_torch_copies_dtypes_without_copy_kernels(name: str) -> None:
    # Shell dtypes have no copy kernel: their bytes are copied as uint8.
    t = torch.tensor([[1, 2], [3, 0]], dtype=torch.uint8).T.view(getattr(torch, name))
    out = interop.convert(t, "torch", copy=True)
    assert out.dtype == t.dtype and out.shape == t.shape
    assert out.view(torch.uint8).tolist() == t.view(torch.uint8).tolist()
    assert out.untyped_storage().data_ptr() != t.untyped_storage().data_ptr()


def test_functionalization_wrappers_are_refused() -> None:
    # The wrapper AOTAutograd and torch.export put around inputs: its storage does not
    # hold its values (to_numpy once read garbage from it).
    wrap = getattr(torch, "_to_functional_tensor", None)
    if wrap is None:
        pytest.skip("this PyTorch has no functional tensors")
    for _ in range(2):
        ft = wrap(torch.full((4,), 7.0))
        for call in (interop.to_numpy, interop.explain, lambda t: interop.to_numpy(t, copy=True)):
            with pytest.raises(interop.ConversionError, match="functionalization"):
                call(ft)


def test_special_layouts_under_a_default_device_and_a_fake_mode() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.nested is a prototype)
        nested = torch.nested.nested_tensor(
            [torch.ones(2, dtype=torch.bfloat16), torch.ones(3, dtype=torch.bfloat16)]
        )
    with torch.device("meta"):
        padded = interop.to_numpy(nested, ragged="pad")
    assert padded.shape == (2, 3) and padded.astype(np.float32).sum() == 5
    grad = torch.ones(3, requires_grad=True)
    with FakeTensorMode():
        for target in ("jax", "tensorflow", "torch", "numpy"):
            out = interop.convert(grad, target)
            assert interop.to_numpy(out).tolist() == [1.0, 1.0, 1.0]
        assert interop.explain(grad, to="jax").dtype == np.float32


def test_complex_to_real_is_refused_by_the_plan_of_every_layout() -> None:
    pytest.importorskip("scipy")
    z = torch.tensor([[1 + 2j, 0], [0, 3 - 1j]], dtype=torch.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor([z[0], z[1, :1]])
    for x, kwargs in ((z.to_sparse(), {"sparse": "scipy"}), (nested, {"ragged": "object"})):
        with pytest.raises(interop.ConversionError, match="imaginary"):
            interop.explain(x, dtype=np.float32, **kwargs)


@pytest.mark.parametrize("change", ["requires_grad", "dtype"])
def test_a_tensor_changed_while_it_is_planned_leaves_no_plan_behind(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Another thread changes a tensor between its plan key and its plan (simulated).

    The plan, made for the new state, must not be cached under the old key: it would
    answer for every later tensor of that key (read-only views of plain tensors, no
    cast under dtype=).
    """
    from interop import _registry

    backend = _registry.lookup(torch.Tensor)
    assert backend is not None
    real = backend.plan

    def meanwhile(t: Any, options: Any) -> Any:
        if change == "requires_grad":
            t.requires_grad_(True)
        else:
            t.data = torch.ones(4, dtype=torch.float32)
        return real(t, options)

    def call(t: Any) -> np.ndarray:
        if change == "requires_grad":
            return interop.to_numpy(t, copy=False)
        return interop.to_numpy(t, dtype=np.float32)

    backend._plans.clear()
    monkeypatch.setattr(backend, "plan", meanwhile)
    call(torch.ones(4) if change == "requires_grad" else torch.ones(4, dtype=torch.int64))
    monkeypatch.undo()
    # A tensor of the key the first call began with: plain float32, or int64.
    fresh = torch.arange(4.0) if change == "requires_grad" else torch.arange(4)
    out = call(fresh)
    assert out.dtype == np.float32 and out.tolist() == [0.0, 1.0, 2.0, 3.0]
    if change == "requires_grad":
        assert out.flags.writeable and np.shares_memory(out, fresh.numpy())


# -- lists of tensors: stacked in one copy ---------------------------------------------


def _stack() -> Callable[[Any], Any]:
    stack = interop._registry.stacker_of(torch.Tensor)
    assert stack is not None
    return stack


def test_a_list_of_tensors_of_one_dtype_and_shape_is_stacked_by_torch() -> None:
    items = [torch.full((2, 3), float(i), dtype=torch.bfloat16) for i in range(4)]
    items[1].requires_grad_(True)
    interop.to_numpy(items[0])  # (a bit format joins the host view once planned)
    make = _stack()(items)
    assert make is not None
    out = make()
    assert out.dtype == ml_dtypes.bfloat16 and out.shape == (4, 2, 3)
    assert out.flags.writeable
    assert not any(np.shares_memory(out, t.detach().view(torch.int16).numpy()) for t in items)
    np.testing.assert_array_equal(out.astype(np.float32)[:, 0, 0], [0, 1, 2, 3])
    assert not items[0].requires_grad and items[1].requires_grad  # (the graph is not touched)


def _mode_calls() -> tuple[Any, list[str]]:
    from torch.overrides import TorchFunctionMode

    called: list[str] = []

    class Recording(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            called.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    return Recording(), called


def _complex32() -> Any:
    with _building(r"ComplexHalf support is experimental"):
        return torch.zeros(2, dtype=torch.complex32)


def _freed() -> Any:
    t = torch.ones(3)
    t.untyped_storage().resize_(0)
    return t


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(lambda: [torch.ones(2), torch.ones(2, dtype=torch.float64)], id="dtypes"),
        pytest.param(lambda: [torch.ones(2), torch.ones(3)], id="shapes"),
        pytest.param(lambda: [torch.ones(2), np.ones(2, np.float32)], id="types"),
        pytest.param(lambda: [torch.ones(2), torch.nn.Parameter(torch.ones(2))], id="subclass"),
        pytest.param(lambda: [torch.ones(2, dtype=torch.cfloat).conj()] * 2, id="conj"),
        pytest.param(lambda: [torch.ones(2), torch.ones(2, device="meta")], id="meta"),
        pytest.param(lambda: [torch.ones(2), torch.ones(2).to_sparse()], id="sparse"),
        pytest.param(lambda: [torch.ones(3), _freed()], id="freed-storage"),
        pytest.param(lambda: [_complex32()] * 2, id="dtype-read-by-the-plan"),
    ],
)
def test_stacking_declines_what_the_items_host_views_would_not_take(
    items: Callable[[], Any],
) -> None:
    # Each item is then converted by itself: the same answer, or the same error.
    assert _stack()(items()) is None


def test_stacking_declines_inside_a_mode_which_would_see_it() -> None:
    mode, called = _mode_calls()
    items = [torch.ones(2), torch.zeros(2)]
    with mode:
        assert _stack()(items) is None
        out = interop.to_numpy(items)
    assert "stack" not in called
    np.testing.assert_array_equal(out, [[1, 1], [0, 0]])


def test_a_list_with_a_freed_storage_is_refused_not_read() -> None:
    with pytest.raises(interop.ConversionError, match="storage was freed or shrunk"):
        interop.to_numpy([torch.ones(3), _freed()])


def test_stacking_inside_a_transform_declines() -> None:
    seen: list[Any] = []

    def step(x: Any) -> Any:
        seen.append(_stack()([x, x]))
        return x

    torch.vmap(step)(torch.ones(2, 3))
    assert seen == [None]


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(lambda a: [a, a], id="stacked"),
        pytest.param(lambda a: [a, torch.ones(3, dtype=torch.float64)], id="dtypes"),
        pytest.param(lambda a: [a, np.ones(3)], id="with-numpy"),
        pytest.param(lambda a: [[a], (a.to(torch.bfloat16),)], id="nested-bit-format"),
        pytest.param(lambda a: [a.conj_physical(), a.t()], id="copied-and-viewed"),
    ],
)
def test_a_list_leaves_its_tensors_resizable(items: Callable[[Any], Any]) -> None:
    # Its array is a copy: reading the items must not mark their storages never to be
    # resized, as Tensor.numpy() does (FSDP frees a parameter's storage between uses).
    a = torch.nn.Parameter(torch.ones(3))
    listed = items(a)
    interop.explain(listed)
    out = interop.to_numpy(listed)
    assert out.flags.writeable and out.__array_interface__["data"][0] != a.data_ptr()
    with torch.no_grad():
        a.untyped_storage().resize_(0)  # raises where the storage was marked
    assert a.untyped_storage().nbytes() == 0
