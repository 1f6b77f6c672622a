"""Probe 2: the GPU, and whether this torch build carries kernels for it.

`torch.cuda.is_available()` is True even when the build has no kernels for the card (an
RTX 50xx, sm_120, with a cu121 wheel): the first real operation then fails with "no kernel
image is available". The arch list of the build tells it before any weights load.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..inputs.facts import DeviceFacts
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_

_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)[af]?$")

# The first torch CUDA builds with kernels for a capability, newest cards first.
# Source: reference/deepseek_ocr_v1.md (sm_120) and PyTorch's release notes.
FIRST_BUILDS: tuple[tuple[tuple[int, int], str], ...] = (
    ((12, 0), N_("torch >= 2.7.0 built with CUDA 12.8 (cu128); PyPI's default Linux wheel is cu128 from torch 2.8.0")),
    ((10, 0), N_("torch >= 2.7.0 built with CUDA 12.8 (cu128)")),
    ((9, 0), N_("torch >= 2.0 built with CUDA 11.8 or newer")),
    ((8, 9), N_("torch >= 2.0 built with CUDA 11.8 or newer")),
)


def _parse(arch: str) -> tuple[str, tuple[int, int]] | None:
    m = _ARCH.match(arch)
    return (m.group(1), (int(m.group(2)), int(m.group(3)))) if m else None


def has_kernels(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """True if the build runs on this capability: a cubin of the same major and lower-or-equal
    minor, or PTX for an older-or-equal capability that the driver can JIT-compile."""
    for arch in arch_list:
        parsed = _parse(arch)
        if parsed is None:
            continue
        kind, cap = parsed
        if kind == "sm" and cap[0] == capability[0] and cap[1] <= capability[1]:
            return True
        if kind == "compute" and cap <= capability:
            return True
    return False


def build_with_kernels(capability: tuple[int, int]) -> str:
    for cap, build in FIRST_BUILDS:
        if capability >= cap:
            return build
    return N_("any current torch CUDA build")


def run(ctx) -> Iterable[Finding]:
    env = ctx.facts
    if env.versions.get("torch") is None:
        raise ProbeStop(skip("cuda.no-torch"))
    if not env.cuda_available or not env.devices:
        variant = "cpu-build" if env.torch_cuda is None else "no-device"
        raise ProbeStop(skip("cuda.no-gpu", variant, params={"torch_cuda": env.torch_cuda}))
    bf16_wanted = _config_wants_bf16(ctx)
    for dev in env.devices:
        yield from _check_device(dev, env.arch_list, env.torch_cuda, launch=not env.injected, bf16_wanted=bf16_wanted)


def _check_device(dev: DeviceFacts, arch_list: list[str], torch_cuda: str | None, *, launch: bool, bf16_wanted: bool) -> Iterable[Finding]:
    evidence = {
        N_("device"): f"cuda:{dev.index} {dev.name}",
        N_("compute capability"): f"{dev.capability[0]}.{dev.capability[1]} ({dev.sm})",
        "VRAM": f"{dev.total_memory_bytes / 2**30:.1f} GiB",
        "bf16": M(N_("yes")) if dev.bf16 else M(N_("no")),
        N_("torch CUDA build"): torch_cuda or "cpu",
        N_("torch arch list"): " ".join(arch_list) or M(N_("(empty)")),
    }
    if not has_kernels(dev.capability, arch_list):
        build = build_with_kernels(dev.capability)
        yield fail(
            "cuda.no-kernels",
            evidence=evidence,
            params={"sm": dev.sm, "device": dev.name, "torch_cuda": torch_cuda, "build": M(build), "arch_list": list(arch_list)},
        )
        return
    if launch:
        error = _launch_kernel(dev.index)
        if error:
            yield fail(
                "cuda.kernel-failed",
                evidence=evidence,
                params={"device": dev.name, "error": error},
            )
            return
        evidence[N_("kernel launch")] = "ok"
    yield passed("cuda.device", evidence=evidence, params={"device": dev.name, "sm": dev.sm})
    if not dev.bf16:
        finding = fail if bf16_wanted else warn
        yield finding(
            "cuda.no-bf16",
            params={"device": dev.name, "sm": dev.sm},
        )


def _config_wants_bf16(ctx) -> bool:
    try:
        cfg = ctx.train_config()
    except ProbeStop:
        return False  # the training-config probe reports it
    return bool(cfg and cfg.training.get("bf16"))


def _launch_kernel(index: int) -> str | None:
    import torch

    try:
        x = torch.arange(4, device=f"cuda:{index}", dtype=torch.float32)
        value = float((x * 2).sum().item())
        torch.cuda.synchronize(index)
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    return None if value == 12.0 else f"wrong result {value} (expected 12.0)"
