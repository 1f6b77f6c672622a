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
"""

from __future__ import annotations

import gc
import math
import tempfile
from typing import Any, Callable, Iterable

from ..model import gradients, loading, lora, trainrun
from ..inputs import samples as samples_mod
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..model.measure import Measure, MemoryMeter, capacity_bytes, forecast, gib
from ..knowledge.trial_settings import probe_overrides

NO_GRAD_PATH = "does not require grad"  # backward() on a loss no trainable weight contributes to
STEPS = 5  # optimizer steps of the training run on the largest batch
MEASURE_STEPS = 2  # optimizer steps of each further size measured for the forecast
MIN_DROP = 0.005  # a fall of 0.5 % counts even when the losses zigzag (dropout, bf16)
HEADROOM = 0.9  # a forecast above 90 % of the device's memory is a warning
FIX_MEMORY = ("set `gradient_checkpointing: true`, lower `per_device_train_batch_size` (raise "
              "`gradient_accumulation_steps` to keep the effective batch), or lower `data.max_length` / use a "
              "mode with fewer image tokens (tiny/small)")


def run(ctx) -> Iterable[Finding]:
    import torch

    target = ctx.needs(ctx.target, "step")
    cfg = ctx.unless_broken(ctx.train_config)
    training = dict(cfg.training) if cfg is not None else {}
    device = loading.default_device(ctx)
    dtype = ctx.needs(lambda: loading.model_dtype(ctx, device), "step")
    ctx.needs(lambda: trainrun.trainer_class(cfg), "step")
    rows = _rows(ctx)
    measured = samples_mod.measure(rows, ctx.image_facts, _layout_builder(ctx, dtype), ctx.unless_broken(ctx.tokenizer))
    batch_size = _configured_batch(training) if cfg is not None else 1
    worst = samples_mod.largest(measured, batch_size)
    first = measured[:batch_size]

    loading.model_class(ctx)  # untrusted or unpinned remote code is refused first, as loading would
    if not loading.has_weights(target.path):  # a config folder: the static probes and the memory forecast ran on it
        raise ProbeStop(skip("step.no-weights", f"Not run: {target.path} holds no weights (config and tokenizer only)",
                             detail="The static probes and the memory forecast work from config.json alone; a real "
                             "step needs the weights.",
                             fix="Download the checkpoint's weight files into the folder to run the real step.",
                             params={"path": str(target.path)}))
    torch.manual_seed(0)
    model, oom = _guarded(lambda: loading.load_model(ctx, device, dtype), device)
    if oom:
        raise ProbeStop(_oom_finding("the weights alone", oom, device, None, training))
    yield passed(
        "step.model-loaded",
        f"Loaded {type(model).__name__} in {_name(dtype)} on {device}",
        evidence={"class": loading.model_class(ctx)[1], "dtype": _name(dtype), "device": device,
                  "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
                  "memory after loading": gib(_allocated(device))},
        params={"cls": type(model).__name__, "dtype": _name(dtype), "device": device},
    )

    with tempfile.TemporaryDirectory(prefix="dsocr-step-") as output_dir, trainrun.environment_kept():
        overrides = probe_overrides(output_dir, STEPS, training, configured=cfg is not None)
        lora_kwargs = dict(cfg.lora) if cfg is not None and cfg.lora else {}
        if lora.normalise_task_type(lora_kwargs.get("task_type")) not in (None, lora.task_type_for(model.config)):
            from accelerate.utils import send_to_device

            builder = ctx.needs(lambda: loading.builder_for(ctx, None, dtype), "step")
            batch = send_to_device(builder([s.row.example() for s in first[:1]]), device)
            yield from _task_type(model, lora_kwargs, batch, _autocast(training, device))
        names = [n for n, _ in model.named_modules()]
        training_run = _build(ctx, device, dtype, overrides, [s.row for s in worst], model, lora_kwargs, names)
        yield _run_finding(training_run, worst, first)
        yield from _causality(training_run, first[:1], device, _autocast(training, device))
        yield _rows_finding(worst, first)
        yield _lora_finding(ctx, training_run, lora_kwargs)
        yield _trainer_init(training_run, output_dir)

        adapted = [gradients.strip_peft_prefix(n) for n in lora.adapter_modules(training_run.model)]
        no_grad = set(lora.no_grad_modules(ctx.target(), adapted))
        main = _train(training_run, worst, device, STEPS, inspect=gradients.collect)
        out_of_memory = main.oom is not None
        if out_of_memory:  # what does fit: one sample of the largest, checked as fully as the batch would be
            smaller = _train(training_run, samples_mod.largest(worst, 1), device, STEPS, inspect=gradients.collect,
                             batch_size=1) if len(worst) > 1 else None
            fitted = smaller.measure("largest 1") if smaller is not None and not smaller.oom else None
            yield _oom_finding(f"a batch of {len(worst)}", main.oom, device, fitted, training, length=main.length,
                               batch=len(worst))
            if fitted is None:
                return
            main, worst = smaller, samples_mod.largest(worst, 1)
        record = main.record
        if main.no_grad_path is None:
            yield _loss_finding(record)
        grad_findings = list(_gradient_findings(record.grads, no_grad, names, _reentrant(training),
                                                trainer_error=main.no_grad_path))
        yield from grad_findings
        if any(f.status.blocks for f in grad_findings) or not record.losses or not _finite(record.losses[0]):
            return
        yield _learning_finding(record, training)
        if out_of_memory:
            return  # the out-of-memory finding already says what fits
        accumulation = _whole(training.get("gradient_accumulation_steps"), 1)
        if accumulation > 1:
            yield _accumulation_finding(_train(training_run, worst * accumulation, device, 1, batch_size=len(worst)),
                                        accumulation, len(worst))

        measures = [main.measure(f"largest {len(worst)}")]
        if {s.row.index for s in first} != {s.row.index for s in worst}:
            extra = _train(training_run, first, device, MEASURE_STEPS)
            if not extra.oom:
                measures.append(extra.measure(f"first {len(first)}"))
        other = _other_size(measured, worst)
        extra = _train(training_run, other, device, MEASURE_STEPS, batch_size=len(other))
        if extra.oom:
            yield _oom_finding(f"a batch of {len(other)}", extra.oom, device, measures[0], training,
                               length=extra.length, blocking=False, batch=len(other))
        else:
            measures.append(extra.measure(f"largest {len(other)}"))
        yield from _cost_findings(measures, batch_size, device, training, has_config=cfg is not None,
                                  weightless=_weightless(ctx, training_run, worst, dtype, training, device))


# ---------------------------------------------------------------- the Trainer's run


def _trainer_init(training_run, output_dir: str) -> Finding:
    """``Trainer(...)`` exactly as the training script makes it, with the team's own evaluation, saving and
    reporting settings (only the output folder and the hub push changed): its own checks run here — an
    evaluation strategy without eval data, a reporting integration that is not installed, strategies that
    load_best_model_at_end cannot match. The probe's training runs themselves turn evaluation off."""
    why = "the probe never writes into the run's output or pushes to the hub"
    arguments = None
    try:
        arguments = training_run.arguments_with({"output_dir": (output_dir, why), "push_to_hub": (False, why)},
                                                keep_requested=False)
        trainer = training_run.trainer(arguments=arguments)
        del trainer
    except Exception as exc:
        raise ProbeStop(
            fail(
                "step.trainer-init",
                f"{training_run.trainer_class.__qualname__}(...) refuses the configured run: {loading.error_line(exc)}",
                detail="Made as scripts/train_lora.py makes it, with your evaluation, saving and reporting settings.",
                fix="Correct the training setting the message names (an eval strategy needs the val split; a "
                "`report_to` integration must be installed).",
                params={"trainer": training_run.trainer_class.__qualname__, "error": loading.error_line(exc)},
            )
        ) from exc
    evaluated = training_run.evaluation_for(arguments)
    return passed(
        "step.trainer-init",
        f"{training_run.trainer_class.__qualname__}(...) accepts the configured run"
        + (f", with {len(evaluated)} val rows to evaluate" if evaluated is not None else ""),
        params={"trainer": training_run.trainer_class.__qualname__},
    )


def _accumulation_finding(trained: "Trained", accumulation: int, batch: int) -> Finding:
    """One optimizer step of the configured gradient accumulation, for real: the Trainer's own loss scaling
    and ``num_items_in_batch`` over several batches (the probe's other steps are one batch each)."""
    micro = trained.record.micro_batches
    if trained.oom:
        return warn("step.accumulation-oom", f"Out of memory while accumulating {accumulation} batches: "
                    f"{trained.oom}", fix="Lower `per_device_train_batch_size` (see the memory findings).",
                    params={"accumulation": accumulation, "message": trained.oom})
    return passed(
        "step.accumulation",
        f"Gradient accumulation: one optimizer step over {micro[0] if micro else '?'} batches of {batch} "
        f"(configured {accumulation})",
        evidence={"batches per optimizer step": micro, "loss": [round(v, 5) for v in trained.record.losses]},
        params={"accumulation": accumulation, "batch": batch},
    )


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

    def measure(self, label: str) -> Measure:
        return Measure(len(self.rows), self.length, self.peak_bytes, self.record.step_s, self.slots, label)


def _train(training_run, chosen: list, device: str, steps: int, inspect: Callable | None = None,
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
    extra = {"max_steps": (steps, "a few optimizer steps are enough to see the run start, fit and learn")}  # by the probe
    if batch_size is not None:
        extra["per_device_train_batch_size"] = (batch_size, "a second batch size for the memory forecast")
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
            raise _train_failed(training_run, exc) from exc
        else:
            message = loading.error_line(exc)
    except ProbeStop:
        raise
    except Exception as exc:
        raise _train_failed(training_run, exc) from exc
    finally:
        if trainer is not None:
            watch.detach(trainer)
        del trainer
        if device.startswith("cuda"):  # the next run's max_memory_allocated must not count this run's leftovers
            _release(device)
    result.record = watch.record
    if message is not None:  # outside the except block, so the failed step's tensors can be freed
        training_run.model.zero_grad(set_to_none=True)
        _release(device)
        result.oom = message
    return result


def _quiet(trainer) -> None:
    """No loss dicts or progress bars from the probe's runs in the terminal (display only)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def _train_failed(training_run, exc: BaseException) -> ProbeStop:
    message = loading.first_line(exc)
    fix = "Compare with the batch and model API probes; with gradient_checkpointing on, try it off."
    checkpointing_kwargs = missing_arg = needs = None
    if "in-place operation" in message:
        checkpointing_kwargs = "{use_reentrant: false}"
        fix = ("The embeddings were made to require grad (gradient checkpointing enabled before get_peft_model, "
               "or enable_input_require_grads), and this model writes the image features into them in place: "
               "let the Trainer enable checkpointing after wrapping, with "
               "`gradient_checkpointing_kwargs: {use_reentrant: false}`.")
    elif "num_items_in_batch" in message:
        missing_arg = "num_items_in_batch"
        fix = "Add `num_items_in_batch=None` to the Trainer subclass's compute_loss (see the training-config probe)."
    elif "did not return a loss" in message or "returned no loss" in message:
        needs = "labels"
        fix = "The model computes the loss from `labels`: the collator must put them in every batch (see the batch probe)."
    described = training_run.describe()
    if "checkpointing" in message.lower() and "support" in message.lower():
        return ProbeStop(
            fail(
                "step.gradient-checkpointing",
                f"gradient_checkpointing is set, but the model refuses it: {loading.error_line(exc)}",
                fix="Set `gradient_checkpointing: false` and lower the batch size or max length instead.",
                evidence=described,
                params={"error": loading.error_line(exc)},
            )
        )
    return ProbeStop(
        fail(
            "step.forward-fails",
            f"The training run fails: {type(exc).__name__}: {message}",
            detail=f"Raised while {described['trainer']} ({described['trainer from']}) trained with the collator "
            f"{described['collator']} ({described['collator from']}).",
            fix=fix,
            evidence=described,
            params={"error": message, "exception": type(exc).__name__, "checkpointing_kwargs": checkpointing_kwargs,
                    "missing_arg": missing_arg, "needs": needs, "trainer": described["trainer"],
                    "collator": described["collator"]},
        )
    )


def _batch_length(collator: Any, rows: list) -> int:
    """Padded tokens per sample of the batch the collator makes from these rows (0 when it cannot)."""
    try:
        batch = collator([r.example() for r in rows])
        return int(batch["input_ids"].shape[-1])
    except Exception:
        return 0  # the Trainer's own run shows the collator's error


# ---------------------------------------------------------------- building the run


def _build(ctx, device: str, dtype: Any, overrides: dict, rows: list, model: Any, lora_kwargs: dict, names: list[str]):
    """The run as scripts/train_lora.py builds it. A part the training-config or batch probe already
    reports (the Trainer class, the collator's import) makes this probe SKIP; LoRA wrapping fails here."""
    try:
        return ctx.needs(lambda: trainrun.build(ctx, device, dtype, overrides, rows=rows, model=model,
                                                lora_settings=lora_kwargs, by="probe"), "step")
    except trainrun.BuildError as exc:
        cause = exc.__cause__ or exc
        if exc.stage == "lora":
            raise _wrap_failed(cause, names) from exc
        raise ProbeStop(
            skip(
                "step.prerequisite",
                f"Not run: {exc.what} fails: {loading.error_line(cause)}",
                fix="See the training-config probe, which names the value and the fix.",
                params={"cause": f"{exc.what}: {loading.error_line(cause)}"},
            )
        ) from exc


def _wrap_failed(cause: BaseException, names: list[str]) -> ProbeStop:
    """peft refused the LoRA section: the targets, when they are what it names; else the value it names."""
    about_targets = "target module" in str(cause).lower() or "not found in the base model" in str(cause)
    return ProbeStop(
        fail(
            "step.lora-wrap",
            f"get_peft_model fails with this LoRA config: {loading.error_line(cause)}",
            fix=_targets_fix(names) if about_targets
            else "Correct the `lora` value the message names (see the training-config probe).",
            params={"error": loading.first_line(cause), "exception": type(cause).__name__,
                    **(_targets_params(names) if about_targets else {})},
        )
    )


def _run_finding(training_run, worst: list, first: list) -> Finding:
    """Which run was checked: Trainer, collator, the arguments as configured and as used."""
    described = training_run.describe()
    table = [{"argument": s.name, "in the config": _shown(s.configured), "used": _shown(s.used),
              "changed by": s.by or "—"} for s in training_run.settings]
    overrides = [s.name for s in training_run.overrides("probe")]
    return passed(
        "step.run",
        f"Ran {training_run.trainer_class.__qualname__}.train() with {_short(training_run.collator)} "
        f"on the largest batch of the split ({len(worst)} row{'' if len(worst) == 1 else 's'})",
        detail="Overridden for the probe: " + ", ".join(f"`{n}`" for n in overrides) + ". The training script builds "
        "the rest the same way (its own changes are marked in the table).",
        table=table,
        evidence={**described, "largest batch": _rows_text(worst), "first rows": _rows_text(first)},
        params={"trainer": training_run.trainer_class.__qualname__, "collator": _short(training_run.collator),
                "rows": len(worst), "overrides": ", ".join(overrides)},
    )


def _rows_finding(worst: list, first: list) -> Finding:
    table = [{"batch": "largest", **s.describe()} for s in worst]
    table += [{"batch": "first rows", **s.describe()} for s in first if s not in worst]
    return passed("step.rows", f"Batches measured: the {len(worst)} largest rows and the first {len(first)}", table=table,
                  params={"largest": len(worst), "first": len(first)})


def _lora_finding(ctx, training_run, lora_kwargs: dict) -> Finding:
    peft_model = training_run.model
    adapted = [gradients.strip_peft_prefix(n) for n in lora.adapter_modules(peft_model)]
    trainable, total = peft_model.get_nb_trainable_parameters()
    settings = peft_model.peft_config[peft_model.active_adapter]
    return passed(
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


# ---------------------------------------------------------------- findings


def _task_type(model, lora_kwargs: dict, batch: dict, amp: Callable[[], Any]) -> Iterable[Finding]:
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

            with torch.no_grad(), amp():
                trial(**batch)
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
        f"LoRA task_type {given} on {'a' if want == 'CAUSAL_LM' else 'an'} {kind} model: it must be {want}",
        detail=f"With {given}, {outcome}. The rest of this probe ran with {want}.",
        fix=f"Set `lora.task_type: {want}` (peft `TaskType.{want}`).",
        params={"given": given, "want": want, "forward_error": forward_error, "wrap_error": wrap_error},
    )
    lora_kwargs["task_type"] = want


def _causality(training_run, chosen: list, device: str, amp: Callable[[], Any]) -> Iterable[Finding]:
    """A later target token must not change the logits of the earlier ones (prefix-LM leakage)."""
    from accelerate.utils import send_to_device

    from ..model import causality
    from ..knowledge import families

    fam = families.family_for(training_run.model.config)
    try:
        batch = send_to_device(training_run.collator([s.row.example() for s in chosen]), device)
        with amp():
            result = causality.check(training_run.model, batch, encoder_decoder=fam.encoder_decoder)
    except causality.NotChecked as exc:
        yield skip("step.causality-unchecked", f"Causality not checked: {exc}", params={"why": str(exc)})
        return
    except Exception as exc:  # the training run itself reports a forward that fails
        yield skip("step.causality-unchecked", f"Causality not checked: the forward fails: {loading.error_line(exc)}",
                   params={"why": f"the forward fails: {loading.error_line(exc)}"})
        return
    evidence = {"collator": training_run.collator_source, **result.describe()}
    if not result.leaks:
        yield passed("step.causality", "A target token sees no later target token (the logits before it do not move)",
                     evidence=evidence)
        return
    types = fam.token_type_ids
    yield fail(
        "step.prefix-leak",
        f"Target position {result.changed_at} sees the later target token at {result.perturbed_at}: the model "
        "can copy the answer instead of reading the page",
        detail="Replacing one later target token changed the logits that predict earlier target tokens. The loss "
        "falls, but generation has no later tokens to look at, so what the model learns does not carry over. "
        + (f"This family's forward is a prefix-LM: token_type_ids must be {types}." if types else ""),
        fix=("Pass the target to the processor as `suffix` (token_type_ids 1 on the target and eos): "
             "`dsocr_probe.builder_for(model_path)` builds it so." if types else
             "Use a causal attention mask over the target (the dsocr_probe builder for this family does)."),
        evidence=evidence,
        params={"at": result.changed_at, "later": result.perturbed_at, "types": types},
    )


def _targets_fix(names: list[str]) -> str:
    """Adapters on the language model's projections, in the config's words (and the installed peft's fields)."""
    return f"Target the language model: {lora.settings_text(lora.default_settings(names))}."


def _targets_params(names: list[str]) -> dict[str, Any]:
    """The values of :func:`_targets_fix`, for the translated fix."""
    settings = lora.default_settings(names)
    targets = settings["target_modules"]
    return {"targets": f"'{targets}'" if isinstance(targets, str) else "[" + ", ".join(targets) + "]",
            "exclude": settings.get("exclude_modules") or None}


def _loss_finding(record) -> Finding:
    loss = record.losses[0] if record.losses else None
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
                       reentrant: bool = False, trainer_error: str | None = None) -> Iterable[Finding]:
    if grads is None:
        return
    rows = gradients.grouped_rows(grads.adapters, no_grad)
    learning, silent = grads.learning, grads.not_learning
    fix_targets = _targets_fix(names)
    targets = _targets_params(names)
    evidence = {"adapters": len(grads.adapters), "with gradient": len(learning), "without": len(silent)}
    if trainer_error:
        evidence["Trainer.train() stopped with"] = trainer_error
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


def _learning_finding(record, training: dict) -> Finding:
    """The same batch, repeated: the adapters must move, and the loss should fall.

    Unchanged adapters after the Trainer's steps mean the updates are lost (an optimizer without
    them, a zero learning rate): NO-GO. A loss that does not fall while they move is a warning, not
    a verdict: in its first few steps the configured schedule may still be warming up, and a low
    rate moves a loss slowly.
    """
    losses, rates = record.losses, [r for r in record.learning_rates if r is not None]
    table = [{"step": i + 1, "loss": f"{v:.5f}", "learning rate": f"{r:.3g}" if r is not None else "?",
              "time": f"{t:.3f} s"}
             for i, (v, r, t) in enumerate(zip(losses, record.learning_rates + [None] * len(losses), record.times))]
    evidence = {"optimizer steps": len(losses), "learning rates": ", ".join(f"{r:.3g}" for r in rates) or "?"}
    if record.adapters_changed is False:
        return fail(
            "step.no-update",
            f"The adapters did not change in {len(losses)} optimizer steps",
            detail="The gradients reached them (see above), but no update was applied: the optimizer does not hold "
            "the adapters' parameters, or the learning rate is 0.",
            fix="Give `learning_rate` a positive value; a Trainer subclass that overrides `create_optimizer` must "
            "pass the parameters with `requires_grad=True`.",
            table=table, evidence=evidence, params={"steps": len(losses)},
        )
    if loss_falls(losses):
        return passed(
            "step.loss-falls",
            f"The loss falls on a repeated batch: {losses[0]:.5f} → {losses[-1]:.5f} in {len(losses)} steps",
            table=table, evidence=evidence,
            params={"first": round(losses[0], 4), "last": round(losses[-1], 4), "steps": len(losses)},
        )
    low = max(rates, default=0.0)
    return warn(
        "step.loss-flat",
        f"The loss does not fall on a repeated batch ({' → '.join(f'{v:.5f}' for v in losses)})",
        detail=f"{len(losses)} optimizer steps of the configured run on the same batch, at learning rates up to "
        f"{low:.3g}: the adapters moved, but the loss did not follow. Early in a warm-up, or at a low rate, "
        "that can be normal; otherwise the labels do not supervise the target.",
        fix="Check the batch probe's label findings; if the schedule warms up over many steps, this is expected.",
        table=table, evidence=evidence,
        params={"losses": [round(v, 4) for v in losses], "trace": " → ".join(f"{v:.5f}" for v in losses),
                "steps": len(losses), "lr": low},
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


def _weightless(ctx, training_run, worst: list, dtype: Any, training: dict, device: str) -> Callable[[int], int] | None:
    """On CUDA, where the measured peak is the allocator's: batch -> the memory probe's weightless forecast of the
    largest rows (same model, same LoRA, same collator); None where it cannot be made (the linear fit stands)."""
    from ..model import memory_forecast as mf

    if not device.startswith("cuda"):
        return None  # the CPU peak is the process's RSS, which the weightless step does not model
    try:
        skeleton = ctx.skeleton()
        if skeleton.model is None:
            return None
        plan = mf.plan_for(training, dtype)
        model = mf.prepare(skeleton.model, training_run.lora_settings, plan)
    except (ProbeStop, mf.ForecastError):
        return None
    rows = [s.row for s in worst]

    def peak(batch: int) -> int:
        chosen = (rows * batch)[:batch]
        return mf.forecast(model, training_run.collator([r.example() for r in chosen]), plan).peak

    return peak


def _cost_findings(measures: list[Measure], configured: int, device: str, training: dict,
                   has_config: bool = True, weightless: Callable[[int], int] | None = None) -> Iterable[Finding]:
    capacity = capacity_bytes(device)
    main = measures[0]
    guess = forecast(measures, configured, main.length, capacity, HEADROOM, slots=main.slots)
    how = "linear in tokens and image slots per batch, through the measured sizes"
    if weightless is not None:
        try:  # the memory probe's model: the configured batch's own step, and the largest batch from batch 1 and 2
            guess.peak_bytes = weightless(configured)
            one, two = weightless(1), weightless(2)
            per = max(1, two - one)
            guess.largest_batch = max(0, int((capacity * HEADROOM - (one - per)) // per)) if capacity else None
            how = "the memory probe's weightless step of the same rows (largest batch: linear through batch 1 and 2)"
        except Exception:  # noqa: BLE001 - the linear fit through the measured sizes stands
            pass
    table = [m.row() for m in measures]
    if configured != main.samples:  # fewer rows than the configured batch: the forecast says what a full one needs
        table.append({"batch": f"{configured} (forecast)", "rows": "", "tokens / sample": main.length,
                      "image slots / sample": main.slots or "?", "peak memory": gib(guess.peak_bytes),
                      "time / step": f"{guess.step_s:.3f} s"})
        peak, seconds = guess.peak_bytes, guess.step_s
    else:
        peak, seconds = main.peak_bytes, main.step_s
    evidence = {"device": device, "device memory": gib(capacity), "forecast": how}
    accumulation = _whole(training.get("gradient_accumulation_steps"), 1)
    if accumulation > 1:  # the probe's steps are one batch each; the run's accumulate several
        evidence["optimizer step with gradient accumulation"] = (
            f"{accumulation} x {seconds:.3f} s = {accumulation * seconds:.2f} s")
    if device.startswith("cuda"):
        evidence.update({"largest batch expected to fit at this length": guess.largest_batch,
                         "memory measured as": "torch.cuda.max_memory_allocated"})
    else:  # the resident set barely moves for small models: no batch limit can be read from it
        evidence["memory measured as"] = "process RSS, sampled (includes the Python process itself)"
    what = f"batch {configured} x {main.length} tokens" + (
        "" if not has_config or "per_device_train_batch_size" in training
        else " (no batch size configured: the Trainer's default)") + ("" if has_config else " (no training config: batch 1)")
    if device.startswith("cuda") and capacity and peak > capacity:
        yield fail(
            "step.forecast-oom",
            f"Forecast for {what}: {gib(peak)}, more than the GPU's {gib(capacity)}",
            detail="Linear in tokens and image slots through the measured sizes.",
            fix=f"Use `per_device_train_batch_size: {max(1, guess.largest_batch or 1)}` with more gradient accumulation, or "
            + FIX_MEMORY + ".",
            table=table, evidence=evidence,
            params={"need": gib(peak), "have": gib(capacity), "largest": guess.largest_batch,
                    "batch": configured, "length": main.length, "default_batch": None if has_config else configured,
                    "fit_batch": max(1, guess.largest_batch or 1)},
        )
    elif capacity and peak > capacity * HEADROOM:
        yield warn(
            "step.forecast-tight",
            f"Forecast for {what}: {gib(peak)} of {gib(capacity)} ({peak / capacity:.0%})",
            fix="Leave headroom: " + FIX_MEMORY + ".",
            table=table, evidence=evidence,
            params={"need": gib(peak), "have": gib(capacity), "share": f"{peak / capacity:.0%}",
                    "batch": configured, "length": main.length, "default_batch": None if has_config else configured},
        )
    else:
        yield passed(
            "step.cost",
            f"One step of {what}: about {gib(peak)} peak and {seconds:.2f} s",
            table=table, evidence=evidence,
            params={"peak": gib(peak), "seconds": round(seconds, 3)},
        )


def _oom_finding(what: str, message: str, device: str, fitted: Measure | None, training: dict,
                 length: int | None = None, blocking: bool = True, batch: int | None = None) -> Finding:
    largest = (f"The largest setting that fitted: batch {fitted.samples} x {fitted.length} tokens "
               f"({gib(fitted.peak_bytes)} peak)." if fitted else "Nothing fitted.")
    configured = training.get("per_device_train_batch_size")
    effective = _configured_batch(training) * _whole(training.get("gradient_accumulation_steps"), 1)
    accumulation = max(1, effective // fitted.samples) if fitted else None
    fix = (f"Set `per_device_train_batch_size: {fitted.samples}` and `gradient_accumulation_steps: "
           f"{accumulation}`, or " if fitted else "Load in bf16, ") + FIX_MEMORY + "."
    make = fail if blocking else warn
    return make(
        "step.out-of-memory",
        f"Out of memory on {device} with {what}" + (f" ({length} tokens)" if length else ""),
        detail=f"{message}\n{largest}",
        fix=fix,
        evidence={"device memory": gib(capacity_bytes(device)), "configured batch": configured},
        params={"what": what, "device": device, "tokens": length, "message": message, "batch": batch,
                "fit_batch": fitted.samples if fitted else None, "fit_length": fitted.length if fitted else None,
                "fit_peak": gib(fitted.peak_bytes) if fitted else None,
                "accumulation": accumulation},
    )



# ---------------------------------------------------------------- inputs and helpers


def _rows(ctx) -> list:
    """The training rows the dataset probe accepts (a broken row is its finding, not a reason to stop here)."""
    data = ctx.needs(ctx.dataset, "step")
    if data is None or data.train is None or not data.train.rows:
        raise ProbeStop(skip("step.no-data", "No training rows to build a batch from",
                             fix="Pass --dsocr-data DIR (train/metadata.json with image_path and text rows)."))
    rows = ctx.usable_rows(data.train.rows)
    if not rows:
        raise ProbeStop(skip("step.no-usable-rows", "No training row has an image that opens",
                             fix="See the dataset probe: it names each row and why its image cannot be read."))
    return rows


def _layout_builder(ctx, dtype: Any):
    """The verified builder, for its layout facts (image slots by page size); None when it cannot be made."""
    from ..findings import InputError

    try:
        return loading.builder_for(ctx, None, dtype)
    except (ProbeStop, InputError):
        return None


def _configured_batch(training: dict) -> int:
    """per_device_train_batch_size as the run reads it (the Trainer's default 8 when unset; 1 when unusable)."""
    return _whole(training.get("per_device_train_batch_size", 8), 1)


def _whole(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return default
    return int(value)


def _other_size(measured: list, worst: list) -> list:
    """A second batch size for the forecast: one sample of the largest, or two when the run takes one."""
    if len(worst) > 1:
        return samples_mod.largest(worst, 1)
    if len(measured) > 1:
        return samples_mod.largest(measured, 2)
    return worst * 2  # the only row twice: the DataLoader does not care that it repeats


def _reentrant(training: dict) -> bool:
    from ..model.training import checkpointing_enabled, checkpointing_kwargs

    return checkpointing_enabled(training) and bool(checkpointing_kwargs(training).get("use_reentrant", True))


def _autocast(training: dict, device: str) -> Callable[[], Any]:
    """The Trainer's mixed precision (bf16 / fp16 in the training section) as a context factory."""
    import contextlib

    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if training.get("bf16") is True:
        return lambda: torch.autocast(kind, dtype=torch.bfloat16)
    if training.get("fp16") is True and kind == "cuda":
        return lambda: torch.autocast(kind, dtype=torch.float16)
    return contextlib.nullcontext


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
    from ..model.measure import rss_bytes

    return rss_bytes()


def _rows_text(chosen: list) -> str:
    return ", ".join(f"#{s.row.index} {s.row.image.name}" for s in chosen)


def _short(obj: Any) -> str:
    owner = obj if isinstance(obj, type) else type(obj)
    return owner.__qualname__ if owner.__qualname__ != "function" else getattr(obj, "__qualname__", repr(obj))


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) and value != trainrun.UNSET else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _as_list(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else value

