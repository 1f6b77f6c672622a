"""What every batch builder promises, so the probes can verify any of them the same way.

A builder is a picklable top-level object (DataLoader workers under spawn pickle it) that
turns a list of examples into the dict of tensors the model's ``forward`` takes:

    builder = SomeCollator(tokenizer, ...)
    batch = builder([{"image": "page.png", "text": "target text"}, ...])
    Trainer(..., data_collator=builder)

Examples are mappings with ``image`` (a path or a PIL image; ``image_path`` is accepted as
the seed datasets name it), ``text`` (the target) and an optional ``prompt``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..messages import M, N_, render_text, word

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch, as a validator finds it: the finding code it is reported as, the
    variant of that code's text and the values it is worded with (the words are in the message catalog)."""

    code: str
    variant: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return render_text(self.code, self.variant, self.params).title


def problem(code: str, variant: str = "", **params: Any) -> Problem:
    return Problem(code, variant, params)


class BadExample(ValueError):
    """One example a builder cannot turn into tensors; names it so it can be fixed, never dropped.

    ``reason`` is a msgid (marked with ``N_``) that ``params`` fill; a param may itself be a message (``M``).
    ``str()`` and the ``reason`` attribute are the English words (what a training script prints);
    ``message`` is the whole message as a catalog message, which a finding carries so that the report
    words it in its own language."""

    def __init__(self, index: int, reason: str, path: str | None = None, **params: Any):
        self.index = index
        self.path = path
        self.msgid = reason
        self.params = params
        self.reason = word(M(reason, **params), "en") if params else reason
        where = f"example {index}" + (f" ({path})" if path else "")
        super().__init__(f"{where}: {self.reason}")

    @property
    def reason_message(self) -> dict[str, Any]:
        """Why the example is refused, as a catalog message."""
        return M(self.msgid, **self.params)

    @property
    def message(self) -> dict[str, Any]:
        """The whole message (which example, and why) as a catalog message."""
        if self.path:
            return M(N_("example %(index)d (%(path)s): %(reason)s"), index=self.index, path=self.path,
                     reason=self.reason_message)
        return M(N_("example %(index)d: %(reason)s"), index=self.index, reason=self.reason_message)

    def __reduce__(self):  # pickled whole: the default would call BadExample(str(self)), which fails
        return _bad_example, (self.index, self.msgid, self.path, self.params)


def _bad_example(index: int, reason: str, path: str | None, params: Mapping[str, Any]) -> BadExample:
    return BadExample(index, reason, path, **params)


class BatchBuilder:
    """Base class of the builders: the protocol plus the checks every family shares."""

    #: short family name shown in the report ("deepseek-ocr-v1", ...)
    family: str = "generic"

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts for the report: family, mode, ids, dtype, padding side."""
        return {"family": self.family, "class": f"{type(self).__module__}.{type(self).__qualname__}"}

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        """Problems with a batch this builder made (empty when it is sound)."""
        return check_labels(batch)

    def tokens_before_target(self, width: int, height: int, prompt: str | None = None) -> int | None:
        """Tokens a sample with a ``width x height`` page needs before its target (bos, prompt and
        image slots), or None when that is only known by running the processor."""
        return None


def example_image(example: Mapping[str, Any], index: int) -> Any:
    """The example's image (path or PIL image), or a BadExample naming what is wrong."""
    if not isinstance(example, Mapping):
        raise BadExample(index, N_("expected a mapping with 'image' and 'text', got %(type)s"), type=type(example).__name__)
    image = example.get("image", example.get("image_path"))
    if image is None:
        raise BadExample(index, N_("no 'image' (or 'image_path') key"))
    return image


def example_text(example: Mapping[str, Any], index: int, path: str | None = None) -> str:
    text = example.get("text")
    if not isinstance(text, str):
        raise BadExample(index, N_("'text' must be a string, got %(type)s"), path, type=type(text).__name__)
    if not text.strip():
        raise BadExample(index, N_("'text' is empty: nothing to learn from this example"), path)
    return text


@contextlib.contextmanager
def bombs_refused():
    """Between PIL's pixel limit and twice that, PIL only warns: a bomb is still a bomb. The dataset
    probe and the builders refuse the same files."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_rgb(image: Any, index: int):
    """Decode an image to RGB, or raise BadExample with the path and the decoder's reason."""
    from PIL import Image, ImageOps

    path = str(image) if isinstance(image, (str, Path)) else None
    try:
        if path is not None:
            with bombs_refused(), Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                return _to_rgb(im)
        if isinstance(image, Image.Image):
            return _to_rgb(image)
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning, SyntaxError, EOFError) as exc:
        raise BadExample(index, N_("cannot decode image: %(type)s: %(error)s"), path, type=type(exc).__name__,
                         error=str(exc)) from exc
    raise BadExample(index, N_("'image' must be a path or a PIL image, got %(type)s"), type=type(image).__name__)


def _to_rgb(im):
    if im.mode == "RGB":
        im.load()
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Flatten transparency onto white paper, the way a scan looks.
        from PIL import Image

        rgba = im.convert("RGBA")
        paper = Image.new("RGB", rgba.size, (255, 255, 255))
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit-depth scans: scale to 8 bits instead of clipping to white.
        import numpy as np
        from PIL import Image

        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype("uint8"), "L").convert("RGB")
    return im.convert("RGB")


def check_labels(batch: Mapping[str, Any]) -> list[Problem]:
    """Shared label checks: at least one supervised token per sample, none on padding."""
    import torch

    problems = []
    labels = batch.get("labels")
    if labels is None:
        return [problem("batch.layout", "no-labels")]
    if not isinstance(labels, torch.Tensor):
        return [problem("batch.layout", "labels-not-tensor", type=type(labels).__name__)]
    supervised = (labels != IGNORE_INDEX).sum(dim=-1)
    for i, n in enumerate(supervised.tolist()):
        if n == 0:
            problems.append(problem("batch.no-target", sample=i))
    mask = batch.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.shape == labels.shape:
        on_padding = int(((mask == 0) & (labels != IGNORE_INDEX)).sum().item())
        if on_padding:
            problems.append(problem("batch.padding", "labels", count=on_padding))
    return problems


def labels_on_image_tokens(batch, token_id: int) -> list[Problem]:
    """Supervised labels where input_ids hold the model's image token (a slot a visual feature overwrites)."""
    import torch

    ids, labels = batch.get("input_ids"), batch.get("labels")
    if not isinstance(ids, torch.Tensor) or not isinstance(labels, torch.Tensor) or ids.shape != labels.shape:
        return []
    n = int(((ids == token_id) & (labels != IGNORE_INDEX)).sum())
    return [problem("batch.labels-on-images", "token", count=n, token_id=token_id)] if n else []


def labels_on_prompt(batch, token_id: int) -> list[Problem]:
    """Supervised labels up to a sample's last image slot: that is the prompt (the image comes inside
    it), which the model is given at inference and must not be taught to write. Position 0 is never a
    target (the loss shifts it away)."""
    import torch

    ids, labels = batch.get("input_ids"), batch.get("labels")
    if not isinstance(ids, torch.Tensor) or not isinstance(labels, torch.Tensor) or ids.shape != labels.shape:
        return []
    problems = []
    for i in range(ids.shape[0]):
        slots = (ids[i] == token_id).nonzero().flatten()
        if not len(slots):
            continue
        prompt = labels[i, 1: int(slots[-1]) + 1]
        n = int(((prompt != IGNORE_INDEX) & (ids[i, 1: int(slots[-1]) + 1] != token_id)).sum())
        if n:
            problems.append(problem("batch.labels-on-prompt", sample=i, count=n))
    return problems
