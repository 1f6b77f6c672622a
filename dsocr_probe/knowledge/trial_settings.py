"""What a probe changes in the team's run before training it, and why: a few optimizer steps, a temporary
output folder, no saving, reporting or evaluation. The step and distributed probes train with these, and the
report lists each beside the team's own value.
"""

from __future__ import annotations

from typing import Any

from ..messages import N_


def probe_overrides(output_dir: str, steps: int, training: dict[str, Any], configured: bool = True
                    ) -> dict[str, tuple[Any, str]]:
    """What the probe changes in the configured arguments, and why (a msgid: each is listed in the report)."""
    why = N_("a probe neither saves, reports nor evaluates")
    overrides = {} if configured else {"per_device_train_batch_size": (1, N_("no training config: one sample"))}
    overrides.update({
        "max_steps": (steps, N_("a few optimizer steps are enough to see the run start, fit and learn")),
        "output_dir": (output_dir, N_("a temporary folder: the probe never writes into the run's output")),
        "save_strategy": ("no", why),
        "report_to": ("none", why),
        "push_to_hub": (False, why),
        "eval_strategy": ("no", why),
        "logging_steps": (1, N_("the loss of every step is read")),
        "logging_strategy": ("steps", N_("the loss of every step is read")),
        "disable_tqdm": (True, N_("no progress bar in the probe's output")),
    })
    if "evaluation_strategy" in training:  # the old name, still read by transformers < 4.51
        overrides["evaluation_strategy"] = ("no", why)
    if training.get("eval_on_start"):
        overrides["eval_on_start"] = (False, why)
    if training.get("load_best_model_at_end"):
        overrides["load_best_model_at_end"] = (False, N_("needs evaluation and saving, which the probe turns off"))
    return overrides
