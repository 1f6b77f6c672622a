"""Findings of real catalog codes, for tests of what is done with findings (verdicts, reports, the terminal)."""

from dsocr_probe.findings import Finding, fail, passed, warn


def a_pass() -> Finding:
    return passed("cuda.device", params={"device": "NVIDIA A100", "sm": "sm_80"})


def a_warning(**kw) -> Finding:
    return warn("cuda.no-bf16", params={"device": "Tesla T4", "sm": "sm_75"}, **kw)


def a_failure(**kw) -> Finding:
    return fail("cuda.kernel-failed", params={"device": "Tesla T4", "error": "CUDA error: out of memory"}, **kw)
