"""Peak memory and time of a training step, and a forecast for sizes that were not run.

On CUDA the peak is torch's own ``max_memory_allocated``; on the CPU it is the process's
resident set, sampled by a background thread while the step runs (no portable resettable peak
exists there). The forecast fits the measured sizes with two axes: tokens per batch (what the
language model's activations and logits grow with) and image slots per batch (what the vision
encoder's activations grow with, crop by crop). With too few distinct sizes for two axes it
falls back to tokens alone.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any

from ..messages import M, N_

GIB = 1024**3
SAMPLE_EVERY_S = 0.005


@dataclass
class Measure:
    """One measured training step size."""

    samples: int
    length: int  # padded tokens per sample
    peak_bytes: int  # peak memory while stepping (weights included)
    step_s: float  # wall time of one optimizer step (forward, backward, update)
    slots: int = 0  # image slots per sample (0: not known)
    rows: Any = ""  # which rows, for the table (a message)

    @property
    def tokens(self) -> int:
        return self.samples * self.length

    @property
    def image_slots(self) -> int:
        return self.samples * self.slots

    def row(self) -> dict[str, Any]:
        return {N_("batch"): self.samples, N_("rows"): self.rows, N_("tokens / sample"): self.length,
                N_("image slots / sample"): self.slots or "?", N_("peak memory"): gib(self.peak_bytes),
                N_("time / step"): f"{self.step_s:.3f} s"}


@dataclass
class Forecast:
    samples: int
    length: int
    peak_bytes: int
    step_s: float
    capacity_bytes: int | None  # what the device has, when known
    largest_batch: int | None  # the largest batch at this length expected to fit

    @property
    def fits(self) -> bool | None:
        if self.capacity_bytes is None:
            return None
        return self.peak_bytes <= self.capacity_bytes


def gib(n: float | None) -> str:
    return M(N_("not measured")) if n is None else f"{n / GIB:.2f} GiB"


def forecast(measures: list[Measure], samples: int, length: int, capacity_bytes: int | None,
             headroom: float = 0.9, slots: int = 0) -> Forecast:
    """Memory and time at ``samples`` x ``length`` tokens (``slots`` image slots per sample) from
    measured sizes: linear in tokens and in image slots per batch, or in tokens alone when the
    measures do not separate the two.

    ``largest_batch`` is the largest batch at this length whose forecast stays within
    ``headroom`` of the capacity (the allocator needs some slack).
    """
    mem = _fit([(m.tokens, m.image_slots, m.peak_bytes) for m in measures])
    sec = _fit([(m.tokens, m.image_slots, m.step_s) for m in measures])

    def at(model: tuple[float, float, float], n: int) -> float:
        base, per_token, per_slot = model
        return base + per_token * n * length + per_slot * n * slots

    largest = None
    if capacity_bytes is not None:
        per_sample = at(mem, 1) - mem[0]
        room = capacity_bytes * headroom - mem[0]
        largest = max(0, math.floor(room / per_sample)) if per_sample > 0 else None
    return Forecast(samples, length, max(0, int(at(mem, samples))), max(0.0, at(sec, samples)), capacity_bytes, largest)


def _fit(points: list[tuple[int, int, float]]) -> tuple[float, float, float]:
    """``value = base + a * tokens + b * slots`` by least squares, slopes kept non-negative;
    tokens alone (two most distant points) when slots do not vary independently; flat at worst."""
    import numpy as np

    if len(points) >= 3:
        design = np.array([[1.0, t, s] for t, s, _ in points])
        values = np.array([v for _, _, v in points], dtype=float)
        if np.linalg.matrix_rank(design) == 3:
            coef, *_ = np.linalg.lstsq(design, values, rcond=None)
            if coef[1] >= 0 and coef[2] >= 0:
                return float(coef[0]), float(coef[1]), float(coef[2])
    ordered = sorted(points, key=lambda p: p[0])
    low, high = ordered[0], ordered[-1]
    span = high[0] - low[0]
    if span <= 0:
        return float(max(v for _, _, v in points)), 0.0, 0.0
    slope = max(0.0, (high[2] - low[2]) / span)
    return float(low[2] - slope * low[0]), slope, 0.0


class MemoryMeter:
    """``with MemoryMeter(device) as meter: step()`` -> ``meter.peak_bytes``."""

    def __init__(self, device: str):
        self.device = device
        self.cuda = str(device).startswith("cuda")
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "MemoryMeter":
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = rss_bytes()
            self._thread = threading.Thread(target=self._sample, name="dsocr-rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())


def rss_bytes() -> int:
    """The process's resident memory now."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:  # Linux without psutil
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 0


def capacity_bytes(device: str) -> int | None:
    """Total memory of the device the step runs on (GPU memory, or the machine's RAM)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    try:
        import psutil

        return psutil.virtual_memory().total
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, AttributeError, OSError):
            return None
