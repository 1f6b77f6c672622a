"""Probe 9: one real training step — will it start, fit and learn?

On the step device (--dsocr-device; else cuda when present, else cpu): load the weights, wrap
them with LoRA as the training config says (or with the language-model defaults), build a real
batch from the data with the verified batch builder, and train:

1. the first step's loss is finite; after its backward every adapter has a finite, non-zero
   gradient, frozen weights have none, and adapters without one are named with the reason
   (DeepSeek-OCR v1 runs its vision encoders under ``torch.no_grad()``);
2. the same batch for a few optimizer steps: the loss must fall (overfit one batch);
3. peak memory and time per step at two batch sizes, and a forecast for the configured batch
   size and max length. Out-of-memory is a finding with the largest size that fitted.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import gradients, loading, lora
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..measure import MemoryMeter, Measure, Stopwatch, capacity_bytes, forecast, gib

STEPS = 5  # optimizer steps on the same batch
LEARNING_RATE = 1e-3  # high for LoRA on purpose, yet safe for a pretrained model
MIN_DROP = 0.005  # a fall of 0.5 % counts even when the losses zigzag (dropout, bf16)
HEADROOM = 0.9  # a forecast above 90 % of the device's memory is a warning
FIX_MEMORY = ("set `gradient_checkpointing: true`, lower `per_device_train_batch_size` (raise "
              "`gradient_accumulation_steps` to keep the effective batch), or lower `data.max_length` / use a "
              "mode with fewer image tokens (tiny/small)")


@dataclass
class Run:
    """What a few optimizer steps on one batch gave."""

    losses: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    grads: gradients.GradientReport | None = None
    oom: str | None = None  # the out-of-memory message, when it ran out

    @property
    def step_s(self) -> float:
        steady = self.times[1:] or self.times  # the first step pays for warm-up
        return min(steady) if steady else 0.0  # the least disturbed by other work on the machine


def run(ctx) -> Iterable[Finding]:
    import torch

    target = ctx.needs(ctx.target, "step")
    cfg = _train_config(ctx)
    training = dict(cfg.training) if cfg is not None else {}
    device = loading.default_device(ctx)
    dtype = ctx.needs(lambda: loading.model_dtype(ctx, device), "step")
    examples = _examples(ctx)
    builder = ctx.needs(lambda: loading.builder_for(ctx, None, dtype), "step")
    one, two = (_build(builder, examples[:1]), _build(builder, examples[:2] if len(examples) > 1 else examples[:1] * 2))

    torch.manual_seed(0)
    start = time.perf_counter()
    model, oom = _guarded(lambda: loading.load_model(ctx, device, dtype), device)
    if oom:
        raise ProbeStop(_oom_finding("the weights alone", oom, device, None, training))
    yield passed(
        "step.model-loaded",
        f"Loaded {type(model).__name__} in {_name(dtype)} on {device} in {time.perf_counter() - start:.1f} s",
        evidence={"class": loading.model_class(ctx)[1], "dtype": _name(dtype), "device": device,
                  "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
                  "memory after loading": gib(_allocated(device))},
        params={"cls": type(model).__name__, "dtype": _name(dtype), "device": device},
    )

    lora_kwargs = dict(cfg.lora) if cfg is not None and cfg.lora else {}
    amp = _autocast(training, device)
    moved, oom = _guarded(lambda: (_to_device(one, device), _to_device(two, device)), device)
    if oom:
        raise ProbeStop(_oom_finding("the batch beside the weights", oom, device, None, training, length=_length(two)))
    one_dev, two_dev = moved
    yield from _task_type(model, lora_kwargs, one_dev, amp)
    names = [n for n, _ in model.named_modules()]
    peft_model = _prepare(_wrap(model, lora_kwargs), training)
    adapted = [gradients.strip_peft_prefix(n) for n in lora.adapter_modules(peft_model)]
    no_grad = set(lora.no_grad_modules(target, adapted))
    trainable, total = _counts(peft_model)
    settings = peft_model.peft_config[peft_model.active_adapter]
    yield passed(
        "step.lora",
        f"LoRA ({lora.normalise_task_type(settings.task_type)}) on {len(adapted)} modules: "
        f"{trainable:,} trainable of {total:,} parameters",
        evidence={"target_modules": _as_list(settings.target_modules),
                  "exclude_modules": getattr(settings, "exclude_modules", None) or "none",
                  "r / alpha": f"{settings.r} / {settings.lora_alpha}",
                  "adapters on vision modules": len(lora.vision_modules(adapted)),
                  "from": "training config lora section" if lora_kwargs else "language-model defaults"},
        params={"modules": len(adapted), "trainable": trainable},
    )

    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE)
    first = _checked_run(peft_model, one_dev, optimizer, device, amp, training, STEPS, inspect=gradients.collect)
    if first.oom:
        raise ProbeStop(_oom_finding("one sample", first.oom, device, None, training, length=_length(one)))
    yield _loss_finding(first)
    grad_findings = list(_gradient_findings(first.grads, no_grad, names, _reentrant(training)))
    yield from grad_findings
    if any(f.status.blocks for f in grad_findings) or not first.losses or not _finite(first.losses[0]):
        return
    yield _overfit_finding(first)

    small = Measure(1, _length(one), first.peak_bytes, first.step_s)
    second = _checked_run(peft_model, two_dev, optimizer, device, amp, training, 3)
    large = None if second.oom else Measure(2, _length(two), second.peak_bytes, second.step_s)
    yield from _cost_findings(small, large, second.oom, device, cfg, training)


# ---------------------------------------------------------------- the training loop


def overfit(model, batch: dict, optimizer, steps: int, device: str, amp: Callable[[], Any],
            inspect: Callable[[Any], gradients.GradientReport] | None = None) -> Run:
    """``steps`` optimizer steps on one batch; peak memory over all of them, time of each.

    ``inspect`` is called after the first backward, before the update, to see the gradients.
    Out-of-memory ends the run with ``run.oom`` set; the memory is released before returning.
    """
    result = Run()
    message = None
    try:
        with MemoryMeter(device) as meter:
            for i in range(steps):
                with Stopwatch(device) as watch:
                    loss = _loss(model, batch, amp)
                    if not loss.requires_grad:  # no trainable weight on the loss's path
                        result.losses.append(float(loss.detach()))
                        result.grads = inspect(model) if inspect else None
                        break
                    loss.backward()
                    if i == 0 and inspect is not None:
                        result.grads = inspect(model)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                result.losses.append(float(loss.detach()))
                result.times.append(watch.seconds)
        result.peak_bytes = meter.peak_bytes
    except (RuntimeError, MemoryError) as exc:
        if not loading.is_oom(exc):
            raise
        message = loading.error_line(exc)
    if message is not None:  # outside the except block, so the failed step's tensors can be freed
        optimizer.zero_grad(set_to_none=True)
        _release(device)
        result.oom = message
    return result


def _checked_run(model, batch: dict, optimizer, device: str, amp, training: dict, steps: int, inspect=None) -> Run:
    """:func:`overfit`, with an error raised in the model's own code turned into a finding."""
    try:
        return overfit(model, batch, optimizer, steps, device, amp, inspect=inspect)
    except ProbeStop:
        raise
    except Exception as exc:
        message = loading.first_line(exc)
        fix = "Compare with the batch and model API probes; with gradient_checkpointing on, try it off."
        checkpointing_kwargs = None
        if "in-place operation" in message:
            checkpointing_kwargs = "{use_reentrant: false}"
            fix = ("The embeddings were made to require grad (gradient checkpointing enabled before get_peft_model, "
                   "or enable_input_require_grads), and this model writes the image features into them in place: "
                   "let the Trainer enable checkpointing after wrapping, with "
                   "`gradient_checkpointing_kwargs: {use_reentrant: false}`.")
        raise ProbeStop(
            fail(
                "step.forward-fails",
                f"The training step fails: {type(exc).__name__}: {message}",
                detail="The batch came from the verified builder, so the model, its dtype or the training settings "
                "(gradient checkpointing, mixed precision) are the suspects.",
                fix=fix,
                params={"error": message, "exception": type(exc).__name__, "checkpointing_kwargs": checkpointing_kwargs},
            )
        ) from exc


def _loss(model, batch: dict, amp: Callable[[], Any]):
    with amp():
        out = model(**batch)
    loss = out.get("loss") if isinstance(out, dict) else getattr(out, "loss", None)
    if loss is None:
        raise ProbeStop(
            fail(
                "step.no-loss",
                f"{type(model).__name__} returned no loss for a batch with labels",
                fix="The model computes the loss itself from `labels`; make sure the batch carries them "
                "(see the batch probe).",
                params={"cls": type(model).__name__},
            )
        )
    return loss


# ---------------------------------------------------------------- findings


def _task_type(model, lora_kwargs: dict, batch: dict, amp) -> Iterable[Finding]:
    """A task type that does not fit the architecture: show what it does, then go on with the right one."""
    want = lora.task_type_for(model.config)
    given = lora.normalise_task_type(lora_kwargs.get("task_type"))
    if given is None or given == want:
        return
    outcome = "the forward runs, but peft feeds it decoder inputs the model does not have"
    forward_error = wrap_error = None
    try:
        trial = lora.wrap(model, lora_kwargs)
        try:
            import torch

            with torch.no_grad():
                _loss(trial, batch, amp)
        except Exception as exc:
            forward_error = loading.error_line(exc)
            outcome = f"the first forward fails: {forward_error}"
        finally:
            base = trial.unload()  # take the adapters out again; the model goes on with the right task type
            if hasattr(base, "peft_config"):  # left behind by unload(); would make the next wrap a second adapter
                del base.peft_config
    except Exception as exc:
        wrap_error = loading.error_line(exc)
        outcome = f"get_peft_model fails: {wrap_error}"
    kind = "decoder-only" if want == "CAUSAL_LM" else "encoder-decoder"
    yield fail(
        "step.task-type",
        f"LoRA task_type {given} on a {kind} model: it must be {want}",
        detail=f"With {given}, {outcome}. The rest of this probe ran with {want}.",
        fix=f"Set `lora.task_type: {want}` (peft `TaskType.{want}`).",
        params={"given": given, "want": want, "forward_error": forward_error, "wrap_error": wrap_error},
    )
    lora_kwargs["task_type"] = want


def _wrap(model, lora_kwargs: dict):
    try:
        return lora.wrap(model, lora_kwargs)
    except Exception as exc:
        names = [n for n, _ in model.named_modules()]
        raise ProbeStop(
            fail(
                "step.lora-wrap",
                f"get_peft_model fails with this LoRA config: {loading.error_line(exc)}",
                fix=_targets_fix(names),
                params={"error": loading.first_line(exc), "exception": type(exc).__name__, **_targets_params(names)},
            )
        ) from exc


def _targets_fix(names: list[str]) -> str:
    """Adapters on the language model's projections, in the config's words (and the installed peft's fields)."""
    return f"Target the language model: {lora.settings_text(lora.default_settings(names))}."


def _targets_params(names: list[str]) -> dict[str, Any]:
    """The values of :func:`_targets_fix`, for the translated fix."""
    settings = lora.default_settings(names)
    targets = settings["target_modules"]
    return {"targets": f"'{targets}'" if isinstance(targets, str) else "[" + ", ".join(targets) + "]",
            "exclude": settings.get("exclude_modules") or None}


def _loss_finding(first: Run) -> Finding:
    loss = first.losses[0] if first.losses else None
    if loss is None or not _finite(loss):
        return fail(
            "step.loss-not-finite",
            f"The first step's loss is {loss}",
            detail="A NaN or infinite loss at step one comes from fp16 overflow, a batch whose labels are all -100, "
            "or broken weights.",
            fix="Train in bf16 or fp32 (not fp16) and check the batch probe's label findings.",
            params={"loss": str(loss)},
        )
    return passed("step.loss", f"First step: loss {loss:.4f} is finite", params={"loss": round(loss, 4)})


def _gradient_findings(grads: gradients.GradientReport | None, no_grad: set[str], names: list[str],
                       reentrant: bool = False) -> Iterable[Finding]:
    if grads is None:
        return
    rows = gradients.grouped_rows(grads.adapters, no_grad)
    learning, silent = grads.learning, grads.not_learning
    fix_targets = _targets_fix(names)
    targets = _targets_params(names)
    evidence = {"adapters": len(grads.adapters), "with gradient": len(learning), "without": len(silent)}
    if grads.non_finite:
        yield fail(
            "step.gradients-not-finite",
            f"{len(grads.non_finite)} adapter(s) got NaN or infinite gradients at the first step",
            detail=", ".join(a.module for a in grads.non_finite[:8]),
            fix="Train in bf16 or fp32 instead of fp16, and lower the learning rate.",
            table=rows, evidence=evidence,
            params={"count": len(grads.non_finite), "modules": ", ".join(a.module for a in grads.non_finite[:8])},
        )
    if grads.adapters and not learning:
        vision_only = all(a.module in no_grad or lora.is_vision_module(a.module) for a in silent)
        if vision_only:
            yield fail(
                "step.adapters-vision-only",
                "Adapters only on vision modules: none of them gets a gradient, so nothing will learn",
                detail="The vision encoders and the projector run under torch.no_grad() inside the model's forward "
                "(or lie off the loss's path): the adapters there keep their initial values.",
                fix=fix_targets,
                table=rows, evidence=evidence, params=targets,
            )
        else:
            yield fail(
                "step.no-gradients",
                f"None of the {len(silent)} adapters gets a gradient",
                detail="Reentrant gradient checkpointing passes no gradient into a checkpointed block whose input does "
                "not require one, and the frozen embeddings' output does not." if reentrant else "",
                fix="Set `gradient_checkpointing_kwargs: {use_reentrant: false}`." if reentrant else fix_targets,
                table=rows, evidence=evidence,
                params={"count": len(silent), "use_reentrant": True if reentrant else None, **targets},
            )
        return
    if grads.frozen_with_grad:
        yield fail(
            "step.frozen-with-gradients",
            f"{len(grads.frozen_with_grad)} frozen weight(s) received gradients",
            detail=", ".join(grads.frozen_with_grad[:8]),
            fix="Something unfroze base weights after wrapping: wrap with peft last and do not set requires_grad by hand.",
            params={"count": len(grads.frozen_with_grad), "names": ", ".join(grads.frozen_with_grad[:8])},
        )
    unexplained = [a for a in silent if a.module not in no_grad and ".experts." not in a.module]
    on_vision = [a for a in silent if a.module in no_grad]
    if grads.trainable_without_grad:
        yield warn(
            "step.trainable-without-gradients",
            f"{len(grads.trainable_without_grad)} trainable parameter(s) besides the adapters got no gradient",
            detail=", ".join(grads.trainable_without_grad[:8]),
            fix="Remove them from `modules_to_save` (they never change) or check they are used in forward().",
            params={"count": len(grads.trainable_without_grad), "names": ", ".join(grads.trainable_without_grad[:8])},
        )
    if on_vision or unexplained:
        listed = on_vision + unexplained
        yield warn(
            "step.adapters-without-gradients",
            f"{len(listed)} of {len(grads.adapters)} adapters get no gradient"
            + (f" ({len(on_vision)} on the vision path under torch.no_grad())" if on_vision else ""),
            detail="They add memory and parameters but never change: " + ", ".join(a.module for a in listed[:8]),
            fix=fix_targets,
            table=rows, evidence=evidence,
            params={"count": len(listed), "total": len(grads.adapters), "on_vision": len(on_vision) or None,
                    "modules": ", ".join(a.module for a in listed[:8]), **targets},
        )
    else:
        experts = len(silent)
        yield passed(
            "step.gradients",
            f"{len(learning)} adapters got finite, non-zero gradients; frozen weights got none"
            + (f"; {experts} expert adapters were not routed to in this batch" if experts else ""),
            table=rows, evidence=evidence,
        )


def _overfit_finding(first: Run) -> Finding:
    losses = first.losses
    table = [{"step": i + 1, "loss": f"{v:.5f}", "time": f"{t:.3f} s"} for i, (v, t) in enumerate(zip(losses, first.times))]
    fell = loss_falls(losses)
    if fell:
        return passed(
            "step.loss-falls",
            f"The loss falls on a repeated batch: {losses[0]:.5f} → {losses[-1]:.5f} in {len(losses)} steps",
            table=table, evidence={"optimizer": f"AdamW lr {LEARNING_RATE:g}"},
            params={"first": round(losses[0], 4), "last": round(losses[-1], 4), "steps": len(losses)},
        )
    return fail(
        "step.loss-flat",
        f"The loss does not fall on a repeated batch ({' → '.join(f'{v:.5f}' for v in losses)})",
        detail=f"{len(losses)} AdamW steps at lr {LEARNING_RATE:g} on the same batch should overfit it. If they do not, "
        "the adapters are not on the loss's path, the labels do not supervise the target, or the updates are lost.",
        fix="Check the gradient finding above and the batch probe's label findings; target the language model's "
        "projections with LoRA.",
        table=table, params={"losses": [round(v, 4) for v in losses], "trace": " → ".join(f"{v:.5f}" for v in losses),
                             "steps": len(losses), "lr": LEARNING_RATE},
    )


def loss_falls(losses: list[float]) -> bool:
    """Did the loss fall while one batch was repeated?

    Yes when the best later loss is MIN_DROP below the first, or when every step lowered it: a
    random-weight model near the uniform loss moves little per step, but it moves every step,
    and noise alone gives a strictly falling run of 5 only once in 5! = 120 tries.
    """
    if len(losses) < 2 or not all(map(_finite, losses)):
        return False
    if min(losses[1:]) < losses[0] * (1 - MIN_DROP):
        return True
    return all(b < a for a, b in zip(losses, losses[1:]))


def _cost_findings(small: Measure, large: Measure | None, oom: str | None, device: str, cfg,
                   training: dict) -> Iterable[Finding]:
    capacity = capacity_bytes(device)
    table = [small.row()] + ([large.row()] if large else [])
    configured = int(training["per_device_train_batch_size"]) if "per_device_train_batch_size" in training else None
    max_length = int(cfg.data["max_length"]) if cfg is not None and cfg.data.get("max_length") else None
    evidence = {"device": device, "device memory": gib(capacity)}
    if large is None:
        yield _oom_finding("a batch of 2", oom or "", device, small, training, length=small.length,
                           blocking=(configured or 1) >= 2)
        return
    batch = configured or 1
    length = max_length or large.length
    guess = forecast(small, large, batch, length, capacity, HEADROOM)
    table.append({"batch": f"{batch} (forecast)", "tokens / sample": length, "peak memory": gib(guess.peak_bytes),
                  "time / step": f"{guess.step_s:.3f} s"})
    if device.startswith("cuda"):
        evidence.update({"largest batch expected to fit at this length": guess.largest_batch,
                         "memory measured as": "torch.cuda.max_memory_allocated"})
    else:  # the resident set barely moves for small models: no batch limit can be read from it
        evidence["memory measured as"] = "process RSS, sampled (includes the Python process itself)"
    what = f"batch {batch} x {length} tokens" + ("" if configured else " (no training config: batch 1)")
    if device.startswith("cuda") and capacity and guess.peak_bytes > capacity:
        yield fail(
            "step.forecast-oom",
            f"Forecast for {what}: {gib(guess.peak_bytes)}, more than the GPU's {gib(capacity)}",
            detail="Linear in tokens through the two measured sizes; activations and logits grow with batch x length.",
            fix=f"Use `per_device_train_batch_size: {max(1, guess.largest_batch or 1)}` with more gradient accumulation, or "
            + FIX_MEMORY + ".",
            table=table, evidence=evidence,
            params={"need": gib(guess.peak_bytes), "have": gib(capacity), "largest": guess.largest_batch,
                    "batch": batch, "length": length, "default_batch": None if configured else batch,
                    "fit_batch": max(1, guess.largest_batch or 1)},
        )
    elif capacity and guess.peak_bytes > capacity * HEADROOM:
        yield warn(
            "step.forecast-tight",
            f"Forecast for {what}: {gib(guess.peak_bytes)} of {gib(capacity)} ({guess.peak_bytes / capacity:.0%})",
            fix="Leave headroom: " + FIX_MEMORY + ".",
            table=table, evidence=evidence,
            params={"need": gib(guess.peak_bytes), "have": gib(capacity), "share": f"{guess.peak_bytes / capacity:.0%}",
                    "batch": batch, "length": length, "default_batch": None if configured else batch},
        )
    else:
        yield passed(
            "step.cost",
            f"One step of {what}: about {gib(guess.peak_bytes)} peak and {guess.step_s:.2f} s",
            table=table, evidence=evidence,
            params={"peak": gib(guess.peak_bytes), "seconds": round(guess.step_s, 3)},
        )


def _oom_finding(what: str, message: str, device: str, fitted: Measure | None, training: dict,
                 length: int | None = None, blocking: bool = True) -> Finding:
    largest = (f"The largest setting that fitted: batch {fitted.samples} x {fitted.length} tokens "
               f"({gib(fitted.peak_bytes)} peak)." if fitted else "Nothing fitted.")
    configured = training.get("per_device_train_batch_size")
    fix = (f"Set `per_device_train_batch_size: {fitted.samples}` and `gradient_accumulation_steps: "
           f"{max(1, int(configured or 1) // fitted.samples)}`, or " if fitted else "Load in bf16, ") + FIX_MEMORY + "."
    make = fail if blocking else warn
    return make(
        "step.out-of-memory",
        f"Out of memory on {device} with {what}" + (f" ({length} tokens)" if length else ""),
        detail=f"{message}\n{largest}",
        fix=fix,
        evidence={"device memory": gib(capacity_bytes(device)), "configured batch": configured},
        params={"what": what, "device": device, "tokens": length, "message": message,
                "fit_batch": fitted.samples if fitted else None, "fit_length": fitted.length if fitted else None,
                "fit_peak": gib(fitted.peak_bytes) if fitted else None,
                "accumulation": max(1, int(configured or 1) // fitted.samples) if fitted else None},
    )


# ---------------------------------------------------------------- inputs and helpers


def _examples(ctx) -> list[dict]:
    data = ctx.needs(ctx.dataset, "step")
    if data is None or data.train is None or not data.train.rows:
        raise ProbeStop(skip("step.no-data", "No training rows to build a batch from",
                             fix="Pass --dsocr-data DIR (train/metadata.json with image_path and text rows)."))
    return [r.example() for r in data.train.rows[:2]]


def _build(builder, examples: list[dict]) -> dict:
    try:
        return builder(examples)
    except Exception as exc:
        raise ProbeStop(
            skip(
                "step.prerequisite",
                f"Not run: the batch builder refuses the first training rows: {type(exc).__name__}: {exc}",
                fix="See the batch and dataset probes; fix the row named in the message.",
            )
        ) from exc


def _prepare(model, training: dict):
    """What the Trainer does to the wrapped model when the config asks for it."""
    from ..training import checkpointing_enabled, prepare_for_training

    if checkpointing_enabled(training):
        try:
            return prepare_for_training(model, training)
        except Exception as exc:
            raise ProbeStop(
                fail(
                    "step.gradient-checkpointing",
                    f"gradient_checkpointing is set, but the model refuses it: {loading.error_line(exc)}",
                    fix="Set `gradient_checkpointing: false` and lower the batch size or max length instead.",
                    params={"error": loading.error_line(exc)},
                )
            ) from exc
    return model


def _reentrant(training: dict) -> bool:
    from ..training import checkpointing_enabled, checkpointing_kwargs

    return checkpointing_enabled(training) and bool(checkpointing_kwargs(training).get("use_reentrant", True))


def _autocast(training: dict, device: str) -> Callable[[], Any]:
    """The Trainer's mixed precision (bf16 / fp16 in the training section) as a context factory."""
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if training.get("bf16"):
        return lambda: torch.autocast(kind, dtype=torch.bfloat16)
    if training.get("fp16") and kind == "cuda":
        return lambda: torch.autocast(kind, dtype=torch.float16)
    return contextlib.nullcontext


def _to_device(value: Any, device: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _guarded(load: Callable[[], Any], device: str) -> tuple[Any, str | None]:
    message = None
    try:
        return load(), None
    except (RuntimeError, MemoryError) as exc:
        if not loading.is_oom(exc):
            raise
        message = loading.error_line(exc)
    _release(device)
    return None, message


def _release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _allocated(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.memory_allocated(device)
    from ..measure import rss_bytes

    return rss_bytes()


def _length(batch: dict) -> int:
    return int(batch["input_ids"].shape[-1])


def _counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def _name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _finite(x: float) -> bool:
    import math

    return math.isfinite(x)


def _as_list(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else value


def _train_config(ctx):
    try:
        return ctx.train_config()
    except ProbeStop:
        return None
