"""The step probe's runs of the configured Trainer: ``Trainer.train()`` on chosen rows, what stops it, and
``Trainer(...)`` with the team's own evaluation, saving and reporting settings."""

from __future__ import annotations

import gc
from typing import Any, Callable

from ..findings import Finding, InputError, ProbeStop, fail, passed, warn
from ..messages import N_
from ..model import loading
from ..model.measure import Measure, MemoryMeter

NO_GRAD_PATH = "does not require grad"  # backward() on a loss no trainable weight contributes to


class Trained:
    """One ``Trainer.train()``: what the watch recorded, peak memory, the batch's size."""

    def __init__(self, rows: list, length: int, slots: int):
        from ..model.trainer_watch import StepRecord

        self.record = StepRecord()
        self.rows = rows
        self.length = length
        self.slots = slots
        self.peak_bytes = 0
        self.oom: str | None = None
        self.no_grad_path: str | None = None  # the Trainer's error when nothing trainable is on the loss's path

    def measure(self, label: Any) -> Measure:
        return Measure(len(self.rows), self.length, self.peak_bytes, self.record.step_s, self.slots, label)


def train(training_run, chosen: list, device: str, steps: int, inspect: Callable | None = None,
          batch_size: int | None = None) -> Trained:
    """The configured Trainer's ``train()`` on ``chosen`` samples for ``steps`` optimizer steps.

    Out-of-memory ends it with ``oom`` set, its memory released; any other error stops the probe
    with the Trainer's own message.
    """
    from ..model.trainer_watch import StepWatch
    from ..model.training import dataset_for

    rows = [s.row for s in chosen]
    length = _batch_length(training_run.collator, rows)
    slots = round(sum(s.before or 0 for s in chosen) / max(1, len(chosen)))
    result = Trained(rows, length, slots)
    extra = {"max_steps": (steps, N_("a few optimizer steps are enough to see the run start, fit and learn"))}
    if batch_size is not None:
        extra["per_device_train_batch_size"] = (batch_size, N_("a second batch size for the memory forecast"))
    arguments = training_run.arguments_with(extra)
    watch = StepWatch(device, inspect=inspect)
    message = None
    trainer = None
    try:
        trainer = training_run.trainer(train_dataset=dataset_for(training_run.trainer_class, rows), arguments=arguments)
        _quiet(trainer)
        watch.attach(trainer)
        with MemoryMeter(device) as meter:
            trainer.train()
        result.peak_bytes = meter.peak_bytes
    except (RuntimeError, MemoryError) as exc:
        if NO_GRAD_PATH in str(exc) and inspect is not None:
            # backward() refused: no adapter is on the loss's path. The gradient report says which and why.
            result.no_grad_path = loading.error_line(exc)
            watch.record.grads = inspect(training_run.model)
        elif not loading.is_oom(exc):
            raise train_failed(training_run, exc) from exc
        else:
            message = loading.error_line(exc)
    except (ProbeStop, InputError):
        raise
    except Exception as exc:
        raise train_failed(training_run, exc) from exc
    finally:
        if trainer is not None:
            watch.detach(trainer)
        del trainer
        if device.startswith("cuda"):  # the next run's max_memory_allocated must not count this run's leftovers
            release(device)
    result.record = watch.record
    if message is not None:  # outside the except block, so the failed step's tensors can be freed
        training_run.model.zero_grad(set_to_none=True)
        release(device)
        result.oom = message
    return result


def _quiet(trainer) -> None:
    """No loss dicts or progress bars from the probe's runs in the terminal (display only)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def train_failed(training_run, exc: BaseException) -> ProbeStop:
    """The Trainer's run raised: a model that refuses gradient checkpointing, or the error with the likely fix."""
    message = loading.first_line(exc)
    described = training_run.describe()
    if "checkpointing" in message.lower() and "support" in message.lower():
        return ProbeStop(fail("step.gradient-checkpointing", evidence=described,
                              params={"error": loading.error_line(exc)}))
    if "in-place operation" in message:
        variant = "in-place"
    elif "num_items_in_batch" in message:
        variant = "num-items"
    elif "did not return a loss" in message or "returned no loss" in message:
        variant = "no-labels"
    else:
        variant = "other"
    return ProbeStop(fail(
        "step.forward-fails", variant, evidence=described,
        params={"error": loading.message_words(exc), "exception": type(exc).__name__, "trainer": described[N_("trainer")],
                "trainer_from": described[N_("trainer from")], "collator": described[N_("collator")],
                "collator_from": described[N_("collator from")]},
    ))


def _batch_length(collator: Any, rows: list) -> int:
    """Padded tokens per sample of the batch the collator makes from these rows (0 when it cannot)."""
    try:
        batch = collator([r.example() for r in rows])
        return int(batch["input_ids"].shape[-1])
    except Exception:
        return 0  # the Trainer's own run shows the collator's error


def trainer_init(training_run, output_dir: str) -> Finding:
    """``Trainer(...)`` exactly as the training script makes it, with the team's own evaluation, saving and
    reporting settings (only the output folder and the hub push changed): its own checks run here — an
    evaluation strategy without eval data, a reporting integration that is not installed, strategies that
    load_best_model_at_end cannot match. The probe's training runs themselves turn evaluation off."""
    why = N_("the probe never writes into the run's output or pushes to the hub")
    name = training_run.trainer_class.__qualname__
    arguments = None
    try:
        arguments = training_run.arguments_with({"output_dir": (output_dir, why), "push_to_hub": (False, why)},
                                                keep_requested=False)
        trainer = training_run.trainer(arguments=arguments)
        del trainer
    except Exception as exc:
        raise ProbeStop(fail("step.trainer-init", "refused",
                             params={"trainer": name, "error": loading.error_line(exc)})) from exc
    evaluated = training_run.evaluation_for(arguments)
    if evaluated is None:
        return passed("step.trainer-init", "accepted", params={"trainer": name})
    return passed("step.trainer-init", "evaluates", params={"trainer": name, "rows": len(evaluated)})


def accumulation_finding(trained: Trained, accumulation: int, batch: int) -> Finding:
    """One optimizer step of the configured gradient accumulation, for real: the Trainer's own loss scaling
    and ``num_items_in_batch`` over several batches (the probe's other steps are one batch each)."""
    micro = trained.record.micro_batches
    if trained.oom:
        return warn("step.accumulation-oom", params={"accumulation": accumulation, "message": trained.oom})
    return passed(
        "step.accumulation",
        evidence={N_("batches per optimizer step"): micro, N_("loss"): [round(v, 5) for v in trained.record.losses]},
        params={"accumulation": accumulation, "batch": batch, "micro": micro[0] if micro else "?"},
    )


# ---------------------------------------------------------------- the run's settings, as the Trainer reads them


def configured_batch(training: dict) -> int:
    """per_device_train_batch_size as the run reads it (the Trainer's default 8 when unset; 1 when unusable)."""
    return whole(training.get("per_device_train_batch_size", 8), 1)


def whole(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return default
    return int(value)


def reentrant(training: dict) -> bool:
    from ..model.training import checkpointing_enabled, checkpointing_kwargs

    return checkpointing_enabled(training) and bool(checkpointing_kwargs(training).get("use_reentrant", True))


def autocast(training: dict, device: str) -> Callable[[], Any]:
    """The Trainer's mixed precision (bf16 / fp16 in the training section) as a context factory."""
    import contextlib

    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if training.get("bf16") is True:
        return lambda: torch.autocast(kind, dtype=torch.bfloat16)
    if training.get("fp16") is True and kind == "cuda":
        return lambda: torch.autocast(kind, dtype=torch.float16)
    return contextlib.nullcontext


# ---------------------------------------------------------------- memory


def guarded(load: Callable[[], Any], device: str) -> tuple[Any, str | None]:
    """``load()``, or (None, the error) when it runs out of memory (released again)."""
    message = None
    try:
        return load(), None
    except (RuntimeError, MemoryError) as exc:
        if not loading.is_oom(exc):
            raise
        message = loading.error_line(exc)
    release(device)
    return None, message


def release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def allocated(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.memory_allocated(device)
    from ..model.measure import rss_bytes

    return rss_bytes()

