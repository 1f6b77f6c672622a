"""Probe 5: what AutoProcessor really returns, whether it takes images, and the image token."""

from __future__ import annotations

import inspect
from typing import Iterable

from ..knowledge import families
from ..model import loading, model_facts
from ..findings import Finding, ProbeStop, fail, passed, warn
from ..messages import M, N_

DEFAULT_IMAGE_TOKEN = "<image>"


def run(ctx) -> Iterable[Finding]:
    target = ctx.needs(ctx.target, "processor")
    # Only a collator of the team's own feeds the processor; the dsocr_probe builders handle images themselves.
    weigh = warn if model_facts.own_collator_possible(ctx) else passed
    yield from _declared_processor_class(target, weigh)
    processor = loading.load_processor(ctx)
    tokenizer = getattr(processor, "tokenizer", processor)
    takes_images = "images" in inspect.signature(processor.__call__).parameters
    kind = type(processor).__name__
    if takes_images:
        yield passed(
            "processor.takes-images",
            evidence={N_("image processor"): type(getattr(processor, "image_processor", None)).__name__,
                      N_("tokenizer"): type(tokenizer).__name__},
            params={"kind": kind},
        )
    else:
        error = _call_with_images(processor)
        variant = "refuses" if error else "ignores"  # the images: with an error, or silently
        yield weigh("processor.tokenizer-only", variant, params={"kind": kind, "error": error})
    yield from _image_token(target, processor, tokenizer, takes_images)
    if takes_images:
        yield from _agreements(target, _model_config(ctx, target), processor)


def _declared_processor_class(target, weigh) -> Iterable[Finding]:
    """A processor_class named by the checkpoint but shipped nowhere makes AutoProcessor fall back."""
    import transformers

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        declared = model_facts.json_of(target, name).get("processor_class")
        if not declared:
            continue
        remote = model_facts.all_auto_maps(target).get("AutoProcessor", "")
        if hasattr(transformers, declared) or remote.endswith("." + declared):
            continue
        yield weigh("processor.class-not-shipped", params={"file": name, "declared": declared})


def _call_with_images(processor) -> str | None:
    from PIL import Image

    try:
        processor(images=[Image.new("RGB", (8, 8))], text=["x"], return_tensors="pt")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _image_token(target, processor, tokenizer, takes_images: bool) -> Iterable[Finding]:
    """The image token the model fills (the one whose id is config.json's image_token_id), checked
    against what the processor emits for one page: processors set ``image_token`` in ``__init__`` and
    never save it, and some prompt with another token (Gemma3's ``<start_of_image>``) that they expand."""
    saved = model_facts.json_of(target, "processor_config.json") or model_facts.json_of(target, "preprocessor_config.json")
    family = families.family_of(target.model_type)
    token, source = families.image_token(target.config, processor, tokenizer, saved)
    if token is None:
        token, source = family.placeholder or DEFAULT_IMAGE_TOKEN, M(N_("guessed (nothing names it)"))
    token_id = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    evidence = {
        N_("image token"): token,
        N_("image token id"): token_id,
        N_("found in"): source,
        N_("family"): family.name,
        "bos": f"{tokenizer.bos_token!r} = {tokenizer.bos_token_id}",
        "eos": f"{tokenizer.eos_token!r} = {tokenizer.eos_token_id}",
        "pad": f"{tokenizer.pad_token!r} = {tokenizer.pad_token_id}",
        N_("vocabulary"): len(tokenizer),
    }
    if family.guessed:
        evidence[N_("guessed rules")] = [M(rule) for rule in family.guessed]
    if token_id is None or (unk is not None and token_id == unk):
        yield fail("processor.no-image-token", evidence=evidence, params={"token": token})
        return
    config_id, _ = families.config_image_token_id(target.config)
    mismatch = _emitted_mismatch(processor, config_id, evidence) if takes_images else None
    if not takes_images and config_id is not None:
        named, _ = families.image_token({}, processor, tokenizer, saved)
        named_id = tokenizer.convert_tokens_to_ids(named or family.placeholder or DEFAULT_IMAGE_TOKEN)
        if named_id != config_id:
            token, token_id, mismatch = named or DEFAULT_IMAGE_TOKEN, named_id, True
    if mismatch:
        yield fail("processor.image-token-mismatch", evidence=evidence,
                   params={"config_id": config_id, "token": token, "token_id": token_id})
        return
    if tokenizer.pad_token_id is None:
        yield warn("processor.no-pad", evidence=evidence)
        return
    yield passed("processor.image-token", evidence=evidence, params={"token": token, "token_id": token_id})


def _emitted_mismatch(processor, config_id, evidence: dict) -> bool:
    """True when the processor, given its own placeholder and one page, emits no token with the
    config's id (the model would find no slot to fill). The count per page goes into the evidence."""
    if config_id is None:
        return False
    placeholder = getattr(processor, "image_token", None)
    if not placeholder:
        return False
    slots = _slots_per_page(processor, str(getattr(placeholder, "content", placeholder)), config_id)
    if slots is None:
        return False  # the processor refuses a bare prompt; the batch probe counts on real rows
    evidence[N_("image tokens per page")] = M(N_("%(slots)d (the processor on one 64x64 page)"), slots=slots)
    return slots == 0


def _slots_per_page(processor, placeholder: str, token_id: int) -> int | None:
    from PIL import Image

    try:
        out = processor(images=[Image.new("RGB", (64, 64), "white")], text=[placeholder], return_tensors="pt")
    except Exception:
        return None
    return int((out["input_ids"] == token_id).sum())


def _model_config(ctx, target):
    """The model's config with its defaults (config.json leaves out the values equal to them); the
    file's mapping where the config class cannot be built (remote code, an unknown type)."""
    if target.needs_remote_code:
        return target.config
    try:
        return ctx.skeleton().config
    except (ProbeStop, AttributeError):
        return target.config


def _agreements(target, config, processor) -> Iterable[Finding]:
    """The settings the processor and the model must share (merge and patch sizes, tokens per image),
    each compared: a processor that disagrees makes batches the model's vision path cannot fill."""
    family = families.family_of(target.model_type)
    for rule in family.agreements:
        theirs = families.processor_setting(processor, rule.processor)
        ours = families.setting(config, rule.config)
        if theirs is None or ours is None or theirs == ours:
            continue
        saved = "processor_config.json" if model_facts.json_of(target, "processor_config.json") else \
            "preprocessor_config.json"
        yield fail(
            "processor.model-mismatch",
            params={"setting": rule.processor, "processor_value": theirs, "config_path": rule.config,
                    "model_value": ours, "what": M(rule.what), "file": saved},
        )
