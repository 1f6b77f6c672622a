"""What the probes know about each model family, as data: one record per family.

A record says which ``model_type`` values belong to the family, where its image token comes
from, the prompt inference feeds it when the checkpoint has no chat template, what training
supervises, how ``token_type_ids`` must be set, whether it is decoder-only or encoder-decoder,
which modules are its vision side, the LoRA task type and the batch builder the probes verify.
A checkpoint whose ``model_type`` is in no record gets :data:`GENERIC`, and the report lists
the rules that were guessed for it (:func:`guessed_rules`).

Sources: the model classes and processors of transformers 4.46 to 5.x (read in the installed
releases), and the model cards' documented inference prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..messages import N_

# The builders (dsocr_probe.collators) a record can name.
V1_BUILDER = "DeepseekOCRCollator"
OCR2_BUILDER = "DeepseekOCR2Collator"
PROCESSOR_BUILDER = "ProcessorCollator"
SUFFIX_BUILDER = "SuffixCollator"
SEQ2SEQ_BUILDER = "Seq2SeqCollator"


@dataclass(frozen=True)
class Agreement:
    """A setting the processor and the model must share: the processor's attribute (on the
    processor or its image processor) and the model config's dotted path."""

    processor: str
    config: str
    what: str  # in words, for the report


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    builder: str
    #: The text the prompt holds once per image and the processor expands (None: the processor's
    #: ``image_token``). The slot token the model fills is the one whose id is the config's
    #: ``image_token_id`` / ``image_token_index``; it differs from this one for Gemma3.
    placeholder: str | None = None
    #: The family's documented inference prompt, for checkpoints without a chat template; formatted
    #: with ``image`` (the placeholder) and ``instruction``.
    prompt: str | None = None
    instruction: str = "Free OCR."
    supervised: str = "the target text and eos"
    #: ``token_type_ids`` rule: None (not an input), or "prefix 0, suffix 1" (a prefix-LM forward).
    token_type_ids: str | None = None
    encoder_decoder: bool = False
    vision_parts: tuple[str, ...] = ()
    #: Vision parts that run under ``torch.no_grad()`` inside forward (adapters there never learn).
    no_grad_parts: tuple[str, ...] = ()
    agreements: tuple[Agreement, ...] = ()
    native_since: str | None = None  # the transformers release that ships the model class
    #: Packages the processor needs on transformers 5.x (the Qwen-VL processors build a video processor,
    #: which requires torchvision).
    processor_needs: tuple[str, ...] = ()
    guessed: tuple[str, ...] = field(default=())

    @property
    def task_type(self) -> str:
        return "SEQ_2_SEQ_LM" if self.encoder_decoder else "CAUSAL_LM"

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "architecture": "encoder-decoder" if self.encoder_decoder else "decoder-only",
            "LoRA task type": self.task_type,
            "builder": self.builder,
            "supervised": self.supervised,
            **({"token_type_ids": self.token_type_ids} if self.token_type_ids else {}),
            **({"guessed": ", ".join(self.guessed)} if self.guessed else {}),
        }


QWEN_MERGE = (
    Agreement("merge_size", "vision_config.spatial_merge_size", N_("patches merged per side")),
    Agreement("patch_size", "vision_config.patch_size", N_("patch size")),
    Agreement("temporal_patch_size", "vision_config.temporal_patch_size", N_("temporal patch size")),
)
GEMMA_SEQ = (Agreement("image_seq_length", "mm_tokens_per_image", N_("image tokens per image")),)
PALIGEMMA_SEQ = (Agreement("image_seq_length", "text_config.num_image_tokens", N_("image tokens per image")),)
LLAVA_PATCH = (Agreement("patch_size", "vision_config.patch_size", N_("patch size")),)

FAMILIES: tuple[Family, ...] = (
    Family("deepseek-ocr-v1", ("DeepseekOCR",), V1_BUILDER, placeholder="<image>",
           prompt="<image>\n{instruction}", vision_parts=("sam_model", "vision_model", "projector"),
           no_grad_parts=("sam_model", "vision_model", "projector")),
    Family("deepseek-ocr-2", ("deepseek_ocr2",), OCR2_BUILDER, placeholder="<image>",
           prompt="<image>\n{instruction}", vision_parts=("sam_model", "qwen2_model", "projector")),
    Family("qwen2-vl", ("qwen2_vl",), PROCESSOR_BUILDER, placeholder="<|image_pad|>",
           supervised="the target text and <|im_end|>", vision_parts=("visual",), agreements=QWEN_MERGE,
           native_since="4.45.0", processor_needs=("torchvision",)),
    Family("qwen2.5-vl", ("qwen2_5_vl",), PROCESSOR_BUILDER, placeholder="<|image_pad|>",
           supervised="the target text and <|im_end|>", vision_parts=("visual",), agreements=QWEN_MERGE,
           native_since="4.49.0", processor_needs=("torchvision",)),
    Family("qwen3-vl", ("qwen3_vl", "qwen3_vl_moe"), PROCESSOR_BUILDER,
           placeholder="<|image_pad|>", supervised="the target text and <|im_end|>",
           vision_parts=("visual",), agreements=QWEN_MERGE[:2], native_since="4.57.0", processor_needs=("torchvision",)),
    # GOT's processor expands <imgpad> into its slots; inference wraps them in <img>...</img> and asks " OCR: ".
    Family("got-ocr2", ("got_ocr2",), PROCESSOR_BUILDER, placeholder="<imgpad>",
           prompt="<|im_start|>system\nYou should follow the instructions carefully and explain your answers in "
                  "detail.<|im_end|><|im_start|>user\n<img>{image}</img>\n OCR: <|im_end|><|im_start|>assistant\n",
           instruction="OCR: ", supervised="the target text and <|im_end|>",
           vision_parts=("vision_tower", "multi_modal_projector"), native_since="4.50.0"),
    # PaliGemma: <image>xN<bos>{prefix}\n{suffix}<eos>; the prefix attends both ways (type 0), the
    # suffix causally (type 1): the target must go in as the processor's suffix.
    Family("paligemma", ("paligemma",), SUFFIX_BUILDER, placeholder="<image>", prompt="{image}ocr",
           instruction="ocr", supervised="the suffix (target text) and <eos>", token_type_ids="prefix 0, suffix 1",
           vision_parts=("vision_tower", "multi_modal_projector"), agreements=PALIGEMMA_SEQ, native_since="4.41.0"),
    Family("gemma3", ("gemma3",), PROCESSOR_BUILDER, placeholder="<start_of_image>",
           supervised="the target text and <end_of_turn>", vision_parts=("vision_tower", "multi_modal_projector"),
           agreements=GEMMA_SEQ, native_since="4.50.0"),
    Family("idefics3", ("idefics3", "smolvlm"), PROCESSOR_BUILDER, placeholder="<image>",
           supervised="the target text and <end_of_utterance>", vision_parts=("vision_model", "connector"),
           native_since="4.46.0"),
    Family("llava", ("llava", "llava_next", "llava_onevision"), PROCESSOR_BUILDER, placeholder="<image>",
           prompt="USER: {image}\n{instruction} ASSISTANT:", vision_parts=("vision_tower", "multi_modal_projector"),
           agreements=LLAVA_PATCH, native_since="4.36.0"),
    Family("florence-2", ("florence2",), SEQ2SEQ_BUILDER, placeholder=None, prompt="<OCR>", instruction="<OCR>",
           supervised="the target text (decoder labels) and </s>", encoder_decoder=True,
           vision_parts=("vision_tower", "multi_modal_projector"), native_since="5.0.0"),
)

GENERIC = Family("generic", (), PROCESSOR_BUILDER, vision_parts=("vision_tower", "vision_model", "visual"),
                 guessed=(N_("image token: the processor's `image_token`, else `<image>`"),
                          N_("prompt: the chat template, else `<image>\\nFree OCR. `"),
                          N_("supervised: the target text and eos"),
                          N_("decoder-only (unless config.is_encoder_decoder)")))

BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}


def family_of(model_type: str | None) -> Family:
    """The record for a ``model_type``; :data:`GENERIC` for one no record lists."""
    return BY_MODEL_TYPE.get(model_type or "", GENERIC)


def family_for(config: Any) -> Family:
    """The record for a config (object or config.json mapping); the generic record for an
    encoder-decoder config of an unknown family says so."""
    fam = family_of(_get(config, "model_type"))
    if fam is GENERIC and bool(_get(config, "is_encoder_decoder")):
        return Family("generic", (), SEQ2SEQ_BUILDER, encoder_decoder=True, guessed=GENERIC.guessed[:3])
    return fam


def guessed_rules(model_type: str | None) -> tuple[str, ...]:
    return family_of(model_type).guessed


def config_image_token_id(config: Any) -> tuple[int | None, str | None]:
    """The id the model replaces with visual features, and which config field said it."""
    for name in ("image_token_id", "image_token_index"):
        value = _get(config, name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, f"config.{name}"
    return None, None


def image_token(config: Any, processor: Any = None, tokenizer: Any = None,
                saved: Mapping[str, Any] | None = None) -> tuple[str | None, str]:
    """The model's image slot token and where it was found: the token whose id is the config's
    ``image_token_id`` (what the model fills), else the processor's ``image_token`` (most
    processors set it in ``__init__`` and never save it), else the saved processor config, else
    the tokenizer's. ``(None, why)`` when nothing names it."""
    tokenizer = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
    token_id, source = config_image_token_id(config)
    if token_id is not None and tokenizer is not None:
        text = tokenizer.convert_ids_to_tokens(token_id)
        if text is not None:
            return str(text), f"{source} = {token_id}"
    for value, where in ((getattr(processor, "image_token", None), f"{type(processor).__name__}.image_token"),
                         ((saved or {}).get("image_token"), "processor_config.json image_token"),
                         (getattr(tokenizer, "image_token", None), "tokenizer.image_token")):
        if value:
            return str(getattr(value, "content", value)), where
    return None, "neither config.json, the processor nor the tokenizer names an image token"


def setting(obj: Any, dotted: str) -> Any:
    """``vision_config.patch_size`` on a config object or mapping; None where any step is missing."""
    for part in dotted.split("."):
        obj = _get(obj, part)
        if obj is None:
            return None
    return obj


def processor_setting(processor: Any, name: str) -> Any:
    for holder in (processor, getattr(processor, "image_processor", None)):
        value = getattr(holder, name, None) if holder is not None else None
        if value is not None:
            return value
    return None


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
