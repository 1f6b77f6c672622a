"""The batch builder for DeepSeek-OCR v1 (remote code), whose processor is only a tokenizer.

    collator = DeepseekOCRCollator(tokenizer, mode="gundam", dtype=torch.bfloat16)
    batch = collator([{"image": "page.png", "text": "the page's text"}])
    model(**batch).loss

Each sample becomes: bos, the prompt with its ``<image>`` expanded into the image slots of the
official layout, the target and eos. Only the target and eos are supervised. Ids come from the
tokenizer; pixels come in the model's dtype, because bf16 pixels into an fp32 model (or the
reverse) fail at the first convolution.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..messages import N_
from .base import IGNORE_INDEX, BadExample, BatchBuilder, Problem, check_labels, example_text, open_rgb, problem
from .deepseek_ocr_v1_checks import expected_slots, validate_layout
from .deepseek_ocr_v1_images import empty_pair, image_pair
from .deepseek_ocr_v1_layout import MODES, Mode, crop_grid, image_token_count, resolve_mode

__all__ = [
    "DEFAULT_PROMPT",
    "DeepseekOCRCollator",
    "inference_prompt",
    "MODES",
    "Mode",
    "crop_grid",
    "expected_slots",
    "image_token_count",
    "resolve_mode",
    "validate_layout",
]

# The official README writes "<image>\nFree OCR. ", but infer() feeds it stripped (format_messages
# strips every message and the whole prompt): the model never sees the trailing space token.
DEFAULT_PROMPT = "<image>\nFree OCR."
IMAGE_TOKEN = "<image>"  # processor_config.json


def inference_prompt(prompt: str) -> str:
    """The prompt as the official infer() feeds it: the plain conversation format strips each
    message and the joined prompt, so leading and trailing whitespace never reaches the model."""
    return prompt.strip()


class DeepseekOCRCollator(BatchBuilder):
    """Examples ``{image, text, prompt?}`` -> the batch ``DeepseekOCRForCausalLM.forward`` takes.

    mode: "tiny", "small", "base", "large" or "gundam"; base_size / image_size / crop_mode
        override it (mode=None takes all three).
    dtype: the pixel dtype, which must be the model's (see ``for_model``).
    max_length: a sample longer than this is refused, never truncated.
    An example with ``image=None`` is text-only and gets the all-zero image the model skips;
    it needs a prompt without ``<image>`` and cannot be first in a batch.
    """

    family = "deepseek-ocr-v1"

    def __init__(self, tokenizer, mode: str | Mode | None = "gundam", *, base_size: int | None = None,
                 image_size: int | None = None, crop_mode: bool | None = None, dtype: Any = "float32",
                 max_length: int | None = None, prompt: str = DEFAULT_PROMPT, image_token: str = IMAGE_TOKEN):
        self.tokenizer = tokenizer
        self.mode = resolve_mode(mode, base_size=base_size, image_size=image_size, crop_mode=crop_mode)
        self.dtype = _torch_dtype(dtype)
        if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
            raise ValueError(f"max_length={max_length!r}: give a positive number of tokens, or None for no limit")
        self.max_length = max_length
        if not isinstance(prompt, str) or prompt.count(image_token) != 1:
            raise ValueError(f"prompt={prompt!r}: it must contain {image_token!r} exactly once, e.g. {DEFAULT_PROMPT!r}")
        self.prompt_as_written = prompt
        self.prompt = inference_prompt(prompt)
        self.image_token = image_token
        self.image_token_id = _single_token_id(tokenizer, image_token)
        self.bos_token_id = _required_id(tokenizer, "bos_token_id", "the sequence must start with bos")
        self.eos_token_id = _required_id(tokenizer, "eos_token_id", "the target must end with eos")
        self.pad_token_id = _required_id(tokenizer, "pad_token_id", "batches are padded with it")

    @classmethod
    def for_model(cls, tokenizer, model, **kwargs) -> "DeepseekOCRCollator":
        """A builder whose pixel dtype is the model's."""
        return cls(tokenizer, dtype=_model_dtype(model), **kwargs)

    # ------------------------------------------------------------------ building

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not examples:
            raise ValueError("no examples: a batch needs at least one")
        samples = [self._sample(i, ex) for i, ex in enumerate(examples)]
        if samples[0]["pair"] is None and any(s["pair"] is not None for s in samples):
            raise BadExample(0, N_("has no image, but the model decides from the first sample alone whether to run the "
                                   "vision path: put an example with an image first in every batch"))
        length = max(len(s["ids"]) for s in samples)
        b = len(samples)
        input_ids = torch.full((b, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((b, length), dtype=torch.long)
        labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
        seq_mask = torch.zeros((b, length), dtype=torch.bool)
        images, crops = [], []
        for i, s in enumerate(samples):
            n = len(s["ids"])
            input_ids[i, :n] = torch.tensor(s["ids"], dtype=torch.long)
            attention_mask[i, :n] = 1
            labels[i, :n] = torch.tensor(s["labels"], dtype=torch.long)
            seq_mask[i, :n] = torch.tensor(s["image_mask"], dtype=torch.bool)
            patches, view, grid = s["pair"] if s["pair"] is not None else empty_pair(self.mode, self.dtype)
            images.append((patches, view))
            crops.append(list(grid))
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "images": images,
            "images_seq_mask": seq_mask,
            "images_spatial_crop": torch.tensor(crops, dtype=torch.long),
        }

    def _sample(self, index: int, example: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(example, Mapping):
            raise BadExample(index, N_("expected a mapping with 'image' and 'text', got %(type)s"),
                             type=type(example).__name__)
        if "image" not in example and "image_path" not in example:
            raise BadExample(index, N_("no 'image' (or 'image_path') key; give image=None for a text-only example"))
        source = example.get("image", example.get("image_path"))
        path = str(source) if isinstance(source, (str, os.PathLike)) else None
        text = example_text(example, index, path)
        if self.image_token in text:
            raise BadExample(index, N_("the target text contains %(token)s, which the tokenizer turns into the image "
                                       "token: remove it from the text"), path, token=repr(self.image_token))
        prompt = example.get("prompt", self.prompt)
        if not isinstance(prompt, str):
            raise BadExample(index, N_("'prompt' must be a string, got %(type)s"), path, type=type(prompt).__name__)
        prompt = inference_prompt(prompt)
        pair, slots = self._image(index, source, prompt, path)
        sample = self._tokens(prompt, slots, text)
        if self.max_length is not None and len(sample["ids"]) > self.max_length:
            raise BadExample(
                index,
                N_("needs %(total)d tokens (%(prompt_tokens)d for bos, prompt and %(slots)d image slots + "
                   "%(target_tokens)d for the target and eos) but max_length=%(max_length)d; "
                   "raise max_length or use a mode with fewer image slots — the builder never truncates a target"),
                path,
                total=len(sample["ids"]), prompt_tokens=sample["prompt_len"], slots=slots,
                target_tokens=len(sample["ids"]) - sample["prompt_len"], max_length=self.max_length,
            )
        return {**sample, "pair": pair}

    def _image(self, index: int, source, prompt: str, path: str | None):
        """The sample's (patches, global_view, grid) and its image-slot count; (None, 0) for text-only."""
        placeholders = prompt.count(self.image_token)
        if source is None:
            if placeholders:
                raise BadExample(index, N_("has no image but its prompt %(prompt)s has %(token)s: "
                                           "give it a 'prompt' without the placeholder, or an image"),
                                 prompt=repr(prompt), token=repr(self.image_token))
            return None, 0
        if placeholders != 1:
            raise BadExample(index, N_("its prompt %(prompt)s has %(count)d %(token)s placeholders; "
                                       "this model takes exactly one image per sample, so use exactly one"), path,
                             prompt=repr(prompt), count=placeholders, token=repr(self.image_token))
        image = open_rgb(source, index)
        return image_pair(image, self.mode, self.dtype), image_token_count(image.width, image.height, self.mode)

    def _tokens(self, prompt: str, slots: int, text: str) -> dict[str, Any]:
        """bos + prompt pieces around the image slots + target + eos; labels only on target and eos."""
        ids, image_mask = [self.bos_token_id], [False]
        for k, piece in enumerate(prompt.split(self.image_token)):
            if k:
                ids += [self.image_token_id] * slots
                image_mask += [True] * slots
            piece_ids = self._encode(piece)
            ids += piece_ids
            image_mask += [False] * len(piece_ids)
        prompt_len = len(ids)
        target = self._encode(text) + [self.eos_token_id]
        return {
            "ids": ids + target,
            "labels": [IGNORE_INDEX] * prompt_len + target,
            "image_mask": image_mask + [False] * len(target),
            "prompt_len": prompt_len,
        }

    def tokens_before_target(self, width: int, height: int, prompt: str | None = None) -> int:
        prompt = self.prompt if prompt is None else inference_prompt(prompt)
        return self._tokens(prompt, image_token_count(width, height, self.mode), "")["prompt_len"]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    # ------------------------------------------------------------------ describing and checking

    def describe(self) -> dict[str, Any]:
        m = self.mode
        return {
            **super().describe(),
            "mode": m.name,
            "base_size": m.base_size,
            "image_size": m.image_size,
            "crop_mode": m.crop_mode,
            "pixel dtype": str(self.dtype).replace("torch.", ""),
            "prompt": self.prompt,
            **({"prompt as written": self.prompt_as_written,
                "prompt stripped": "as the official infer() strips it, so training sees what inference feeds"}
               if self.prompt != self.prompt_as_written else {}),
            "image token": f"{self.image_token} = {self.image_token_id}",
            "bos / eos / pad ids": f"{self.bos_token_id} / {self.eos_token_id} / {self.pad_token_id}",
            "padding": "right",
            "max_length": self.max_length,
        }

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        problems = check_labels(batch) + validate_layout(
            batch, bos_token_id=self.bos_token_id, image_token_id=self.image_token_id, pixel_dtype=self.dtype
        )
        for i, pair in enumerate(batch.get("images") or []):
            if isinstance(pair, (list, tuple)) and len(pair) == 2 and hasattr(pair[1], "shape"):
                side = pair[1].shape[-1]
                if pair[1].sum().item() != 0 and side != self.mode.global_size:
                    problems.append(problem("batch.layout", "view-size", index=i, side=int(side),
                                            mode=self.mode.name, size=self.mode.global_size))
        return problems

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode.name!r}, dtype={self.dtype}, max_length={self.max_length})"


def _single_token_id(tokenizer, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == getattr(tokenizer, "unk_token_id", None):
        raise ValueError(f"the tokenizer has no single {token!r} token (it encodes to {ids}): load the model's own tokenizer")
    return int(ids[0])


def _required_id(tokenizer, attribute: str, why: str) -> int:
    value = getattr(tokenizer, attribute, None)
    if value is None:
        name = attribute.replace("_id", "")
        raise ValueError(f"the tokenizer has no {name} ({why}): load the model's own tokenizer or set tokenizer.{name}")
    return int(value)


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    name = str(dtype).replace("torch.", "")
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype={dtype!r}: give the model's floating dtype, e.g. torch.bfloat16 or 'float32'")
    return value


def _model_dtype(model):
    import torch

    dtype = getattr(model, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    raise ValueError("the model has no floating-point parameters to take the pixel dtype from; pass dtype=")
