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
from ..model import loading, model_facts
from ..collators.base import labels_on_image_tokens, labels_on_prompt
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_

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
    data = ctx.require(ctx.dataset, "dataset")
    train = data.train
    # Rows whose image does not open are the dataset probe's findings; the batch is built from the others.
    rows = ctx.usable_rows(train.rows) if train is not None else []
    if not rows:
        raise ProbeStop(skip("batch.no-rows"))
    examples = [r.example() for r in rows[:SAMPLES]]
    try:
        batch = builder(examples)
    except Exception as exc:
        variant = "tokenizer-processor" if "unexpected keyword argument 'images'" in str(exc) else "row"
        raise ProbeStop(fail("batch.builder-raised", variant, evidence={N_("collator"): origin},
                             params={"count": len(examples), "error": loading.error_words(exc, whole=True)})) from exc
    shapes = {k: _describe(v) for k, v in batch.items()}
    described = builder.describe() if callable(getattr(builder, "describe", None)) else {}
    if "prompt as written" in described:  # stripped as the official infer() strips it
        shapes[N_("prompt")] = M(N_("%(written)s -> %(fed)s (stripped, as inference feeds it)"),
                             written=repr(described["prompt as written"]), fed=repr(described["prompt"]))
    sk = _native_skeleton(ctx, target)
    token_id, token_source = _image_token_id(sk, builder)
    # What the batch trains on, as text: the reader checks it is what inference feeds the model.
    shapes.update(batch_view.describe(batch, _tokenizer(ctx, builder), token_id))
    family = families.family_for(target.config)
    if family.guessed:
        shapes[N_("guessed rules")] = [M(rule) for rule in family.guessed]
    yield passed("batch.built", evidence=shapes, params={"origin": origin, "count": len(examples)})
    own = [*check_keys(batch, params), *_dtype_findings(ctx, batch)]
    yield from own
    reported = {f.code for f in own}
    problems, checked_by = _validate(ctx, builder, batch, params)
    if sk is not None and token_id is not None and not any(p.code == "batch.labels-on-images" for p in problems):
        problems += labels_on_image_tokens(batch, token_id) + labels_on_prompt(batch, token_id)
        checked_by.append(M(N_("no labels on image tokens (id %(token_id)d, %(source)s) or on the prompt before them"),
                            token_id=token_id, source=token_source))
    features, slot_check = _feature_check(target, sk, builder, batch, token_id, token_source, checked_by)
    for problem in problems:
        if problem.code in reported:
            continue  # already a finding of its own, with the exact fix
        yield fail(problem.code, problem.variant, params=dict(problem.params), evidence={N_("checked by"): checked_by})
    if features is not None:
        yield features
    if not problems:
        yield layout_finding(features, slot_check, checked_by)


def layout_finding(features: Finding | None, slot_check: dict | None, checked_by: list) -> Finding:
    """The verdict on a batch without layout problems: a pass only for what was compared. ``slot_check``:
    why the image slots were not compared with the visual features, when they were not."""
    evidence = {N_("checked by"): checked_by}
    if slot_check:
        evidence[N_("image slots vs the model's visual features")] = slot_check
    if features is not None and features.status.blocks:
        return passed("batch.layout", "slots-blocked", evidence=evidence)
    if slot_check:
        return warn("batch.slots-not-compared", evidence=evidence, params={"why": slot_check})
    return passed("batch.layout", "checked", evidence=evidence)


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
        raise ProbeStop(skip("batch.no-signature", params={"how": how}))
    return params


def _builder(ctx) -> tuple[Any, dict]:
    cfg = None
    try:
        cfg = ctx.train_config()
    except ProbeStop:
        pass
    if cfg is not None and cfg.data.get("collator"):
        from ..model import trainrun

        # The collator exactly as the training run makes it (a named class is made with the tokenizer/processor).
        made, _ = trainrun.collator(ctx, cfg, trainrun.processing(ctx), None)
        return made, M(N_("collator `%(name)s`"), name=cfg.data["collator"])
    from ..model import loading

    builder = loading.builder_for(ctx)
    return builder, M(N_("%(name)s (dsocr_probe)"), name=type(builder).__name__)


def check_keys(batch: dict, params: list[str]) -> Iterable[Finding]:
    named = [p for p in params if not p.startswith("*")]
    open_kwargs = any(p.startswith("**") for p in params)
    unknown = [k for k in batch if k not in named]
    for key in unknown:
        near = [s for s in SYNONYMS.get(key, ()) if s in named] or difflib.get_close_matches(key, named, n=1, cutoff=0.6)
        variant = ("ignored" if open_kwargs else "rejected") + ("-near" if near else "")
        yield (warn if open_kwargs else fail)("batch.unknown-key", variant,
                                              params={"key": key, "near": near[0] if near else None})
    required = V1_REQUIRED if "images_seq_mask" in named else NATIVE_REQUIRED if "pixel_values" in named else ("input_ids", "labels")
    missing = [k for k in required if k in named and k not in batch]
    if missing:
        yield fail("batch.missing-key", "forward",
                   params={"missing": missing, "keys": ", ".join("`" + m + "`" for m in missing)})
    if not unknown and not missing:
        yield passed("batch.keys", params={"keys": str(sorted(batch))})


def _validate(ctx, builder, batch, params) -> tuple[list, list]:
    """The builder's own checks; for a foreign collator, the layout facts of the model family.
    Returns the problems and which checks found them (messages, for the report)."""
    from ..collators import base

    own = getattr(builder, "validate", None)
    if callable(own):
        return list(own(batch)), [M(N_("%(builder)s.validate (the builder's own rules)"), builder=type(builder).__name__)]
    if "images_seq_mask" in params:
        from ..collators.deepseek_ocr_v1_checks import validate_layout

        try:
            tok = ctx.tokenizer()
            ids = {"bos_token_id": tok.bos_token_id, "image_token_id": tok.convert_tokens_to_ids("<image>")}
        except ProbeStop:
            ids = {}
        return validate_layout(batch, **ids), [M(N_("the DeepSeek-OCR v1 layout facts (slots per image, labels, bos)"))]
    return base.check_labels(batch), [M(N_("label checks (a supervised token per sample, none on padding)"))]


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


def _feature_check(target, sk, builder, batch, token_id, token_source, checked_by) -> tuple[Finding | None, dict | None]:
    """A finding comparing image slots with the visual features the model's vision path yields, or
    (None, why not and what was checked instead) when the vision path could not be run."""
    import torch

    from ..model import meta_run

    if target.needs_remote_code:
        return None, None  # v1: the layout facts decide (see _validate)
    if sk is None:
        why = M(N_("the model's weightless instance could not be built (see the model API probe)"))
    elif sk.model is None:
        why = M(N_("the model's weightless instance could not be built: %(error)s"), error=sk.build_error)
    elif meta_run.image_feature_function(sk.model) is None:
        why = M(N_("%(model)s has no get_image_features on transformers %(version)s"), model=type(sk.model).__name__,
                version=_transformers_version())
    elif token_id is None:
        why = M(N_("neither the config nor the builder names the image token id"))
    elif not isinstance(batch.get("input_ids"), torch.Tensor):
        why = M(N_("the batch has no input_ids tensor"))
    else:
        slots = (batch["input_ids"] == token_id).sum(dim=-1).tolist()
        why = _not_comparable(sk, slots)
        if why is None:
            try:
                count = meta_run.count_image_features(sk.model, batch)
            except meta_run.NotCounted as exc:
                why = exc.message
            else:
                return _compare(builder, slots, count, token_id, token_source), None
    if callable(getattr(builder, "validate", None)):
        return None, M(N_("not compared (%(why)s); the slot count was checked only by %(checked_by)s"), why=why,
                       checked_by=checked_by)
    return None, M(N_("not compared (%(why)s); the slot count was not checked"), why=why)


def _not_comparable(sk, slots: list[int]) -> dict | None:
    """Why the count get_image_features gives is not the count the forward merges, on transformers
    4.x LLaVA-style models: they expand a short run of image tokens themselves ("legacy
    processing"), and the LLaVA-NeXT family adds its newline features after get_image_features
    (from 5.0 that packing happens inside it)."""
    import transformers
    from packaging.version import Version

    name = type(sk.model).__name__
    seq = getattr(sk.config, "image_seq_length", None)
    if hasattr(sk.model, "_merge_input_ids_with_image_features") and isinstance(seq, int) and slots and max(slots) < seq:
        return M(N_("%(model)s expands fewer than image_seq_length=%(seq)d image tokens itself (transformers 4.x legacy "
                    "processing)"), model=name, seq=seq)
    if Version(transformers.__version__).major < 5 and callable(getattr(sk.model, "pack_image_features", None)):
        return M(N_("on transformers %(version)s %(model)s adds features after get_image_features "
                    "(pack_image_features), so its count is not the slot count"),
                 version=transformers.__version__, model=name)
    return None


def _compare(builder, slots: list[int], count, token_id: int, token_source: str) -> Finding:
    per_sample = count.per_sample(len(slots))
    if per_sample is not None:
        have, want, scope = slots, per_sample, M(N_("per sample"))
    else:
        have, want, scope = [sum(slots)], [count.total], M(N_("in all"))
    shown_slots, shown_features = ", ".join(map(str, have)), ", ".join(map(str, want))
    evidence = {
        N_("image slots"): M(N_("%(slots)s %(scope)s (input_ids == %(token_id)d, %(source)s)"), slots=shown_slots,
                             scope=scope, token_id=token_id, source=token_source),
        N_("visual features"): M(N_("%(features)s %(scope)s"), features=shown_features, scope=scope),
        N_("counted by"): M(N_("%(method)s on the meta-device instance (no weights loaded)"), method=count.method),
        N_("output"): count.output,
    }
    params = {"slots": shown_slots, "features": shown_features, "scope": scope, "method": count.method}
    if have == want:
        return passed("batch.image-features", "match", evidence=evidence, params=params)
    processor = getattr(builder, "processor", None)
    if processor is not None:
        params["processor"] = type(processor).__name__
    return fail("batch.image-features", "own" if processor is None else "processor", evidence=evidence, params=params)


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
        yield fail("batch.pixel-dtype", params={"key": key, "dtype": str(dtype), "model_dtype": str(model_dtype)})
    mask = batch.get("images_seq_mask")
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        yield fail("batch.mask-dtype", params={"dtype": str(mask.dtype)})


def _describe(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {list(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = _describe(value[0]) if value else M(N_("empty"))
        return M(N_("%(type)s[%(length)d] of %(inner)s"), type=type(value).__name__, length=len(value), inner=inner)
    return type(value).__name__
