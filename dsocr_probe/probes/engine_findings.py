"""The distributed probe's words for what :mod:`dsocr_probe.inputs.engines` found in the FSDP and DeepSpeed settings
(a helper of that probe, not a probe of its own)."""

from __future__ import annotations

from typing import Iterable

from ..inputs.engines import EngineConfig, installed
from ..findings import Finding, fail, passed, warn


def engine_findings(found: EngineConfig, training: dict) -> Iterable[Finding]:
    for issue in found.issues:
        p = issue.params
        if issue.kind == "unreadable":
            yield fail("distributed.engine-unreadable", f"`{p['name']}` cannot be read: {p['path']} ({p['error']})",
                       fix=f"Give `{p['name']}` as a mapping in the training section or the path of a JSON file "
                       "(relative to the folder training starts in, or to the config's folder).", params=p)
        elif issue.kind == "unknown-fsdp-option":
            yield fail("distributed.fsdp-option", f"`fsdp: {p['option']}` is not an FSDP option of this transformers",
                       detail=f"Known: {p['known']}.", fix="Use the known options, e.g. `fsdp: full_shard auto_wrap`.",
                       params=p)
        elif issue.kind == "unknown-fsdp-key":
            yield warn("distributed.fsdp-key", f"`fsdp_config.{p['key']}` is a key neither TrainingArguments nor "
                       "accelerate reads on the installed versions: it is ignored",
                       fix=f"Rename it to `{p['near']}`." if p.get("near") else "Remove it, or check the name in the "
                       "accelerate FSDP documentation for the installed version.", params=p)
        elif issue.kind == "unknown-deepspeed-key":
            yield warn("distributed.deepspeed-key", f"DeepSpeed config key `{p['key']}` is not one DeepSpeed reads",
                       detail="DeepSpeed ignores or refuses unknown keys, depending on its version.",
                       fix=f"Rename it to `{p['near']}`." if p.get("near") else "Remove it.", params=p)
        elif issue.kind == "precision":
            yield fail("distributed.deepspeed-precision",
                       f"DeepSpeed `{p['name']}.enabled: {str(p['deepspeed']).lower()}` disagrees with "
                       f"TrainingArguments `{p['name']}: {str(p['arguments']).lower()}`",
                       detail="The Trainer refuses a DeepSpeed config whose values mismatch the arguments.",
                       fix=f'Write `"{p["name"]}": {{"enabled": "auto"}}` in the DeepSpeed config, so it follows '
                       "the training section.",
                       params={**p, "deepspeed": str(p["deepspeed"]).lower(), "arguments": str(p["arguments"]).lower()})
        elif issue.kind == "zero3":
            yield warn("distributed.zero3",
                       "ZeRO stage 3 partitions every weight, the frozen ones included, across the ranks"
                       + (", the frozen vision tower too" if p.get("vision_tower") else ""),
                       detail="With LoRA only the adapters train, yet stage 3 gathers each frozen weight for every "
                       "forward; model code that reads a weight outside its module's forward sees an empty tensor"
                       + (". DeepSeek-OCR's vision encoders run under torch.no_grad(): their weights are gathered "
                          "every step for nothing" if p.get("vision_tower") else "") + ".",
                       fix="Use ZeRO stage 2 (the frozen base fits on each card with LoRA)"
                       + ("" if p.get("gather") else "; with stage 3, set "
                          "`stage3_gather_16bit_weights_on_model_save: true` or the saved adapter is empty") + ".",
                       params={"vision_tower": p.get("vision_tower"), "gather": p.get("gather") or None,
                               "no_gather": None if p.get("gather") else True})
        elif issue.kind == "fsdp-and-deepspeed":
            yield fail("distributed.fsdp-and-deepspeed", "Both `fsdp` and `deepspeed` are set",
                       fix="Choose one engine: remove `fsdp` or `deepspeed` from the training section.")
    if found.issues:
        return
    if found.fsdp:
        yield passed("distributed.fsdp-config", f"FSDP `{' '.join(found.fsdp)}` with {len(found.fsdp_config)} "
                     "fsdp_config keys known to the installed transformers and accelerate",
                     params={"fsdp": " ".join(found.fsdp), "keys": len(found.fsdp_config)})
    if found.deepspeed is not None:
        yield passed("distributed.deepspeed-config",
                     f"DeepSpeed config ({found.deepspeed_source}): known keys, precision agrees with the arguments"
                     + (f", ZeRO stage {found.zero_stage}" if found.zero_stage is not None else ""),
                     evidence={"deepspeed installed": installed("deepspeed")},
                     params={"path": found.deepspeed_source if found.deepspeed_inline is False else None,
                             "stage": found.zero_stage})
