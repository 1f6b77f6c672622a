"""Property-based: whatever value a training or LoRA field holds, the training-config probe judges it
without crashing, within a time bound, and names the field of every value the run cannot use.

Each case is one field of the installed arguments class (or peft's LoraConfig) set to a boundary
or a wrong-type value, run through the whole probe on this stack's demo target, without weights.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time

import pytest
import transformers
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from probing import context, probe

from dsocr_probe.model import loading
from dsocr_probe.inputs import training_values
from dsocr_probe.findings import Status
from dsocr_probe.inputs.trainconfig import TrainConfig

CASE_BOUND_S = 20.0  # one case, the whole probe: far above what any takes, far below a hang
HOSTILE = [0, -1, 1, 0.5, -0.5, 1e30, float("nan"), True, False, None, "", "x", "2e-4", "four", "true", [], {},
           ["a"], {"a": 1}]
TRAINING_FIELDS = sorted(f.name for f in dataclasses.fields(transformers.TrainingArguments)
                         if f.init and not f.name.startswith("_"))
# Fields whose value names a place on disk or a hub repository: the probe never touches either.
LEFT_ALONE = {"output_dir", "logging_dir", "resume_from_checkpoint", "hub_model_id", "hub_token", "deepspeed",
              "push_to_hub_model_id", "push_to_hub_organization", "push_to_hub_token", "fsdp_config",
              "accelerator_config", "torch_compile_backend", "ddp_backend", "run_name", "project", "trackio_space_id"}
LORA_FIELDS = ["r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules", "bias", "use_rslora",
               "modules_to_save", "init_lora_weights", "fan_in_fan_out", "layers_to_transform"]
SEEN = {"cases": 0, "worst_s": 0.0, "rss_start": 0, "rss_peak": 0}


@pytest.fixture(scope="module")
def base():
    """One context for all cases: the demo target, its dataset and weightless skeleton, built once."""
    from dsocr_probe.demo.target import demo_target

    target = demo_target()
    config = yaml.safe_load((target.path / "training_config.yaml").read_text(encoding="utf-8"))
    ctx = context(trust_remote_code=True, device="cpu")
    ctx.target()
    ctx.dataset()
    ctx.skeleton()
    SEEN["rss_start"] = _rss()
    yield ctx, config, target
    print(f"\nconfig cases: {SEEN['cases']}, worst {SEEN['worst_s']:.2f} s, "
          f"RSS growth {(SEEN['rss_peak'] - SEEN['rss_start']) / 2**20:.0f} MiB")


@pytest.fixture(autouse=True)
def no_weights(monkeypatch):
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _judge(base, section: str, key: str, value):
    ctx, config, target = base
    sections = {name: dict(config.get(name) or {}) for name in ("model", "lora", "training", "data")}
    sections[section][key] = value
    ctx.__dict__["_cache_train_config"] = (TrainConfig(target.path / "training_config.yaml", **sections), None)
    environ = dict(os.environ)
    start = time.perf_counter()
    result = probe("train_config", ctx)
    took = time.perf_counter() - start
    # TrainingArguments writes fsdp/deepspeed/mixed-precision flags into os.environ; the probe leaves it as it was.
    assert dict(os.environ) == environ, (key, value, set(os.environ.items()) ^ set(environ.items()))
    SEEN.update(cases=SEEN["cases"] + 1, worst_s=max(SEEN["worst_s"], took), rss_peak=max(SEEN["rss_peak"], _rss()))
    assert took < CASE_BOUND_S, (key, value, took)
    errors = [f for f in result.findings if f.status is Status.ERROR]
    assert not errors, (key, value, [(f.title, f.detail[-600:]) for f in errors])
    return result


def _names(result, key: str) -> bool:
    """Does a blocking finding name this field (in its words or params)?"""
    return any(key in f"{f.title} {f.detail} {f.fix} {f.params}" for f in result.findings if f.status.blocks)


@settings(max_examples=160, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(key=st.sampled_from([k for k in TRAINING_FIELDS if k not in LEFT_ALONE]), value=st.sampled_from(HOSTILE))
def test_every_training_value_is_judged_and_a_bad_one_is_named(base, key, value):
    result = _judge(base, "training", key, value)
    problems = training_values.check({key: value}, transformers.TrainingArguments)
    if problems:
        assert _names(result, key), (key, value, [(f.code, f.title) for f in result.findings])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(key=st.sampled_from(LORA_FIELDS), value=st.sampled_from(HOSTILE))
def test_every_lora_value_is_judged_and_a_bad_one_is_named(base, key, value):
    result = _judge(base, "lora", key, value)
    if training_values.lora_check({key: value}):
        assert _names(result, f"lora.{key}"), (key, value, [(f.code, f.title) for f in result.findings])


@pytest.mark.parametrize(("key", "value"), [("num_train_epochs", 3), ("learning_rate", 1), ("warmup_ratio", 0),
                                            ("max_grad_norm", 1), ("weight_decay", 0), ("report_to", ["none"]),
                                            ("gradient_checkpointing_kwargs", {"use_reentrant": False})])
def test_values_written_the_usual_way_are_no_problem(key, value):
    """A whole number where a float is declared, a list where a list is: what users write, and what works."""
    assert training_values.check({key: value}, transformers.TrainingArguments) == []
