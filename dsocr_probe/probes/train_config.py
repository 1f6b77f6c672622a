"""Probe 8: the training config against the installed transformers, the data and the model."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import pickle
import tempfile
import types
from typing import Any, Iterable

from packaging.version import Version

from ..model import quantization, trainrun
from ..inputs import training_values
from ..findings import Finding, InputError, ProbeStop, cause_params, fail, passed, skip, warn
from ..knowledge.rules import ARG_RULES
from .context import finding_of

# transformers passes num_items_in_batch to compute_loss (by keyword) and training_step (third
# positional) from 4.46.0 on; a subclass written for an older release fails on the first step.
NUM_ITEMS_SINCE = Version("4.46.0")
_NUM_ITEMS_SIGNATURE = {"compute_loss": "return_outputs=False, num_items_in_batch=None",
                        "training_step": "num_items_in_batch=None"}


def run(ctx) -> Iterable[Finding]:
    cfg = ctx.require(ctx.train_config, "training config")
    import transformers

    installed = Version(transformers.__version__)
    yield from _unknown_keys(cfg)
    trainer_cls = yield from _trainer(cfg, installed)
    args_cls = trainrun.arguments_class(trainer_cls) if trainer_cls is not None else None
    yield from check_arguments(cfg.training, installed, args_cls)
    problems = training_values.check(cfg.training, args_cls or transformers.TrainingArguments)
    yield from _value_findings(problems)
    if not ctx.facts.injected and not problems and trainer_cls is not None:
        yield from _construct(ctx, cfg.training, args_cls)
    yield from _auto_class(ctx, cfg)
    # The checks below do arithmetic on the values: a value the run cannot use is left to its finding above.
    judged = dataclasses.replace(cfg, training={k: v for k, v in cfg.training.items() if k not in {p.key for p in problems}})
    yield from _batch_math(ctx, judged, bad={p.key for p in problems})
    yield from _collator_and_workers(ctx, judged)
    yield from _lora(ctx, cfg)
    yield from quantization.check(ctx, cfg.model)


def training_arguments_fields(args_cls: type | None = None) -> dict[str, inspect.Parameter]:
    from transformers import TrainingArguments

    return trainrun.arguments_fields(args_cls or TrainingArguments)


def check_arguments(training: dict[str, Any], installed: Version, args_cls: type | None = None) -> Iterable[Finding]:
    fields = training_arguments_fields(args_cls)
    where = (args_cls.__name__ if args_cls is not None else "TrainingArguments")
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
                f"{where} got an unexpected keyword argument `{key}`{when}",
                fix=f"Use `{rule.use}` instead of `{key}`.",
                source=rule.source,
                params={"key": key, "use": rule.use, "removed": rule.removed, "where": where},
            )
        else:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
            yield fail(
                "train_config.unknown-argument",
                f"{where} got an unexpected keyword argument `{key}`",
                fix=f"Did you mean `{close[0]}`?" if close else f"Remove `{key}`; {where} of transformers {installed} has no such argument.",
                params={"key": key, "suggestion": close[0] if close else None, "installed": str(installed),
                        "where": where},
            )
    if not bad:
        yield passed("train_config.arguments", f"All {len(training)} training arguments exist in transformers {installed}")


def _trainer_argument(key: str, installed: Version) -> str:
    if key in ("tokenizer", "processing_class"):
        return "`Trainer(processing_class=...)`" if installed >= Version("4.46.0") else "`Trainer(tokenizer=...)`"
    return f"`Trainer({key}=...)`"


def _construct(ctx, training: dict[str, Any], args_cls: type) -> Iterable[Finding]:
    """Build the arguments for real, as the run will (bad choices, bf16 without support, conflicting flags)."""
    from ..model import loading

    with tempfile.TemporaryDirectory() as tmp, trainrun.environment_kept():
        try:
            # use_cpu as the run sets it, so a CPU run gets the class's own message, not "needs a GPU"
            trainrun.build_arguments(args_cls, training, {"output_dir": (tmp, "never create the run's folder")},
                                     use_cpu=loading.default_device(ctx) == "cpu")
        except Exception as exc:
            yield fail(
                "train_config.invalid-value",
                f"{args_cls.__name__} rejects these values on this machine: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                detail=str(exc),
                fix="Correct the value named in the message.",
                params={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "where": args_cls.__name__},
            )


def _unknown_keys(cfg) -> Iterable[Finding]:
    """Keys the training script would not read: a misspelled section is NO-GO (its settings would
    silently fall back to defaults); other unknown keys are named with the closest known one."""
    for where, key, near in cfg.unknown:
        if where == "top level" and near:
            yield fail(
                "train_config.unknown-section",
                f"`{key}:` is not a section the training script reads: did you mean `{near}:`?",
                detail=f"Everything under `{key}:` is ignored, and the defaults of `{near}` are used (and judged) instead.",
                fix=f"Rename `{key}:` to `{near}:`.",
                params={"key": key, "near": near},
            )
        else:
            yield warn(
                "train_config.unknown-key",
                f"`{key}` ({where}) is not read by the training script" + (f": did you mean `{near}`?" if near else ""),
                fix=f"Rename it to `{near}`." if near else f"Remove `{key}`, or read it in your own code.",
                params={"key": key, "where": where, "near": near},
            )


def _trainer(cfg, installed: Version):
    """The configured Trainer class: it must import, be a Trainer, and take the arguments the
    installed Trainer passes to the methods it overrides. Returns the class (None when unusable)."""
    try:
        cls, source = trainrun.trainer_class(cfg)
    except InputError as error:
        yield finding_of(error)
        return None
    problems = []
    if installed >= NUM_ITEMS_SINCE:
        problems = [(name, why) for name, why in _overrides_without_num_items(cls)]
    for method, why in problems:
        yield fail(
            "train_config.trainer-num-items",
            f"{cls.__qualname__}.{method} does not take `num_items_in_batch`: transformers {installed} passes it",
            detail=f"{why} Since transformers 4.46.0 the Trainer calls `compute_loss(model, inputs, "
            "num_items_in_batch=...)` and `training_step(model, inputs, num_items_in_batch)`; the first step fails "
            "with `unexpected keyword argument 'num_items_in_batch'` (or too many positional arguments).",
            fix=f"Add the parameter: `def {method}(self, model, inputs, {_NUM_ITEMS_SIGNATURE[method]}):` and pass it "
            "on to `super()`.",
            params={"cls": cls.__qualname__, "method": method, "installed": str(installed), "signature_now": why,
                    "signature": _NUM_ITEMS_SIGNATURE[method]},
        )
    if not problems:
        args_cls = trainrun.arguments_class(cls)
        yield passed("train_config.trainer", f"Trainer: {cls.__module__}.{cls.__qualname__} with {args_cls.__name__}",
                     evidence={"trainer": f"{cls.__module__}.{cls.__qualname__}", "from": source,
                               "arguments class": f"{args_cls.__module__}.{args_cls.__name__}"},
                     params={"cls": f"{cls.__module__}.{cls.__qualname__}", "args": args_cls.__name__})
    return cls


def _overrides_without_num_items(cls: type) -> Iterable[tuple[str, str]]:
    """Methods a Trainer subclass overrides whose signature cannot take ``num_items_in_batch``:
    compute_loss gets it by keyword, training_step as its third positional argument."""
    for name in ("compute_loss", "training_step"):
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None or owner.__module__.split(".")[0] in ("transformers", "trl"):
            continue  # the library's own methods match the library's own calls
        signature = inspect.signature(getattr(cls, name))
        params = signature.parameters.values()
        kinds = [p.kind for p in params]
        if name == "compute_loss":
            fits = "num_items_in_batch" in signature.parameters or inspect.Parameter.VAR_KEYWORD in kinds
        else:
            positional = sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                             for k in kinds)
            fits = positional >= 4 or inspect.Parameter.VAR_POSITIONAL in kinds  # self, model, inputs, num_items
        if not fits:
            yield name, f"`{owner.__module__}.{owner.__qualname__}.{name}{signature}`."


# A value problem's kind -> its finding: code, title, detail, fix (formatted with the problem's params).
VALUE_FINDINGS = {
    "number-as-string": (
        "train_config.number-as-string", "`{key}: {raw}` is read as the string {value}, not a number",
        "YAML 1.1 (PyYAML) reads a number without a dot, or with an exponent without a sign, as text. "
        "TrainingArguments stores it as given, and training fails in the optimizer or scheduler with "
        "`'<=' not supported between instances of 'float' and 'str'`.",
        "Write `{write}`."),
    "bool-as-string": (
        "train_config.bool-as-string", "`{key}` is the string {value}, not true or false: any non-empty text counts as true",
        "", "Write `{write}` without quotes."),
    "choice": (
        "train_config.bad-choice", "`{key}: {raw}` is not one of the values the installed transformers accepts",
        "Accepted: {expected}.", "Use one of: {expected}."),
    "conflict": (
        "train_config.fp16-and-bf16", "`fp16` and `bf16` are both true: TrainingArguments allows at most one of them", "",
        "Keep `bf16: true` on GPUs with compute capability 8.0 or higher, else `fp16: true`; not both."),
    "range": (
        "train_config.out-of-range", "`{key}: {raw}` is out of range: it must be {expected}",
        "TrainingArguments stores it; the run fails or learns nothing once it gets there.",
        "Set `{key}` to a value {expected}."),
    "null": (
        "train_config.null-value", "`{key}` is empty (null): it needs {expected}", "",
        "Remove the `{key}:` line to use the default, or give it {expected}."),
    "wrong-type": (
        "train_config.wrong-type", "`{key}: {raw}` has the wrong type: it needs {expected}", "",
        "Give `{key}` {expected}."),
}


def _value_findings(problems: list[training_values.ValueProblem]) -> Iterable[Finding]:
    for p in problems:
        code, title, detail, fix = VALUE_FINDINGS[p.kind]
        params = {"key": p.key, "value": p.shown, "raw": str(p.value), "expected": p.expected, "write": p.write}
        if p.kind == "choice":  # the accepted value closest to the one written
            near = difflib.get_close_matches(str(p.value), p.expected.split(", "), n=1, cutoff=0.5)
            params["near"] = near[0] if near else None
            fix = "Use `{key}: {near}`." if near else fix
        elif p.write and p.kind == "wrong-type":
            fix = "Write `{write}`."
        yield fail(code, title.format(**params), detail=detail.format(**params), fix=fix.format(**params), params=params)


def _auto_class(ctx, cfg) -> Iterable[Finding]:
    name = cfg.model.get("auto_class")
    if not name:
        return
    from ..model.model_facts import PREFERENCE, auto_class_verdicts

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


def _batch_math(ctx, cfg, bad: set[str] = frozenset()) -> Iterable[Finding]:
    t = cfg.training
    if bad & {"per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps"}:
        return  # the value findings above name the problem; no arithmetic on values the run cannot use
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
        # scripts/train_lora.py (and so the step probe) sets it itself: a warning for scripts of the team's own.
        yield warn(
            "train_config.remove-unused-columns",
            "remove_unused_columns is not False: scripts/train_lora.py sets it to false, a training script of your "
            "own must too",
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
        collator = trainrun.resolve_object(spec, cfg)
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
    from ..model import loading
    from ..model.training import ExampleDataset

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
    from ..model import lora as lora_mod

    if not cfg.lora:
        return
    unsupported = list(_lora_fields(cfg.lora))
    yield from unsupported
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
    problems = training_values.lora_check(cfg.lora)
    yield from _value_findings(problems)
    targets = cfg.lora.get("target_modules")
    if not targets or problems:
        return
    # The rest of the section as this peft reads it: a field it lacks is reported above, the targets still judged.
    section = {k: v for k, v in cfg.lora.items() if k not in {f.params["key"] for f in unsupported}}
    try:
        sk = ctx.skeleton()
    except ProbeStop as stop:
        yield skip("train_config.lora-targets", f"LoRA target_modules not matched: {stop.finding.title}", fix=stop.finding.fix,
                   params=cause_params(stop.finding))
        return
    names = sk.module_names
    if not names:
        yield skip("train_config.lora-targets", "LoRA target_modules not matched: the model could not be built without weights",
                   fix="See the model API probe.")
        return
    suggestion = lora_mod.settings_text(lora_mod.default_settings(names))
    refused: list[Finding] = []
    try:  # peft's own reading of the section, on the weightless model: all-linear, regexes, exclude_modules
        matched = (lora_mod.trial_wrap(sk.model, {**section, "task_type": want}) if getattr(sk, "model", None) is not None
                   else lora_mod.match_targets(names, targets, section.get("exclude_modules")))
    except Exception as exc:
        matched_nothing = "not found in the base model" in str(exc) or "did not match" in str(exc)
        matched = [] if matched_nothing else _by_name(names, targets, section.get("exclude_modules"))
        refused = list(_lora_types(ctx, matched, suggestion))  # a module type peft cannot adapt, by name
        if not refused and not matched_nothing:
            text = " ".join(str(exc).split())  # peft quotes the module's repr over many lines
            error = f"{type(exc).__name__}: {text[:200] + ('…' if len(text) > 200 else '')}"
            yield fail(
                "train_config.lora-refused",
                f"get_peft_model refuses this LoRA section: {error}",
                fix="Correct the `lora` value the message names.",
                params={"error": error},
            )
            return
    yield from refused
    frozen = lora_mod.no_grad_modules(target, matched)
    evidence = {"target_modules": targets, "matched modules": len(matched),
                "on modules that never get gradients": len(frozen), "matched by": "peft get_peft_model on the weightless model"}
    if not matched:
        yield fail(
            "train_config.lora-targets-missing",
            f"LoRA target_modules {_shown_targets(targets)} match no module of the model",
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
        yield passed("train_config.lora-targets", f"LoRA target_modules {_shown_targets(targets)} match {len(matched)} modules",
                     evidence=evidence)


def _by_name(names: list[str], targets: Any, exclude: Any) -> list[str]:
    """The modules peft's name rule matches; none when it cannot read the targets at all."""
    from ..model import lora as lora_mod

    try:
        return lora_mod.match_targets(names, targets, exclude)
    except Exception:
        return []


def _shown_targets(targets: Any) -> str:
    """A regex string as written, in backquotes (never cut); a list as a list."""
    return f"`{targets}`" if isinstance(targets, str) else str(list(targets))


def _lora_fields(section: dict) -> Iterable[Finding]:
    """Keys of the lora section that the installed peft's LoraConfig does not take: it raises on them."""
    from ..model import lora as lora_mod

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
    from ..model import lora as lora_mod

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
