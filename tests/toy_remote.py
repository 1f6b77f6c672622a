"""A small remote-code checkpoint for the remote-code tests: config.json with an auto_map and the
modules it names, no weights. The probes read it; only tests that say so import it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

CONFIGURATION = """
from transformers import PretrainedConfig


class ToyConfig(PretrainedConfig):
    model_type = "toy_remote"
"""

CLEAN_MODELING = """
import torch
from torch import nn
from transformers import PreTrainedModel

from .configuration_toy import ToyConfig


class ToyModel(PreTrainedModel):
    config_class = ToyConfig

    def forward(self, input_ids):
        return input_ids.to(self.device)
"""


def write_toy(folder: Path, modeling: str = CLEAN_MODELING, *, model_type: str = "toy_remote",
              auto_map: dict | None = None, saved: str | None = "4.46.3", extra: dict[str, str] | None = None) -> Path:
    """The checkpoint folder; ``saved`` is config.json's transformers_version (None: not recorded)."""
    folder.mkdir(parents=True)
    config = {"model_type": model_type,
              "auto_map": auto_map or {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModel"}}
    if saved:
        config["transformers_version"] = saved
    (folder / "config.json").write_text(json.dumps(config))
    files = {"configuration_toy.py": CONFIGURATION, "modeling_toy.py": modeling, **(extra or {})}
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder
