"""Probe 8: the training config against the installed transformers, the data and the model."""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import pickle
import sys
import tempfile
import types
from typing import Any, Iterable

from packaging.version import Version

from .. import quantization
from ..findings import Finding, ProbeStop, cause_params, fail, passed, skip, warn
from ..rules import ARG_RULES


def run(ctx) -> Iterable[Finding]:
    cfg = ctx.require(
        ctx.train_config,
        "training config",
        "Pass the YAML your training script reads: --dsocr-train-config configs/training_config.yaml.",
    )
    import transformers

    installed = Version(transformers.__version__)
    yield from check_arguments(cfg.training, installed)
    if not ctx.facts.injected:
        yield from _construct(cfg.training)
    yield from _auto_class(ctx, cfg)
    yield from _batch_math(ctx, cfg)
    yield from _collator_and_workers(ctx, cfg)
    yield from _lora(ctx, cfg)
    yield from quantization.check(ctx, cfg.model)


def training_arguments_fields() -> dict[str, inspect.Parameter]:
    from transformers import TrainingArguments

    return {n: p for n, p in inspect.signature(TrainingArguments.__init__).parameters.items() if n != "self"}


def check_arguments(training: dict[str, Any], installed: Version) -> Iterable[Finding]:
    fields = training_arguments_fields()
    bad = 0
    for key in training:
        rule = ARG_RULES.get(key)
        if key in fields:
            if rule and rule.introduced and installed >= Version(rule.introduced):
                yield warn(
                    "train_config.deprecated-argument",
                    f"`{key}` is deprecated since transformers {rule.introduced}: use `{rule.use}`",
                    fix=f"Rename `{key}:` to `{rule.use.split(' ')[0]}:`" + (f" before upgrading to {rule.removed}, which removes it." if rule.removed else "."),
                    params={"key": key, "use": rule.use, "rename_to": rule.use.split(' ')[0],
                            "introduced": rule.introduced, "removed": rule.removed},
                )
            continue
        bad += 1
        if rule and rule.trainer:
            yield fail(
                "train_config.trainer-argument",
                f"`{key}` is not a TrainingArguments argument: it belongs to {rule.use}",
                detail=f"Trainer(tokenizer=...) was replaced by processing_class in 4.46.0 and removed in 5.0.0."
                if key == "tokenizer" else "",
                fix=f"Remove `{key}` from the training section and pass it as {_trainer_argument(key, installed)}.",
                params={"key": key, "pass_as": _trainer_argument(key, installed),
                        "replaced_by": "processing_class" if key == "tokenizer" else None},
            )
        elif rule:
            when = f" (removed in transformers {rule.removed})" if rule.removed else " (it never was one)"
            yield fail(
                "train_config.renamed-argument",
                f"TrainingArguments got an unexpected keyword argument `{key}`{when}",
                fix=f"Use `{rule.use}` instead of `{key}`.",
                source=rule.source,
                params={"key": key, "use": rule.use, "removed": rule.removed},
            )
        else:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
            yield fail(
                "train_config.unknown-argument",
                f"TrainingArguments got an unexpected keyword argument `{key}`",
                fix=f"Did you mean `{close[0]}`?" if close else f"Remove `{key}`; transformers {installed} has no such argument.",
                params={"key": key, "suggestion": close[0] if close else None, "installed": str(installed)},
            )
    if not bad:
        yield passed("train_config.arguments", f"All {len(training)} training arguments exist in transformers {installed}")


def _trainer_argument(key: str, installed: Version) -> str:
    if key in ("tokenizer", "processing_class"):
        return "`Trainer(processing_class=...)`" if installed >= Version("4.46.0") else "`Trainer(tokenizer=...)`"
    return f"`Trainer({key}=...)`"


def _construct(training: dict[str, Any]) -> Iterable[Finding]:
    """Build TrainingArguments for real: catches bad values (an unknown optim name, bf16 without support)."""
    from transformers import TrainingArguments

    fields = training_arguments_fields()
    kwargs = {k: v for k, v in training.items() if k in fields}
    with tempfile.TemporaryDirectory() as tmp:
        kwargs.setdefault("output_dir", tmp)
        kwargs["output_dir"] = tmp  # never create the run's real output folder from a probe
        try:
            TrainingArguments(**kwargs)
        except Exception as exc:
            yield fail(
                "train_config.invalid-value",
                f"TrainingArguments rejects these values on this machine: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                detail=str(exc),
                fix="Correct the value named in the message.",
                params={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"},
            )


def _auto_class(ctx, cfg) -> Iterable[Finding]:
    name = cfg.model.get("auto_class")
    if not name:
        return
    from .model_api import PREFERENCE, auto_class_verdicts

    try:
        target = ctx.target()
    except ProbeStop:
        return
    try:
        config = ctx.skeleton().config
    except ProbeStop:
        config = None
    verdicts = {v.auto_class: v for v in auto_class_verdicts(target, config)}
    verdict = verdicts.get(name)
    accepted = sorted((v.auto_class for v in verdicts.values() if v.accepts), key=PREFERENCE.index)
    if verdict is not None and not verdict.accepts:
        yield fail(
            "train_config.auto-class",
            f"model.auto_class {name} refuses this checkpoint: {verdict.detail}",
            fix=f"Set `model.auto_class: {accepted[0]}` (and load with `{accepted[0]}.from_pretrained`)." if accepted else "See the model API probe.",
            params={"auto_class": name, "use": accepted[0] if accepted else None, "reason": verdict.detail},
        )


def _batch_math(ctx, cfg) -> Iterable[Finding]:
    t = cfg.training
    bs = int(t.get("per_device_train_batch_size", 8))
    ga = int(t.get("gradient_accumulation_steps", 1))
    epochs = float(t.get("num_train_epochs", 3))
    devices = max(1, len(ctx.facts.devices))
    try:
        data = ctx.dataset()
    except ProbeStop:
        data = None
    n = len(data.train.rows) if data is not None and data.train is not None else None
    effective = bs * ga * devices
    row = {"train samples": n if n is not None else "unknown", "per-device batch": bs, "grad accumulation": ga,
           "devices": devices, "effective batch": effective, "epochs": t.get("num_train_epochs", 3)}
    if not n:
        yield skip("train_config.batch-math", "Batch size not checked against the data: no training rows",
                   evidence=row, fix="Pass --dsocr-data or set data.train_dir.")
        return
    batches = math.ceil(n / (bs * devices))
    updates = max(1, math.ceil(batches / ga))  # the Trainer steps once at the end of a short epoch
    total = int(t.get("max_steps", -1)) if int(t.get("max_steps", -1)) > 0 else math.ceil(updates * epochs)
    row.update({"batches per epoch": batches, "optimizer steps per epoch": updates, "optimizer steps in all": total})
    found = False
    if bs > n:
        found = True
        yield warn(
            "train_config.batch-larger-than-data",
            f"per_device_train_batch_size {bs} is larger than the {n} training samples",
            detail=f"Every batch is the whole dataset of {n}; the memory planned for {bs} samples is never used.",
            fix=f"Set `per_device_train_batch_size: {min(n, bs)}` or fewer, or add data.",
            evidence=row, params={"bs": bs, "n": n},
        )
    if effective > n:
        found = True
        yield warn(
            "train_config.effective-batch",
            f"Effective batch {effective} ({bs} x {ga} accumulation x {devices} device) exceeds the {n} samples: "
            f"{updates} optimizer step per epoch, {total} in all",
            fix=f"With {n} samples use `per_device_train_batch_size: 1` and `gradient_accumulation_steps: 1`, "
            "then grow the data before the batch.",
            evidence=row, params={"effective": effective, "n": n, "total": total, "bs": bs, "ga": ga, "devices": devices,
                                  "updates": updates},
        )
    if epochs >= 20 and n < 100:
        found = True
        yield warn(
            "train_config.epochs",
            f"{epochs:g} epochs over {n} samples will memorise them",
            detail="The training loss will reach zero while the model learns nothing it can use on new pages.",
            fix="Train 3-5 epochs and add data; watch the validation loss with eval_strategy: epoch.",
            evidence=row, params={"epochs": epochs, "n": n},
        )
    if not found:
        yield passed("train_config.batch-math", f"Effective batch {effective}, {total} optimizer steps", evidence=row)


def _collator_and_workers(ctx, cfg) -> Iterable[Finding]:
    t = cfg.training
    if t.get("remove_unused_columns", True) is not False:
        yield fail(
            "train_config.remove-unused-columns",
            "remove_unused_columns is not False: the Trainer strips image and text before the collator sees them",
            detail="With the default True, the Trainer keeps only columns named in forward(); the collator then gets "
            "examples without 'image' and 'text'.",
            fix="Set `remove_unused_columns: false` in the training section.",
        )
    workers = int(t.get("dataloader_num_workers", 0))
    spawn = ctx.facts.mp_start_method == "spawn"
    spec = cfg.data.get("collator")
    if not spec:
        if workers:
            yield from _builder_and_dataset_pickle(ctx, workers)
        return
    try:
        collator = import_object(spec, cfg)
    except Exception as exc:
        yield fail("train_config.collator-import", f"data.collator `{spec}` cannot be imported: {type(exc).__name__}: {exc}",
                   fix="Give it as `package.module:name`, importable from the directory training starts in.",
                   params={"spec": spec, "error": f"{type(exc).__name__}: {exc}"})
        return
    problem = pickle_problem(collator)
    evidence = {"collator": spec, "dataloader_num_workers": workers, "start method": ctx.facts.mp_start_method, "os": ctx.facts.os}
    if problem is None:
        yield passed("train_config.collator-pickles", f"The collator `{spec}` pickles", evidence=evidence)
    elif workers and spawn:
        yield fail(
            "train_config.collator-pickle",
            f"{workers} DataLoader workers on {ctx.facts.os} (spawn) need a picklable collator: {problem}",
            detail="Spawned workers receive the collator and the dataset by pickling. Functions defined inside other "
            "functions and classes from trust_remote_code modules (transformers_modules.*) do not pickle.",
            fix="Use a top-level collator object such as `dsocr_probe.DeepseekOCRCollator`, keep model and processor "
            "objects out of it, or set `dataloader_num_workers: 0`.",
            evidence=evidence, params={"workers": workers, "problem": problem, "os": ctx.facts.os},
        )
    else:
        yield warn(
            "train_config.collator-pickle",
            f"The collator does not pickle ({problem}); fine with {workers} workers here, fatal with workers on Windows/macOS",
            fix="Use a top-level collator object such as `dsocr_probe.DeepseekOCRCollator`.",
            evidence=evidence, params={"problem": problem, "workers": workers},
        )


def _builder_and_dataset_pickle(ctx, workers: int) -> Iterable[Finding]:
    """With workers and no collator of the team's own, the training script hands the DataLoader
    the verified batch builder and an ExampleDataset: pickle both, as a spawned worker will."""
    from .. import loading
    from ..training import ExampleDataset

    try:
        builder = loading.builder_for(ctx)
    except ProbeStop as stop:
        yield skip("train_config.workers", f"{workers} DataLoader workers: pickling not checked, the batch builder "
                   f"cannot be made ({stop.finding.title})", fix=stop.finding.fix)
        return
    try:
        data = ctx.dataset()
    except ProbeStop:
        data = None  # the dataset probe reports it
    train = data.train if data is not None else None
    parts = {type(builder).__name__: builder}
    if train is not None:
        parts["ExampleDataset"] = ExampleDataset(train.rows)
    problems = {name: problem for name, obj in parts.items() if (problem := pickle_problem(obj))}
    evidence = {"pickled": ", ".join(parts), "dataloader_num_workers": workers, "start method": ctx.facts.mp_start_method}
    if problems:
        listed = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        yield fail(
            "train_config.workers-pickle",
            f"{workers} DataLoader workers need the batch builder and the dataset to pickle: {listed}",
            fix="Set `dataloader_num_workers: 0`, and keep model and processor objects with open handles out of the data section.",
            evidence=evidence, params={"workers": workers, "problem": listed},
        )
        return
    yield passed("train_config.workers", f"{workers} DataLoader workers; the verified batch builder and the dataset pickle",
                 evidence=evidence)


def import_object(spec: str, cfg) -> Any:
    """``package.module:attr.path`` relative to the working directory or the config's project."""
    module_name, _, attr = spec.partition(":")
    for base in (str(cfg.path.parent), str(cfg.path.parent.parent)):
        if base not in sys.path:
            sys.path.append(base)
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def pickle_problem(obj: Any) -> str | None:
    """Why a spawned DataLoader worker could not receive ``obj``, or None."""
    try:
        pickle.dumps(obj)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    owner = obj if isinstance(obj, (types.FunctionType, type)) else type(obj)
    if getattr(owner, "__module__", "") == "__main__":
        return "it is defined in __main__, which a spawned worker re-imports without running the script's body"
    return None


def _lora(ctx, cfg) -> Iterable[Finding]:
    from .. import lora as lora_mod

    if not cfg.lora:
        return
    yield from _lora_fields(cfg.lora)
    task = str(cfg.lora.get("task_type", "")).split(".")[-1].upper()
    try:
        target = ctx.target()
    except ProbeStop:
        return
    decoder_only = not target.config.get("is_encoder_decoder", False)
    want = "CAUSAL_LM" if decoder_only else "SEQ_2_SEQ_LM"
    if task and task != want:
        yield fail(
            "train_config.task-type",
            f"LoRA task_type {task} on a {'decoder-only' if decoder_only else 'encoder-decoder'} model",
            detail="PEFT's seq2seq wrapper passes decoder_input_ids, so every step fails with "
            "`forward() got an unexpected keyword argument 'decoder_input_ids'`." if task == "SEQ_2_SEQ_LM" else "",
            fix=f"Set `lora.task_type: {want}` (TaskType.{want}).",
            params={"task": task, "want": want, "arch": "decoder-only" if decoder_only else "encoder-decoder",
                    "error": "forward() got an unexpected keyword argument 'decoder_input_ids'" if task == "SEQ_2_SEQ_LM" else None},
        )
    elif task:
        yield passed("train_config.task-type", f"LoRA task_type {task} fits the architecture")
    targets = cfg.lora.get("target_modules")
    if not targets:
        return
    try:
        names = ctx.skeleton().module_names
    except ProbeStop as stop:
        yield skip("train_config.lora-targets", f"LoRA target_modules not matched: {stop.finding.title}", fix=stop.finding.fix,
                   params=cause_params(stop.finding))
        return
    if not names:
        yield skip("train_config.lora-targets", "LoRA target_modules not matched: the model could not be built without weights",
                   fix="See the model API probe.")
        return
    matched = lora_mod.match_targets(names, targets, cfg.lora.get("exclude_modules"))
    suggestion = lora_mod.settings_text(lora_mod.default_settings(names))
    refused = list(_lora_types(ctx, matched, suggestion))
    yield from refused
    frozen = lora_mod.no_grad_modules(target, matched)
    evidence = {"target_modules": targets, "matched modules": len(matched),
                "on modules that never get gradients": len(frozen)}
    if not matched:
        yield fail(
            "train_config.lora-targets-missing",
            f"LoRA target_modules {targets} match no module of the model",
            fix=f"Use the language-model projections: {suggestion}.",
            evidence=evidence,
            params={"targets": targets if isinstance(targets, str) else list(targets), "suggestion": suggestion},
        )
    elif len(frozen) == len(matched):
        yield fail(
            "train_config.lora-vision-only",
            "Every LoRA adapter sits on the vision path, which runs under torch.no_grad(): nothing will learn",
            fix=f"Target the language model: {suggestion}.",
            evidence=evidence,
            params={"suggestion": suggestion},
        )
    elif frozen:
        yield warn(
            "train_config.lora-vision-some",
            f"{len(frozen)} of {len(matched)} LoRA adapters sit on the vision path (no gradients there)",
            detail="Those adapters add memory and parameters but never change: " + ", ".join(frozen[:8]),
            fix="Restrict target_modules to the language model.",
            evidence=evidence,
            params={"frozen": len(frozen), "matched": len(matched), "modules": ", ".join(frozen[:8])},
        )
    elif not refused:
        yield passed("train_config.lora-targets", f"LoRA target_modules match {len(matched)} modules", evidence=evidence)


def _lora_fields(section: dict) -> Iterable[Finding]:
    """Keys of the lora section that the installed peft's LoraConfig does not take: it raises on them."""
    from .. import lora as lora_mod

    installed = lora_mod.peft_version()
    for key, since in lora_mod.unsupported_fields(section):
        yield fail(
            "train_config.lora-field-unsupported",
            f"`lora.{key}` is not a LoraConfig field in peft {installed}"
            + (f": it needs peft >= {since}" if since else ""),
            detail=f"`LoraConfig(**lora)` fails with `LoraConfig.__init__() got an unexpected keyword argument '{key}'`.",
            fix=f"`pip install 'peft>={since}'` (with transformers 4.46.x–4.47.1 for DeepSeek-OCR v1: peft 0.17.1), "
            f"or remove `{key}:`." if since else f"Remove `{key}:` (or correct its spelling).",
            params={"key": key, "since": since, "peft": installed},
        )


def _lora_types(ctx, matched: list[str], suggestion: str) -> Iterable[Finding]:
    """Matched modules whose type the installed peft cannot adapt: get_peft_model raises on the first."""
    from .. import lora as lora_mod

    model = getattr(ctx.skeleton(), "model", None)
    if model is None:
        return
    for type_name, (modules, error) in lora_mod.unadaptable_types(model, matched).items():
        yield fail(
            "train_config.lora-module-type",
            f"peft {lora_mod.peft_version()} cannot put LoRA on {type_name} modules "
            f"({len(modules)} matched by target_modules, e.g. {modules[0]})",
            detail=f"get_peft_model fails with: {error}",
            fix=f"Target linear layers instead: {suggestion}.",
            evidence={"module type": type_name, "matched modules of that type": len(modules)},
            params={"type": type_name, "count": len(modules), "example": modules[0], "error": error,
                    "peft": lora_mod.peft_version(), "suggestion": suggestion},
        )
