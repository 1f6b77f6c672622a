"""The pieces a LoRA training script needs besides the loaders: a dataset, the model's
preparation, and the Trainer's arguments for the installed transformers.

Everything here is top-level and free of model objects, so DataLoader workers started with
``spawn`` (Windows, macOS) can pickle the dataset and the batch builder.
"""

from __future__ import annotations

import inspect
from pathlib import Path
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
        if training.get(name):
            return dict(training[name])
    return {"use_reentrant": False}


def prepare_for_training(model: Any, training: Mapping[str, Any]) -> Any:
    """Turn on gradient checkpointing the way the Trainer does when the config asks for it.

    Call it on the peft-wrapped model: the Trainer enables checkpointing after wrapping. (Enabled
    before ``get_peft_model``, peft makes the embeddings' output require grad, which DeepSeek-OCR
    v1's in-place image scatter cannot take.)
    """
    if not checkpointing_enabled(training):
        return model
    kwargs = checkpointing_kwargs(training)
    placement = {k: kwargs.pop(k) for k in ("every_n_layers", "offload") if k in kwargs}  # not checkpoint()'s
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, **placement)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs, **placement)
    return model


def trainer_processing_kwargs(processing: Any) -> dict[str, Any]:
    """``processing_class=`` on transformers >= 4.46, ``tokenizer=`` before."""
    import transformers

    if Version(transformers.__version__) >= PROCESSING_CLASS_SINCE:
        return {"processing_class": processing}
    return {"tokenizer": processing}


def training_arguments(training: Mapping[str, Any], output_dir: str | Path | None = None,
                       max_steps: int | None = None, use_cpu: bool = False):
    """``TrainingArguments`` from the config's training section, with what a custom builder needs.

    ``remove_unused_columns`` is always False: with True the Trainer drops ``image`` and ``text``
    (not forward() arguments) before the builder sees the examples.
    """
    from transformers import TrainingArguments

    kwargs = dict(training)
    if output_dir is not None:
        kwargs["output_dir"] = str(output_dir)
    kwargs.setdefault("output_dir", "outputs/lora")
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    kwargs["remove_unused_columns"] = False
    if checkpointing_enabled(kwargs) and not any(kwargs.get(name) for name in CHECKPOINTING_KWARGS):
        # The Trainer enables checkpointing itself: with the arguments prepare_for_training uses.
        fields = inspect.signature(TrainingArguments.__init__).parameters
        name = next((n for n in reversed(CHECKPOINTING_KWARGS) if n in fields), CHECKPOINTING_KWARGS[0])
        kwargs[name] = checkpointing_kwargs(training)
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("disable_tqdm", False)
    if use_cpu:
        kwargs["use_cpu"] = True
    return TrainingArguments(**kwargs)
