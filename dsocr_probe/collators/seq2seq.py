"""Batch builder for encoder-decoder OCR models (Florence-2): the task prompt goes to the encoder
with the page, the target to the decoder as labels.

The processor makes the encoder's side exactly as for inference (the page's image tokens and the
task prompt, e.g. ``<OCR>``, which Florence-2's processor expands into its question). The target is
tokenized on its own, ending with eos; the model shifts the labels right into its decoder input,
so the decoder learns each token from the ones before it. Padding in the labels is -100.

    builder = Seq2SeqCollator(AutoProcessor.from_pretrained(path))
    batch = builder([{"image": "page.png", "text": "target"}])   # input_ids, pixel_values, attention_mask, labels
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..messages import N_
from .base import (IGNORE_INDEX, BadExample, BatchBuilder, Problem, check_labels, example_image, example_text, open_rgb,
                   problem)
from .processor import PIXEL_PREFIX, _positive_int, processor_tokenizer, torch_dtype

TASK_PROMPT = "<OCR>"


class Seq2SeqCollator(BatchBuilder):
    """Builder for processors called as ``processor(images=..., text=task_prompt)`` whose model is an
    encoder-decoder. ``prompt`` (or the family's ``task_prompt``) is the encoder's text."""

    family = "encoder-decoder"

    def __init__(self, processor: Any, *, prompt: str | None = None, task_prompt: str | None = None,
                 max_length: int | None = None, dtype: Any = "float32", image_token_id: int | None = None):
        self.processor = processor
        self.tokenizer = processor_tokenizer(processor)
        self.prompt = prompt or task_prompt or TASK_PROMPT
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt={self.prompt!r}: the encoder's task prompt must be a non-empty string such as '<OCR>'")
        if self.tokenizer.pad_token_id is None or self.tokenizer.eos_token_id is None:
            raise ValueError(f"{type(self.tokenizer).__name__} needs a pad and an eos token to build decoder labels")
        self.max_length = _positive_int(max_length, "max_length")
        self.dtype = torch_dtype(dtype)
        token = getattr(processor, "image_token", None)
        self.image_token_id = image_token_id if image_token_id is not None else (
            self.tokenizer.convert_tokens_to_ids(str(token)) if token else None)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not examples:
            raise ValueError("an empty list of examples: a batch needs at least one")
        images, texts = [], []
        for i, example in enumerate(examples):
            image = example_image(example, i)
            path = str(image) if isinstance(image, (str, os.PathLike)) else None
            texts.append(example_text(example, i, path))
            images.append(open_rgb(image, i))
        try:
            batch = dict(self.processor(images=images, text=[self.prompt] * len(images), padding=True, return_tensors="pt"))
        except Exception as exc:
            raise BadExample(0, N_("the processor rejects the task prompt %(prompt)s: %(type)s: %(error)s"),
                             prompt=repr(self.prompt), type=type(exc).__name__, error=str(exc)) from exc
        target = self.tokenizer(texts, padding=True, return_tensors="pt")
        ids, mask = target["input_ids"], target["attention_mask"]
        if self.tokenizer.eos_token_id not in ids[0][mask[0].bool()].tolist()[-1:]:  # the tokenizer adds no eos
            target = self.tokenizer([t + self.tokenizer.eos_token for t in texts], padding=True, return_tensors="pt")
            ids, mask = target["input_ids"], target["attention_mask"]
        for i, n in enumerate(mask.sum(dim=-1).tolist()):
            if self.max_length is not None and n > self.max_length:
                raise BadExample(i, N_("%(count)d target tokens with eos exceed max_length %(max_length)d; "
                                       "raise max_length or split this page"), count=n, max_length=self.max_length)
        batch["labels"] = ids.masked_fill(mask == 0, IGNORE_INDEX)
        for key, value in batch.items():
            if key.startswith(PIXEL_PREFIX) and isinstance(value, torch.Tensor) and value.is_floating_point():
                batch[key] = value.to(self.dtype)
        return batch

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "processor": type(self.processor).__name__, "encoder prompt": self.prompt,
                "image_token_id": self.image_token_id, "eos_token_id": self.tokenizer.eos_token_id,
                "pad_token_id": self.tokenizer.pad_token_id, "dtype": str(self.dtype).removeprefix("torch."),
                "max_length": self.max_length}

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        labels = batch.get("labels")
        problems = check_labels({"labels": labels})
        ids = batch.get("input_ids")
        if ids is not None and self.image_token_id is not None:
            for i, n in enumerate((ids == self.image_token_id).sum(dim=-1).tolist()):
                if n == 0:
                    problems.append(problem("batch.layout", "no-image-slot", sample=i))
        return problems
