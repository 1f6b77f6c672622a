"""Count the bytes a weightless training step would hold, operation by operation.

The model is a meta-device instance (every parameter's shape and dtype, no data) and the batch
is real. :class:`Ledger` is a ``TorchDispatchMode`` that sees every operation below autograd,
forward, recomputation and backward alike, and keeps the storages they create in a table of
live bytes: a storage counts from the operation that made it until Python frees it, so what
autograd saves for backward, what checkpointing drops and recomputes, and what backward frees
as it goes are all counted as torch would hold them. The peak of that table is the forecast.

Model code also reads values. Three kinds are handled explicitly, and each use is counted:

* operations whose real operands meet a meta tensor run on the meta device (as in
  :mod:`dsocr_probe.model.meta_run`), so masks, counts and ``.tolist()`` of the *inputs* stay real;
* ``topk`` over router scores (MoE gates) returns a real, balanced assignment: token ``t``'s
  ``j``-th choice is expert ``(t * k + j) mod E``, so every expert gets ``T * k / E`` tokens and
  the routing code that follows (``one_hot``, ``nonzero``, ``where``, ``index_add``) runs on real
  indices;
* a value read from a tensor computed from the weights (``.item()``, ``nonzero``, ``bool()``) has
  none; ``.item()`` answers 1 / True (the branch that computes is taken) and ``nonzero`` answers
  "every element", both upper bounds, and the ledger counts how often that happened.

Mixed precision: autocast has no meta kernels, so :func:`step_functions`
casts the float operands of the functions autocast runs in low precision, above autograd, as
autocast does: the cast copies are what backward saves.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .meta_run import INDEX_OPS, spill

CUDA_BLOCK = 512  # the CUDA caching allocator rounds every request up to a multiple of 512 bytes


@dataclass
class Snapshot:
    """Live bytes by kind at one moment."""

    total: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _ops(names: tuple[str, ...]) -> set:
    import torch

    found = set()
    for spec in names:
        packet, overload = spec.split(".")
        op = getattr(getattr(torch.ops.aten, packet, None), overload, None) if hasattr(torch.ops.aten, packet) else None
        if op is not None:
            found.add(op)
    return found


def ledger_mode(vocab_size: int | None = None, round_to: int = CUDA_BLOCK):
    """A fresh :class:`Ledger` (defined lazily, so importing this module does not import torch)."""
    return _ledger_class()(vocab_size, round_to)


@functools.lru_cache(maxsize=None)
def _ledger_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.weak import WeakIdKeyDictionary

    aten = torch.ops.aten
    index_ops = _ops(INDEX_OPS)
    scalar_ops = {aten._local_scalar_dense.default, aten.is_nonzero.default}
    nonzero_ops = _ops(("nonzero.default", "argwhere.default"))
    grouped_ops = _ops(("_grouped_mm.default",))
    conv_ops = _ops(("convolution.default",))
    sdp_choice = next(iter(_ops(("_fused_sdp_choice.default",))), None)
    FLASH = int(torch.nn.attention.SDPBackend.FLASH_ATTENTION.value) if hasattr(torch.nn, "attention") else 1

    def real(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and not t.is_meta

    def meta(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.is_meta

    class Ledger(TorchDispatchMode):
        def __init__(self, vocab_size: int | None, round_to: int):
            super().__init__()
            self.vocab_size = vocab_size
            self.round_to = max(1, round_to)
            self.seen = WeakIdKeyDictionary()  # storage -> kind
            self.live: dict[int, tuple[int, str]] = {}
            self.kinds: Counter = Counter()
            self.now = 0
            self.peak = Snapshot()
            self.reads: Counter = Counter()  # values read from weight-derived tensors, by kind
            self.routed = 0  # topk calls answered with balanced routing
            self._next = 0

        # -- the table of live storages ---------------------------------------------------------

        def size_of(self, nbytes: int) -> int:
            return int(math.ceil(nbytes / self.round_to) * self.round_to) if nbytes else 0

        def adopt(self, tensor: Any, kind: str) -> None:
            """Count a tensor that exists before the step (a weight, an adapter, an input)."""
            if isinstance(tensor, torch.Tensor):
                self._add(tensor, kind)

        def _kind_of(self, t: Any) -> str:
            if self.vocab_size and t.dim() >= 2 and t.shape[-1] == self.vocab_size:
                return "logits"
            return "activations"

        def _add(self, t: Any, kind: str | None = None) -> None:
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse or wrapper tensors hold no plain storage
                return
            if storage in self.seen:
                return
            kind = kind or self._kind_of(t)
            key = self._next
            self._next += 1
            nbytes = self.size_of(storage.nbytes())
            self.seen[storage] = kind
            self.live[key] = (nbytes, kind)
            self.kinds[kind] += nbytes
            self.now += nbytes
            weakref.finalize(storage, self._free, key)
            if self.now > self.peak.total:
                self.peak = Snapshot(self.now, dict(self.kinds))

        def _free(self, key: int) -> None:
            nbytes, kind = self.live.pop(key, (0, ""))
            if nbytes:
                self.kinds[kind] -= nbytes
                self.now -= nbytes

        def _transient(self, nbytes: int) -> None:
            """A buffer a kernel holds only while it runs."""
            nbytes = self.size_of(nbytes)
            if self.now + nbytes > self.peak.total:
                kinds = dict(self.kinds)
                kinds["activations"] = kinds.get("activations", 0) + nbytes
                self.peak = Snapshot(self.now + nbytes, kinds)

        def reset_peak(self) -> None:
            self.peak = Snapshot(self.now, dict(self.kinds))

        # -- operations ---------------------------------------------------------------------------

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in scalar_ops and meta(args[0]):
                self.reads["item"] += 1
                dtype = args[0].dtype
                return True if func is aten.is_nonzero.default or dtype is torch.bool else (
                    1.0 if dtype.is_floating_point else 1)
            if func in nonzero_ops and meta(args[0]):
                self.reads["nonzero"] += 1
                x = args[0]
                out = torch.empty((x.numel(), x.dim()), dtype=torch.long, device="meta")
                self._add(out)
                return out
            if func is sdp_choice and meta(args[0]):
                # Meta tensors would take the math path, which holds the whole attention matrix; the CPU and
                # CUDA runs take a fused kernel (flash / memory-efficient) that keeps only its log-sum-exp.
                self.reads["fused attention"] += 1
                return FLASH
            if func in conv_ops and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
                # The kernels (mkldnn, cuDNN) copy a non-contiguous input before convolving; the meta kernel does not.
                self._transient(args[0].numel() * args[0].element_size())
            if func is aten.topk.default and meta(args[0]):
                out = self._balanced_topk(func, args, kwargs)
            else:
                out = self._spill(func, args, kwargs)
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self._add(t)
            return out

        def _balanced_topk(self, func, args, kwargs):
            scores, k = args[0], args[1]
            dim = args[2] if len(args) > 2 else kwargs.get("dim", -1)
            values, _ = func(*args, **kwargs)
            experts = scores.shape[dim]
            if dim not in (-1, scores.dim() - 1) or k > experts:
                return func(*args, **kwargs)
            rows = math.prod(scores.shape[:-1])
            order = torch.arange(rows * k, dtype=torch.long).remainder(experts)
            self.routed += 1
            return values, order.view(*scores.shape[:-1], k)

        def _spill(self, func, args, kwargs):
            """Real operands stay real until they meet a meta tensor; then the operation runs on meta."""
            if func is aten._to_copy.default and real(args[0]) and str(kwargs.get("device", "")) == "meta":
                return func(args[0], **{k: v for k, v in kwargs.items() if k != "device"})
            if func is aten.histc.default and real(args[0]) and not args[0].is_floating_point():
                # Expert counts of real routing: model code picks integer bins for the model's device
                # (meta, not CPU), which the CPU kernel refuses; the counts are the same in float.
                return func(args[0].float(), *args[1:], **kwargs).to(args[0].dtype)
            if func in grouped_ops and meta(args[0]) and args[0].dtype not in (torch.bfloat16,):
                # The meta kernel checks the CUDA kernel's bf16-only rule; the CPU kernel (and the shapes)
                # take any float dtype.
                cast = [a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
                return func(*cast, **kwargs).to(args[0].dtype)
            flat, _ = tree_flatten((args, kwargs))
            if any(meta(t) for t in flat) and any(real(t) for t in flat):
                return spill(func, args, kwargs, index_ops)
            return func(*args, **kwargs)

    return Ledger


@contextlib.contextmanager
def step_functions(autocast: Any = None):
    """While the weightless step runs: attention through the fused kernel, and ``autocast``'s casts
    (the float operands of matmul-like functions to ``autocast``, when given).

    ``scaled_dot_product_attention`` on meta tensors would take the math path, which holds the
    whole attention matrix for backward; the CPU and CUDA runs take a fused kernel (flash or
    memory-efficient) that keeps only the output and its log-sum-exp, which the CPU flash kernel's
    meta implementation reproduces. The functions are replaced on their modules (not by a
    ``TorchFunctionMode``, which checkpointing's recomputation inside backward does not see), so
    the forward and its recomputation take the same path.
    """
    import torch
    import torch.nn.functional as F

    fused = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    sdpa = F.scaled_dot_product_attention

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != autocast:
            return value.to(autocast)
        if isinstance(value, (list, tuple)):
            return type(value)(cast(v) for v in value)
        return value

    def lowered(fn):
        def run(*args, **kwargs):
            return fn(*(cast(a) for a in args), **{k: cast(v) for k, v in kwargs.items()})
        return run

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                  **rest):
        if autocast is not None:
            query, key, value = cast(query), cast(key), cast(value)
        if fused is None or not query.is_meta or rest or (attn_mask is not None and attn_mask.requires_grad):
            # A mask that learns (a relative-position bias) takes the math path, as on the CPU.
            extra = {"enable_gqa": enable_gqa} if enable_gqa else {}
            return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                        **extra, **rest)
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            groups = query.shape[-3] // key.shape[-3]
            key, value = key.repeat_interleave(groups, -3), value.repeat_interleave(groups, -3)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            # As the fused path does: a boolean mask becomes an additive float one, kept for backward.
            attn_mask = torch.where(attn_mask, torch.zeros((), dtype=query.dtype, device=attn_mask.device),
                                    torch.full((), float("-inf"), dtype=query.dtype, device=attn_mask.device))
        elif attn_mask is not None and attn_mask.dtype != query.dtype:
            attn_mask = attn_mask.to(query.dtype)
        return fused(query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]

    autocast_cls = torch.autocast

    def autocast_on(device_type, *args, **kwargs):
        # Model code opens autocast on its tensors' device (rotary embeddings: `enabled=False`); meta has none.
        return autocast_cls("cpu" if device_type == "meta" else device_type, *args, **kwargs)

    replaced = [(F, "scaled_dot_product_attention", attention), (torch, "autocast", autocast_on)]
    if autocast is not None:
        replaced += [(F, name, lowered(getattr(F, name))) for name in ("linear", "conv1d", "conv2d", "conv3d")]
        replaced += [(torch, name, lowered(getattr(torch, name))) for name in ("matmul", "mm", "bmm", "addmm", "baddbmm")]
        replaced += [(torch.Tensor, name, lowered(getattr(torch.Tensor, name))) for name in ("matmul", "__matmul__")]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replaced]
    try:
        for owner, name, fn in replaced:
            setattr(owner, name, fn)
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
