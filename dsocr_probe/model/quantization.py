"""bitsandbytes 4/8-bit loading from the training config's model section, checked without weights.

bitsandbytes swaps every ``nn.Linear`` that ``llm_int8_skip_modules`` does not name for a
quantized layer, vision encoders and projector included; which names count as skipped is the
installed transformers' own rule (it changed in 5.x), so this module asks it where it can.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..findings import Finding, ProbeStop, fail, warn
from .lora import VISION_PARTS, is_vision_module


def settings(model_section: Mapping[str, Any]) -> tuple[int, list[str]] | None:
    """(bits, llm_int8_skip_modules) when the model section loads in 4 or 8 bits, else None."""
    q = model_section.get("quantization_config")
    q = q if isinstance(q, Mapping) else {}
    for bits in (4, 8):
        key = f"load_in_{bits}bit"
        if q.get(key) or model_section.get(key):
            skip = q.get("llm_int8_skip_modules") or model_section.get("llm_int8_skip_modules") or []
            return bits, [skip] if isinstance(skip, str) else [str(s) for s in skip]
    return None


def is_skipped(name: str, skip_modules: list[str]) -> bool:
    """Whether transformers leaves the module ``name`` unquantized for these skip entries."""
    try:  # transformers >= 5: prefix at a module boundary, regex, or suffix
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:
        should_convert_module = None
    if should_convert_module is not None:
        return not should_convert_module(name, skip_modules)
    # transformers 4.x (replace_with_bnb_linear): the module's own name, or a dotted part of its path
    last = name.rsplit(".", 1)[-1]
    return any(key == last or key == name or key + "." in name for key in skip_modules)


def quantized_vision(linear_names: Iterable[str], skip_modules: list[str]) -> list[str]:
    """The vision-side linear layers bitsandbytes would quantize."""
    return [n for n in linear_names if is_vision_module(n) and not is_skipped(n, skip_modules)]


def check(ctx, model_section: Mapping[str, Any]) -> Iterable[Finding]:
    found = settings(model_section)
    if found is None:
        return
    bits, skip = found
    if ctx.facts.version("bitsandbytes") is None:
        yield fail(
            "train_config.quantization-no-bitsandbytes",
            f"The model section loads in {bits} bits, but bitsandbytes is not installed",
            detail="`from_pretrained` with a bitsandbytes config raises an ImportError before any weight loads.",
            fix="`pip install bitsandbytes` (a CUDA machine), or drop the 4/8-bit settings.",
            params={"bits": bits},
        )
    try:
        names = ctx.skeleton().linear_names
    except ProbeStop:
        return  # the model API probe says why the model cannot be built
    vision = quantized_vision(names, skip)
    if not vision:
        return
    roots = _vision_prefixes(vision)
    keep = [*roots, *[s for s in skip if s not in roots]]
    keep += [] if "lm_head" in keep else ["lm_head"]
    yield warn(
        "train_config.quantized-vision",
        f"{bits}-bit loading would quantize {len(vision)} linear layers of the vision side ({', '.join(roots)})",
        detail="bitsandbytes replaces every nn.Linear that `llm_int8_skip_modules` does not name; the image "
        f"encoders and the projector would then read pages through {bits}-bit weights, which costs OCR accuracy "
        "that LoRA on the language model cannot win back.",
        fix=f"Keep the vision side in full precision: `quantization_config.llm_int8_skip_modules: [{', '.join(keep)}]`.",
        evidence={"quantized vision layers": len(vision), "e.g.": vision[0], "llm_int8_skip_modules": skip or "none"},
        params={"bits": bits, "count": len(vision), "roots": ", ".join(roots), "keep": ", ".join(keep)},
    )


def _vision_prefixes(names: list[str]) -> list[str]:
    """Each vision module's path up to the part that marks it (``model.sam_model``): a skip entry
    both the 4.x rule (dotted part) and the 5.x rule (prefix at a module boundary) honour."""
    prefixes: list[str] = []
    for n in names:
        parts = n.split(".")
        i = next(i for i, p in enumerate(parts) if p in VISION_PARTS or p.startswith("vision"))
        prefix = ".".join(parts[: i + 1])
        if prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes
