"""The pieces a LoRA training script needs besides the loaders: the dataset in the form the Trainer
takes, gradient checkpointing's settings, and the Trainer's keyword for the tokenizer or processor.

Everything here is top-level and free of model objects, so DataLoader workers started with
``spawn`` (Windows, macOS) can pickle the dataset and the batch builder.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import torch.utils.data
from packaging.version import Version

# Trainer(processing_class=...) replaced Trainer(tokenizer=...) in 4.46.0; 5.0.0 removed the old name.
PROCESSING_CLASS_SINCE = Version("4.46.0")
# The switch and its arguments under the old and the transformers 5.x name.
CHECKPOINTING = ("gradient_checkpointing", "activation_checkpointing")
CHECKPOINTING_KWARGS = ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")


class ExampleDataset(torch.utils.data.Dataset):
    """Dataset rows as the examples batch builders take: ``{"image": path, "text": target}``.

    Paths stay strings until the builder opens them, so the dataset pickles cheaply and images
    are decoded in the workers, one batch at a time.
    """

    def __init__(self, rows: Iterable[Any]):
        self.examples = [{"image": str(r.image), "text": r.text} for r in rows]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, str]:
        return dict(self.examples[index])


def dataset_for(trainer_cls: type, rows: Iterable[Any]):
    """The training rows in the form the Trainer class takes: TRL's trainers want a ``datasets.Dataset``
    (SFTTrainer refuses anything else); transformers' Trainer takes any torch Dataset."""
    dataset = ExampleDataset(rows)
    if not any(k.__module__.split(".")[0] == "trl" for k in trainer_cls.__mro__):  # a team's subclass of one too
        return dataset
    import datasets

    return datasets.Dataset.from_list(dataset.examples)


def checkpointing_enabled(training: Mapping[str, Any]) -> bool:
    """``gradient_checkpointing: true`` (``activation_checkpointing`` from transformers 5.x)."""
    return any(bool(training.get(name)) for name in CHECKPOINTING)


def checkpointing_kwargs(training: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint function's arguments: the config's, else non-reentrant.

    Reentrant checkpointing gives the adapters inside a checkpointed block no gradient unless
    the block's input requires one, and making the embeddings' output require one breaks models
    that write image features into it in place (DeepSeek-OCR v1: "a view of a leaf Variable
    that requires grad is being used in an in-place operation"). Non-reentrant needs neither.
    """
    for name in CHECKPOINTING_KWARGS:
        value = training.get(name)
        if isinstance(value, str):  # TrainingArguments reads a JSON string too
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if isinstance(value, dict) and value:
            return dict(value)
    return {"use_reentrant": False}


def trainer_processing_kwargs(processing: Any) -> dict[str, Any]:
    """``processing_class=`` on transformers >= 4.46, ``tokenizer=`` before."""
    import transformers

    if Version(transformers.__version__) >= PROCESSING_CLASS_SINCE:
        return {"processing_class": processing}
    return {"tokenizer": processing}
