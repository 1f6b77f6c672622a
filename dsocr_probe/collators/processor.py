"""Batch builder for native models whose processor takes ``images`` and ``text``.

The processor does exactly what it does for inference (pixels, image-slot expansion, chat
format, padding); this builder adds what training needs on top: the target text and eos after
the prompt, and labels that supervise only those. Prompt and target go through the processor
as one text, so any family's own formatting is kept; the prompt's part is found by processing
the prompt alone. The longest common prefix of the two token sequences is masked, so a token
the tokenizer merges across the prompt/target boundary stays supervised instead of shifting
the mask.

    builder = ProcessorCollator(AutoProcessor.from_pretrained(path), max_length=1024)
    batch = builder([{"image": "page.png", "text": "target"}])   # input_ids, pixel_values, ..., labels
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Sequence

from ..messages import M, N_, word
from .base import (IGNORE_INDEX, BadExample, BatchBuilder, Problem, check_labels, example_image, example_text, open_rgb,
                   problem)

INSTRUCTION = "Free OCR."
PIXEL_PREFIX = "pixel_values"
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def _channels_last() -> dict[str, str]:
    """The pages are always RGB PIL images: say so. Left to guess, transformers 4.x takes a page
    of 1 or 3 pixels on a side for channels-first (its shape is ambiguous), makes wrong pixels
    from it alone and fails on a batch that also holds a normal page."""
    from transformers.processing_utils import ImagesKwargs

    return {"input_data_format": "channels_last"} if "input_data_format" in getattr(ImagesKwargs, "__annotations__", {}) else {}


class Row(NamedTuple):
    """One example, checked and decoded."""

    index: int
    path: str | None
    image: Any  # RGB PIL image
    prompt: str
    text: str


class ProcessorCollator(BatchBuilder):
    """Builder for any processor called as ``processor(images=..., text=...)``.

    prompt: the text before the target, holding the processor's image token once; by default
        the processor's chat template applied to an image and "Free OCR.", or
        ``"<image>\\nFree OCR. "`` with the processor's image token when it has no template.
    max_length: longest allowed sequence (prompt, image slots, target, eos); a longer example
        raises BadExample instead of being cut.
    dtype: the dtype of the pixel tensors: the model's dtype (a bf16 batch into an fp32 model fails).
    """

    family = "processor"
    #: How pages reach the processor: "per-sample" (``[[page], [page]]``, what Idefics and Mllama
    #: need) or "flat" (``[page, page]``, all that CLIP-based processors such as LLaVA's take on
    #: transformers 4.x). None: ask the processor once, when the builder is made.
    images_layout: str | None = None

    def __init__(self, processor: Any, *, prompt: str | None = None, max_length: int | None = None, dtype: Any = "float32",
                 image_token_id: int | None = None, documented_prompt: str | None = None,
                 image_token: str | None = None):
        self.processor = processor
        self.tokenizer = processor_tokenizer(processor)
        # The processor's own image token; `image_token` (the family's) where it names none (Qwen2-VL on 4.x).
        self.image_token = token_text(getattr(processor, "image_token", None)) or image_token or "<image>"
        # The slot the model fills: the config's image_token_id where given (Gemma3 prompts with
        # <start_of_image> and fills <image_soft_token>), else the prompt's image token.
        self.image_token_id = image_token_id if image_token_id is not None else self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.documented_prompt = documented_prompt
        if self.tokenizer.pad_token_id is None:
            raise ValueError(
                f"{type(self.tokenizer).__name__} has no pad token, so a batch cannot be padded; "
                "set `processor.tokenizer.pad_token = processor.tokenizer.eos_token` before building."
            )
        if self.tokenizer.eos_token is None:
            raise ValueError(
                f"{type(self.tokenizer).__name__} has no eos token: the model would never learn to stop; "
                "set `processor.tokenizer.eos_token` to the checkpoint's end-of-text token."
            )
        self.prompt = default_prompt(processor, self.image_token, documented_prompt) if prompt is None else prompt
        problem = prompt_problem(self.prompt, self.image_token)
        if problem:
            raise ValueError(f"prompt={self.prompt!r}: {problem}")
        self.max_length = _positive_int(max_length, "max_length")
        self.dtype = torch_dtype(dtype)
        # Some tokenizers append eos themselves; appending another would teach a double stop.
        # A chat model stops at its end-of-turn token (Gemma3's <end_of_turn>), which is what it must learn to emit.
        self.end_of_turn = end_of_turn(processor, self.tokenizer) if prompt is None else None
        stop = self.end_of_turn or self.tokenizer.eos_token
        self._eos_suffix = "" if stop == self.tokenizer.eos_token and _appends_eos(self.tokenizer) else stop
        if self.images_layout is None:
            self.images_layout = self._ask_images_layout()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> "ProcessorCollator":
        """Load the processor saved with the model (a folder or hub id) and build on it."""
        from transformers import AutoProcessor

        return cls(AutoProcessor.from_pretrained(str(path)), **kwargs)

    @classmethod
    def for_model(cls, processor: Any, model: Any, **kwargs: Any) -> "ProcessorCollator":
        """A builder whose pixel dtype is the model's (bf16 pixels into an fp32 model fail, and back)."""
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None) or model.dtype
        return cls(processor, dtype=dtype, **kwargs)

    # -- building -------------------------------------------------------------------------

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not examples:
            raise ValueError("an empty list of examples: a batch needs at least one")
        rows = [self.read(example, i) for i, example in enumerate(examples)]
        batch, prompt_lengths = self.encode(rows)
        self._check_lengths(rows, batch, prompt_lengths)
        batch["labels"] = self._labels(batch, prompt_lengths)
        return self._cast_pixels(batch)

    def read(self, example: Mapping[str, Any], index: int) -> Row:
        """Check one example and decode its image; BadExample names what is wrong with it."""
        image = example_image(example, index)
        path = str(image) if isinstance(image, (str, os.PathLike)) else None
        text = example_text(example, index, path)
        prompt = example.get("prompt")
        if prompt is None:
            prompt = self.prompt
        else:
            problem = prompt_problem_message(prompt, self.image_token)
            if problem:
                raise BadExample(index, N_("'prompt': %(problem)s"), path, problem=problem)
        if self.image_token in text:
            raise BadExample(
                index,
                N_("'text' contains the image token %(token)s, which the processor would expand into image slots; "
                   "remove it from the target"),
                path,
                token=repr(self.image_token),
            )
        return Row(index, path, open_rgb(image, index), prompt, text)

    def images_argument(self, images: list[Any]) -> list[Any]:
        """Images as the processor takes them with one text each."""
        return [[image] for image in images] if self.images_layout == "per-sample" else list(images)

    def _ask_images_layout(self) -> str:
        """The first layout the processor accepts for two blank pages with the prompt. Nesting is
        tried first: a processor that takes both reads it as one page per text, while a flat list
        means "all pages to the first text" to some (Idefics2 on transformers 4.x)."""
        from PIL import Image

        pages = [Image.new("RGB", (64, 64), "white")] * 2
        for layout in ("per-sample", "flat"):
            self.images_layout = layout
            try:
                self.processor(images=self.images_argument(pages), text=[self.prompt] * 2, padding=True,
                               return_tensors="pt", **_channels_last())
            except Exception:  # this layout is refused; the next one may not be
                continue
            return layout
        return "per-sample"  # refused both ways: each batch's own error then names the example

    def _process(self, rows: list[Row], texts: list[str]) -> dict[str, Any]:
        try:
            images = self.images_argument([r.image for r in rows])
            out = self.processor(images=images, text=texts, padding=True, return_tensors="pt", **_channels_last())
        except Exception as exc:  # find the example the processor rejects, so it can be named
            raise self._blame(rows, texts, exc) from exc
        return dict(out)

    def _blame(self, rows: list[Row], texts: list[str], exc: Exception) -> Exception:
        for row, text in zip(rows, texts):
            try:
                self.processor(images=self.images_argument([row.image]), text=[text], return_tensors="pt", **_channels_last())
            except Exception as own:
                return BadExample(row.index, N_("the processor rejects it: %(type)s: %(error)s"), row.path,
                                  type=type(own).__name__, error=str(own))
        return exc

    def encode(self, rows: list[Row]) -> tuple[dict[str, Any], list[int]]:
        """The processor's batch for prompt + target + eos, and per sample how many leading
        tokens belong to the prompt (bos, image slots and prompt text)."""
        batch = self._process(rows, [row.prompt + row.text + self._eos_suffix for row in rows])
        alone = self._process(rows, [row.prompt for row in rows])
        return batch, [common_prefix(real_ids(alone, i), real_ids(batch, i)) for i in range(len(rows))]

    def _check_lengths(self, rows: list[Row], batch: Mapping[str, Any], prompt_lengths: list[int]) -> None:
        if self.max_length is None:
            return
        for i, row in enumerate(rows):
            ids = real_ids(batch, i)
            if len(ids) > self.max_length:
                slots = sum(1 for t in ids if t == self.image_token_id)
                raise BadExample(
                    row.index,
                    N_("%(total)d tokens (%(slots)d image slots, %(prompt_tokens)d prompt tokens in all, "
                       "%(target_tokens)d target tokens with eos) exceed max_length %(max_length)d; "
                       "raise max_length or split this page"),
                    row.path,
                    total=len(ids), slots=slots, prompt_tokens=prompt_lengths[i],
                    target_tokens=len(ids) - prompt_lengths[i], max_length=self.max_length,
                )

    def _labels(self, batch: Mapping[str, Any], prompt_lengths: list[int]):
        ids = batch["input_ids"]
        mask = attention_mask(batch)
        labels = ids.clone()
        for i, n in enumerate(prompt_lengths):
            labels[i, mask[i].nonzero().flatten()[:n]] = IGNORE_INDEX
        labels[mask == 0] = IGNORE_INDEX
        labels[ids == self.image_token_id] = IGNORE_INDEX
        return labels

    def _cast_pixels(self, batch: dict[str, Any]) -> dict[str, Any]:
        for key, value in batch.items():
            if key.startswith(PIXEL_PREFIX) and hasattr(value, "is_floating_point") and value.is_floating_point():
                batch[key] = value.to(self.dtype)
        return batch

    # -- reporting ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {
            **super().describe(),
            "processor": type(self.processor).__name__,
            "prompt": self.prompt,
            "image_token": self.image_token,
            "image_token_id": self.image_token_id,
            "images_layout": self.images_layout,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "end_of_turn": self.end_of_turn,
            "pad_token_id": tok.pad_token_id,
            "padding_side": getattr(tok, "padding_side", None),
            "dtype": str(self.dtype).removeprefix("torch."),
            "max_length": self.max_length,
        }

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        problems = check_labels(batch)
        ids, labels = batch.get("input_ids"), batch.get("labels")
        if ids is None:
            return problems + [problem("batch.layout", "no-input-ids")]
        slots = ids == self.image_token_id
        for i, n in enumerate(slots.sum(dim=-1).tolist()):
            if n == 0:
                problems.append(problem("batch.layout", "no-placeholder-slot", sample=i, token=self.image_token))
        if labels is not None and getattr(labels, "shape", None) == ids.shape:
            on_slots = int(((labels != IGNORE_INDEX) & slots).sum())
            if on_slots:
                problems.append(problem("batch.labels-on-images", "slots", count=on_slots))
        for key, value in batch.items():
            is_pixels = key.startswith(PIXEL_PREFIX) and hasattr(value, "is_floating_point") and value.is_floating_point()
            if is_pixels and value.dtype != self.dtype:
                problems.append(problem("batch.layout", "pixel-dtype-setting", key=key, dtype=str(value.dtype),
                                        builder_dtype=str(self.dtype)))
        return problems


def processor_tokenizer(processor: Any):
    """The processor's tokenizer, or a TypeError when what was passed cannot take images."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or getattr(processor, "image_processor", None) is None:
        raise TypeError(
            f"{type(processor).__name__} is not a multimodal processor (it needs `.tokenizer` and `.image_processor`): "
            "AutoProcessor returns the bare tokenizer for checkpoints whose processor class is not shipped. "
            "For DeepSeek-OCR v1 use DeepseekOCRCollator; otherwise pass the model's processor."
        )
    return tokenizer


def token_text(token: Any) -> str | None:
    """A token's string; some processors (Idefics3 on transformers 4.x) hold ``AddedToken`` objects."""
    if token is None:
        return None
    return str(getattr(token, "content", token))


def default_prompt(processor: Any, image_token: str, documented: str | None = None) -> str:
    """The model's own chat format around one image and the OCR instruction, when it has one; else
    the family's documented inference prompt (``{image}`` marks the image), else a plain one."""
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": INSTRUCTION}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return prompt[0] if isinstance(prompt, list) else prompt
    if documented:
        return documented.format(image=image_token, instruction=INSTRUCTION)
    return f"{image_token}\n{INSTRUCTION} "


def end_of_turn(processor: Any, tokenizer: Any) -> str | None:
    """The special token the chat template closes an assistant turn with, when it has one."""
    if not getattr(processor, "chat_template", None):
        return None
    mark = "Meeting"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": INSTRUCTION}]},
                {"role": "assistant", "content": [{"type": "text", "text": mark}]}]
    try:
        text = processor.apply_chat_template(messages, tokenize=False)
    except Exception:  # a template that refuses an assistant turn: the eos rule stays
        return None
    text = text[0] if isinstance(text, list) else text
    after = text[text.rfind(mark) + len(mark):] if mark in text else ""
    specials = set(getattr(tokenizer, "all_special_tokens", ())) | set(tokenizer.get_added_vocab())
    for token in sorted(specials, key=len, reverse=True):
        if after.lstrip().startswith(token):
            return token
    return None


def prompt_problem(prompt: Any, image_token: str) -> str | None:
    """What is wrong with a prompt, in English (None when nothing is)."""
    problem = prompt_problem_message(prompt, image_token)
    return None if problem is None else word(problem, "en")


def prompt_problem_message(prompt: Any, image_token: str) -> dict[str, Any] | None:
    """What is wrong with a prompt, as a catalog message (None when nothing is)."""
    if not isinstance(prompt, str):
        return M(N_("must be a string, got %(type)s"), type=type(prompt).__name__)
    n = prompt.count(image_token)
    if n != 1:
        return M(N_("must hold the image token %(token)s exactly once (one image per example), found %(count)d"),
                 token=repr(image_token), count=n)
    return None


def torch_dtype(value: Any):
    """A floating torch dtype from a dtype or its name ("bfloat16", "torch.float16", "bf16")."""
    import torch

    if isinstance(value, torch.dtype):
        dtype = value
    else:
        name = str(value).removeprefix("torch.")
        dtype = getattr(torch, DTYPE_ALIASES.get(name, name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype={value!r} is not a floating torch dtype; use float32, bfloat16 or float16 (the model's dtype)")
    return dtype


def attention_mask(batch: Mapping[str, Any]):
    import torch

    mask = batch.get("attention_mask")
    return mask if mask is not None else torch.ones_like(batch["input_ids"])


def real_ids(batch: Mapping[str, Any], i: int) -> list[int]:
    """Sample ``i``'s token ids without padding, on either padding side."""
    return batch["input_ids"][i][attention_mask(batch)[i].bool()].tolist()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _appends_eos(tokenizer: Any) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[-1] == tokenizer.eos_token_id


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer (or None for no limit)")
    return value
