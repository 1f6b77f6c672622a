"""How large each training sample is: page size, image slots, target tokens.

Only rows whose image the dataset probe accepts are measured (``ctx.image_facts``, read once per
run): a broken row is that probe's finding, and the batch and step probes go on with the rows
that work. Image slots (with bos and prompt) come from the batch builder's layout where it knows
it without the processor; target tokens from the tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..messages import N_
from .dataset import Row


@dataclass
class Sample:
    row: Row
    size: tuple[int, int] | None = None  # width, height from the image header
    before: int | None = None  # bos, prompt and image slots (None: the builder cannot say without the processor)
    target: int | None = None  # target tokens with eos

    @property
    def total(self) -> int | None:
        if self.before is None and self.target is None:
            return None
        return (self.before or 0) + (self.target or 0)

    def describe(self) -> dict[str, Any]:
        return {N_("row"): self.row.index, N_("image"): "/".join(self.row.image.parts[-2:]),
                N_("size"): f"{self.size[0]}x{self.size[1]}" if self.size else "?",
                N_("image slots + prompt"): self.before if self.before is not None else "?",
                N_("target tokens"): self.target if self.target is not None else "?",
                N_("tokens"): self.total if self.total is not None else "?"}


def target_tokens(tokenizer: Any, text: str) -> int:
    """Tokens the target takes in a training sample: its text without special tokens, and eos."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1


def measure(rows: Iterable[Row], facts: Callable[[Any], Any], builder: Any = None, tokenizer: Any = None
            ) -> list[Sample]:
    """Each row whose image ``facts`` accepts, with its page size, image-side tokens and target tokens."""
    out = []
    for row in rows:
        info = facts(row.image)
        if isinstance(info, str):
            continue  # the dataset probe's finding
        _, size, _ = info
        before = None
        if builder is not None and hasattr(builder, "tokens_before_target"):
            try:
                before = builder.tokens_before_target(*size)
            except Exception:
                before = None
        target = None
        if tokenizer is not None:
            try:
                target = target_tokens(tokenizer, row.text)
            except Exception:
                target = None
        out.append(Sample(row, size, before, target))
    return out


def largest(samples: list[Sample], n: int) -> list[Sample]:
    """The ``n`` samples that make the largest batch: most image slots, then the longest target,
    then the largest page (for builders that cannot count slots without the processor)."""
    def weight(s: Sample) -> tuple[int, int, int]:
        area = s.size[0] * s.size[1] if s.size else 0
        return (s.before or 0, s.target or 0, area)

    ranked = sorted(samples, key=weight, reverse=True)
    return sorted(ranked[:max(1, n)], key=lambda s: s.row.index)
