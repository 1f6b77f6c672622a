"""The training-config probe's verdicts on values the run cannot use as written (a helper of that probe, shared by
its training and LoRA sections)."""

from __future__ import annotations

import difflib
from typing import Iterable

from ..findings import Finding, fail
from ..inputs import training_values

# A value problem's kind -> its finding's code.
VALUE_CODES = {
    "number-as-string": "train_config.number-as-string",
    "bool-as-string": "train_config.bool-as-string",
    "choice": "train_config.bad-choice",
    "conflict": "train_config.fp16-and-bf16",
    "range": "train_config.out-of-range",
    "null": "train_config.null-value",
    "wrong-type": "train_config.wrong-type",
}


def value_findings(problems: list[training_values.ValueProblem]) -> Iterable[Finding]:
    for p in problems:
        params = {"key": p.key, "value": p.shown, "raw": str(p.value), "expected": p.expected, "write": p.write}
        variant = ""
        if p.kind == "choice":  # the accepted value closest to the one written
            near = difflib.get_close_matches(str(p.value), p.expected.split(", "), n=1, cutoff=0.5)
            params["near"] = near[0] if near else None
            variant = "near" if near else ""
        elif p.kind == "wrong-type" and p.write:
            variant = "write"
        yield fail(VALUE_CODES[p.kind], variant, params=params)
