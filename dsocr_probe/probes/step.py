"""Probe 9: the team's own training run, for a few optimizer steps — will it start, fit and learn?

The run is built by :func:`dsocr_probe.model.trainrun.build`, the function ``scripts/train_lora.py``
trains with: the configured Trainer class (``trainer:``, default ``transformers.Trainer``), its
arguments from the ``training`` section, the collator from ``data.collator`` or the verified batch
builder, LoRA from the ``lora`` section, the model the checkpoint maps. Only what a probe must
change is overridden (a few steps, a temporary output folder, no saving, reporting or evaluation),
and the report lists each override beside the configured value. Then the Trainer's own
``train()`` runs, so its optimizer and scheduler, ``compute_loss``, gradient checkpointing, mixed
precision, gradient accumulation and DataLoader workers all run as they will. From that run
(callbacks on the Trainer, see :mod:`dsocr_probe.model.trainer_watch`):

1. the loss is finite; at the first step every adapter has a finite, non-zero gradient, frozen
   weights have none, and adapters without one are named with the reason (DeepSeek-OCR v1 runs its
   vision encoders under ``torch.no_grad()``; MoE experts no token was routed to);
2. the training batch is the largest the run will see: ``per_device_train_batch_size`` rows with
   the most image slots and the longest targets; repeated, its loss must fall and the adapters
   must change;
3. peak memory and time per step, measured on that batch, on the first rows and at a second batch
   size, and a forecast for other sizes: on CUDA the memory probe's weightless step of the same rows
   (:mod:`dsocr_probe.model.memory_forecast`), on the CPU linear along tokens and image slots. Out-of-memory is a
   finding with what fitted.

The verdicts on the Trainer's runs are in :mod:`.step_training`, those on learning in :mod:`.step_learning`,
those on memory in :mod:`.step_memory`.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable, Iterable, TypeVar

from ..findings import Finding, InputError, ProbeStop, cause_params, fail, passed, skip
from ..inputs import samples as samples_mod
from ..knowledge.trial_settings import probe_overrides
from ..messages import M, N_
from ..model import gradients, loading, lora, trainrun
from ..model.measure import gib
from .context import finding_of
from .step_learning import (causality_findings, gradient_findings, learning_finding, loss_finding, task_type,
                            wrap_failed)
from .step_memory import cost_findings, oom_finding, weightless
from .step_training import (accumulation_finding, allocated, autocast, configured_batch, guarded, reentrant, train,
                            trainer_init, whole)

T = TypeVar("T")
STEPS = 5  # optimizer steps of the training run on the largest batch
MEASURE_STEPS = 2  # optimizer steps of each further size measured for the forecast
PROBE = N_("probe")  # who changed a setting, in the run's table


def run(ctx) -> Iterable[Finding]:
    import torch

    target = ctx.needs(ctx.target, "step")
    cfg = ctx.unless_broken(ctx.train_config)
    training = dict(cfg.training) if cfg is not None else {}
    device = loading.default_device(ctx)
    dtype = _needs(ctx, lambda: loading.model_dtype(ctx, device))
    _needs(ctx, lambda: trainrun.trainer_class(cfg))
    rows = _rows(ctx)
    measured = samples_mod.measure(rows, ctx.image_facts, _layout_builder(ctx, dtype), ctx.unless_broken(ctx.tokenizer))
    batch_size = configured_batch(training) if cfg is not None else 1
    worst = samples_mod.largest(measured, batch_size)
    first = measured[:batch_size]

    loading.model_class(ctx)  # untrusted or unpinned remote code is refused first, as loading would
    if not loading.has_weights(target.path):  # a config folder: the static probes and the memory forecast ran on it
        raise ProbeStop(skip("step.no-weights", params={"path": str(target.path)}))
    torch.manual_seed(0)
    model, oom = guarded(lambda: loading.load_model(ctx, device, dtype), device)
    if oom:
        raise ProbeStop(oom_finding(None, oom, device, None, training))
    yield passed(
        "step.model-loaded",
        evidence={N_("class"): loading.model_class(ctx)[1], "dtype": _name(dtype), N_("device"): device,
                  N_("parameters"): f"{sum(p.numel() for p in model.parameters()):,}",
                  N_("memory after loading"): gib(allocated(device))},
        params={"cls": type(model).__name__, "dtype": _name(dtype), "device": device},
    )

    with tempfile.TemporaryDirectory(prefix="dsocr-step-") as output_dir, trainrun.environment_kept():
        overrides = probe_overrides(output_dir, STEPS, training, configured=cfg is not None)
        lora_kwargs = dict(cfg.lora) if cfg is not None and cfg.lora else {}
        if lora.normalise_task_type(lora_kwargs.get("task_type")) not in (None, lora.task_type_for(model.config)):
            from accelerate.utils import send_to_device

            builder = _needs(ctx, lambda: loading.builder_for(ctx, None, dtype))
            batch = send_to_device(builder([s.row.example() for s in first[:1]]), device)
            yield from task_type(model, lora_kwargs, batch, autocast(training, device))
        names = [n for n, _ in model.named_modules()]
        training_run = _build(ctx, device, dtype, overrides, [s.row for s in worst], model, lora_kwargs, names)
        yield _run_finding(training_run, worst, first)
        yield from causality_findings(training_run, first[:1], device, autocast(training, device))
        yield _rows_finding(worst, first)
        yield _lora_finding(training_run, lora_kwargs)
        yield trainer_init(training_run, output_dir)

        adapted = [gradients.strip_peft_prefix(n) for n in lora.adapter_modules(training_run.model)]
        no_grad = set(lora.no_grad_modules(ctx.target(), adapted))
        main = train(training_run, worst, device, STEPS, inspect=gradients.collect)
        out_of_memory = main.oom is not None
        if out_of_memory:  # what does fit: one sample of the largest, checked as fully as the batch would be
            smaller = train(training_run, samples_mod.largest(worst, 1), device, STEPS, inspect=gradients.collect,
                            batch_size=1) if len(worst) > 1 else None
            fitted = smaller.measure(_largest(1)) if smaller is not None and not smaller.oom else None
            yield oom_finding(len(worst), main.oom, device, fitted, training, length=main.length)
            if fitted is None:
                return
            main, worst = smaller, samples_mod.largest(worst, 1)
        record = main.record
        if main.no_grad_path is None:
            yield loss_finding(record)
        grad_findings = list(gradient_findings(record.grads, no_grad, names, reentrant(training),
                                               trainer_error=main.no_grad_path))
        yield from grad_findings
        if any(f.status.blocks for f in grad_findings) or not record.losses or not math.isfinite(record.losses[0]):
            return
        yield learning_finding(record, training)
        if out_of_memory:
            return  # the out-of-memory finding already says what fits
        accumulation = whole(training.get("gradient_accumulation_steps"), 1)
        if accumulation > 1:
            yield accumulation_finding(train(training_run, worst * accumulation, device, 1, batch_size=len(worst)),
                                       accumulation, len(worst))

        measures = [main.measure(_largest(len(worst)))]
        if {s.row.index for s in first} != {s.row.index for s in worst}:
            extra = train(training_run, first, device, MEASURE_STEPS)
            if not extra.oom:
                measures.append(extra.measure(M(N_("first %(count)d"), count=len(first))))
        other = _other_size(measured, worst)
        extra = train(training_run, other, device, MEASURE_STEPS, batch_size=len(other))
        if extra.oom:
            yield oom_finding(len(other), extra.oom, device, measures[0], training, length=extra.length,
                              blocking=False)
        else:
            measures.append(extra.measure(_largest(len(other))))
        yield from cost_findings(measures, batch_size, device, training, has_config=cfg is not None,
                                 weightless=weightless(ctx, training_run, worst, dtype, training, device))


def _needs(ctx, call: Callable[[], T]) -> T:
    """:meth:`ctx.needs` of a service called directly: its input error is what the probe that owns the input
    reports, and here a prerequisite."""
    def loaded() -> T:
        try:
            return call()
        except InputError as error:
            raise ProbeStop(finding_of(error)) from None

    return ctx.needs(loaded, "step")


# ---------------------------------------------------------------- the run and what it was built from


def _build(ctx, device: str, dtype: Any, overrides: dict, rows: list, model: Any, lora_kwargs: dict, names: list[str]):
    """The run as scripts/train_lora.py builds it. A part the training-config or batch probe already
    reports (the Trainer class, the collator's import) makes this probe SKIP; LoRA wrapping fails here."""
    try:
        return _needs(ctx, lambda: trainrun.build(ctx, device, dtype, overrides, rows=rows, model=model,
                                                  lora_settings=lora_kwargs, by=PROBE))
    except trainrun.BuildError as exc:
        cause = exc.__cause__ or exc
        if exc.stage == "lora":
            raise wrap_failed(cause, names) from exc
        built = fail("train_run.build", exc.stage, params={"name": exc.name, "error": loading.error_line(cause)})
        raise ProbeStop(skip("step.prerequisite", params=cause_params(built))) from exc


def _run_finding(training_run, worst: list, first: list) -> Finding:
    """Which run was checked: Trainer, collator, the arguments as configured and as used."""
    table = [{N_("argument"): s.name, N_("in the config"): _shown(s.configured), N_("used"): _shown(s.used),
              N_("changed by"): M(N_("%(who)s: %(why)s"), who=M(s.by), why=M(s.why)) if s.by else "—"}
             for s in training_run.settings]
    overrides = [s.name for s in training_run.overrides(PROBE)]
    return passed(
        "step.run",
        table=table,
        evidence={**training_run.describe(), N_("largest batch"): _rows_text(worst), N_("first rows"): _rows_text(first)},
        params={"trainer": training_run.trainer_class.__qualname__, "collator": _short(training_run.collator),
                "rows": len(worst), "overrides": ", ".join(f"`{n}`" for n in overrides)},
    )


def _rows_finding(worst: list, first: list) -> Finding:
    table = [{N_("batch"): M(N_("largest")), **s.describe()} for s in worst]
    table += [{N_("batch"): M(N_("first rows")), **s.describe()} for s in first if s not in worst]
    return passed("step.rows", table=table, params={"largest": len(worst), "first": len(first)})


def _lora_finding(training_run, lora_kwargs: dict) -> Finding:
    peft_model = training_run.model
    adapted = [gradients.strip_peft_prefix(n) for n in lora.adapter_modules(peft_model)]
    trainable, total = peft_model.get_nb_trainable_parameters()
    settings = peft_model.peft_config[peft_model.active_adapter]
    return passed(
        "step.lora",
        evidence={"target_modules": _as_list(settings.target_modules),
                  "exclude_modules": getattr(settings, "exclude_modules", None) or M(N_("none")),
                  "r / alpha": f"{settings.r} / {settings.lora_alpha}",
                  N_("adapters on vision modules"): len(lora.vision_modules(adapted)),
                  N_("from"): M(N_("training config lora section")) if lora_kwargs
                  else M(N_("language-model defaults"))},
        params={"task_type": str(lora.normalise_task_type(settings.task_type)), "modules": len(adapted),
                "trainable": f"{trainable:,}", "total": f"{total:,}"},
    )


# ---------------------------------------------------------------- inputs and helpers


def _rows(ctx) -> list:
    """The training rows the dataset probe accepts (a broken row is its finding, not a reason to stop here)."""
    data = ctx.needs(ctx.dataset, "step")
    if data is None or data.train is None or not data.train.rows:
        raise ProbeStop(skip("step.no-data"))
    rows = ctx.usable_rows(data.train.rows)
    if not rows:
        raise ProbeStop(skip("step.no-usable-rows"))
    return rows


def _layout_builder(ctx, dtype: Any):
    """The verified builder, for its layout facts (image slots by page size); None when it cannot be made."""
    from ..findings import InputError

    try:
        return loading.builder_for(ctx, None, dtype)
    except (ProbeStop, InputError):
        return None


def _other_size(measured: list, worst: list) -> list:
    """A second batch size for the forecast: one sample of the largest, or two when the run takes one."""
    if len(worst) > 1:
        return samples_mod.largest(worst, 1)
    if len(measured) > 1:
        return samples_mod.largest(measured, 2)
    return worst * 2  # the only row twice: the DataLoader does not care that it repeats


def _largest(count: int) -> dict:
    """The table's name for a batch of the ``count`` largest rows."""
    return M(N_("largest %(count)d"), count=count)


def _rows_text(chosen: list) -> str:
    return ", ".join(f"#{s.row.index} {s.row.image.name}" for s in chosen)


def _short(obj: Any) -> str:
    owner = obj if isinstance(obj, type) else type(obj)
    return owner.__qualname__ if owner.__qualname__ != "function" else getattr(obj, "__qualname__", repr(obj))


def _shown(value: Any) -> Any:
    if isinstance(value, str) and value == trainrun.UNSET:
        return M(trainrun.UNSET)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _as_list(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else value
