"""bitsandbytes 4/8-bit loading from the training config's model section, checked without weights.

bitsandbytes swaps every ``nn.Linear`` that ``llm_int8_skip_modules`` does not name for a
quantized layer, vision encoders and projector included; which names count as skipped is the
installed transformers' own rule (it changed in 5.x), so this module asks it where it can.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

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


def skip_modules_keeping(roots: list[str], skip_modules: list[str]) -> list[str]:
    """``llm_int8_skip_modules`` that keep the vision ``roots`` and lm_head in full precision, the entries
    already there kept."""
    keep = [*roots, *[s for s in skip_modules if s not in roots]]
    return keep if "lm_head" in keep else [*keep, "lm_head"]


def vision_prefixes(names: list[str]) -> list[str]:
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
