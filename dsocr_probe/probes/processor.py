"""Probe 5: what AutoProcessor really returns, whether it takes images, and the image token."""

from __future__ import annotations

import inspect
from typing import Iterable

from ..knowledge import families
from ..model import loading, model_facts
from ..findings import Finding, ProbeStop, fail, passed, warn

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
            f"AutoProcessor returns {kind}, which takes images and text",
            evidence={"image processor": type(getattr(processor, "image_processor", None)).__name__, "tokenizer": type(tokenizer).__name__},
        )
    else:
        error = _call_with_images(processor)
        yield weigh(
            "processor.tokenizer-only",
            f"AutoProcessor returns only the tokenizer ({kind}): it takes no images",
            detail=f"processor(images=..., text=...) → {error}" if error else
            "processor(images=..., text=...) ignores the images without an error: a collator built on it trains on text alone.",
            fix="Do not pass images to the processor. Use the batch builder this probe verifies: "
            "`from dsocr_probe import DeepseekOCRCollator; collator = DeepseekOCRCollator(tokenizer, mode='gundam')` "
            "and `Trainer(..., data_collator=collator)`; it does the image preprocessing and the image-token layout.",
            params={"kind": kind, "error": error},
        )
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
        yield weigh(
            "processor.class-not-shipped",
            f"{name} names processor_class {declared}, which neither transformers nor the checkpoint ships",
            detail="AutoProcessor falls back to the tokenizer alone; loading may also warn about a different model type.",
            fix="Build image inputs with the batch builder for this model family instead of the processor.",
            params={"file": name, "declared": declared},
        )


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
        token, source = family.placeholder or DEFAULT_IMAGE_TOKEN, "guessed (nothing names it)"
    token_id = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    evidence = {
        "image token": token,
        "image token id": token_id,
        "found in": source,
        "family": family.name,
        "bos": f"{tokenizer.bos_token!r} = {tokenizer.bos_token_id}",
        "eos": f"{tokenizer.eos_token!r} = {tokenizer.eos_token_id}",
        "pad": f"{tokenizer.pad_token!r} = {tokenizer.pad_token_id}",
        "vocabulary": len(tokenizer),
    }
    if family.guessed:
        evidence["guessed rules"] = "; ".join(family.guessed)
    if token_id is None or (unk is not None and token_id == unk):
        yield fail("processor.no-image-token", f"The tokenizer has no {token!r} token", evidence=evidence,
                   fix=f"Use the checkpoint's own tokenizer files; {token!r} must be a single added special token.",
                   params={"token": token})
        return
    config_id, _ = families.config_image_token_id(target.config)
    mismatch = _emitted_mismatch(processor, config_id, evidence) if takes_images else None
    if not takes_images and config_id is not None:
        named, _ = families.image_token({}, processor, tokenizer, saved)
        named_id = tokenizer.convert_tokens_to_ids(named or family.placeholder or DEFAULT_IMAGE_TOKEN)
        if named_id != config_id:
            token, token_id, mismatch = named or DEFAULT_IMAGE_TOKEN, named_id, True
    if mismatch:
        yield fail(
            "processor.image-token-mismatch",
            f"config.json image_token_id {config_id} but the tokenizer maps {token!r} to {token_id}",
            evidence=evidence,
            fix="The tokenizer and the weights come from different checkpoints: load both from the same folder.",
            params={"config_id": config_id, "token": token, "token_id": token_id},
        )
        return
    if tokenizer.pad_token_id is None:
        yield warn("processor.no-pad", "The tokenizer has no pad token", evidence=evidence,
                   fix="Set `tokenizer.pad_token = tokenizer.eos_token` before building batches of more than one sample.")
        return
    yield passed("processor.image-token", f"Image token {token!r} = id {token_id}", evidence=evidence)


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
    evidence["image tokens per page"] = f"{slots} (the processor on one 64x64 page)"
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
        yield fail(
            "processor.model-mismatch",
            f"The processor's {rule.processor} is {theirs} but the model's {rule.config} is {ours} ({rule.what})",
            detail="The processor lays out image slots by its own setting and the model's vision path by its "
            "config; with different values the image features and the image slots never match, and the "
            "training step fails (or fills the slots with the wrong features).",
            fix=f"Set `{rule.processor}={ours}` on the processor (pass it to `AutoProcessor.from_pretrained` or fix "
            f"{'processor_config.json' if model_facts.json_of(target, 'processor_config.json') else 'preprocessor_config.json'}), "
            "or use the processor files that came with the weights.",
            params={"setting": rule.processor, "processor_value": theirs, "config_path": rule.config,
                    "model_value": ours, "what": rule.what},
        )
