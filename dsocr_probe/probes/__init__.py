"""The probes, in the order they run and appear in the report.

A probe is a function ``run(ctx) -> Iterable[Finding]`` in a module of its own. It may raise
:class:`~dsocr_probe.findings.ProbeStop` to end with one finding; any other exception is a
probe error (💥), reported without stopping the other probes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterable

from ..context import ProbeContext
from ..findings import Finding


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    title: str
    module: str
    loads_weights: bool = False  # only these fall under --dsocr-timeout's model-loading limit

    @property
    def run(self) -> Callable[[ProbeContext], Iterable[Finding]]:
        return importlib.import_module(f"{__name__}.{self.module}").run


PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec("environment", "Environment", "environment"),
    ProbeSpec("cuda", "CUDA", "cuda"),
    ProbeSpec("remote_code", "Remote code", "remote_code"),
    ProbeSpec("model_api", "Model API", "model_api"),
    ProbeSpec("processor", "Processor", "processor"),
    ProbeSpec("train_config", "Training config", "train_config"),
    ProbeSpec("dataset", "Dataset", "dataset"),
    ProbeSpec("batch", "Batch", "batch"),
    ProbeSpec("step", "Training step", "step", loads_weights=True),
)

