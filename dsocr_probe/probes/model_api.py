"""Probe 4: how the model must be loaded and called — Auto classes, forward signature, loss, image inputs.

Reads the config as data and the class without weights; remote code is imported only when
trusted, and otherwise its forward signature is read from the source with ``ast``.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..model import model_facts
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_

# forward() arguments that carry pixels or describe them, across the supported families.
IMAGE_ARGS = (
    "pixel_values", "pixel_values_local", "num_local_patches", "images", "images_seq_mask",
    "images_spatial_crop", "image_sizes", "image_grid_thw", "pixel_attention_mask", "image_flags",
)


# Files beside config.json that may say which model type they belong to.
TYPE_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
# Processor classes no transformers release ships, and the model type they belong to. The
# DeepSeek-OCR v1 checkpoint names DeepseekVLV2Processor; its Hub tags say deepseek_vl_v2.
UNSHIPPED_PROCESSOR_TYPES = {"DeepseekVLV2Processor": "deepseek_vl_v2"}
_CLASS_SUFFIXES = ("ImageProcessorFast", "ImageProcessor", "FeatureExtractor", "Processor", "TokenizerFast", "Tokenizer")
# Words of a CamelCase class name: "DeepseekVLV2" -> Deepseek, VL, V2; "Qwen2VL" -> Qwen2, VL.
_WORDS = re.compile(r"[A-Z][a-z]+[0-9]*|[A-Z][0-9]+|[A-Z]+(?=[A-Z][a-z0-9]|$)|[a-z]+[0-9]*|[0-9]+")


def run(ctx) -> Iterable[Finding]:
    target = ctx.target()
    yield passed("model_api.target", evidence=target.describe(), params={"name": target.name})
    config, sk = None, None
    try:
        sk = ctx.skeleton()
        config = sk.config
    except ProbeStop as stop:
        if stop.finding.status.blocks:
            yield stop.finding
        elif not target.needs_remote_code:
            raise
    yield auto_class_finding(model_facts.auto_class_verdicts(target, config))
    yield from model_type_findings(ctx, target)

    params, how = model_facts.forward_params(target, sk)
    if params is None:
        yield skip("model_api.signature", "not-read", params={"how": how})
        return
    decoder_only = not (target.config.get("is_encoder_decoder") or "decoder_input_ids" in params)
    images = [p for p in params if p in IMAGE_ARGS]
    yield passed(
        "model_api.signature",
        "read",
        evidence={
            N_("read from"): how,
            N_("architecture"): M(N_("decoder-only (causal LM)")) if decoder_only else M(N_("encoder-decoder")),
            N_("image inputs"): ", ".join(images) or M(N_("none")),
            N_("loss inside forward"): M(N_("yes (pass labels)")) if "labels" in params else M(N_("no")),
            N_("accepts **kwargs"): M(N_("yes")) if "**kwargs" in params else M(N_("no")),
        },
        params={"params": ", ".join(params), "decoder_only": decoder_only, "image_args": images},
    )
    if not images:
        yield warn("model_api.no-image-input")
    if "labels" not in params:
        yield warn("model_api.no-labels")
    if sk is not None:
        yield _meta_finding(sk)


def auto_class_finding(verdicts: list[model_facts.AutoVerdict]) -> Finding:
    accepted = sorted((v.auto_class for v in verdicts if v.accepts), key=model_facts.PREFERENCE.index)
    refused = [v.auto_class for v in verdicts if not v.accepts]
    table = [v.row() for v in verdicts]
    if not accepted:
        return fail("model_api.no-auto-class", table=table)
    variant = "some-refuse" if refused else "all"
    return passed("model_api.auto-classes", variant, table=table,
                  params={"accepted": accepted, "refused": refused, "accepted_names": ", ".join(accepted),
                          "refused_names": ", ".join(refused), "use": accepted[0],
                          "refused_first": refused[0] if refused else None})


def model_type_findings(ctx, target) -> Iterable[Finding]:
    """The checkpoint's processor and tokenizer files against config.json's model_type.

    A file disagrees when it names another ``model_type``, or a ``processor_class`` that neither
    transformers nor the checkpoint's own code ships and that belongs to another model type (a
    class that is not shipped is reported by the processor probe; here only the model type it
    stands for). Shipped classes are left alone: AutoProcessor builds what the file names, and
    several model types share a processor. Weighed like the processor probe's findings: a warning
    when a collator of the team's own may use AutoProcessor, else a fact for the report.
    """
    model_type = target.model_type
    if not isinstance(model_type, str) or not model_type:
        return
    weigh = None
    for file in TYPE_FILES:
        data = model_facts.json_of(target, file)
        other, via = _declared_type(data, target, model_facts.all_auto_maps)
        if other is None or _same_type(other, model_type):
            continue
        if weigh is None:
            weigh = warn if model_facts.own_collator_possible(ctx) else passed
        yield _type_mismatch(weigh, target, file, via, other, model_type)


def _declared_type(data: dict, target, auto_maps) -> tuple[str | None, str | None]:
    """The model type a processor/tokenizer file stands for, and how it says so."""
    import transformers

    declared = data.get("model_type")
    if isinstance(declared, str) and declared:
        return declared, "model_type"
    cls = data.get("processor_class")
    if not isinstance(cls, str) or not cls or hasattr(transformers, cls):
        return None, None
    if auto_maps(target).get("AutoProcessor", "").endswith("." + cls):
        return None, None  # the checkpoint's own processor code
    return UNSHIPPED_PROCESSOR_TYPES.get(cls) or type_of_class(cls), f"processor_class {cls}"


def type_of_class(name: str) -> str | None:
    """The model type a class name stands for by transformers' naming: DeepseekVLV2Processor -> deepseek_vl_v2."""
    for suffix in _CLASS_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    words = _WORDS.findall(name)
    return "_".join(w.lower() for w in words) or None


def _same_type(a: str, b: str) -> bool:
    """Equal up to case and separators (DeepseekOCR and deepseek_ocr name the same type)."""
    def norm(s: str) -> str:
        return re.sub(r"[^0-9a-z]", "", s.lower())

    return norm(a) == norm(b)


def _type_mismatch(weigh, target, file: str, via: str, other: str, model_type: str) -> Finding:
    from ..model import loading

    cls = via.split(" ", 1)[1] if via.startswith("processor_class ") else None
    builder = "dsocr_probe.DeepseekOCRCollator(tokenizer, mode=...)" if model_type in loading.V1_MODEL_TYPES else None
    # What the file names (a processor class, or a model_type), and whether a builder of ours fits the model.
    variant = ("class" if cls else "model-type") + ("-builder" if builder else "-restore")
    return weigh(
        "model_api.model-type-mismatch",
        variant,
        evidence={N_("config.json model_type"): model_type, file: f"{via} → {other}"},
        params={"file": file, "cls": cls, "other": other, "model_type": model_type, "builder": builder},
    )


def _meta_finding(sk) -> Finding:
    if sk.model is None:
        return warn("model_api.meta-build", "failed", params={"error": sk.build_error})
    n = sum(p.numel() for p in sk.model.parameters())
    return passed(
        "model_api.meta-build",
        "built",
        evidence={N_("parameters"): f"{n:,}", N_("bf16 weights"): f"{n * 2 / 2**30:.2f} GiB"},
        params={"n_params": n, "cls": sk.cls.__name__, "millions": f"{n / 1e6:,.1f}", "linear": len(sk.linear_names)},
    )
