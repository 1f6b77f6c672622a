"""Run one probe on a hand-made context, the way the plugin does."""

from __future__ import annotations

from dsocr_probe.probes.context import Options, ProbeContext
from dsocr_probe.inputs.facts import EnvFacts
from dsocr_probe.findings import ProbeResult
from dsocr_probe.run.runner import run_probe
from dsocr_probe.probes import PROBES


def linux_cpu(**versions) -> EnvFacts:
    base = {"torch": "2.13.0", "transformers": "5.23.0", "peft": "0.21.2", "accelerate": "1.15.0", "tokenizers": "0.23.3"}
    base.update(versions)
    return EnvFacts(python="3.11.7", os="Linux", mp_start_method="fork", versions=base, injected=True)


def probe(name: str, ctx: ProbeContext) -> ProbeResult:
    spec = next(s for s in PROBES if s.name == name)
    return run_probe(spec, ctx)


def context(facts: EnvFacts | None = None, **options) -> ProbeContext:
    return ProbeContext(Options(**options), facts=facts)


def codes(result: ProbeResult) -> dict[str, str]:
    return {f.code: f.status.value for f in result.findings}
