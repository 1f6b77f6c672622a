"""FSDP and DeepSpeed settings of the ``training`` section, read against the installed versions before any
weights load: what TrainingArguments and accelerate know of ``fsdp_config`` here, what DeepSpeed's JSON
takes, whether its precision agrees with the arguments, and what ZeRO stage 3 does to LoRA and to a frozen
vision tower. Each problem is an :class:`Issue` (a kind and the values it names); the distributed probe
words them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..messages import M, N_

# DeepSpeed's config JSON (deepspeed.ai/docs/config-json, DeepSpeed 0.16): the top-level keys and those of
# zero_optimization. Used when DeepSpeed is not installed; with it installed its own config models answer too.
DEEPSPEED_TOP_LEVEL = frozenset((
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "optimizer", "scheduler",
    "fp16", "bf16", "bfloat16", "amp", "torch_autocast", "zero_optimization", "gradient_clipping", "prescale_gradients",
    "gradient_predivide_factor", "sparse_gradients", "steps_per_print", "wall_clock_breakdown", "dump_state",
    "memory_breakdown", "flops_profiler", "activation_checkpointing", "aio", "tensorboard", "wandb", "csv_monitor",
    "comet", "comms_logger", "zero_allow_untested_optimizer", "zero_force_ds_cpu_optimizer",
    "communication_data_type", "seq_parallel_communication_data_type", "elasticity", "data_efficiency",
    "data_types", "compression_training", "checkpoint", "autotuning", "pipeline", "curriculum_learning",
    "sparse_attention", "nebula", "hybrid_engine", "weight_quantization", "quantize_training",
    "disable_allgather", "load_universal_checkpoint", "use_node_local_storage", "graph_harvesting",
    "compile", "timers", "mixed_precision", "eigenvalue", "progressive_layer_drop", "dataloader_drop_last",
    "train_batch_size_per_gpu", "zero_optimization_stage", "monitor_config", "tensor_parallel",
))
DEEPSPEED_ZERO = frozenset((
    "stage", "allgather_partitions", "allgather_bucket_size", "overlap_comm", "reduce_scatter", "reduce_bucket_size",
    "contiguous_gradients", "offload_param", "offload_optimizer", "sub_group_size", "cpu_offload",
    "cpu_offload_params", "cpu_offload_use_pin_memory", "load_from_fp32_weights", "elastic_checkpoint",
    "ignore_unused_parameters", "legacy_stage1", "round_robin_gradients", "zero_hpz_partition_size",
    "zero_quantized_weights", "zero_quantized_nontrainable_weights", "zero_quantized_gradients",
    "memory_efficient_linear", "pipeline_loading_checkpoint", "override_module_apply", "mics_shard_size",
    "mics_hierarchical_params_gather", "use_multi_rank_bucket_allreduce", "gather_16bit_weights_on_model_save",
    "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
    "stage3_max_live_parameters", "stage3_max_reuse_distance", "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold", "stage3_model_persistence_threshold", "stage3_module_granularity_threshold",
    "module_granularity_threshold", "max_live_parameters", "max_reuse_distance", "prefetch_bucket_size",
    "param_persistence_threshold", "model_persistence_threshold", "log_trace_cache_warnings", "zeropp_loco_param",
    "use_all_reduce_for_fetch_params", "stage3_use_all_reduce_for_fetch_params", "reduce_scatter_bucket_size",
))


@dataclass
class Issue:
    kind: str  # unknown-fsdp-option, unknown-fsdp-key, unknown-deepspeed-key, precision, zero3-lora, unreadable, ...
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineConfig:
    """What the training section asks of FSDP and DeepSpeed, as read, and the problems found."""

    fsdp: list[str] = field(default_factory=list)
    fsdp_config: dict[str, Any] = field(default_factory=dict)
    deepspeed: dict[str, Any] | None = None
    deepspeed_source: str = ""
    deepspeed_inline: bool | None = None  # None: no DeepSpeed config
    issues: list[Issue] = field(default_factory=list)

    @property
    def zero_stage(self) -> int | None:
        stage = ((self.deepspeed or {}).get("zero_optimization") or {}).get("stage")
        return stage if isinstance(stage, int) else None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def read(training: Mapping[str, Any], base: Path | None = None, vision_tower: bool = False) -> EngineConfig:
    """The FSDP and DeepSpeed settings of ``training``, checked; paths relative to ``base``."""
    found = EngineConfig()
    fsdp = training.get("fsdp")
    if fsdp:
        options = fsdp.split() if isinstance(fsdp, str) else [str(o) for o in fsdp] if isinstance(fsdp, list) else []
        found.fsdp = options
        known = fsdp_options()
        for option in options:
            if known and option not in known:
                found.issues.append(Issue("unknown-fsdp-option", {"option": option, "known": ", ".join(sorted(known))}))
    raw = training.get("fsdp_config")
    if raw:
        loaded = _mapping(raw, base, "fsdp_config", found)
        if loaded is not None:
            found.fsdp_config = loaded
            known = fsdp_config_keys()
            for key in loaded:
                bare = key[5:] if key.startswith("fsdp_") else key
                if bare not in known:
                    found.issues.append(Issue("unknown-fsdp-key", {"key": key, "near": _near(bare, known)}))
    raw = training.get("deepspeed")
    if raw:
        loaded = _mapping(raw, base, "deepspeed", found)
        if loaded is not None:
            found.deepspeed = loaded
            found.deepspeed_source = str(raw) if isinstance(raw, str) else "the training section"
            found.deepspeed_inline = not isinstance(raw, str)
            _check_deepspeed(loaded, training, found, vision_tower)
    if found.fsdp and found.deepspeed is not None:
        found.issues.append(Issue("fsdp-and-deepspeed", {}))
    return found


def fsdp_options() -> set[str]:
    try:
        from transformers.trainer_utils import FSDPOption
    except ImportError:
        return set()
    return {o.value for o in FSDPOption}


def fsdp_config_keys() -> set[str]:
    """The ``fsdp_config`` keys the installed TrainingArguments reads (the string keys on its lines that
    handle ``fsdp_config``) and the fields of the installed accelerate's FSDP plugin."""
    import inspect

    import transformers.training_args as training_args

    keys: set[str] = set()
    for line in inspect.getsource(training_args).splitlines():
        if "fsdp_config" in line:
            keys.update(re.findall(r"""["']([a-z][a-z0-9_]+)["']""", line))
    try:
        from accelerate.utils import FullyShardedDataParallelPlugin

        keys.update(f.name for f in dataclasses.fields(FullyShardedDataParallelPlugin))
    except ImportError:
        pass
    return {k[5:] if k.startswith("fsdp_") else k for k in keys} - {"fsdp_config", "fsdp", "auto"}


def deepspeed_keys() -> tuple[set[str], set[str]]:
    """Known top-level and zero_optimization keys: the list above, and the installed DeepSpeed's own models."""
    top, zero = set(DEEPSPEED_TOP_LEVEL), set(DEEPSPEED_ZERO)
    try:
        from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

        for name, info in DeepSpeedZeroConfig.model_fields.items():
            zero.add(name)
            if getattr(info, "alias", None):
                zero.add(info.alias)
    except Exception:  # not installed, or a version without pydantic models
        pass
    return top, zero


def _check_deepspeed(ds: dict[str, Any], training: Mapping[str, Any], found: EngineConfig, vision_tower: bool) -> None:
    top, zero = deepspeed_keys()
    for key in ds:
        if key not in top:
            found.issues.append(Issue("unknown-deepspeed-key", {"key": key, "near": _near(key, top)}))
    zero_section = ds.get("zero_optimization") or {}
    if isinstance(zero_section, dict):
        for key in zero_section:
            if key not in zero:
                found.issues.append(Issue("unknown-deepspeed-key",
                                          {"key": f"zero_optimization.{key}", "near": _near(key, zero)}))
    for name in ("bf16", "fp16"):
        enabled = (ds.get(name) or {}).get("enabled") if isinstance(ds.get(name), dict) else None
        argument = bool(training.get(name, False))
        if enabled == "auto" or enabled is None:
            continue
        if bool(enabled) != argument:
            found.issues.append(Issue("precision", {"name": name, "deepspeed": bool(enabled), "arguments": argument}))
    if found.zero_stage == 3:
        found.issues.append(Issue("zero3", {"vision_tower": vision_tower or None,
                                            "gather": bool(zero_section.get("stage3_gather_16bit_weights_on_model_save")
                                                           or zero_section.get("gather_16bit_weights_on_model_save"))}))


def _mapping(raw: Any, base: Path | None, name: str, found: EngineConfig) -> dict[str, Any] | None:
    """A dict as given, or the JSON file a string names; an unreadable one is an issue."""
    if isinstance(raw, dict):
        return dict(raw)
    if not isinstance(raw, str):
        error = M(N_("a %(type)s, not a mapping or a file name"), type=type(raw).__name__)
        found.issues.append(Issue("unreadable", {"name": name, "path": str(raw), "error": error}))
        return None
    path = Path(raw).expanduser()
    if not path.is_absolute() and base is not None and not path.exists():
        path = base / path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        found.issues.append(Issue("unreadable", {"name": name, "path": str(path), "error": str(exc).splitlines()[0]}))
        return None
    if not isinstance(data, dict):
        found.issues.append(Issue("unreadable", {"name": name, "path": str(path), "error": M(N_("not a JSON object"))}))
        return None
    return data


def _near(key: str, known: set[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None
