"""Who got a gradient after one backward pass: adapters, frozen weights, and the rest.

An adapter module counts as learning when the gradients of its LoRA weights are finite and not
all zero. (At the first step ``lora_A`` gets an exactly zero gradient, because ``lora_B`` starts
at zero; ``lora_B``'s gradient is what shows the adapter is on the loss's path.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..messages import M, N_
from . import lora

PEFT_PREFIX = "base_model.model."


@dataclass
class AdapterGrad:
    module: str  # the adapted module's name in the base model
    norm: float | None  # None: no gradient reached it
    finite: bool = True

    @property
    def learns(self) -> bool:
        return self.norm is not None and self.finite and self.norm > 0


@dataclass
class GradientReport:
    adapters: list[AdapterGrad] = field(default_factory=list)
    frozen_with_grad: list[str] = field(default_factory=list)  # should always be empty
    trainable_without_grad: list[str] = field(default_factory=list)  # non-LoRA parameters left out

    @property
    def learning(self) -> list[AdapterGrad]:
        return [a for a in self.adapters if a.learns]

    @property
    def not_learning(self) -> list[AdapterGrad]:
        return [a for a in self.adapters if not a.learns]

    @property
    def non_finite(self) -> list[AdapterGrad]:
        return [a for a in self.adapters if not a.finite]


def collect(model: Any) -> GradientReport:
    """Inspect ``.grad`` of every parameter of a peft-wrapped model after ``loss.backward()``."""
    import torch

    report = GradientReport()
    modules: list[str] = []  # adapted module of each LoRA parameter, in order
    squares = []  # its gradient's sum of squares (a 0-d tensor), or None
    for name, param in model.named_parameters():
        if ".lora_" in name:
            modules.append(strip_peft_prefix(name.split(".lora_", 1)[0]))
            squares.append(None if param.grad is None else param.grad.detach().float().pow(2).sum())
        elif not param.requires_grad:
            if param.grad is not None:
                report.frozen_with_grad.append(strip_peft_prefix(name))
        elif param.grad is None:
            report.trainable_without_grad.append(strip_peft_prefix(name))
    present = [sq for sq in squares if sq is not None]
    # One transfer for all of them: a read per parameter would wait on the GPU thousands of times.
    values = iter(torch.stack([sq.to(present[0].device) for sq in present]).tolist() if present else [])
    totals: dict[str, list] = {}  # module -> [sum of squares, any gradient, all finite]
    for module, sq in zip(modules, squares):
        entry = totals.setdefault(module, [0.0, False, True])
        if sq is None:
            continue
        value = next(values)
        entry[1] = True
        if math.isfinite(value):
            entry[0] += value
        else:
            entry[2] = False
    for module, (sq, seen, finite) in totals.items():
        report.adapters.append(AdapterGrad(module, math.sqrt(sq) if seen else None, finite))
    return report


def strip_peft_prefix(name: str) -> str:
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


def why_not_learning(adapter: AdapterGrad, no_grad_names: set[str]) -> str:
    """A short reason for the table (a msgid): the vision path under no_grad, an expert not routed to, or unknown."""
    if adapter.module in no_grad_names:
        return N_("runs under torch.no_grad() (vision path)")
    if not adapter.finite:
        return N_("non-finite gradient")
    if ".experts." in adapter.module:
        return N_("expert not routed to in this batch")
    if lora.is_vision_module(adapter.module):
        return N_("vision module off the loss path")
    return N_("not on the loss path") if adapter.norm is None else N_("zero gradient")


def grouped_rows(adapters: Iterable[AdapterGrad], no_grad_names: set[str], limit: int = 12) -> list[dict[str, Any]]:
    """One table row per module pattern (layer numbers folded to *), learning or not."""
    groups: dict[tuple[str, str], list[AdapterGrad]] = {}
    for a in adapters:
        status = N_("learns") if a.learns else why_not_learning(a, no_grad_names)
        groups.setdefault((re.sub(r"\.\d+(?=\.|$)", ".*", a.module), status), []).append(a)
    rows = []
    for (pattern, status), members in sorted(groups.items(), key=lambda kv: (kv[0][1] != N_("learns"), kv[0][0])):
        norms = [a.norm for a in members if a.norm is not None and a.finite]
        rows.append({N_("adapted modules"): pattern, N_("count"): len(members), N_("gradient"): M(status),
                     N_("largest grad norm"): f"{max(norms):.2e}" if norms else "—"})
    if len(rows) > limit:
        rest = rows[limit:]
        rows = rows[:limit] + [{N_("adapted modules"): M(N_("… more patterns: %(count)d"), count=len(rest)),
                                N_("count"): sum(r["count"] for r in rest), N_("gradient"): "",
                                N_("largest grad norm"): ""}]
    return rows
