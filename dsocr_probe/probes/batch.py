"""Probe 6: the batch the training script will feed, checked against the exact model's forward().

The batch comes from the collator the config names (data.collator) or, by default, from the
builder dsocr_probe gives for this model family — the object the training script should pass
to Trainer(data_collator=...). No weights are loaded.

Image slots: for DeepSeek-OCR v1 (remote code) the slot count is checked against the layout
facts. For native models the batch's image inputs go through the model's own vision path
(``get_image_features``) on the weightless meta-device instance, and the visual features it
yields are counted against the image-token slots in ``input_ids``: a processor whose settings
do not fit the model is caught here, where the builder's own rule (the processor's formula)
cannot see it. Where that run is not possible the finding says so and which check was used.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from ..collators import batch_view
from ..knowledge import families
from ..model import model_facts
from ..collators.base import labels_on_image_tokens, labels_on_prompt
from ..findings import Finding, ProbeStop, fail, passed, skip, warn

# Names other families use for the same input: the fix names the one this model takes.
SYNONYMS = {
    "pixel_values": ("images", "pixel_values"),
    "images": ("pixel_values", "images"),
    "image_mask": ("images_seq_mask",),
    "decoder_input_ids": ("input_ids",),
}
# Inputs without which forward() fails or learns nothing, by what the signature shows.
V1_REQUIRED = ("input_ids", "labels", "images", "images_seq_mask", "images_spatial_crop")
NATIVE_REQUIRED = ("input_ids", "labels", "pixel_values")
SAMPLES = 2  # two, so padding is exercised
SLOTS_UNCHECKED = "the slot count was not checked"
NOT_COMPARED = "not compared"


def run(ctx) -> Iterable[Finding]:
    target = ctx.needs(ctx.target, "batch")
    params = _forward_params(ctx, target)
    builder, origin = _builder(ctx)
    data = ctx.require(ctx.dataset, "dataset")
    train = data.train
    # Rows whose image does not open are the dataset probe's findings; the batch is built from the others.
    rows = ctx.usable_rows(train.rows) if train is not None else []
    if not rows:
        raise ProbeStop(skip("batch.no-rows", "No usable training rows to build a batch from", fix="See the dataset probe."))
    examples = [r.example() for r in rows[:SAMPLES]]
    try:
        batch = builder(examples)
    except Exception as exc:
        raise ProbeStop(
            fail(
                "batch.builder-raised",
                f"The collator raised on the first {len(examples)} training rows: {type(exc).__name__}: {exc}",
                evidence={"collator": origin},
                fix=_fix_for_builder_error(exc),
                params={"count": len(examples), "error": f"{type(exc).__name__}: {exc}",
                        "rejected_arg": "images" if "unexpected keyword argument 'images'" in str(exc) else None},
            )
        ) from exc
    shapes = {k: _describe(v) for k, v in batch.items()}
    described = builder.describe() if callable(getattr(builder, "describe", None)) else {}
    if "prompt as written" in described:  # stripped as the official infer() strips it
        shapes["prompt"] = f"{described['prompt as written']!r} -> {described['prompt']!r} (stripped, as inference feeds it)"
    sk = _native_skeleton(ctx, target)
    token_id, token_source = _image_token_id(sk, builder)
    # What the batch trains on, as text: the reader checks it is what inference feeds the model.
    shapes.update(batch_view.describe(batch, _tokenizer(ctx, builder), token_id))
    family = families.family_for(target.config)
    if family.guessed:
        shapes["guessed rules"] = "; ".join(family.guessed)
    yield passed("batch.built", f"{origin} built a batch of {len(examples)}", evidence=shapes)
    own = [*check_keys(batch, params), *_dtype_findings(ctx, batch)]
    yield from own
    reported = {f.code for f in own}
    problems, checked_by = _validate(ctx, builder, batch, params)
    if sk is not None and token_id is not None and not any(layout_fix(p)[0] == "batch.labels-on-images" for p in problems):
        problems += labels_on_image_tokens(batch, token_id) + labels_on_prompt(batch, token_id)
        checked_by += f"; no labels on image tokens (id {token_id}, {token_source}) or on the prompt before them"
    features, slot_check = _feature_check(target, sk, builder, batch, token_id, token_source, checked_by)
    for problem in problems:
        code, fix = layout_fix(problem)
        if code in reported:
            continue  # already a finding of its own, with the exact fix
        yield fail(code, problem, fix=fix, evidence={"checked by": checked_by}, params={"problem": problem})
    if features is not None:
        yield features
    if not problems:
        yield layout_finding(features, slot_check, checked_by)


def layout_finding(features: Finding | None, slot_check: str | None, checked_by: str) -> Finding:
    """The verdict on a batch without layout problems: a pass only for what was compared."""
    evidence = {"checked by": checked_by}
    if slot_check:
        evidence["image slots vs the model's visual features"] = slot_check
    if features is not None and features.status.blocks:
        return passed("batch.layout", "Labels and masks follow the model's layout (the image slots do not: see above)",
                      evidence=evidence)
    if slot_check and slot_check.startswith(NOT_COMPARED):
        return warn("batch.slots-not-compared",
                    "Labels and masks follow the model's layout; the image slots were not compared with the "
                    "model's visual features",
                    detail=slot_check, evidence=evidence,
                    fix="Nothing to change in the batch; a mismatch would show in the training step "
                    "(`Image features and image tokens do not match`). See the evidence for why it was not compared.",
                    params={"why": slot_check})
    return passed("batch.layout", "Image slots, labels and masks follow the model's layout", evidence=evidence)


# A layout problem (as the builders' validators word it) -> finding code and the exact fix.
LAYOUT_FIXES: tuple[tuple[str, str, str], ...] = (
    ("on the prompt", "batch.labels-on-prompt",
     "Set labels to -100 on the whole prompt (bos, image slots and instruction): only the target and the "
     "end-of-turn/eos are supervised. `dsocr_probe.builder_for(model_path)` builds such batches."),
    ("do not start with bos", "batch.no-bos",
     "Start every sample with the tokenizer's bos token; the dsocr_probe builders prepend it."),
    ("image slots but the model writes", "batch.image-slots",
     "Emit one image slot per visual feature: the global view's nb*(nb+1)+1 and the crops' nq*h*(nq*w+1) "
     "(`dsocr_probe.collators.deepseek_ocr_v1.image_token_count(width, height, mode)` gives the count)."),
    ("label(s) on image slots", "batch.labels-on-images", "Set labels to -100 wherever images_seq_mask is True."),
    ("on image", "batch.labels-on-images", "Set labels to -100 on every image placeholder token."),
    ("only supports boolean masks", "batch.mask-dtype", "Build images_seq_mask with dtype=torch.bool."),
    ("pixels are", "batch.pixel-dtype", "Build pixels in the model's dtype, or train with autocast (bf16: true)."),
    ("first sample has no image", "batch.first-sample-text-only",
     "Put a sample with an image first in every batch, or give text-only samples batches of their own."),
    ("no supervised token", "batch.no-target", "Every sample needs its target text and eos in labels (not -100)."),
    ("on padding", "batch.padding", "Set labels to -100 and keep image slots off padding positions (attention_mask 0)."),
    ("missing ", "batch.missing-key", "Use the dsocr_probe builder for this family, or add the missing keys."),
)


def layout_fix(problem: str) -> tuple[str, str]:
    for needle, code, fix in LAYOUT_FIXES:
        if needle in problem:
            return code, fix
    return "batch.layout", "Build batches with the dsocr_probe builder for this model family, which follows the official layout."


def _tokenizer(ctx, builder):
    tokenizer = getattr(builder, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    try:
        return ctx.tokenizer()
    except ProbeStop:
        return None


def _forward_params(ctx, target) -> list[str]:
    try:
        sk = ctx.skeleton()
    except ProbeStop:
        sk = None
    params, how = model_facts.forward_params(target, sk)
    if params is None:
        raise ProbeStop(skip("batch.no-signature", f"forward() signature unknown: {how}", fix="See the model API probe."))
    return params


def _builder(ctx) -> tuple[Any, str]:
    cfg = None
    try:
        cfg = ctx.train_config()
    except ProbeStop:
        pass
    if cfg is not None and cfg.data.get("collator"):
        from ..model import trainrun

        # The collator exactly as the training run makes it (a named class is made with the tokenizer/processor).
        made, _ = trainrun.collator(ctx, cfg, trainrun.processing(ctx), None)
        return made, f"collator `{cfg.data['collator']}`"
    from ..model import loading

    builder = loading.builder_for(ctx)
    return builder, f"{type(builder).__name__} (dsocr_probe)"


def check_keys(batch: dict, params: list[str]) -> Iterable[Finding]:
    named = [p for p in params if not p.startswith("*")]
    open_kwargs = any(p.startswith("**") for p in params)
    unknown = [k for k in batch if k not in named]
    for key in unknown:
        near = [s for s in SYNONYMS.get(key, ()) if s in named] or difflib.get_close_matches(key, named, n=1, cutoff=0.6)
        hint = f"; this model takes `{near[0]}`" if near else ""
        yield (warn if open_kwargs else fail)(
            "batch.unknown-key",
            f"The batch has `{key}`, which forward() does not take{hint}",
            detail=(f"forward() swallows it in **kwargs and ignores it." if open_kwargs else
                    f"Every step fails with `forward() got an unexpected keyword argument '{key}'`."),
            fix=f"Emit `{near[0]}` instead of `{key}`" + (" (see the reference batch layout)." if near else ".")
            if near else f"Drop `{key}` from the collator's output.",
            params={"key": key, "near": near[0] if near else None,
                    "error": None if open_kwargs else f"forward() got an unexpected keyword argument '{key}'"},
        )
    required = V1_REQUIRED if "images_seq_mask" in named else NATIVE_REQUIRED if "pixel_values" in named else ("input_ids", "labels")
    missing = [k for k in required if k in named and k not in batch]
    if missing:
        yield fail(
            "batch.missing-key",
            f"The batch lacks {', '.join('`' + m + '`' for m in missing)}",
            detail="Without the image inputs the forward fails (or trains a text-only model); without labels there is no loss.",
            fix="Use the dsocr_probe builder for this family, or add the missing keys to the collator's output.",
            params={"missing": missing, "keys": ", ".join('`' + m + '`' for m in missing)},
        )
    if not unknown and not missing:
        yield passed("batch.keys", f"Batch keys {sorted(batch)} all match forward()")


def _validate(ctx, builder, batch, params) -> tuple[list[str], str]:
    """The builder's own checks; for a foreign collator, the layout facts of the model family.
    Returns the problems and which check found them (for the report)."""
    from ..collators import base

    own = getattr(builder, "validate", None)
    if callable(own):
        return list(own(batch)), f"{type(builder).__name__}.validate (the builder's own rules)"
    if "images_seq_mask" in params:
        from ..collators.deepseek_ocr_v1_checks import validate_layout

        try:
            tok = ctx.tokenizer()
            ids = {"bos_token_id": tok.bos_token_id, "image_token_id": tok.convert_tokens_to_ids("<image>")}
        except ProbeStop:
            ids = {}
        return validate_layout(batch, **ids), "the DeepSeek-OCR v1 layout facts (slots per image, labels, bos)"
    return base.check_labels(batch), "label checks (a supervised token per sample, none on padding)"


# ---------------------------------------------------------------- image slots vs the vision path


def _native_skeleton(ctx, target):
    """The weightless instance of a native model, or None (remote code, or it could not be built)."""
    if target.needs_remote_code:
        return None
    try:
        return ctx.skeleton()
    except ProbeStop:
        return None


def _image_token_id(sk, builder) -> tuple[int | None, str | None]:
    """The id the model replaces with visual features: the config's, else the builder's."""
    config = getattr(sk, "config", None)
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, f"config.{name}"
    value = getattr(builder, "image_token_id", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value, f"{type(builder).__name__}.image_token_id"
    return None, None


def _feature_check(target, sk, builder, batch, token_id, token_source, checked_by) -> tuple[Finding | None, str | None]:
    """A finding comparing image slots with the visual features the model's vision path yields, or
    (None, why not and what was checked instead) when the vision path could not be run."""
    import torch

    from ..model import meta_run

    if target.needs_remote_code:
        return None, None  # v1: the layout facts decide (see _validate)
    if sk is None:
        why = "the model's weightless instance could not be built (see the model API probe)"
    elif sk.model is None:
        why = f"the model's weightless instance could not be built: {sk.build_error}"
    elif meta_run.image_feature_function(sk.model) is None:
        why = f"{type(sk.model).__name__} has no get_image_features on transformers {_transformers_version()}"
    elif token_id is None:
        why = "neither the config nor the builder names the image token id"
    elif not isinstance(batch.get("input_ids"), torch.Tensor):
        why = "the batch has no input_ids tensor"
    else:
        slots = (batch["input_ids"] == token_id).sum(dim=-1).tolist()
        why = _not_comparable(sk, slots)
        if why is None:
            try:
                count = meta_run.count_image_features(sk.model, batch)
            except meta_run.NotCounted as exc:
                why = str(exc)
            else:
                return _compare(builder, slots, count, token_id, token_source), None
    if callable(getattr(builder, "validate", None)):
        return None, f"{NOT_COMPARED} ({why}); the slot count was checked only by {checked_by}"
    return None, f"{NOT_COMPARED} ({why}); {SLOTS_UNCHECKED}"


def _not_comparable(sk, slots: list[int]) -> str | None:
    """Why the count get_image_features gives is not the count the forward merges, on transformers
    4.x LLaVA-style models: they expand a short run of image tokens themselves ("legacy
    processing"), and the LLaVA-NeXT family adds its newline features after get_image_features
    (from 5.0 that packing happens inside it)."""
    import transformers
    from packaging.version import Version

    name = type(sk.model).__name__
    seq = getattr(sk.config, "image_seq_length", None)
    if hasattr(sk.model, "_merge_input_ids_with_image_features") and isinstance(seq, int) and slots and max(slots) < seq:
        return f"{name} expands fewer than image_seq_length={seq} image tokens itself (transformers 4.x legacy processing)"
    if Version(transformers.__version__).major < 5 and callable(getattr(sk.model, "pack_image_features", None)):
        return (f"on transformers {transformers.__version__} {name} adds features after get_image_features "
                "(pack_image_features), so its count is not the slot count")
    return None


def _compare(builder, slots: list[int], count, token_id: int, token_source: str) -> Finding:
    per_sample = count.per_sample(len(slots))
    if per_sample is not None:
        have, want, scope = slots, per_sample, "per sample"
    else:
        have, want, scope = [sum(slots)], [count.total], "in all"
    shown_slots, shown_features = ", ".join(map(str, have)), ", ".join(map(str, want))
    evidence = {
        "image slots": f"{shown_slots} {scope} (input_ids == {token_id}, {token_source})",
        "visual features": f"{shown_features} {scope}",
        "counted by": f"{count.method} on the meta-device instance (no weights loaded)",
        "output": count.output,
    }
    params = {"slots": shown_slots, "features": shown_features, "scope": scope, "method": count.method}
    if have == want:
        return passed("batch.image-features",
                      f"Image slots match the visual features the model's vision path yields: {shown_slots} {scope}",
                      evidence=evidence, params=params)
    processor = getattr(builder, "processor", None)
    if processor is not None:
        params["processor"] = type(processor).__name__
        fix = (f"{params['processor']} makes {shown_slots} image slots {scope} but the model's vision path yields "
               f"{shown_features}: build batches with the processor settings the checkpoint was trained with "
               "(`AutoProcessor.from_pretrained` on the model folder with the processor files that came with the "
               "weights, without overriding image size, tiling, patch_size or downsample_ratio); the dsocr_probe "
               "builder on that processor then emits one slot per feature.")
    else:
        fix = (f"Emit one image token per visual feature ({shown_features} {scope}): let the checkpoint's processor "
               "expand the image token (`AutoProcessor.from_pretrained` on the model folder), or use the dsocr_probe "
               "builder for this model family.")
    return fail(
        "batch.image-features",
        f"The batch has {shown_slots} image slots {scope} but the model's vision path yields {shown_features} "
        "visual features",
        detail=("The model writes one visual feature into each image slot, in order: with these counts its forward "
                "stops with `Image features and image tokens do not match` (a model that does not check puts the "
                f"features in the wrong places). Features counted by running {count.method} on the weightless model."),
        fix=fix,
        evidence=evidence,
        params=params,
    )


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _dtype_findings(ctx, batch) -> Iterable[Finding]:
    import torch

    from ..model import loading

    model_dtype = loading.model_dtype(ctx)
    pixels = []
    for key in ("pixel_values", "pixel_values_local"):
        if isinstance(batch.get(key), torch.Tensor):
            pixels.append((key, batch[key]))
    for i, pair in enumerate(batch.get("images") or []):
        if isinstance(pair, (list, tuple)):
            pixels += [(f"images[{i}][{j}]", t) for j, t in enumerate(pair) if isinstance(t, torch.Tensor)]
    wrong = [(k, t.dtype) for k, t in pixels if t.is_floating_point() and t.dtype != model_dtype]
    if wrong:
        key, dtype = wrong[0]
        yield fail(
            "batch.pixel-dtype",
            f"{key} is {dtype} but the model runs in {model_dtype}",
            detail=f"Without autocast the first convolution fails: Input type ({dtype}) and bias type ({model_dtype}) should be the same.",
            fix=f"Build pixels in the model's dtype (dsocr_probe builders take `dtype={model_dtype}`), or train with autocast (bf16: true).",
            params={"key": key, "dtype": str(dtype), "model_dtype": str(model_dtype)},
        )
    mask = batch.get("images_seq_mask")
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        yield fail(
            "batch.mask-dtype",
            f"images_seq_mask is {mask.dtype}, not bool",
            detail="masked_scatter_ only supports boolean masks: the forward fails.",
            fix="Build images_seq_mask with dtype=torch.bool.",
            params={"dtype": str(mask.dtype)},
        )


def _fix_for_builder_error(exc: Exception) -> str:
    text = str(exc)
    if "unexpected keyword argument 'images'" in text:
        return ("The processor is the bare tokenizer and takes no images: use `dsocr_probe.DeepseekOCRCollator(tokenizer, "
                "mode=...)` as the data collator.")
    return "Fix the row or the collator named in the message; the builder names the example by index and path."


def _describe(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = _describe(value[0]) if value else "empty"
        return f"{type(value).__name__}[{len(value)}] of {inner}"
    return type(value).__name__
