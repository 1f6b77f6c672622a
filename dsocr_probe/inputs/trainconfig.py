"""The team's training config: a YAML with model / lora / training / data sections,
or a plain mapping of TrainingArguments keyword arguments.

    model:    {name: deepseek-ai/DeepSeek-OCR, revision: <sha>, trust_remote_code: true, auto_class: AutoModel}
    lora:     {r: 8, lora_alpha: 16, target_modules: [q_proj, v_proj], task_type: CAUSAL_LM}
    training: {per_device_train_batch_size: 1, num_train_epochs: 3, optim: adamw_torch, ...}
    data:     {train_dir: data/processed/train, val_dir: data/processed/val, max_length: 1024,
               mode: gundam, collator: "mypkg.collate:collator"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings import InputError

SECTIONS = ("model", "lora", "training", "data")
# trainer: package.module:Class (default transformers:Trainer); nproc_per_node: the processes the run is
# launched on (torchrun --nproc_per_node), which the distributed probe runs the step on.
TOP_LEVEL = (*SECTIONS, "trainer", "nproc_per_node")
# Keys of the sections dsocr_probe and scripts/train_lora.py read themselves (lora and training
# are checked against peft's and transformers' own signatures instead).
KNOWN_KEYS = {
    "model": ("name", "revision", "trust_remote_code", "allow_unpinned", "auto_class", "torch_dtype", "dtype",
              "attn_implementation", "quantization_config", "load_in_4bit", "load_in_8bit", "device_map"),
    "data": ("train_dir", "val_dir", "test_dir", "data_dir", "max_length", "mode", "collator", "prompt"),
}


@dataclass
class TrainConfig:
    path: Path
    model: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    sectioned: bool = True  # False: the file was a bare TrainingArguments mapping
    trainer: str | None = None  # the Trainer class to train with, as `package.module:Class`
    nproc_per_node: int | None = None  # the world size the run is launched with, when the config says
    # Keys the training script would not read: (where, key, the known key it is closest to or None).
    unknown: list[tuple[str, str, str | None]] = field(default_factory=list)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the config: absolute, or relative to the working directory (where training
        is launched) or, failing that, to the config's folder or the folder above it."""
        p = Path(value).expanduser()
        if p.is_absolute():
            return p
        for base in (Path.cwd(), self.path.parent, self.path.parent.parent):
            if (base / p).exists():
                return (base / p).resolve()
        return (Path.cwd() / p).resolve()

    def splits(self) -> dict[str, Path]:
        """Dataset split folders named by the data section (train_dir, val_dir, test_dir)."""
        out = {}
        for key in ("train_dir", "val_dir", "test_dir"):
            if self.data.get(key):
                out[key.removesuffix("_dir")] = self.resolve_path(self.data[key])
        return out

    @property
    def data_dir(self) -> Path | None:
        if self.data.get("data_dir"):
            return self.resolve_path(self.data["data_dir"])
        return None


def load(path: Path) -> TrainConfig:
    """The config at ``path``; :class:`InputError` when it cannot be read as one."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("train_config.missing", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError("train_config.encoding", path=str(path), byte=exc.start) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError("train_config.yaml", where=where, error=str(exc)) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError("train_config.not-mapping", path=str(path), type=type(raw).__name__)
    misspelled = {k: near for k in raw if k not in TOP_LEVEL and isinstance(raw[k], dict)
                  and (near := closest(k, SECTIONS))}
    if not any(s in raw for s in TOP_LEVEL) and not misspelled:
        return TrainConfig(path, training=dict(raw), sectioned=False)
    sections = {}
    for name in SECTIONS:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise InputError("train_config.section", path=str(path), section=name, type=type(value).__name__)
        sections[name] = dict(value)
    trainer = raw.get("trainer")
    if trainer is not None and not isinstance(trainer, str):
        raise InputError("train_config.trainer-key", path=str(path), type=type(trainer).__name__)
    nproc = raw.get("nproc_per_node")
    if nproc is not None and (isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1):
        raise InputError("train_config.nproc-key", path=str(path), value=repr(nproc))
    unknown = [("top level", k, closest(k, TOP_LEVEL)) for k in raw if k not in TOP_LEVEL]
    for name, known in KNOWN_KEYS.items():
        unknown += [(name, k, closest(k, known)) for k in sections[name] if k not in known]
    return TrainConfig(path, **sections, trainer=trainer or None, nproc_per_node=nproc, unknown=unknown)


def closest(key: Any, known: tuple[str, ...]) -> str | None:
    """The known name a mistyped key most likely meant, or None."""
    import difflib

    found = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
    return found[0] if found else None
