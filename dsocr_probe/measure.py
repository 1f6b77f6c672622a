"""Peak memory and time of a training step, and a forecast for sizes that were not run.

On CUDA the peak is torch's own ``max_memory_allocated``; on the CPU it is the process's
resident set, sampled by a background thread while the step runs (no portable resettable peak
exists there). The forecast is a straight line through two measured sizes, in tokens per
batch: what grows with the batch (activations, logits) grows with batch x length.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
SAMPLE_EVERY_S = 0.005


@dataclass
class Measure:
    """One measured training step size."""

    samples: int
    length: int  # padded tokens per sample
    peak_bytes: int  # peak memory while stepping (weights included)
    step_s: float  # wall time of one optimizer step (forward, backward, update)

    @property
    def tokens(self) -> int:
        return self.samples * self.length

    def row(self) -> dict[str, Any]:
        return {"batch": self.samples, "tokens / sample": self.length, "peak memory": gib(self.peak_bytes),
                "time / step": f"{self.step_s:.3f} s"}


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
    return "n/a" if n is None else f"{n / GIB:.2f} GiB"


def forecast(small: Measure, large: Measure, samples: int, length: int, capacity_bytes: int | None,
             headroom: float = 0.9) -> Forecast:
    """Memory and time at ``samples`` x ``length`` from two measured sizes (linear in tokens).

    ``largest_batch`` is the largest batch at ``length`` whose forecast stays within
    ``headroom`` of the capacity (the allocator needs some slack).
    """
    span = large.tokens - small.tokens
    mem_slope = max(0.0, (large.peak_bytes - small.peak_bytes) / span) if span > 0 else 0.0
    time_slope = max(0.0, (large.step_s - small.step_s) / span) if span > 0 else 0.0
    mem_base = small.peak_bytes - mem_slope * small.tokens
    time_base = small.step_s - time_slope * small.tokens
    tokens = samples * length
    largest = None
    if capacity_bytes is not None:
        room = capacity_bytes * headroom - mem_base
        per_sample = mem_slope * length
        largest = max(0, math.floor(room / per_sample)) if per_sample > 0 else None
    return Forecast(samples, length, max(0, int(mem_base + mem_slope * tokens)),
                    max(0.0, time_base + time_slope * tokens), capacity_bytes, largest)


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


class Stopwatch:
    """Wall time of a block, waiting for queued GPU work at both ends."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
