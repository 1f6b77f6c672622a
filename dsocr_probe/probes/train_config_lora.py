"""The training-config probe's LoRA section: its fields against the installed peft, task_type against the
architecture, its values, and what target_modules match on the weightless model (a helper of that probe)."""

from __future__ import annotations

from typing import Any, Iterable

from ..findings import Finding, ProbeStop, cause_params, fail, passed, skip, warn
from ..inputs import training_values
from ..messages import M, N_
from ..model import lora as lora_mod
from .train_config_values import value_findings


def lora(ctx, cfg) -> Iterable[Finding]:
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
        if not decoder_only:
            variant = "on-encoder-decoder"
        else:
            variant = "seq2seq-on-decoder" if task == "SEQ_2_SEQ_LM" else "on-decoder"
        yield fail("train_config.task-type", variant, params={"task": task, "want": want})
    elif task:
        yield passed("train_config.task-type", "fits", params={"task": task})
    problems = training_values.lora_check(cfg.lora)
    yield from value_findings(problems)
    targets = cfg.lora.get("target_modules")
    if not targets or problems:
        return
    # The rest of the section as this peft reads it: a field it lacks is reported above, the targets still judged.
    section = {k: v for k, v in cfg.lora.items() if k not in {f.params["key"] for f in unsupported}}
    try:
        sk = ctx.skeleton()
    except ProbeStop as stop:
        yield _not_matched(stop.finding)
        return
    names = sk.module_names
    if not names:
        yield skip("train_config.lora-targets", "no-modules")
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
            yield fail("train_config.lora-refused", params={"error": error})
            return
    yield from refused
    frozen = lora_mod.no_grad_modules(target, matched)
    shown = _shown_targets(targets)
    evidence = {"target_modules": targets, N_("matched modules"): len(matched),
                N_("on modules that never get gradients"): len(frozen),
                N_("matched by"): M(N_("peft get_peft_model on the weightless model"))}
    if not matched:
        yield fail("train_config.lora-targets-missing", evidence=evidence,
                   params={"targets": shown, "suggestion": suggestion})
    elif len(frozen) == len(matched):
        yield fail("train_config.lora-vision-only", evidence=evidence, params={"suggestion": suggestion})
    elif frozen:
        yield warn("train_config.lora-vision-some", evidence=evidence,
                   params={"frozen": len(frozen), "matched": len(matched), "modules": ", ".join(frozen[:8])})
    elif not refused:
        yield passed("train_config.lora-targets", "matched", evidence=evidence,
                     params={"targets": shown, "count": len(matched)})


def _not_matched(cause: Finding) -> Finding:
    """The targets were not matched because ``cause`` stopped the weightless model."""
    return skip("train_config.lora-targets", "cause", params=cause_params(cause))


def _by_name(names: list[str], targets: Any, exclude: Any) -> list[str]:
    """The modules peft's name rule matches; none when it cannot read the targets at all."""
    try:
        return lora_mod.match_targets(names, targets, exclude)
    except Exception:
        return []


def _shown_targets(targets: Any) -> str:
    """A regex string as written, in backquotes (never cut); a list as a list."""
    return f"`{targets}`" if isinstance(targets, str) else str(list(targets))


def _lora_fields(section: dict) -> Iterable[Finding]:
    """Keys of the lora section that the installed peft's LoraConfig does not take: it raises on them."""
    installed = lora_mod.peft_version()
    for key, since in lora_mod.unsupported_fields(section):
        yield fail("train_config.lora-field-unsupported", "newer-peft" if since else "unknown",
                   params={"key": key, "since": since, "peft": installed})


def _lora_types(ctx, matched: list[str], suggestion: str) -> Iterable[Finding]:
    """Matched modules whose type the installed peft cannot adapt: get_peft_model raises on the first."""
    model = getattr(ctx.skeleton(), "model", None)
    if model is None:
        return
    for type_name, (modules, error) in lora_mod.unadaptable_types(model, matched).items():
        yield fail(
            "train_config.lora-module-type",
            evidence={N_("module type"): type_name, N_("matched modules of that type"): len(modules)},
            params={"type": type_name, "count": len(modules), "example": modules[0], "error": error,
                    "peft": lora_mod.peft_version(), "suggestion": suggestion},
        )
