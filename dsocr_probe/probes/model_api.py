"""Probe 4: how the model must be loaded and called — Auto classes, forward signature, loss, image inputs.

Reads the config as data and the class without weights; remote code is imported only when
trusted, and otherwise its forward signature is read from the source with ``ast``.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from typing import Iterable

from ..findings import Finding, ProbeStop, fail, passed, skip, warn

# The Auto classes a fine-tuning script for an OCR model is likely to reach for.
AUTO_CLASSES = (
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "AutoModelForSeq2SeqLM",
)
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


@dataclass
class AutoVerdict:
    auto_class: str
    accepts: bool
    detail: str  # the class it builds, or why it refuses

    def row(self) -> dict:
        return {"Auto class": self.auto_class, "loads this checkpoint": "yes" if self.accepts else "no", "builds / refusal": self.detail}


def auto_class_verdicts(target, config=None) -> list[AutoVerdict]:
    """Which Auto classes accept the checkpoint. Remote code: only those in auto_map. Native: the
    installed mapping, with the refusal message transformers itself gives."""
    import transformers

    out = []
    for name in AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        gone = f"not in transformers {transformers.__version__}"
        if target.needs_remote_code:
            # The checkpoint's auto_map decides, on any transformers release.
            ref = target.auto_map.get(name)
            if ref and auto is not None:
                out.append(AutoVerdict(name, True, f"remote code {ref}"))
            elif ref:
                out.append(AutoVerdict(name, False, gone))
            else:
                mapped = ", ".join(sorted(target.auto_map))
                why = f"Unrecognized configuration class: auto_map maps only {mapped}"
                out.append(AutoVerdict(name, False, why + ("" if auto is not None else f" (and {gone})")))
            continue
        if auto is None:
            out.append(AutoVerdict(name, False, gone))
            continue
        if config is None:
            continue
        if type(config) in auto._model_mapping:
            out.append(AutoVerdict(name, True, auto._model_mapping[type(config)].__name__))
            continue
        try:
            auto.from_config(config)
            out.append(AutoVerdict(name, True, "builds"))  # not reached for unmapped configs
        except Exception as exc:
            out.append(AutoVerdict(name, False, str(exc).split(". ")[0].split("\n")[0]))
    return out


def run(ctx) -> Iterable[Finding]:
    target = ctx.target()
    yield passed("model_api.target", f"Model `{target.name}` found", evidence=target.describe())
    config, sk = None, None
    try:
        sk = ctx.skeleton()
        config = sk.config
    except ProbeStop as stop:
        if stop.finding.status.blocks:
            yield stop.finding
        elif not target.needs_remote_code:
            raise
    yield auto_class_finding(auto_class_verdicts(target, config))
    yield from model_type_findings(ctx, target)

    params, how = _forward_params(target, sk)
    if params is None:
        yield skip("model_api.signature", f"forward() signature not read: {how}", fix="Re-run with --dsocr-trust-remote-code.")
        return
    decoder_only = not (target.config.get("is_encoder_decoder") or "decoder_input_ids" in params)
    images = [p for p in params if p in IMAGE_ARGS]
    yield passed(
        "model_api.signature",
        f"forward({', '.join(params)})",
        evidence={
            "read from": how,
            "architecture": "decoder-only (causal LM)" if decoder_only else "encoder-decoder",
            "image inputs": ", ".join(images) or "none",
            "loss inside forward": "yes (pass labels)" if "labels" in params else "no",
            "accepts **kwargs": "yes" if "**kwargs" in params else "no",
        },
        params={"decoder_only": decoder_only, "image_args": images},
    )
    if not images:
        yield warn("model_api.no-image-input", "forward() takes no image argument", fix="Check that this is the vision-language checkpoint, not its text-only language model.")
    if "labels" not in params:
        yield warn("model_api.no-labels", "forward() takes no labels: the loss must be computed outside", fix="Subclass Trainer.compute_loss, or use the checkpoint's causal-LM class.")
    if sk is not None:
        yield _meta_finding(sk)


# Which accepted class to recommend: one with a language-model head before the bare AutoModel
# (for native models AutoModel builds the backbone without lm_head; for remote code it is the
# only entry and maps to the causal-LM class).
PREFERENCE = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModel")


def auto_class_finding(verdicts: list[AutoVerdict]) -> Finding:
    accepted = sorted((v.auto_class for v in verdicts if v.accepts), key=PREFERENCE.index)
    refused = [v.auto_class for v in verdicts if not v.accepts]
    table = [v.row() for v in verdicts]
    if not accepted:
        return fail(
            "model_api.no-auto-class",
            "No Auto class accepts this checkpoint",
            table=table,
            fix="Load the class named in config.json `architectures` directly, or fix the checkpoint's auto_map.",
        )
    title = f"Load with {', '.join(accepted)}"
    fix = ""
    if refused:
        title += f"; {', '.join(refused)} refuse this checkpoint"
        fix = f"Use `{accepted[0]}.from_pretrained(...)`: a script that calls {refused[0]} stops with 'Unrecognized configuration class'."
    return passed("model_api.auto-classes", title, table=table, fix=fix, params={"accepted": accepted, "refused": refused})


def model_type_findings(ctx, target) -> Iterable[Finding]:
    """The checkpoint's processor and tokenizer files against config.json's model_type.

    A file disagrees when it names another ``model_type``, or a ``processor_class`` that neither
    transformers nor the checkpoint's own code ships and that belongs to another model type (a
    class that is not shipped is reported by the processor probe; here only the model type it
    stands for). Shipped classes are left alone: AutoProcessor builds what the file names, and
    several model types share a processor. Weighed like the processor probe's findings: a warning
    when a collator of the team's own may use AutoProcessor, else a fact for the report.
    """
    from .processor import _all_auto_maps, _custom_collator, _json

    model_type = target.model_type
    if not isinstance(model_type, str) or not model_type:
        return
    weigh = None
    for file in TYPE_FILES:
        data = _json(target, file)
        other, via = _declared_type(data, target, _all_auto_maps)
        if other is None or _same_type(other, model_type):
            continue
        if weigh is None:
            weigh = warn if _custom_collator(ctx) else passed
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
    from .. import loading

    cls = via.split(" ", 1)[1] if via.startswith("processor_class ") else None
    builder = "dsocr_probe.DeepseekOCRCollator(tokenizer, mode=...)" if model_type in loading.V1_MODEL_TYPES else None
    if cls:
        title = f"{file} names processor_class {cls}, a `{other}` processor, but config.json says model_type `{model_type}`"
        what = (f"AutoProcessor cannot build {cls} and returns only the part it can load (for DeepSeek-OCR v1 the bare "
                "tokenizer), not this model's processor")
    else:
        title = f"{file} says model_type `{other}` but config.json says `{model_type}`"
        what = f"what AutoProcessor builds from {file} belongs to `{other}`, not to this model"
    if builder:
        fix = (f"Do not build batches with AutoProcessor: use `{builder}`, which lays out the images for {model_type} "
               f"itself; the warning about type {other} then does not matter.")
    else:
        fix = (f"Restore {file} from the checkpoint these weights come from (same repository and revision), so that "
               "AutoProcessor builds this model's processor; or build batches with the dsocr_probe builder for this model.")
    return weigh(
        "model_api.model-type-mismatch",
        title,
        detail=(f"The checkpoint's files disagree about the model: {what}. Loading can also print `You are using a "
                f"model of type {other} to instantiate a model of type {model_type}` (DeepSeek-OCR v1 does); it comes "
                "from these files, the weights are not affected."),
        fix=fix,
        evidence={"config.json model_type": model_type, file: f"{via} → {other}"},
        params={"file": file, "cls": cls, "other": other, "model_type": model_type, "builder": builder},
    )


def _forward_params(target, sk) -> tuple[list[str] | None, str]:
    if sk is not None:
        sig = sk.forward_signature
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            names.append(("**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else "") + p.name)
        return names, f"{sk.cls.__module__}.{sk.cls.__qualname__} ({sk.how})"
    ref = target.auto_map.get("AutoModel")
    if not ref:
        return None, "no AutoModel entry in auto_map"
    module, _, cls_name = ref.rpartition(".")
    module = module.split("--")[-1]
    path = target.path / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return None, f"{path.name} is not in the checkpoint"
    params = forward_params_from_source(path.read_text(encoding="utf-8"), cls_name)
    if params is None:
        return None, f"no {cls_name}.forward in {path.name}"
    return params, f"{path.name}: {cls_name}.forward (source, not imported)"


def forward_params_from_source(source: str, cls_name: str) -> list[str] | None:
    """The parameter names of ``cls_name.forward`` in a module's source, without importing it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "forward":
                    a = item.args
                    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs) if x.arg != "self"]
                    if a.vararg:
                        names.append("*" + a.vararg.arg)
                    if a.kwarg:
                        names.append("**" + a.kwarg.arg)
                    return names
    return None


def _meta_finding(sk) -> Finding:
    if sk.model is None:
        return warn(
            "model_api.meta-build",
            f"A weightless instance could not be built: {sk.build_error}",
            fix="The step probe loads the real weights and will show whether from_pretrained hits the same error.",
            params={"error": sk.build_error},
        )
    n = sum(p.numel() for p in sk.model.parameters())
    return passed(
        "model_api.meta-build",
        f"{sk.cls.__name__} builds without weights: {n / 1e6:,.1f} M parameters, {len(sk.linear_names)} Linear modules",
        evidence={"parameters": f"{n:,}", "bf16 weights": f"{n * 2 / 2**30:.2f} GiB"},
        params={"n_params": n},
    )
