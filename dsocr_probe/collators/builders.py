"""``dsocr_probe.builder_for``: the batch builder the probes verify, in one line of a training script.

    from dsocr_probe import builder_for
    collator = builder_for("path/to/model", max_length=1024, dtype="bfloat16")
    Trainer(..., data_collator=collator)

Given a folder (or a loaded processor with ``config=``), the model family is read from the
config's ``model_type`` (see :mod:`dsocr_probe.knowledge.families`) and its builder made on the checkpoint's
own processor (the tokenizer for DeepSeek-OCR v1), with the image token id of the config.
"""

from __future__ import annotations

import os
from typing import Any

from ..knowledge import families
from ..findings import InputError


def builder_for(model_path_or_processor: Any, *, config: Any = None, trust_remote_code: bool = False,
                **settings: Any):
    """The family's builder. ``settings`` are the builder's own (``max_length``, ``prompt``, ``dtype``,
    ``mode`` for v1); ``config`` is the model's config (a PretrainedConfig or config.json mapping),
    read from the folder when a path is given, and needed with a processor object. Settings the builder
    refuses raise :class:`~dsocr_probe.findings.InputError` (``loading.builder``), whose message says why."""
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    if isinstance(model_path_or_processor, (str, os.PathLike)):
        path = str(model_path_or_processor)
        config = config if config is not None else AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        loader = AutoTokenizer if families.family_for(config).builder == families.V1_BUILDER else AutoProcessor
        processor = loader.from_pretrained(path, trust_remote_code=trust_remote_code)
    else:
        processor = model_path_or_processor
        if config is None:
            raise TypeError("builder_for(processor) needs the model's config: pass `config=model.config` "
                            "(or give the model folder instead of the processor)")
    return make_builder(config, processor, **settings)


def make_builder(config: Any, processor: Any, **kwargs: Any):
    """The family's builder on ``processor`` (the tokenizer for v1), from the model's config; a
    setting the builder refuses raises an InputError ``loading.builder``."""
    from .. import collators

    fam = families.family_for(config)
    if fam.builder != families.V1_BUILDER:
        kwargs.pop("mode", None)
    if fam.builder in (families.PROCESSOR_BUILDER, families.SUFFIX_BUILDER):
        token_id, _ = families.config_image_token_id(config)
        kwargs.setdefault("image_token_id", token_id)
        kwargs.setdefault("documented_prompt", fam.prompt)
        kwargs.setdefault("image_token", fam.placeholder)
    if fam.builder == families.SEQ2SEQ_BUILDER:
        kwargs.setdefault("task_prompt", fam.prompt)
    try:
        return getattr(collators, fam.builder)(processor, **kwargs)
    except (ValueError, TypeError) as exc:
        raise InputError("loading.builder", family=fam.name, error=str(exc)) from exc
