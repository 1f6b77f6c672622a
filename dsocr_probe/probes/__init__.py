"""The probes, in the order they run and appear in the report.

A probe is a function ``run(ctx) -> Iterable[Finding]`` in a module of its own. It may raise
:class:`~dsocr_probe.findings.ProbeStop` to end with one finding; any other exception is a
probe error (💥), reported without stopping the other probes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterable

from .context import ProbeContext
from ..findings import Finding
from ..messages import N_


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    title: str  # a msgid: worded in the report's language where it is shown
    module: str
    # Probes that read the user's files, import the checkpoint's code or load weights can hang (a network
    # mount, a named pipe, a lock); these run under --dsocr-timeout.
    time_limited: bool = False

    @property
    def run(self) -> Callable[[ProbeContext], Iterable[Finding]]:
        return importlib.import_module(f"{__name__}.{self.module}").run


PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec("environment", N_("Environment"), "environment"),
    ProbeSpec("cuda", N_("CUDA"), "cuda"),
    ProbeSpec("remote_code", N_("Remote code"), "remote_code", time_limited=True),
    ProbeSpec("model_api", N_("Model API"), "model_api", time_limited=True),
    ProbeSpec("processor", N_("Processor"), "processor", time_limited=True),
    ProbeSpec("train_config", N_("Training config"), "train_config", time_limited=True),
    ProbeSpec("dataset", N_("Dataset"), "dataset", time_limited=True),
    ProbeSpec("memory", N_("Memory"), "memory", time_limited=True),
    ProbeSpec("batch", N_("Batch"), "batch", time_limited=True),
    ProbeSpec("step", N_("Training step"), "step", time_limited=True),
    ProbeSpec("distributed", N_("Distributed"), "distributed", time_limited=True),
)

