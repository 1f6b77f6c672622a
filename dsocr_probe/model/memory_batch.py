"""The worst batch a training run will see, as rows the batch builder makes it from.

With a dataset: the ``per_device_train_batch_size`` rows with the most image slots and the longest
targets (:func:`dsocr_probe.inputs.samples.largest`, on the page sizes the dataset probe read). Without one:
a page of the size that gives the most image slots the builder's mode allows, and a target that
fills ``max_length`` (the builder's own slot counting decides both), so the forecast is the
longest sample the configuration accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inputs import samples as samples_mod
from ..messages import M, N_
from ..inputs.dataset import Row

# Page sides tried for the most image slots: every crop grid up to 6 tiles a side at 512-768 px tiles.
SIDES = (256, 512, 640, 768, 1024, 1280, 1536, 1920, 2048, 2560, 3072, 3840, 4608)
DEFAULT_TARGET = 512  # target tokens assumed when the builder has no max_length to fill
MIN_TARGET = 16  # the shortest target a worst-case sample keeps beside its image slots
WORDS = "page text line of the handwritten scan with numbers 1234 and names".split()


@dataclass
class WorstCase:
    rows: list[Row]  # one per sample of the batch
    source: dict  # where the rows come from, for the report (a message)
    slots: int | None  # bos, prompt and image slots per sample (None: only the processor knows)
    target: int | None  # target tokens per sample (with eos)

    @property
    def tokens(self) -> int | None:
        return None if self.slots is None or self.target is None else self.slots + self.target


def from_dataset(rows: list[Row], facts: Any, builder: Any, tokenizer: Any, batch: int) -> WorstCase | None:
    """The ``batch`` largest rows (repeated when the split has fewer), or None without usable rows."""
    measured = samples_mod.measure(rows, facts, builder, tokenizer)
    if not measured:
        return None
    chosen = sorted(samples_mod.largest(measured, batch), key=lambda s: s.total or 0, reverse=True)
    chosen = (chosen * batch)[:batch]  # largest first, so a smaller batch of the same rows is its worst
    worst = max(chosen, key=lambda s: s.total or 0)
    names = ", ".join(f"#{s.row.index} {s.row.image.name}" for s in chosen[:4]) + (" ..." if len(chosen) > 4 else "")
    return WorstCase([s.row for s in chosen], M(N_("the split's largest rows: %(rows)s"), rows=names), worst.before,
                     worst.target)


def largest_page(builder: Any, limit: int | None = None) -> tuple[tuple[int, int], int | None]:
    """The page size (width, height) with the most tokens before the target, by the builder's own count
    (at most ``limit``, so a target still fits within max_length)."""
    best, most = (SIDES[4], int(SIDES[4] * 1.414)), None
    if not hasattr(builder, "tokens_before_target"):
        return best, None
    for width in SIDES:
        for height in SIDES:
            try:
                n = builder.tokens_before_target(width, height)
            except Exception:
                n = None
            if n is not None and (limit is None or n <= limit) and (most is None or n > most or (n == most and width * height < best[0] * best[1])):
                best, most = (width, height), n
    return best, most


def synthesized(folder: Path, builder: Any, tokenizer: Any, batch: int) -> WorstCase:
    """A blank page with the most image slots and a target filling the builder's max_length, written to
    ``folder``; ``batch`` copies."""
    from PIL import Image

    max_length = getattr(builder, "max_length", None)
    size, before = largest_page(builder, max_length - MIN_TARGET if max_length else None)
    wanted = max(1, max_length - (before or 0)) if max_length else DEFAULT_TARGET
    text = text_of(tokenizer, wanted)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"worst-page-{size[0]}x{size[1]}.png"
    if not path.exists():
        Image.new("RGB", size, (255, 255, 255)).save(path)
    row = Row("train", 0, path, text)
    got = samples_mod.target_tokens(tokenizer, text)
    if max_length:
        how = M(N_("no dataset: a %(width)dx%(height)d page (the most image slots the mode gives within max_length) "
                   "and a target of %(tokens)d tokens (filling max_length %(max_length)d)"),
                width=size[0], height=size[1], tokens=got, max_length=max_length)
    else:
        how = M(N_("no dataset: a %(width)dx%(height)d page (the most image slots the mode gives) and a target of "
                   "%(tokens)d tokens (no max_length: an assumed long page)"), width=size[0], height=size[1], tokens=got)
    return WorstCase([row] * batch, how, before, got)


def with_target(rows: list[Row], tokenizer: Any, tokens: int) -> list[Row]:
    """The same pages with targets of about ``tokens`` tokens (a shorter max_length's longest sample)."""
    text = text_of(tokenizer, tokens)
    return [Row(r.split, r.index, r.image, text) for r in rows]


def text_of(tokenizer: Any, tokens: int) -> str:
    """A text of about ``tokens`` tokens with eos (never more), by bisection on the word count."""
    def words(n: int) -> str:
        return " ".join(WORDS[i % len(WORDS)] for i in range(n))

    low, high = 1, max(2, tokens * 2)
    while low < high:
        mid = (low + high + 1) // 2
        if samples_mod.target_tokens(tokenizer, words(mid)) <= tokens:
            low = mid
        else:
            high = mid - 1
    return words(low)
