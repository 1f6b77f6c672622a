"""Batch builder for prefix-LM families (PaliGemma): the target goes in as the processor's ``suffix``.

PaliGemma's forward attends both ways across every position whose ``token_type_ids`` is 0 (the
image and the prefix) and causally from the suffix (type 1). Its processor lays a sample out as
``<image>×N<bos>{prefix}\\n{suffix}<eos>`` and marks the suffix with type 1 only when the target is
passed as ``suffix``; passed inside ``text`` it would be type 0, so each target position would see
the tokens after it. Labels supervise exactly the type-1 tokens (the target and eos).

    builder = SuffixCollator(AutoProcessor.from_pretrained(path))
    batch = builder([{"image": "page.png", "text": "target"}])   # input_ids, token_type_ids, pixel_values, labels
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .base import IGNORE_INDEX, Problem, problem
from .processor import ProcessorCollator, Row, attention_mask

PREFIX, SUFFIX = 0, 1


class SuffixCollator(ProcessorCollator):
    """:class:`ProcessorCollator` for processors that take the target as ``suffix`` and return
    ``token_type_ids`` (prefix 0, suffix 1). ``prompt`` is the prefix, holding the image token once."""

    family = "prefix-lm"

    def encode(self, rows: list[Row]) -> tuple[dict[str, Any], list[int]]:
        # The prefix goes in without the image token: the processor then lays out <image>xN<bos>{prefix}\n
        # and appends eos to the suffix itself (transformers 4.x does neither for a text that holds <image>).
        prefixes = [r.prompt.replace(self.image_token, "") for r in rows]
        quiet = logging.getLogger(type(self.processor).__module__)
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its advice to put <image> in the text is for inference prompts
        try:
            images = self.images_argument([r.image for r in rows])
            batch = dict(self.processor(images=images, text=prefixes, suffix=[r.text for r in rows],
                                        padding=True, return_tensors="pt"))
        except Exception as exc:
            raise self._blame(rows, [r.prompt for r in rows], exc) from exc
        finally:
            quiet.setLevel(level)
        types = batch.get("token_type_ids")
        if types is None:
            raise TypeError(f"{type(self.processor).__name__} returns no token_type_ids for a suffix: "
                            "it is not a prefix-LM processor; use ProcessorCollator")
        batch.pop("labels", None)  # the processor's own labels are rebuilt below from the types
        mask = attention_mask(batch)
        return batch, [int(((types[i] == PREFIX) & (mask[i] == 1)).sum()) for i in range(len(rows))]

    def _labels(self, batch: Mapping[str, Any], prompt_lengths: list[int]):
        ids = batch["input_ids"]
        labels = ids.clone()
        labels[batch["token_type_ids"] != SUFFIX] = IGNORE_INDEX
        labels[attention_mask(batch) == 0] = IGNORE_INDEX
        labels[ids == self.image_token_id] = IGNORE_INDEX
        return labels

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "token_type_ids": "prefix (image, bos, prompt) 0, suffix (target, eos) 1"}

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        problems = super().validate(batch)
        types, labels = batch.get("token_type_ids"), batch.get("labels")
        if types is None:
            return problems + [problem("batch.missing-key", "token-type-ids")]
        if labels is not None and getattr(labels, "shape", None) == types.shape:
            on_prefix = int(((labels != IGNORE_INDEX) & (types == PREFIX)).sum())
            if on_prefix:
                problems.append(problem("batch.layout", "labels-on-prefix", count=on_prefix))
        return problems
