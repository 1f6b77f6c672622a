"""Probe 6: the batch the training script will feed, checked against the exact model's forward().

The batch comes from the collator the config names (data.collator) or, by default, from the
builder dsocr_probe gives for this model family — the object the training script should pass
to Trainer(data_collator=...). No weights are loaded.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

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


def run(ctx) -> Iterable[Finding]:
    target = ctx.needs(ctx.target, "batch")
    params = _forward_params(ctx, target)
    builder, origin = _builder(ctx)
    data = ctx.require(ctx.dataset, "dataset", "Pass --dsocr-data DIR so the batch is built from real rows.")
    train = data.train
    if train is None or not train.rows:
        raise ProbeStop(skip("batch.no-rows", "No usable training rows to build a batch from", fix="See the dataset probe."))
    examples = [r.example() for r in train.rows[:SAMPLES]]
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
    yield passed("batch.built", f"{origin} built a batch of {len(examples)}", evidence=shapes)
    own = [*check_keys(batch, params), *_dtype_findings(ctx, batch)]
    yield from own
    reported = {f.code for f in own}
    problems = list(_validate(ctx, builder, batch, params))
    for problem in problems:
        code, fix = layout_fix(problem)
        if code in reported:
            continue  # already a finding of its own, with the exact fix
        yield fail(code, problem, fix=fix, params={"problem": problem})
    if not problems:
        yield passed("batch.layout", "Image slots, labels and masks follow the model's layout")


# A layout problem (as the builders' validators word it) -> finding code and the exact fix.
LAYOUT_FIXES: tuple[tuple[str, str, str], ...] = (
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


def _forward_params(ctx, target) -> list[str]:
    from .model_api import _forward_params as read

    try:
        sk = ctx.skeleton()
    except ProbeStop:
        sk = None
    params, how = read(target, sk)
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
        from .train_config import import_object

        spec = cfg.data["collator"]
        try:
            return import_object(spec, cfg), f"collator `{spec}`"
        except Exception as exc:
            raise ProbeStop(fail("batch.collator-import", f"data.collator `{spec}` cannot be imported: {exc}",
                                 fix="Give it as `package.module:name`.", params={"spec": spec, "error": str(exc)})) from exc
    from .. import loading

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


def _validate(ctx, builder, batch, params) -> Iterable[str]:
    """The builder's own checks; for a foreign collator, the layout facts of the model family."""
    from ..collators import base

    own = getattr(builder, "validate", None)
    if callable(own):
        yield from own(batch)
        return
    if "images_seq_mask" in params:
        from ..collators.deepseek_ocr_v1_checks import validate_layout

        try:
            tok = ctx.tokenizer()
            ids = {"bos_token_id": tok.bos_token_id, "image_token_id": tok.convert_tokens_to_ids("<image>")}
        except ProbeStop:
            ids = {}
        yield from validate_layout(batch, **ids)
    else:
        yield from base.check_labels(batch)


def _dtype_findings(ctx, batch) -> Iterable[Finding]:
    import torch

    from .. import loading

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
