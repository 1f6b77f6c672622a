"""The distributed probe's findings for what :mod:`dsocr_probe.inputs.engines` found in the FSDP and DeepSpeed settings
(a helper of that probe, not a probe of its own)."""

from __future__ import annotations

from typing import Iterable

from ..inputs.engines import EngineConfig, installed
from ..findings import Finding, fail, passed, warn
from ..messages import M, N_


def engine_findings(found: EngineConfig, training: dict) -> Iterable[Finding]:
    for issue in found.issues:
        p = issue.params
        if issue.kind == "unreadable":
            yield fail("distributed.engine-unreadable", params=p)
        elif issue.kind == "unknown-fsdp-option":
            yield fail("distributed.fsdp-option", params=p)
        elif issue.kind == "unknown-fsdp-key":
            yield warn("distributed.fsdp-key", "rename" if p.get("near") else "remove", params=p)
        elif issue.kind == "unknown-deepspeed-key":
            yield warn("distributed.deepspeed-key", "rename" if p.get("near") else "remove", params=p)
        elif issue.kind == "precision":
            yield fail("distributed.deepspeed-precision",
                       params={**p, "deepspeed": str(p["deepspeed"]).lower(), "arguments": str(p["arguments"]).lower()})
        elif issue.kind == "zero3":
            variant = ("vision" if p.get("vision_tower") else "frozen") + ("" if p.get("gather") else "-no-save")
            yield warn("distributed.zero3", variant,
                       params={"vision_tower": p.get("vision_tower"), "gather": p.get("gather") or None,
                               "no_gather": None if p.get("gather") else True})
        elif issue.kind == "fsdp-and-deepspeed":
            yield fail("distributed.fsdp-and-deepspeed")
    if found.issues:
        return
    if found.fsdp:
        yield passed("distributed.fsdp-config", params={"fsdp": " ".join(found.fsdp), "keys": len(found.fsdp_config)})
    if found.deepspeed is not None:
        variant = ("inline" if found.deepspeed_inline else "file") + ("-stage" if found.zero_stage is not None else "")
        yield passed("distributed.deepspeed-config", variant,
                     evidence={N_("deepspeed installed"): M(N_("yes")) if installed("deepspeed") else M(N_("no"))},
                     params={"path": found.deepspeed_source if found.deepspeed_inline is False else None,
                             "stage": found.zero_stage})
