"""Probe 8: the training config against the installed transformers, the data and the model."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import tempfile
from typing import Any, Iterable, Mapping

from packaging.version import Version

from ..model import quantization, trainrun
from ..inputs import training_values
from ..findings import Finding, InputError, ProbeStop, fail, passed, skip, warn
from ..knowledge.rules import ARG_RULES
from ..messages import M, N_
from .context import finding_of
from .train_config_data import collator_and_workers
from .train_config_lora import lora
from .train_config_values import value_findings

# transformers passes num_items_in_batch to compute_loss (by keyword) and training_step (third
# positional) from 4.46.0 on; a subclass written for an older release fails on the first step.
NUM_ITEMS_SINCE = Version("4.46.0")
_NUM_ITEMS_SIGNATURE = {"compute_loss": "return_outputs=False, num_items_in_batch=None",
                        "training_step": "num_items_in_batch=None"}


def run(ctx) -> Iterable[Finding]:
    cfg = ctx.require(ctx.train_config, "training-config")
    import transformers

    installed = Version(transformers.__version__)
    yield from _unknown_keys(cfg)
    trainer_cls = yield from _trainer(cfg, installed)
    args_cls = trainrun.arguments_class(trainer_cls) if trainer_cls is not None else None
    yield from check_arguments(cfg.training, installed, args_cls)
    problems = training_values.check(cfg.training, args_cls or transformers.TrainingArguments)
    yield from value_findings(problems)
    if not ctx.facts.injected and not problems and trainer_cls is not None:
        yield from _construct(ctx, cfg.training, args_cls)
    yield from _auto_class(ctx, cfg)
    # The checks below do arithmetic on the values: a value the run cannot use is left to its finding above.
    judged = dataclasses.replace(cfg, training={k: v for k, v in cfg.training.items() if k not in {p.key for p in problems}})
    yield from _batch_math(ctx, judged, bad={p.key for p in problems})
    yield from collator_and_workers(ctx, judged)
    yield from lora(ctx, cfg)
    yield from quantized_loading(ctx, cfg.model)


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
                yield warn("train_config.deprecated-argument", "removed-later" if rule.removed else "",
                           params={"key": key, "use": rule.use, "introduced": rule.introduced, "removed": rule.removed})
            continue
        bad += 1
        if rule and rule.trainer:
            yield fail("train_config.trainer-argument", "replaced" if key == "tokenizer" else "",
                       params={"key": key, "use": rule.use, "pass_as": _trainer_argument(key, installed)})
        elif rule:
            variant = ("removed" if rule.removed else "never") + ("-note" if rule.note else "")
            yield fail("train_config.renamed-argument", variant, source=rule.source,
                       params={"key": key, "use": rule.use, "removed": rule.removed, "where": where,
                               "note": M(rule.note) if rule.note else None})
        else:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
            yield fail("train_config.unknown-argument", "near" if close else "",
                       params={"key": key, "suggestion": close[0] if close else None, "installed": str(installed),
                               "where": where})
    if not bad:
        yield passed("train_config.arguments", params={"count": len(training), "installed": str(installed)})


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
            yield fail("train_config.invalid-value",
                       params={"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "where": args_cls.__name__,
                               "message": str(exc)})


def _unknown_keys(cfg) -> Iterable[Finding]:
    """Keys the training script would not read: a misspelled section is NO-GO (its settings would
    silently fall back to defaults); other unknown keys are named with the closest known one."""
    for where, key, near in cfg.unknown:
        if where == "top level" and near:
            yield fail("train_config.unknown-section", params={"key": key, "near": near})
        else:
            shown = M(N_("top level")) if where == "top level" else where
            yield warn("train_config.unknown-key", "near" if near else "",
                       params={"key": key, "where": shown, "near": near})


def _trainer(cfg, installed: Version):
    """The configured Trainer class: it must import, be a Trainer, and take the arguments the
    installed Trainer passes to the methods it overrides. Returns the class (None when unusable)."""
    try:
        cls, _ = trainrun.trainer_class(cfg)
    except InputError as error:
        yield finding_of(error)
        return None
    except ProbeStop as stop:
        yield stop.finding
        return None
    problems = []
    if installed >= NUM_ITEMS_SINCE:
        problems = list(_overrides_without_num_items(cls))
    for method, signature in problems:
        yield fail("train_config.trainer-num-items",
                   params={"cls": cls.__qualname__, "method": method, "installed": str(installed),
                           "signature_now": signature, "signature": _NUM_ITEMS_SIGNATURE[method]})
    if not problems:
        args_cls = trainrun.arguments_class(cls)
        name = f"{cls.__module__}.{cls.__qualname__}"
        named_by = f"trainer: {cfg.trainer}" if cfg.trainer else M(N_("the default"))
        yield passed("train_config.trainer",
                     evidence={N_("trainer"): name, N_("from"): named_by,
                               N_("arguments class"): f"{args_cls.__module__}.{args_cls.__name__}"},
                     params={"cls": name, "args": args_cls.__name__})
    return cls


def _overrides_without_num_items(cls: type) -> Iterable[tuple[str, str]]:
    """Methods a Trainer subclass overrides whose signature cannot take ``num_items_in_batch`` (with that
    signature): compute_loss gets it by keyword, training_step as its third positional argument."""
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
            yield name, f"{owner.__module__}.{owner.__qualname__}.{name}{signature}"


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
        yield fail("train_config.auto-class", "use" if accepted else "none",
                   params={"auto_class": name, "use": accepted[0] if accepted else None, "reason": verdict.detail})


def quantized_loading(ctx, model_section: Mapping[str, Any]) -> Iterable[Finding]:
    """bitsandbytes 4/8-bit loading: the package must be there, and the vision side should stay unquantized."""
    found = quantization.settings(model_section)
    if found is None:
        return
    bits, skip_modules = found
    if ctx.facts.version("bitsandbytes") is None:
        yield fail("train_config.quantization-no-bitsandbytes", params={"bits": bits})
    try:
        names = ctx.skeleton().linear_names
    except ProbeStop:
        return  # the model API probe says why the model cannot be built
    vision = quantization.quantized_vision(names, skip_modules)
    if not vision:
        return
    roots = quantization.vision_prefixes(vision)
    yield warn(
        "train_config.quantized-vision",
        evidence={N_("quantized vision layers"): len(vision), N_("e.g."): vision[0],
                  "llm_int8_skip_modules": skip_modules or M(N_("none"))},
        params={"bits": bits, "count": len(vision), "roots": ", ".join(roots),
                "keep": ", ".join(quantization.skip_modules_keeping(roots, skip_modules))},
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
    row = {N_("train samples"): n if n is not None else M(N_("unknown")), N_("per-device batch"): bs,
           N_("grad accumulation"): ga, N_("devices"): devices, N_("effective batch"): effective,
           N_("epochs"): t.get("num_train_epochs", 3)}
    if not n:
        yield skip("train_config.batch-math", "no-rows", evidence=row)
        return
    batches = math.ceil(n / (bs * devices))
    updates = max(1, math.ceil(batches / ga))  # the Trainer steps once at the end of a short epoch
    total = int(t.get("max_steps", -1)) if int(t.get("max_steps", -1)) > 0 else math.ceil(updates * epochs)
    row.update({N_("batches per epoch"): batches, N_("optimizer steps per epoch"): updates,
                N_("optimizer steps in all"): total})
    found = False
    if bs > n:
        found = True
        yield warn("train_config.batch-larger-than-data", evidence=row, params={"bs": bs, "n": n})
    if effective > n:
        found = True
        yield warn("train_config.effective-batch", evidence=row,
                   params={"effective": effective, "n": n, "total": total, "bs": bs, "ga": ga, "devices": devices,
                           "updates": updates})
    if epochs >= 20 and n < 100:
        found = True
        yield warn("train_config.epochs", evidence=row, params={"epochs": epochs, "n": n})
    if not found:
        yield passed("train_config.batch-math", evidence=row, params={"effective": effective, "total": total})
