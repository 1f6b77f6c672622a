"""The peak memory of one training step, forecast from the model's config without its weights.

    plan = RunPlan(dtype=torch.bfloat16, autocast=torch.bfloat16, checkpointing=False, optim="adamw_torch")
    model = prepare(skeleton_model, lora_settings, plan)      # meta-device copy, LoRA on, as the Trainer has it
    result = forecast(model, batch, plan)                     # a StepForecast: the peak and its parts

The model is the meta-device instance (:mod:`dsocr_probe.model.skeleton`) in the run's dtype, wrapped
with LoRA by the same function the training run uses (:func:`dsocr_probe.model.lora.wrap`), with
gradient checkpointing enabled the way the Trainer enables it. One forward and backward of the
real batch run under :mod:`dsocr_probe.model.memory_ledger`, which counts every storage's lifetime.
The optimizer's state and step are counted from the optimizer's rule (state tensors per
trainable parameter), since its tensors are known exactly from the adapters' sizes.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..messages import M, N_

GIB = 1024**3
CONTEXT_BYTES = 512 * 1024**2  # CUDA context, cuBLAS/cuDNN workspaces: outside the allocator's count
SLACK = 0.05  # what the caching allocator reserves beyond what it hands out (fragmentation)


_UNITS = {"": GIB, "g": GIB, "gb": 10**9, "gib": GIB, "m": 1024**2, "mb": 10**6, "mib": 1024**2,
          "t": 1024**4, "tb": 10**12, "tib": 1024**4}


def parse_size(text: Any) -> int:
    """``16GiB``, ``16 GB`` (10^9), ``24G`` / ``24`` (GiB), ``12288MiB`` -> bytes; ValueError naming the forms."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a memory size; write it like 16GiB, 16GB, 24G or 12288MiB")
    return int(float(m.group(1)) * _UNITS[unit])


class ForecastError(Exception):
    """The forecast could not run; ``message`` says where (a catalog message), ``str()`` in English."""

    def __init__(self, msgid: str, **params: Any):
        self.message = M(msgid, **params)
        super().__init__(msgid % params if params else msgid)


@dataclass(frozen=True)
class RunPlan:
    """What of the training run decides its memory, besides the model and the batch."""

    dtype: Any  # the weights' dtype
    autocast: Any = None  # the mixed-precision dtype (bf16 / fp16 in the training section), or None
    checkpointing: bool = False
    checkpointing_kwargs: Mapping[str, Any] = field(default_factory=lambda: {"use_reentrant": False})
    optim: str = "adamw_torch"
    accumulation: int = 1

    def replace(self, **changes: Any) -> "RunPlan":
        import dataclasses

        return dataclasses.replace(self, **changes)


@dataclass
class StepForecast:
    """One step's forecast peak, with its parts (bytes)."""

    batch: int
    length: int  # padded tokens per sample
    slots: int  # image slots per sample
    weights: int  # frozen parameters and buffers
    adapters: int  # trainable parameters
    gradients: int
    optimizer: int  # optimizer state
    activations: int  # at the peak: what the forward keeps for backward, and backward's own tensors
    logits: int  # logits and the loss's float copies at the peak
    inputs: int
    peak: int  # the step's peak of allocated bytes
    phase: str  # where the peak falls (a msgid): "forward/backward" or "optimizer step"
    reads: dict[str, int] = field(default_factory=dict)
    routed: int = 0  # MoE gates answered with balanced routing

    @property
    def allowance(self) -> int:
        return CONTEXT_BYTES + int(self.peak * SLACK)

    @property
    def need(self) -> int:
        """What the card must have: the peak plus the context and the allocator's slack."""
        return self.peak + self.allowance

    def parts(self) -> list[tuple[dict, int]]:
        """(what, bytes) of the need, ``what`` a message."""
        allowance = M(N_("CUDA context and allocator allowance (%(mib)d MiB + %(slack)s)"), mib=CONTEXT_BYTES // 1024**2,
                      slack=f"{SLACK:.0%}")
        return [(M(N_("weights (frozen)")), self.weights),
                (M(N_("adapters + gradients + optimizer state")), self.adapters + self.gradients + self.optimizer),
                (M(N_("activations at the peak")), self.activations), (M(N_("logits and loss at the peak")), self.logits),
                (M(N_("batch tensors")), self.inputs), (M(N_("peak allocated")), self.peak),
                (allowance, self.allowance), (M(N_("needed on the card")), self.need)]


def plan_for(training: Mapping[str, Any], dtype: Any) -> RunPlan:
    """The plan of a ``training`` section (TrainingArguments keywords) with the weights in ``dtype``."""
    import torch

    from .training import checkpointing_enabled, checkpointing_kwargs

    def whole(value: Any) -> int:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 and value == int(value)
        return int(value) if ok else 1

    autocast = torch.bfloat16 if training.get("bf16") is True else torch.float16 if training.get("fp16") is True else None
    return RunPlan(dtype=dtype, autocast=autocast, checkpointing=checkpointing_enabled(training),
                   checkpointing_kwargs=checkpointing_kwargs(training),
                   optim=str(training.get("optim") or "adamw_torch"),
                   accumulation=whole(training.get("gradient_accumulation_steps")))


# ---------------------------------------------------------------- the optimizer's state


def optimizer_state_bytes(optim: str, params: list) -> tuple[int, int]:
    """(state bytes, step temporaries) of ``optim`` (a TrainingArguments ``optim`` name) for ``params``.

    AdamW keeps two states per element in the parameter's dtype; 8-bit variants one byte per state plus
    a float32 scale per 2048-element block (bitsandbytes' blockwise quantization); Lion, RMSprop and
    Adagrad one state; SGD none (no momentum by default); Adafactor factored row and column statistics.
    Unknown names are counted as AdamW. The step's temporaries are one more parameter-sized tensor
    (the foreach and fused kernels' working copy).
    """
    name = str(getattr(optim, "value", optim) or "adamw_torch").lower()
    elements = [p.numel() for p in params]
    sizes = [p.numel() * p.element_size() for p in params]
    total, temp = sum(sizes), sum(sizes)
    if "8bit" in name:
        states = 1 if "lion" in name else 3 if "ademamix" in name else 2
        return sum(states * (n + 4 * math.ceil(n / 2048)) for n in elements), temp
    if name.startswith("sgd"):
        return 0, 0
    if "adafactor" in name:
        return sum(4 * (sum(p.shape) if p.dim() >= 2 else p.numel()) for p in params), temp
    if "lion" in name or "rmsprop" in name or "adagrad" in name:
        return total, temp
    if "ademamix" in name:
        return 3 * total, temp
    return 2 * total, temp


# ---------------------------------------------------------------- the model as the run holds it


def prepare(skeleton_model: Any, lora_settings: Mapping[str, Any] | None, plan: RunPlan) -> Any:
    """A meta-device copy of the model in ``plan.dtype`` with LoRA as the run wraps it, in train mode."""
    import torch

    from . import lora

    model = copy.deepcopy(skeleton_model)
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, module in model.named_modules():
        if keep and any(part in keep for part in name.split(".")):
            continue
        for pname, p in list(module.named_parameters(recurse=False)):
            if p.is_floating_point() and p.dtype != plan.dtype:
                setattr(module, pname, torch.nn.Parameter(p.to(plan.dtype), requires_grad=p.requires_grad))
    try:
        wrapped = lora.wrap(model, dict(lora_settings or {}))
    except Exception as exc:
        raise ForecastError(N_("LoRA wrapping failed on the weightless model: %(error)s"),
                            error=f"{type(exc).__name__}: {exc}") from exc
    wrapped.train()
    return wrapped


@contextlib.contextmanager
def _checkpointing(model: Any, plan: RunPlan):
    """Gradient checkpointing on for the step, by the call the installed Trainer makes (and off after).

    transformers itself makes the embeddings' output require grad where the Trainer's call does.
    """
    if not plan.checkpointing:
        yield
        return
    kwargs = dict(plan.checkpointing_kwargs or {"use_reentrant": False})
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        off = model.activation_checkpointing_disable
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        off = model.gradient_checkpointing_disable
    try:
        yield
    finally:
        off()
        if hasattr(model, "disable_input_require_grads"):
            with contextlib.suppress(Exception):
                model.disable_input_require_grads()


def vocab_size(model: Any) -> int | None:
    out = getattr(model, "get_output_embeddings", lambda: None)()
    weight = getattr(out, "weight", None)
    return int(weight.shape[0]) if weight is not None else None


# ---------------------------------------------------------------- the step


def forecast(model: Any, batch: Mapping[str, Any], plan: RunPlan, length: int = 0, slots: int = 0) -> StepForecast:
    """One forward and backward of ``batch`` (real tensors) on the prepared meta-device ``model``."""
    import torch
    from torch.utils._pytree import tree_flatten

    from .memory_ledger import ledger_mode, step_functions

    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    ledger = ledger_mode(vocab_size(model))
    for p in params:
        ledger.adopt(p, "adapters" if p.requires_grad else "weights")
    for b in model.buffers():
        ledger.adopt(b, "weights")
    tensors = [t for t in tree_flatten(dict(batch))[0] if isinstance(t, torch.Tensor)]
    for t in tensors:
        ledger.adopt(t, "inputs")
    before = dict(ledger.kinds)
    functions = step_functions(plan.autocast)
    model.zero_grad(set_to_none=True)
    try:
        with _checkpointing(model, plan), functions, ledger:
            loss = _loss(model(**batch), model)  # the outputs go before backward, as in Trainer.compute_loss
            if plan.accumulation > 1:
                loss = loss / plan.accumulation
            loss.backward()
            del loss
    except ForecastError:
        raise
    except Exception as exc:
        raise ForecastError(N_("the weightless step failed: %(error)s"),
                            error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    peak = ledger.peak
    gradients = sum(p.numel() * p.element_size() for p in trainable)
    state, temp = optimizer_state_bytes(plan.optim, trainable)
    model.zero_grad(set_to_none=True)
    carried = gradients if plan.accumulation > 1 else 0  # earlier micro-batches' gradients stay during the next
    backward_peak = peak.total + state + carried
    step_peak = before.get("weights", 0) + before.get("adapters", 0) + before.get("inputs", 0) + gradients + state + temp
    logits = peak.kinds.get("logits", 0)
    base = sum(before.values())
    activations = max(0, peak.total - base - logits - (gradients if peak.total else 0))
    return StepForecast(
        batch=_batch_size(tensors), length=length, slots=slots, weights=before.get("weights", 0),
        adapters=before.get("adapters", 0), gradients=gradients, optimizer=state, activations=activations,
        logits=logits, inputs=before.get("inputs", 0), peak=max(backward_peak, step_peak),
        phase=N_("forward/backward") if backward_peak >= step_peak else N_("optimizer step"),
        reads=dict(ledger.reads), routed=ledger.routed,
    )


def _loss(out: Any, model: Any) -> Any:
    loss = out["loss"] if isinstance(out, Mapping) else getattr(out, "loss", None)
    if loss is None:
        raise ForecastError(N_("%(model)s.forward returned no loss for the batch"),
                            model=type(model.get_base_model()).__name__)
    return loss


def _batch_size(tensors: list) -> int:
    for t in tensors:
        if t.dim() >= 1 and not t.is_floating_point():
            return int(t.shape[0])
    return 1


def linear_in_batch(one: StepForecast, two: StepForecast, budget: int) -> int:
    """The largest batch whose forecast need stays within ``budget``, linear through batch 1 and 2."""
    per = two.need - one.need
    fixed = one.need - per
    if per <= 0:
        return 1 if one.need <= budget else 0
    return max(0, math.floor((budget - fixed) / per))
