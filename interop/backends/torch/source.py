"""Dense tensors as a source: the host view, the plan and its steps, accelerators.

The host view answers with ``Tensor.numpy()`` (or a same-width integer view of it)
for an ordinary dense CPU tensor, outside ``torch.func`` transforms and Python
dispatch modes, and ``None`` for anything else. "Ordinary" is one question to
PyTorch: the tensor's dispatch key set equals that of a new CPU tensor. Every
special state of a tensor is a dispatch key: another device, a sparse, nested or
MKL-DNN layout, the conjugate and negative bits, a ZeroTensor, a ``torch.func``
wrapper (even one that escaped its transform), a quantized or meta tensor. That one
C call costs less than asking for those states one attribute at a time, and a state
PyTorch adds later takes the planned path too.

The planned path refuses tensors that hold no data (meta, fake, ``torch.func``
wrappers, other ``__torch_dispatch__`` subclasses) with a
:class:`~interop.ConversionError`, never zeros or whatever their storage holds. Its
steps run with transforms and dispatch modes set aside, so that a real tensor
converts with its own values inside them.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from interop._backend import Reading
from interop._copies import STAGING_BYTES, Copy, Staged
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.torch.base import TorchBase, _no_modes, is_dtensor, is_fake

if TYPE_CHECKING:
    import torch

__all__ = ["Source"]


# ndarray.setflags takes `write` positionally too (as documented), at a fraction of
# the keyword's cost; NumPy's type stubs declare it keyword-only.
_setflags: Callable[[np.ndarray[Any, Any], bool], None] = np.ndarray.setflags  # type: ignore[assignment]


def _inactive() -> bool:
    return False


def _never(t: Any) -> bool:
    return False


def _is_cuda(t: Any) -> bool:
    return bool(t.is_cuda)


def _has_storage(t: Any) -> bool:
    return bool(sys.modules["torch"]._C._has_storage(t))


def _freed(t: Any) -> bool:
    """Whether a strided tensor with elements spans more bytes than its storage holds.

    Its storage was freed in place (``untyped_storage().resize_(0)``) or shrunk below
    what the tensor reaches: reading the tensor would read memory it no longer owns.
    """
    # (Wrappers of torch.func and sparse tensors have no storage to ask; a ZeroTensor
    # none that holds its zeros.)
    return _has_storage(t) and not t._is_zerotensor() and _reaches_past(t)


def _reaches_past(t: Any) -> bool:
    """:func:`_freed` for a tensor known to have a storage of its own (an ordinary one)."""
    held = t.untyped_storage().nbytes()
    if held >= t.nbytes and not t.storage_offset() and t.is_contiguous():
        return False  # (the common case: the tensor is its storage's first bytes)
    if not t.numel():
        return False
    gaps = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
    reach = t.storage_offset() + 1 + gaps
    return bool(held < reach * t.element_size())


def _freed_error(t: Any) -> ConversionError:
    return ConversionError(
        f"expected a tensor whose storage holds its values, got a `{type_name(t)}` "
        f"of shape {tuple(t.shape)} whose storage was freed or shrunk (resized in "
        "place, to 0 bytes as FSDP does to sharded parameters between uses): it "
        f"holds {t.untyped_storage().nbytes()} bytes, fewer than the tensor reaches. "
        "hint: convert it while its storage is allocated (in the forward pass, or "
        "under FSDP's summon_full_params)"
    )


class Source(TorchBase):
    """Dense tensors to NumPy: host view, plan, steps, accelerator copies."""

    def load(self) -> None:
        super().load()
        torch = self.torch
        C = torch._C
        self._transforms_active: Callable[[], bool] = getattr(
            C, "_are_functorch_transforms_active", _inactive
        )
        self._functorch_off: Callable[[], Any] = getattr(
            C, "_DisableFuncTorch", contextlib.nullcontext
        )
        self._is_wrapped: Callable[[Any], bool] = getattr(
            getattr(C, "_functorch", None), "is_functorch_wrapped_tensor", _never
        )
        # The functionalization wrapper AOTAutograd and torch.export put around inputs
        # (torch._to_functional_tensor): its storage does not hold its values either.
        self._is_functional: Callable[[Any], bool] = getattr(torch, "_is_functional_tensor", _never)
        self._default_dispatch = torch.Tensor.__torch_dispatch__
        self._keys_of: Any = getattr(C, "_dispatch_keys", None)
        self._ordinary_keys = self._probe_ordinary_keys()
        self.steps.update(
            detach=lambda t, p: t.detach(),
            resolve_conj=self._resolve_conj,
            resolve_neg=lambda t, p: t.resolve_neg(),
            zeros=self._zeros,
            readonly=self._readonly,
        )

    def _probe_ordinary_keys(self) -> tuple[Any, ...]:
        """The dispatch key sets of an ordinary CPU tensor, outside and inside inference mode.

        Inference tensors lack the autograd keys. The probes come from
        ``torch.from_numpy``, which ignores a default device, with Python dispatch
        switched off, so that an active mode (a FakeTensorMode, say) cannot make
        them special. ``()`` where PyTorch cannot compare key sets by value (older
        versions compare by identity and give no bits): the host view then asks for
        each state separately, and so does :meth:`plan_key`.
        """
        torch = self.torch
        C = torch._C
        keys_of = self._keys_of
        if keys_of is None or not hasattr(C.DispatchKeySet, "raw_repr"):
            return ()
        nothing = np.empty(0, dtype=np.float32)
        with getattr(C, "_DisableTorchDispatch", contextlib.nullcontext)():
            plain = torch.from_numpy(nothing)
            with torch.inference_mode():
                inference = torch.from_numpy(nothing)
        if type(plain) is not torch.Tensor or type(inference) is not torch.Tensor:
            return ()
        keys = (keys_of(plain), keys_of(inference))
        if keys[0] != keys_of(plain):  # compared by identity: no bits to compare
            return ()
        return keys

    # -- the host view ----------------------------------------------------------------

    def host_view_for(self, cls: type, /) -> Callable[[Any], np.ndarray[Any, Any] | None] | None:
        # Exactly the zero-copy answers of the plan: an ordinary dense CPU tensor
        # (see the module docstring) outside torch.func transforms and dispatch modes
        # (inside one, even a real tensor's .numpy() goes through it), of a dtype NumPy has
        # (Tensor.numpy()) or one read through a same-width integer view (bfloat16,
        # float8, shell dtypes). A tensor that requires grad gives a read-only view,
        # as the plan's detach and readonly steps do: numpy(force=True) detaches in
        # C++, which is all force does to a CPU tensor without conjugate or negative
        # bits; an integer view never requires grad. The array Tensor.numpy() makes
        # is frozen itself (see _readonly).
        if cls not in self._plain:
            return None
        if not self._ordinary_keys:
            return self._host_view_by_attributes()
        return self._host_view(self.torch.Tensor.numpy)

    def reading_for(self, cls: type, /) -> Reading | None:
        # The host view read through DLPack, which marks nothing (see _transient),
        # where the storage can still be resized; Tensor.numpy() where it cannot (it
        # changes nothing there, and costs less). An alias marks the storage then.
        if cls not in self._plain or not self._ordinary_keys or self._to_dlpack is None:
            return None
        transient = self._transient
        numpy = self.torch.Tensor.numpy
        storage_of = self.torch.Tensor.untyped_storage
        resizable = self.torch.UntypedStorage.resizable

        def read(t: Any, force: bool = False) -> np.ndarray[Any, Any]:
            if resizable(storage_of(t)):
                # Exported from a detached alias, which holds the storage itself: an
                # export of t would follow t to new data (t.data = ..., t.set_(...))
                # and let the storage this view reads go, as Tensor.numpy()'s does not.
                return transient(t.detach())
            return numpy(t, force=force)  # type: ignore[no-any-return]

        return Reading(self._host_view(read), self._keep_viewed)

    def stack_for(
        self, cls: type, /
    ) -> Callable[[Any], Callable[[], np.ndarray[Any, Any]] | None] | None:
        # torch.stack's copy of tensors the host view takes, of one dtype (torch.stack
        # promotes a mix by its own rules) and shape, read by the host view, outside
        # torch.func transforms and modes (a mode would see the operation). A tensor
        # whose storage no longer holds it is left to the plan (torch.stack would read
        # past it), as is a list any item of which is on a device.
        if cls not in self._plain or not self._ordinary_keys:
            return None
        torch = self.torch
        view = self.host_view_for(torch.Tensor)
        if view is None:
            return None
        kinds = self._view_kinds
        transforms_active = self._transforms_active
        modes_active = self._modes_active
        function_modes = getattr(torch._C, "_len_torch_function_stack", _no_modes)
        keys_of = self._keys_of
        plain_keys = self._ordinary_keys[0].__eq__
        inference_keys = self._ordinary_keys[1].__eq__
        stack = torch.stack
        no_grad = torch.no_grad
        storage_of = torch.Tensor.untyped_storage
        of_type: Any = cls

        def stacking(items: Any) -> Callable[[], np.ndarray[Any, Any]] | None:
            if not items or transforms_active() or modes_active() or function_modes():
                return None
            first = items[0]
            dtype = first.dtype
            if dtype not in kinds:
                return None
            shape = first.shape
            for t in items:
                if type(t) is not of_type or t.dtype is not dtype or t.shape != shape:
                    return None
                keys = keys_of(t)
                if (
                    not (plain_keys(keys) or inference_keys(keys))
                    # (The host view's check of the storage, as it writes it.)
                    or storage_of(t).nbytes() < t.nbytes
                    or ((t.storage_offset() or not t.is_contiguous()) and _reaches_past(t))
                ):
                    return None

            def make() -> np.ndarray[Any, Any]:
                with no_grad():
                    out = view(stack(items))
                assert out is not None  # (a new ordinary tensor of a dtype the view takes)
                return out

            return make

        return stacking

    def keep_alias(self, x: Any, /) -> None:
        # Tensor.numpy() marks the storage; of a tensor whose dtype NumPy shows
        # (plain, or through a same-width integer view), else of a byte tensor set
        # over the same storage.
        if x.device.type != "cpu":
            return
        if x.dtype in self._view_kinds and not x.is_conj() and not x.is_neg():
            self._keep_viewed(x)
            return
        storage = x.untyped_storage()
        if storage.resizable():
            torch = self.torch
            torch.empty(0, dtype=torch.uint8).set_(storage).numpy()

    @functools.cached_property
    def _keep_viewed(self) -> Callable[[Any], None]:
        """:meth:`keep_alias` of a dense CPU tensor of a dtype NumPy shows, with no
        conjugate or negative bit (one the host view reads): its own ``numpy()``."""
        numpy = self.torch.Tensor.numpy
        storage_of = self.torch.Tensor.untyped_storage
        resizable = self.torch.UntypedStorage.resizable
        kinds = self._view_kinds
        as_dtype = self.torch.Tensor.view

        def keep(t: Any) -> None:
            if resizable(storage_of(t)):
                inttype = kinds[t.dtype][0]
                if inttype is None:
                    numpy(t, force=True)
                else:
                    numpy(as_dtype(t, inttype))

        return keep

    def _host_view(
        self, numpy: Callable[..., np.ndarray[Any, Any]]
    ) -> Callable[[Any], np.ndarray[Any, Any] | None]:
        """The host view that reads a tensor's memory with ``numpy(t, force=...)``."""
        kinds = self._view_kinds
        transforms_active = self._transforms_active
        modes_active = self._modes_active
        keys_of = self._keys_of
        plain_keys = self._ordinary_keys[0].__eq__
        inference_keys = self._ordinary_keys[1].__eq__
        as_dtype = self.torch.Tensor.view
        storage_of = self.torch.Tensor.untyped_storage
        setflags = _setflags
        reaches_past = _reaches_past

        def view(t: Any) -> np.ndarray[Any, Any] | None:
            kind = kinds.get(t.dtype)
            if kind is None:
                return None
            keys = keys_of(t)
            if (
                not (plain_keys(keys) or inference_keys(keys))
                or transforms_active()
                or modes_active()
                # A storage freed or shrunk in place to fewer bytes than the tensor
                # reaches: the plan refuses it (see _freed). A view at an offset or
                # with gaps is measured in full, the rest by its size.
                or storage_of(t).nbytes() < t.nbytes
                or ((t.storage_offset() or not t.is_contiguous()) and reaches_past(t))
            ):
                return None
            inttype = kind[0]
            if t.requires_grad:
                if inttype is None:
                    a = numpy(t, force=True)
                    setflags(a, False)
                    return a  # type: ignore[no-any-return]
                bits = numpy(as_dtype(t, inttype))
                setflags(bits, False)
                return bits.view(kind[1])  # type: ignore[no-any-return]
            if inttype is None:
                return numpy(t)  # type: ignore[no-any-return]
            return numpy(as_dtype(t, inttype)).view(kind[1])  # type: ignore[no-any-return]

        return view

    def _host_view_by_attributes(self) -> Callable[[Any], np.ndarray[Any, Any] | None]:
        """The host view for PyTorch versions whose dispatch key sets cannot be compared."""
        kinds = self._view_kinds
        transforms_active = self._transforms_active
        modes_active = self._modes_active
        is_wrapped = self._is_wrapped
        setflags = _setflags
        numpy = self.torch.Tensor.numpy
        strided = self.torch.strided
        complex_dtypes = {d for d, n in self._numpy_dtypes.items() if n.kind == "c"}

        def view(t: Any) -> np.ndarray[Any, Any] | None:
            tdt = t.dtype
            kind = kinds.get(tdt)
            if (
                kind is None
                or not t.is_cpu
                or t.layout is not strided
                or t.is_nested
                or t.is_neg()
                or t._is_zerotensor()
                or transforms_active()
                or modes_active()
                or is_wrapped(t)
                or (tdt in complex_dtypes and t.is_conj())
                or _freed(t)
            ):
                return None
            inttype = kind[0]
            grad = t.requires_grad
            if grad:
                t = t.detach()
            a = numpy(t) if inttype is None else numpy(t.view(inttype))
            if grad:
                setflags(a, False)
            return a if inttype is None else a.view(kind[1])  # type: ignore[no-any-return]

        return view

    def numpy_dtype_of(self, x: Any, /) -> np.dtype[Any] | None:
        # Without the host view: Tensor.numpy() marks the storage as never to be resized.
        kind = self._view_kinds.get(x.dtype)
        if kind is None or x.layout is not self.torch.strided:
            return None
        return self._numpy_dtypes[x.dtype] if kind[0] is None else kind[1]  # type: ignore[no-any-return]

    # -- planning -------------------------------------------------------------------

    def plan_key(self, x: Any, /) -> Hashable | None:
        t: torch.Tensor = x
        if self._transforms_active():
            return None  # plans inside transforms depend on the tensor
        if self._ordinary_keys:
            # The key set holds the device type, layout, the conjugate and negative
            # bits, ZeroTensor, torch.func wrappers, quantized and meta tensors: all
            # that the plan reads besides type, dtype, device and grad. That of an
            # ordinary CPU tensor (see the module) says the rest too: the CPU, strided
            # and not nested, with a storage whose size is asked directly.
            keys = self._keys_of(t)
            ordinary = self._ordinary(keys)
            if ordinary is not None:
                if _reaches_past(t):
                    return None  # (refused by the plan, which a cached plan would skip)
                return (type(t), t.dtype, t.requires_grad, ordinary)
            state: Hashable = keys.raw_repr()
        else:
            state = (t.is_conj(), t.is_neg(), t._is_zerotensor(), self._is_wrapped(t))
        if t.layout is not self.torch.strided or t.is_nested:
            return None  # sparse and nested plans depend on shapes
        if _freed(t):
            return None  # refused by the plan, which a cached plan would skip
        return (type(t), t.dtype, t.device, t.requires_grad, state)

    def _ordinary(self, keys: Any) -> str | None:
        """``"plain"`` or ``"inference"`` for the key set of an ordinary CPU tensor, else ``None``.

        (The host view makes the same two comparisons inline.)
        """
        plain, inference = self._ordinary_keys
        return "plain" if plain == keys else "inference" if inference == keys else None

    def transient_view(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        # The plan's steps, with the tensor's memory read without marking its storage
        # (see TorchBase._transient).
        if self._transforms_active() or self._modes_active():
            with self._functorch_off(), self._modes_off():
                return self._run_transient(x, plan)
        return self._run_transient(x, plan)

    def _run_transient(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        obj = x
        steps = self.steps
        readers = self._transient_steps
        for step in plan.steps:
            obj = readers.get(step, steps[step])(obj, plan)
        if type(obj) is np.ndarray:
            return obj
        return self._other_result(obj, plan)

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        if self._transforms_active() or self._modes_active():
            # The plan refuses the transforms' own wrappers and fake tensors. A real
            # tensor captured from outside has values, but while a transform or a
            # dispatch mode is active even its .numpy() goes through that layer, so
            # the steps run with functorch and the modes set aside.
            with self._functorch_off(), self._modes_off():
                return super().run(x, plan)
        return super().run(x, plan)

    def _plan_dense(
        self,
        t: torch.Tensor,
        options: Options,
        steps: list[str],
        reason: str | None,
        device: str,
        transfer: bool,
    ) -> Plan:
        """The plan of a dense (strided) tensor, after any ``gather``."""
        if t._is_zerotensor():
            # Autograd's stand-in for a tensor of zeros: it has no memory, and
            # Tensor.numpy() refuses it. Nothing needs to leave the device.
            steps.append("zeros")
            reason = reason or (
                "the tensor is a ZeroTensor (PyTorch's efficient zeros), which has no "
                "memory; its zeros are written into new memory"
            )
            return self._plan_values(t, options, steps, reason, device, False, on_device=False)
        if t.requires_grad:
            steps.append("detach")
        if t.is_conj():
            steps.append("resolve_conj")
            reason = reason or "the tensor has its conjugate bit set; resolve_conj() copies"
        if t.is_neg():
            steps.append("resolve_neg")
            reason = reason or "the tensor has its negative bit set; resolve_neg() copies"
        return self._plan_values(t, options, steps, reason, device, transfer, on_device=transfer)

    def missing_data(self, x: Any, /) -> Exception | None:
        """The error for a tensor whose storage need not hold its values, or ``None``."""
        t: torch.Tensor = x
        # An ordinary dense CPU tensor (see the module) is none of the states below
        # but one: a storage freed or shrunk in place.
        if self._ordinary_keys and self._ordinary(self._keys_of(t)) is not None:
            return _freed_error(t) if _reaches_past(t) else None
        cls = type(t)
        if self._is_wrapped(t) or self._is_functional(t):
            return ConversionError(
                f"expected a tensor with values, got a `{type_name(t)}` from a torch.func "
                "transform (vmap, grad, jvp, jacrev, functionalize, ...) or from torch's "
                "functionalization (AOTAutograd, torch.export), a wrapper whose "
                "values are not materialised. hint: return the values from the "
                "transformed function and convert them outside it"
            )
        if t.device.type == "meta":
            return ConversionError(
                f"expected a tensor with data, got a `{type_name(t)}` on the meta device, "
                "which has shape and dtype but no values. hint: materialise it (for example "
                "with torch.empty_like(t, device='cpu') and loading real values) first"
            )
        if cls not in self._plain and cls.__torch_dispatch__ is not self._default_dispatch:
            if t.is_nested or is_dtensor(t):
                return None
            if is_fake(t):
                return ConversionError(
                    f"expected a tensor with data, got a `{type_name(t)}`, which has shape, "
                    "dtype and device but no values (it comes from FakeTensorMode or "
                    "torch.compile tracing). hint: convert real tensors outside the fake "
                    "mode or the compiled region"
                )
            return ConversionError(
                f"expected a tensor that holds its own data, got a `{type_name(t)}`, a "
                "tensor subclass that computes through __torch_dispatch__, whose storage "
                "need not hold its values. hint: convert the plain tensor(s) it wraps, or "
                "a plain tensor it produces (for example its dequantize())"
            )
        if t.is_quantized:
            return ConversionError(
                f"expected a tensor with a plain dtype, got a quantized {t.dtype} tensor "
                f"(`{type_name(t)}`). hint: call .dequantize() for the real values, or "
                ".int_repr() for the stored integers"
            )
        # A storage freed in place (resize_(0): what FSDP does to sharded parameters
        # between uses) leaves the tensor pointing at no memory.
        if t.layout is self.torch.strided and not t.is_nested and _freed(t):
            return _freed_error(t)
        return None

    # -- steps ----------------------------------------------------------------------

    def _resolve_conj(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        torch = self.torch
        if t.dtype is not torch.complex32:
            return t.resolve_conj()
        # resolve_conj() would allocate a complex32 tensor, and PyTorch warns on the
        # first such allocation that ComplexHalf support is experimental: conjugate
        # the float16 pairs instead, into a new tensor viewed back as complex32.
        pairs = torch.view_as_real(t.conj()).clone(memory_format=torch.contiguous_format)
        pairs[..., 1].neg_()
        return torch.view_as_complex(pairs)

    def _readonly(self, a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
        # What reaches this step is new: Tensor.numpy() makes an array per call, and
        # bit_view a view of it. Both are frozen themselves, not through a read-only
        # view of a writable array, which NumPy lets anyone make writable again.
        base = a.base
        if type(base) is np.ndarray:
            _setflags(base, False)
        _setflags(a, False)
        return a

    def _zeros(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        # Zero is all-zero bytes in every dtype, so the zeros are made as bytes and
        # viewed as the tensor's dtype: shell and float8 dtypes have no fill kernels.
        torch = self.torch
        size = t.dtype.itemsize
        zeros = torch.zeros((*t.shape, size), dtype=torch.uint8, device="cpu")
        return zeros.view(t.dtype).reshape(t.shape)

    # -- accelerators ---------------------------------------------------------------

    def accelerator_check(self) -> Callable[[Any], bool] | None:
        # Until CUDA is initialised no tensor can be on a CUDA device; once it is,
        # it stays so.
        if not self.torch.cuda.is_initialized():
            return None
        return _is_cuda

    def host_copy(self, src: torch.Tensor, /, *, pinned: bool) -> torch.Tensor:
        """A new dense CPU tensor filled from ``src`` (of a :meth:`copy_dtype`).

        ``pinned``: into pinned memory, asynchronously on the current stream of
        ``src``'s device (the caller waits); else a blocking copy.
        """
        host = self.torch.empty(src.shape, dtype=src.dtype, device="cpu", pin_memory=pinned)
        host.copy_(src, non_blocking=pinned)
        return host

    def start_copy(self, obj: Any, pinned_left: int, /) -> Copy | None:
        t: torch.Tensor = obj
        if not t.is_cuda:
            return None
        dtype = self.copy_dtype(t)
        if dtype is None:
            return None
        torch = self.torch
        src = t if dtype is t.dtype else t.view(dtype)
        # The copy runs on the current stream of the tensor's device, after the work
        # that produced the tensor; the event recorded right after it waits for this
        # copy and nothing queued later.
        stream = torch.cuda.current_stream(t.device)
        nbytes = t.numel() * t.element_size()
        if nbytes > pinned_left:
            return self._staged_copy(t, src, stream, nbytes)
        host = self.host_copy(src, pinned=True)
        event = torch.cuda.Event()
        event.record(stream)
        # The host tensor stands for what the `to_host` step returns: skip that step.
        result = host if dtype is t.dtype else host.view(t.dtype)
        return Copy(result, 1, event, t, pinned=nbytes)

    def _staged_copy(self, t: torch.Tensor, src: torch.Tensor, stream: Any, nbytes: int) -> Copy:
        """The copy of a leaf beyond the pinned bound: staged into pageable memory at the wait."""
        torch = self.torch
        # The bytes in order; a tensor that is not contiguous is made so on the device
        # now, in stream order after the work that produced it.
        flat = src.contiguous().reshape(-1).view(torch.uint8)
        out = np.empty(nbytes, dtype=np.uint8)
        chunk = STAGING_BYTES // 2
        # The pinned staging buffer, allocated at the wait: PyTorch's caching host
        # allocator hands the same block to the next staged copy.
        buffers: list[Any] = []

        def copy_chunk(half: int, start: int, stop: int) -> Any:
            if not buffers:
                size = 2 * min(chunk, nbytes)
                buffers.append(torch.empty(size, dtype=torch.uint8, pin_memory=True))
            base = half * chunk
            with torch.cuda.stream(stream):
                buffers[0][base : base + stop - start].copy_(flat[start:stop], non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
            return event

        def read_chunk(half: int, n: int) -> np.ndarray[Any, Any]:
            base = half * chunk
            return buffers[0][base : base + n].numpy()  # type: ignore[no-any-return]

        host = torch.from_numpy(out).view(t.dtype).view(t.shape)
        staged = Staged(out, chunk, copy_chunk, read_chunk)
        return Copy(host, 1, staged, flat, deferred=True)
