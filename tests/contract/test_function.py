"""``@interop.numpy_function``: one NumPy function serving every framework."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import warnings
from collections import OrderedDict, defaultdict, namedtuple
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from tests.conftest import Framework, has_cuda

DATA = np.arange(12, dtype=np.float32).reshape(3, 4)


@interop.numpy_function
def double(x: Any) -> Any:
    """Twice x."""
    assert isinstance(x, np.ndarray)
    return x * 2


def test_each_framework_gets_its_own_kind_back(fw: Framework) -> None:
    x = fw.make(DATA)
    out = double(x)
    assert interop.framework_of(out) == fw.name
    np.testing.assert_array_equal(interop.to_numpy(out), DATA * 2)


def test_numpy_only_returns_the_result_unchanged() -> None:
    seen = []

    @interop.numpy_function
    def ident(x: Any) -> Any:
        seen.append(x)
        return x

    a = np.arange(3.0)
    assert ident(a) is a and seen[0] is a


def test_result_keeps_the_device_of_the_reference() -> None:
    import torch

    out = double(torch.ones(2))
    assert out.device == torch.device("cpu")
    if has_cuda():
        assert double(torch.ones(2, device="cuda")).is_cuda


@pytest.mark.gpu
def test_gpu_result_goes_back_to_the_gpu() -> None:
    import torch

    x = torch.arange(4.0, device="cuda")
    out = double(x)
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), np.arange(4.0) * 2)


def test_nested_arguments_and_results(tensor_fw: Framework) -> None:
    Pair = namedtuple("Pair", "a b")

    @interop.numpy_function
    def combine(items: list[Any], *, weights: dict[str, Any], pair: Any) -> Any:
        assert all(isinstance(i, np.ndarray) for i in items)
        assert isinstance(weights["w"], np.ndarray) and isinstance(pair, Pair)
        assert isinstance(pair.a, np.ndarray) and pair.b == "label"
        total = sum(items) * weights["w"]
        return {"total": total, "parts": (items[0], float(total.sum())), "scalar": total.sum()}

    x = tensor_fw.make(DATA)
    args = [x, np.ones_like(DATA)]
    weights = {"w": tensor_fw.make(np.full(4, 2.0, np.float32))}
    out = combine(args, weights=weights, pair=Pair(x, "label"))

    assert interop.framework_of(out["total"]) == tensor_fw.name
    np.testing.assert_array_equal(interop.to_numpy(out["total"]), (DATA + 1) * 2)
    assert interop.framework_of(out["parts"][0]) == tensor_fw.name
    assert isinstance(out["parts"][1], float)  # Python scalars stay Python scalars
    assert interop.framework_of(out["scalar"]) == tensor_fw.name  # NumPy scalars convert
    # The caller's containers are not changed.
    assert args[0] is x and isinstance(args[1], np.ndarray) and weights["w"] is not None
    assert interop.framework_of(weights["w"]) == tensor_fw.name


def test_container_types_survive_the_round_trip() -> None:
    import torch

    @interop.numpy_function
    def echo(obj: Any) -> Any:
        return obj

    Point = namedtuple("Point", "x y")
    od = OrderedDict(a=torch.ones(1))
    dd: defaultdict[str, Any] = defaultdict(list, b=torch.ones(1))
    for obj in (Point(torch.ones(1), 2), od, dd, [torch.ones(1), ("s", torch.ones(1))]):
        out = echo(obj)
        assert type(out) is type(obj)
    assert echo(dd).default_factory is list


@dataclasses.dataclass(frozen=True)
class Batch:
    inputs: Any
    label: str


def test_dataclass_arguments_and_results(tensor_fw: Framework) -> None:
    @interop.numpy_function
    def scale(batch: Batch) -> Batch:
        assert isinstance(batch.inputs, np.ndarray) and batch.label == "train"
        return Batch(batch.inputs * 2, batch.label)

    x = tensor_fw.make(DATA)
    out = scale(Batch(x, "train"))
    assert isinstance(out, Batch) and out.label == "train"
    assert interop.framework_of(out.inputs) == tensor_fw.name
    np.testing.assert_array_equal(interop.to_numpy(out.inputs), DATA * 2)


def test_the_function_gets_new_containers() -> None:
    import torch

    @interop.numpy_function
    def grow(items: list[Any], table: dict[str, Any]) -> Any:
        items.append(np.zeros(1))
        table["new"] = 1
        return items[0]

    items, table = [torch.ones(2)], {"t": torch.ones(1)}
    out = grow(items, table)
    assert isinstance(out, torch.Tensor)
    assert len(items) == 1 and list(table) == ["t"]  # the caller's containers are unchanged


def test_mixed_frameworks_are_an_error_naming_both() -> None:
    import jax.numpy as jnp
    import torch

    @interop.numpy_function
    def add(x: Any, y: Any) -> Any:
        return x + y

    with pytest.raises(interop.InteropError, match=r"torch .*jax .*like="):
        add(torch.ones(2), jnp.ones(2))
    # NumPy arguments are neutral.
    assert interop.framework_of(add(np.ones(2), jnp.ones(2))) == "jax"


@pytest.mark.parametrize("like", ["y", 1])
def test_like_decides_between_frameworks(like: str | int) -> None:
    import jax.numpy as jnp
    import torch

    @interop.numpy_function(like=like)
    def add(x: Any, y: Any) -> Any:
        return x + y

    out = add(torch.ones(2), jnp.ones(2))
    assert interop.framework_of(out) == "jax"
    out = add(torch.ones(2), y=jnp.ones(2)) if like == "y" else out
    assert interop.framework_of(out) == "jax"
    # A NumPy argument that decides keeps the result NumPy.
    assert isinstance(add(torch.ones(2), np.ones(2)), np.ndarray)


def test_like_must_name_a_parameter() -> None:
    with pytest.raises(TypeError, match=r"name a parameter.*'z'"):

        @interop.numpy_function(like="z")
        def f(x: Any) -> Any:
            return x

    with pytest.raises(TypeError, match="parameter name or a non-negative index"):
        interop.numpy_function(like=-1)(lambda x: x)
    with pytest.raises(TypeError, match=r"index a positional parameter of .*got 2, but it takes 2"):
        interop.numpy_function(like=2)(lambda x, y, *, z: x)
    # Any index may name one of *args; a method's receiver counts, as it is passed.
    assert interop.numpy_function(like=3)(lambda x, *rest: x)
    assert Scaler(2.0).scale(np.ones(1)).tolist() == [2.0]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"copy": "x"}, "copy"),
        ({"dtype": "floot"}, "floot"),
        ({"upcast": "yes"}, "upcast"),
        ({"float_dtype": np.int32}, "float_dtype"),
    ],
)
def test_option_values_are_checked_when_decorating(options: dict[str, Any], says: str) -> None:
    with pytest.raises(TypeError, match=says):
        interop.numpy_function(**options)(lambda x: x)


class Scaler:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    @interop.numpy_function
    def scale(self, x: Any) -> Any:
        """Scale x."""
        return x * self.factor

    @interop.numpy_function(like="x")
    def shift(self, offset: Any, x: Any) -> Any:
        return x + offset


def test_methods(tensor_fw: Framework) -> None:
    s = Scaler(3.0)
    x = tensor_fw.make(DATA)
    out = s.scale(x)
    assert interop.framework_of(out) == tensor_fw.name
    np.testing.assert_array_equal(interop.to_numpy(out), DATA * 3)
    assert Scaler.scale.__doc__ == "Scale x." and Scaler.scale.__name__ == "scale"


def test_method_with_like_by_name() -> None:
    import jax.numpy as jnp
    import torch

    out = Scaler(1.0).shift(torch.ones(4), jnp.asarray(DATA[0]))
    assert interop.framework_of(out) == "jax"
    np.testing.assert_array_equal(np.asarray(out), DATA[0] + 1)


def test_wraps_keeps_name_doc_and_signature() -> None:
    def original(x: Any, y: int = 3, *, k: str = "a") -> Any:
        """Doc."""
        return x

    wrapped = interop.numpy_function(original)
    assert wrapped.__name__ == "original" and wrapped.__doc__ == "Doc."
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert double.__name__ == "double"
    # A partial lends the name and docstring of what it calls; a callable object its
    # class's name; an async one stays a coroutine function.
    partial = interop.numpy_function(functools.partial(original, y=2))
    assert (partial.__name__, partial.__qualname__, partial.__doc__) == (
        "original",
        original.__qualname__,
        "Doc.",
    )
    assert inspect.signature(partial) == inspect.signature(functools.partial(original, y=2))
    for obj, name in ((_Add(), "_Add"), (_AsyncDouble(), "_AsyncDouble")):
        wrapped_object = interop.numpy_function(functools.partial(obj))
        assert (wrapped_object.__name__, wrapped_object.__qualname__) == (name, name)
        assert interop.numpy_function(obj).__name__ == name
    assert inspect.iscoroutinefunction(interop.numpy_function(_AsyncDouble()))


def test_autograd_is_not_carried_and_nothing_is_raised() -> None:
    import torch

    x = torch.arange(4.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = double(x)
    assert not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), np.arange(4.0) * 2)


def test_immutable_inputs_arrive_read_only_unless_copy(tensor_fw: Framework) -> None:
    def fill(x: Any) -> Any:
        x[...] = 0
        return x

    x = tensor_fw.make(DATA)
    if tensor_fw.immutable:
        with pytest.raises(ValueError, match="read-only"):
            interop.numpy_function(fill)(x)
    out = interop.numpy_function(copy=True)(fill)(x)
    np.testing.assert_array_equal(interop.to_numpy(out), np.zeros_like(DATA))
    np.testing.assert_array_equal(interop.to_numpy(x), DATA)  # the caller's array is intact


def test_copy_true_protects_numpy_arguments_too() -> None:
    a = DATA.copy()

    @interop.numpy_function(copy=True)
    def fill(x: Any) -> Any:
        x[...] = 0
        return x

    fill(a)
    np.testing.assert_array_equal(a, DATA)


def test_upcast_option_reaches_the_arguments() -> None:
    import torch

    seen = []

    @interop.numpy_function(upcast=True)
    def f(x: Any) -> Any:
        seen.append(x.dtype)
        return x

    out = f(torch.ones(3, dtype=torch.bfloat16))
    assert seen == [np.float32] and out.dtype == torch.float32

    @interop.numpy_function
    def g(x: Any) -> Any:
        seen.append(x.dtype)
        return x

    out = g(torch.ones(3, dtype=torch.bfloat16))
    assert seen[-1] == ml_dtypes.bfloat16 and out.dtype == torch.bfloat16


def test_non_arrays_pass_through() -> None:
    import pandas as pd
    import torch

    seen = []

    @interop.numpy_function
    def f(x: Any, s: Any, label: str, n: int, nothing: None) -> Any:
        seen.append(s)
        return x, label, n, nothing

    series = pd.Series([1.0, 2.0])
    out = f(torch.ones(1), series, "text", 3, None)
    assert seen[0] is series
    assert isinstance(out[0], torch.Tensor) and out[1:] == ("text", 3, None)


def test_results_no_framework_holds_stay_numpy() -> None:
    import torch

    text = np.array(["a", "b"])
    objects = np.array([{"k": 1}, None], dtype=object)
    dates = np.array(["2026-01-01"], dtype="datetime64[D]")
    records = np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])

    @interop.numpy_function
    def f(x: Any) -> Any:
        return x + 1, text, objects, dates, records, np.str_("t")

    out = f(torch.ones(1))
    assert isinstance(out[0], torch.Tensor)
    assert out[1] is text and out[2] is objects and out[3] is dates and out[4] is records
    assert out[5] == "t"


def test_flat_and_nested_arguments_convert_alike(
    tensor_fw: Framework, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flat arguments take one pass, nested ones the tree walk: the function sees
    # the same NumPy arrays either way, and the results go back the same way.
    seen: list[Any] = []
    walks: list[int] = []
    start = interop._function._tree.start

    def counted(*args: Any, **kwargs: Any) -> Any:
        walks.append(1)
        return start(*args, **kwargs)

    monkeypatch.setattr(interop._function._tree, "start", counted)

    @interop.numpy_function
    def f(x: Any, *rest: Any, y: Any, scale: float = 1.0) -> Any:
        seen.append((x, rest, y))
        return x * scale + y, np.float32(scale)

    x, y = tensor_fw.make(DATA), tensor_fw.make(DATA + 1)
    f(x, 3, None, y=y)  # (a backend may learn its host devices from a first plan)
    seen.clear()
    walks.clear()
    flat = f(x, 3, None, y=y, scale=2.0)
    if tensor_fw.name in ("torch", "tensorflow", "jax"):  # (host views: the flat path)
        assert not walks
    walked = f(x, [3], None, y=y, scale=2.0)  # a list among the arguments: the walk
    assert walks
    for out in (flat, walked):
        assert interop.framework_of(out[0]) == tensor_fw.name
        assert interop.framework_of(out[1]) == tensor_fw.name
        np.testing.assert_array_equal(interop.to_numpy(out[0]), DATA * 2 + DATA + 1)
    (flat_x, flat_rest, flat_y), (walked_x, walked_rest, walked_y) = seen
    assert flat_rest == (3, None) and walked_rest == ([3], None)
    for a, b, source in ((flat_x, walked_x, x), (flat_y, walked_y, y)):
        assert type(a) is type(b) is np.ndarray and a.flags.writeable == b.flags.writeable
        assert np.shares_memory(a, tensor_fw.native(source)) == np.shares_memory(
            b, tensor_fw.native(source)
        )


def test_flat_arguments_of_two_frameworks_are_the_same_error() -> None:
    import jax.numpy as jnp
    import torch

    @interop.numpy_function
    def add(x: Any, *, y: Any) -> Any:
        return x + y

    with pytest.raises(interop.InteropError, match=r"torch .*jax .*like="):
        add(torch.ones(2), y=jnp.ones(2))


def test_array_api_arguments() -> None:
    import array_api_strict as xps

    x = xps.asarray(DATA)
    out = double(x)
    assert interop.framework_of(out) == "array_api"
    np.testing.assert_array_equal(np.from_dlpack(out), DATA * 2)


def test_dask_arguments_give_dask_results() -> None:
    """A Dask argument was neutral: the results came back computed, as NumPy arrays."""
    da = pytest.importorskip("dask.array")
    x = da.from_array(DATA, chunks=(1, 4))

    @interop.numpy_function
    def moments(a: Any, *, b: Any = 0) -> Any:
        assert type(a) is np.ndarray
        return {"mean": (a + b).mean(axis=0), "n": len(a)}

    out = moments(x)
    assert interop.framework_of(out["mean"]) == "dask" and out["n"] == 3
    assert out["mean"].chunks == ((4,),)  # one chunk
    np.testing.assert_array_equal(out["mean"].compute(), DATA.mean(axis=0))
    assert interop.framework_of(double(x)) == "dask"
    np.testing.assert_array_equal(double(x).compute(), DATA * 2)
    # NumPy arguments are still neutral; NumPy ones alone give NumPy results.
    assert interop.framework_of(moments(DATA, b=x)["mean"]) == "dask"
    assert type(moments(DATA)["mean"]) is np.ndarray


def test_dask_and_another_framework_are_an_error_naming_both() -> None:
    da = pytest.importorskip("dask.array")
    torch = pytest.importorskip("torch")

    @interop.numpy_function
    def add(x: Any, y: Any) -> Any:
        return x + y

    x = da.arange(4.0, chunks=2)
    t = torch.ones(4, dtype=torch.float64)
    for args in ((x, t), (t, x)):
        with pytest.raises(interop.InteropError) as info:
            add(*args)
        assert type(info.value) is interop.InteropError
        message = str(info.value)
        assert "expected arrays of one framework, got " in message
        assert "dask (`dask.array.core.Array`)" in message and "torch (`torch.Tensor`)" in message
        assert message.endswith(
            "hint: name the argument that decides with @numpy_function(like='name')"
        )
    assert isinstance(interop.numpy_function(like="y")(add.__wrapped__)(x, t), torch.Tensor)
    assert interop.framework_of(interop.numpy_function(like=0)(add.__wrapped__)(x, t)) == "dask"


def test_decorating_a_non_callable_is_an_error() -> None:
    with pytest.raises(TypeError, match="expected a function"):
        interop.numpy_function(3)  # type: ignore[call-overload]


def test_docs_library_author_example_runs() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "convert.md").read_text()
    section = text.split("## For library authors", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/convert.md", "exec"), namespace)
    assert namespace["standardize"].__doc__.startswith("Zero mean")


def test_errors_name_the_argument_not_the_walk() -> None:
    torch = pytest.importorskip("torch")

    @interop.numpy_function
    def score(scores: Any, labels: Any, *rest: Any, mask: Any = None) -> Any:
        return scores

    meta = torch.empty(1, device="meta")
    cases = [
        ((torch.ones(2), [meta]), {}, r"^score\(\): argument 'labels'\[0\]: expected a tensor"),
        ((torch.ones(2), 1, {"k": meta}), {}, r"^score\(\): argument 'rest\[0\]'\['k'\]: "),
        ((torch.ones(2), 1), {"mask": meta}, r"^score\(\): argument 'mask': "),
    ]
    for args, kwargs, pattern in cases:
        with pytest.raises(interop.ConversionError, match=pattern):
            score(*args, **kwargs)


def test_float_dtype_casts_floating_point_arguments_only() -> None:
    torch = pytest.importorskip("torch")

    @interop.numpy_function(float_dtype=np.float32)
    def dtypes(x: Any, labels: Any) -> Any:
        return str(x.dtype), str(labels.dtype)

    assert dtypes(torch.ones(2, dtype=torch.float64), torch.arange(2)) == ("float32", "int64")


def test_deep_and_cyclic_arguments_are_taken_as_by_to_numpy_tree() -> None:
    torch = pytest.importorskip("torch")

    @interop.numpy_function
    def ident(x: Any, y: Any = None) -> Any:
        return x

    deep: Any = torch.ones(2)
    for _ in range(3000):
        deep = [deep]
    out = ident(deep)  # in, and the deep result back out
    for _ in range(3000):
        out = out[0]
    assert isinstance(out, torch.Tensor) and out.tolist() == [1.0, 1.0]

    cyclic: list[Any] = [torch.ones(1)]
    cyclic.append({"c": cyclic})
    with pytest.raises(interop.ConversionError) as tree_error:
        interop.to_numpy_tree(cyclic)
    with pytest.raises(interop.ConversionError) as info:
        ident(torch.ones(1), cyclic)
    where = "ident(): argument 'y'"
    expected = str(tree_error.value).replace("at tree", f"at {where}")
    expected = expected.replace("ancestor tree", f"ancestor {where}")
    assert str(info.value) == expected
    assert info.value.__interop_path__ == "ident(): argument 'y'[1]['c']"  # type: ignore[attr-defined]


def test_any_keyword_name_or_key_is_renamed_to_the_argument() -> None:
    @interop.numpy_function(copy=False)
    def f(**kw: Any) -> Any:
        return 0

    for key, inner, path in [
        ('it\'s "q"', np.float32(1), "f(): argument 'it\\'s \"q\"'"),
        ("a']['b", np.float32(1), "f(): argument \"a']['b\""),
        ("batch", {"p: q": np.float32(1)}, "f(): argument 'batch'['p: q']"),
    ]:
        with pytest.raises(interop.CopyRequiredError) as info:
            f(**{key: inner}, other=np.zeros(1))
        assert info.value.__interop_path__ == path  # type: ignore[attr-defined]
        assert str(info.value).startswith(f"{path}: copy=False")


def test_an_error_class_that_wants_more_than_a_message_names_the_argument() -> None:
    @interop.numpy_function(dtype="U")
    def f(x: Any) -> Any:
        return x

    with pytest.raises(UnicodeDecodeError) as info:
        f({"s": np.array([b"\xff"])})
    assert info.value.__notes__ == ["at f(): argument 'x'['s']"]
    assert info.value.__interop_path__ == "f(): argument 'x'['s']"  # type: ignore[attr-defined]


def test_a_registered_container_argument_is_taken_apart() -> None:
    from interop._tree import containers

    class Table:
        def __init__(self, column: Any) -> None:
            self.column = column

        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            return np.asarray(self.column)

    class Broken(Table):
        pass

    def broken(t: Broken) -> tuple[list[Any], None]:
        raise ValueError("flatten boom")

    @interop.numpy_function
    def kinds(x: Any) -> Any:
        return type(x).__name__, type(x.column).__name__

    interop.register_container(Table, lambda t: ([t.column], None), lambda _, c: Table(*c))
    interop.register_container(Broken, broken, lambda _, c: Broken(*c))
    try:
        assert kinds(Table(np.ones(2))) == ("Table", "ndarray")
        with pytest.raises(ValueError, match=r"^kinds\(\): argument 'x'\['t'\]: flatten boom"):
            kinds({"t": Broken(np.ones(2))})
    finally:
        containers._unregister(Table)
        containers._unregister(Broken)


def test_a_method_runs_on_its_own_receiver() -> None:
    # The receiver of a method (a dataclass, a container the walk would rebuild) is
    # passed as it is: state the method sets stays, and `return self` is self.
    torch = pytest.importorskip("torch")

    @dataclasses.dataclass
    class Scaler:
        mean: Any = None
        calls: int = 0

        @interop.numpy_function
        def fit(self, x: Any) -> Any:
            self.mean = x.mean(axis=0)
            self.calls += 1
            return self

        @interop.numpy_function
        def center(self, x: Any) -> Any:
            return x - self.mean

    for data in (np.ones((4, 2)), torch.ones(4, 2)):
        s = Scaler()
        assert s.fit(data) is s and s.calls == 1 and s.mean.tolist() == [1.0, 1.0]
        centered = s.center(data)
        assert type(centered) is type(data) and interop.to_numpy(centered).sum() == 0


def test_async_functions_are_awaited_and_generators_refused() -> None:
    import asyncio

    torch = pytest.importorskip("torch")

    @interop.numpy_function
    async def double(x: Any) -> Any:
        return x * 2

    assert inspect.iscoroutinefunction(double)
    out = asyncio.run(double(torch.ones(3)))
    assert isinstance(out, torch.Tensor) and out.tolist() == [2.0, 2.0, 2.0]

    def batches(x: Any) -> Any:
        yield x

    with pytest.raises(TypeError, match="generator function"):
        interop.numpy_function(batches)


class _AsyncDouble:
    async def __call__(self, x: Any) -> Any:
        return x * 2


class _Batches:
    def __call__(self, x: Any) -> Any:
        yield x


class _Add:
    def __call__(self, x: Any, y: Any) -> Any:
        return x + y


def test_callable_objects_and_partials_are_decorated_as_their_calls() -> None:
    import asyncio

    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")

    async def scale(x: Any, k: float) -> Any:
        return x * k

    def batches(x: Any) -> Any:
        yield x

    for coroutine in (
        interop.numpy_function(_AsyncDouble()),
        interop.numpy_function(functools.partial(scale, k=2.0)),
    ):
        out = asyncio.run(coroutine(torch.ones(3)))
        assert isinstance(out, torch.Tensor) and out.tolist() == [2.0, 2.0, 2.0]
    partial_object = interop.numpy_function(functools.partial(_AsyncDouble()))
    out = asyncio.run(partial_object(torch.ones(3)))
    assert isinstance(out, torch.Tensor) and out.tolist() == [2.0, 2.0, 2.0]
    for generator in (_Batches(), functools.partial(batches), functools.partial(_Batches())):
        with pytest.raises(TypeError, match="generator function"):
            interop.numpy_function(generator)
    # Messages name what has no __qualname__ of its own.
    add = interop.numpy_function(functools.partial(_Add()))
    with pytest.raises(interop.InteropError, match=r"arguments of partial\(_Add object\)"):
        add(torch.ones(2), jnp.ones(2))
    looped: list[Any] = [torch.ones(2)]
    looped.append(looped)
    with pytest.raises(interop.ConversionError, match=r"at _Add object\(\): argument 'x'\[1\]"):
        interop.numpy_function(_Add())(looped, torch.ones(2))


def test_a_result_error_renames_its_paths_only() -> None:
    @interop.numpy_function
    def keyed(x: Any) -> Any:
        loop: list[Any] = [x]
        loop.append(loop)
        return {"subtree": loop}

    torch = pytest.importorskip("torch")
    with pytest.raises(interop.ConversionError) as info:
        keyed(torch.ones(1))
    message = str(info.value)
    assert "expected a tree without cycles" in message
    assert "at keyed(): result['subtree'][1]" in message and "subkeyed" not in message


def test_a_bare_result_that_cannot_go_back_is_named_the_result() -> None:
    # As a result inside a tuple is: the caller's arguments are not at fault.
    torch = pytest.importorskip("torch")
    wide = np.ones(2, dtype=np.longdouble)
    if wide.dtype.itemsize <= 8:
        pytest.skip("this platform's long double is a double")

    @interop.numpy_function
    def bare(x: Any) -> Any:
        return wide

    @interop.numpy_function
    def in_tuple(x: Any) -> Any:
        return (wide,)

    for f, where in ((bare, r"bare\(\): result: "), (in_tuple, r"in_tuple\(\): result\[0\]: ")):
        with pytest.raises(interop.ConversionError, match=rf"^{where}expected a dtype PyTorch"):
            f(torch.ones(1))


def test_array_defaults_and_partial_keywords_are_converted_as_arguments() -> None:
    torch = pytest.importorskip("torch")
    seen: list[Any] = []
    two, zero = torch.full((3,), 2.0), torch.zeros(3)

    @interop.numpy_function
    def scale(x: Any, w: Any = two, *, b: Any = zero) -> Any:
        seen.append((type(w), type(b)))
        return x * w + b

    out = scale(torch.ones(3))
    assert type(out) is torch.Tensor and out.tolist() == [2.0, 2.0, 2.0]
    assert seen[-1] == (np.ndarray, np.ndarray)
    # Defaults do not choose the results' framework: the caller's arguments do.
    given = scale(np.ones(3), w=np.ones(3))
    assert type(given) is np.ndarray and given.tolist() == [1.0, 1.0, 1.0]

    def add(a: Any, b: Any) -> Any:
        seen.append(type(b))
        return a + b

    added = interop.numpy_function(functools.partial(add, b=torch.ones(2)))(torch.ones(2))
    assert seen[-1] is np.ndarray and added.tolist() == [2.0, 2.0]


def test_arrays_a_partial_binds_by_position_are_converted_as_arguments() -> None:
    torch = pytest.importorskip("torch")
    seen: list[Any] = []

    def affine(w: Any, b: Any, x: Any) -> Any:
        seen.append((type(w), type(b["shift"]), type(x)))
        return x * w + b["shift"]

    bound = functools.partial(affine, torch.full((2,), 3.0), {"shift": torch.ones(2)})
    wrapped = interop.numpy_function(bound)
    out = wrapped(torch.ones(2))
    assert seen[-1] == (np.ndarray, np.ndarray, np.ndarray)
    assert type(out) is torch.Tensor and out.tolist() == [4.0, 4.0]
    # Bound arrays do not choose the results' framework; the partial is left as it was.
    assert type(wrapped(np.ones(2))) is np.ndarray
    assert type(bound.args[0]) is torch.Tensor and type(bound.args[1]["shift"]) is torch.Tensor
    # A failure is named by the bound argument's place.
    cyclic: list[Any] = [torch.ones(2)]
    cyclic.append(cyclic)
    broken = interop.numpy_function(functools.partial(affine, cyclic, {"shift": 0}))
    with pytest.raises(interop.ConversionError, match=r"at affine\(\): bound argument #0\[1\]"):
        broken(torch.ones(2))
    # Under the options in force at call time, as the call's own arguments.
    conj = torch.ones(2, dtype=torch.complex64).conj()
    strict = interop.numpy_function(functools.partial(affine, conj, {"shift": 0}), copy=False)
    with pytest.raises(interop.CopyRequiredError, match=r"affine\(\): bound argument #0"):
        strict(torch.ones(2))


def test_static_and_class_methods_under_the_decorator_stay_so() -> None:
    torch = pytest.importorskip("torch")

    class C:
        @interop.numpy_function
        @staticmethod
        def f(x: Any) -> Any:
            assert isinstance(x, np.ndarray)
            return x * 2

        @interop.numpy_function
        @classmethod
        def g(cls, x: Any) -> Any:
            assert cls is C and isinstance(x, np.ndarray)
            return x + 1

    for target in (C, C()):
        assert target.f(torch.ones(2)).tolist() == [2.0, 2.0]
        assert target.g(torch.ones(2)).tolist() == [2.0, 2.0]


def test_a_methods_receiver_inside_its_results_is_returned_as_it_is() -> None:
    torch = pytest.importorskip("torch")

    @dataclasses.dataclass
    class Model:
        w: Any

        @interop.numpy_function
        def apply(self, x: Any) -> Any:
            return (self, x * self.w), {"model": self}

    m = Model(np.full(2, 3.0))
    (back, y), named = m.apply(torch.ones(2))
    assert back is m and named["model"] is m and type(m.w) is np.ndarray
    assert type(y) is torch.Tensor and y.tolist() == [3.0, 3.0]


def test_positional_only_defaults_and_a_failing_default_are_arguments_too() -> None:
    torch = pytest.importorskip("torch")
    weight = torch.full((2,), 3.0)

    @interop.numpy_function
    def scaled(x: Any, w: Any = weight, /) -> Any:
        assert isinstance(w, np.ndarray)
        return x * w

    assert scaled(torch.ones(2)).tolist() == [3.0, 3.0]
    assert scaled(torch.ones(2), np.full(2, 2.0)).tolist() == [2.0, 2.0]

    @interop.numpy_function(copy=False, dtype=np.float64)
    def bad(x: Any, w: Any = [1, {"k": weight}]) -> Any:  # noqa: B006
        return x

    with pytest.raises(interop.CopyRequiredError, match=r"^bad\(\): argument 'w'\[1\]\['k'\]"):
        bad(np.ones(2))  # (float64 already: no copy; the float32 default needs one)


def test_a_receiver_that_is_an_array_is_returned_as_it_is() -> None:
    torch = pytest.importorskip("torch")

    class Signal(np.ndarray):
        @interop.numpy_function
        def doubled(self, t: Any) -> Any:
            return self, t * 2

    s = np.arange(2.0).view(Signal)
    back, y = s.doubled(torch.ones(2))
    assert back is s and type(y) is torch.Tensor
