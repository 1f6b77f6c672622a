"""Gatherers: read the machine once into plain records the probes judge.

Probes never ask torch or importlib directly for these facts; they read :class:`EnvFacts`.
That keeps them testable: a conftest can replace the record through the
``pytest_dsocr_facts`` hook and replay another team's machine (Windows, sm_120, old peft)
on a CI box without a GPU.
"""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

# Distributions whose versions decide whether a LoRA run of these models can start.
TRACKED = (
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "peft",
    "accelerate",
    "huggingface-hub",
    "safetensors",
    "flash-attn",
    "bitsandbytes",
    "pillow",
)

# Compiled extensions that load only against the torch build they were made for: their metadata
# cannot tell, so each is imported in a fresh interpreter (a failed import can leave the process
# half-initialised). distribution -> module.
IMPORT_CHECKED = {"torchvision": "torchvision", "flash-attn": "flash_attn"}
IMPORT_TIMEOUT_S = 120


@dataclass
class DeviceFacts:
    index: int
    name: str
    capability: tuple[int, int]
    total_memory_bytes: int

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    @property
    def bf16(self) -> bool:
        return self.capability >= (8, 0)


@dataclass
class EnvFacts:
    python: str
    os: str  # platform.system(): Linux, Windows, Darwin
    mp_start_method: str  # what DataLoader workers use on this platform
    versions: dict[str, str | None]
    torch_cuda: str | None = None  # the CUDA toolkit torch was built with (None: CPU build)
    cuda_available: bool = False
    arch_list: list[str] = field(default_factory=list)
    devices: list[DeviceFacts] = field(default_factory=list)
    # distribution -> None when `import` worked in a fresh interpreter, else its error line; a
    # distribution that is not installed, or whose import did not finish in time, is absent.
    import_errors: dict[str, str | None] = field(default_factory=dict)
    # Set when a conftest replaced gathered facts: the report says the run was a replay.
    injected: bool = False

    def version(self, dist: str) -> str | None:
        return self.versions.get(dist)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["devices"] = [dict(asdict(d), sm=d.sm, bf16=d.bf16) for d in self.devices]
        return data


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_errors(dists, *, env: dict[str, str] | None = None, timeout: float = IMPORT_TIMEOUT_S) -> dict[str, str | None]:
    """Import each distribution's module in its own fresh interpreter, all at once.

    {dist: None (imported) or the last line of the error}; an import still running after
    ``timeout`` seconds is killed and left out (slow is not broken).
    """
    running = {
        dist: subprocess.Popen([sys.executable, "-c", f"import {IMPORT_CHECKED.get(dist, dist)}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env)
        for dist in dists
    }
    out: dict[str, str | None] = {}
    for dist, proc in running.items():
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            continue
        out[dist] = None if proc.returncode == 0 else _error_line(err, proc.returncode)
    return out


def _error_line(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"the interpreter exited with status {returncode}"


def gather() -> EnvFacts:
    facts = EnvFacts(
        python=platform.python_version(),
        os=platform.system(),
        mp_start_method=_default_start_method(),
        versions={dist: installed_version(dist) for dist in TRACKED},
    )
    facts.import_errors = import_errors([d for d in IMPORT_CHECKED if facts.versions.get(d)])
    try:
        import torch
    except ImportError:  # the environment probe reports a missing torch
        return facts
    facts.torch_cuda = torch.version.cuda
    facts.cuda_available = torch.cuda.is_available()
    if facts.cuda_available:
        facts.arch_list = list(torch.cuda.get_arch_list())
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            facts.devices.append(DeviceFacts(i, props.name, (props.major, props.minor), props.total_memory))
    return facts


def _default_start_method() -> str:
    # Windows and macOS spawn DataLoader workers: collator and dataset must pickle.
    if sys.platform == "win32":
        return "spawn"
    return multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
