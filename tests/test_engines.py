"""FSDP and DeepSpeed settings are read against the installed versions before any weights load, and the
world size comes from --dsocr-nproc or the config's nproc_per_node."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from dsocr_probe.inputs import engines, trainconfig
from dsocr_probe.findings import InputError, Status
from dsocr_probe.messages import M
from dsocr_probe.probes.distributed import world_size
from dsocr_probe.probes.engine_findings import engine_findings


def _codes(training: dict, **kw) -> dict[str, tuple[Status, dict]]:
    found = engines.read(training, **kw)
    return {f.code: (f.status, f.params) for f in engine_findings(found, training)}


def test_fsdp_keys_are_those_the_installed_transformers_and_accelerate_read():
    known = engines.fsdp_config_keys()
    assert {"min_num_params", "transformer_layer_cls_to_wrap", "backward_prefetch", "use_orig_params"} <= known
    found = _codes({"fsdp": "full_shard auto_wrap", "fsdp_config": {"fsdp_min_num_params": 10, "min_num_param": 1}})
    status, params = found["distributed.fsdp-key"]
    assert status is Status.WARN and params == {"key": "min_num_param", "near": "min_num_params"}


def test_an_fsdp_option_transformers_does_not_have_is_no_go():
    status, params = _codes({"fsdp": ["full_shard", "shard_everything"]})["distributed.fsdp-option"]
    assert status is Status.FAIL and params["option"] == "shard_everything" and "full_shard" in params["known"]


def test_a_clean_fsdp_config_passes():
    assert _codes({"fsdp": "full_shard", "fsdp_config": {"min_num_params": 1000}}) == {
        "distributed.fsdp-config": (Status.PASS, {"fsdp": "full_shard", "keys": 1})}


@pytest.mark.parametrize("ds_bf16, training, bad", [
    (True, {}, True), (True, {"bf16": True}, False), ("auto", {}, False), (False, {"bf16": True}, True)])
def test_deepspeed_precision_must_agree_with_the_arguments(ds_bf16, training, bad):
    found = _codes({**training, "deepspeed": {"bf16": {"enabled": ds_bf16}, "train_micro_batch_size_per_gpu": "auto"}})
    assert ("distributed.deepspeed-precision" in found) is bad
    if bad:
        assert found["distributed.deepspeed-precision"][0] is Status.FAIL


def test_unknown_deepspeed_keys_are_named_with_the_one_meant(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimisation": {}, "zero_optimization": {"stage": 2, "overlap_com": True}}))
    found = engines.read({"deepspeed": "ds.json"}, base=tmp_path)
    assert [(i.kind, i.params) for i in found.issues] == [
        ("unknown-deepspeed-key", {"key": "zero_optimisation", "near": "zero_optimization"}),
        ("unknown-deepspeed-key", {"key": "zero_optimization.overlap_com", "near": "overlap_comm"})]


def test_zero3_with_lora_and_a_frozen_vision_tower_is_a_warning():
    status, params = _codes({"deepspeed": {"zero_optimization": {"stage": 3}}}, vision_tower=True)["distributed.zero3"]
    assert status is Status.WARN and params == {"vision_tower": True, "gather": False}
    _, params = _codes({"deepspeed": {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True}}}
                       )["distributed.zero3"]
    assert params == {"vision_tower": False, "gather": True}


def test_an_unreadable_deepspeed_file_and_both_engines_are_no_go(tmp_path):
    found = _codes({"deepspeed": str(tmp_path / "missing.json")})
    assert found["distributed.engine-unreadable"][0] is Status.FAIL
    found = _codes({"fsdp": "full_shard", "deepspeed": {"zero_optimization": {"stage": 2}}})
    assert found["distributed.fsdp-and-deepspeed"][0] is Status.FAIL


def test_the_world_size_comes_from_the_option_else_the_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"nproc_per_node": 4, "training": {}}))
    cfg = trainconfig.load(path)
    assert cfg.nproc_per_node == 4 and not cfg.unknown
    options = lambda n: SimpleNamespace(options=SimpleNamespace(nproc=n))  # noqa: E731
    assert world_size(options(None), cfg) == (4, M("nproc_per_node in the training config"))
    assert world_size(options(0), cfg) == (0, "--dsocr-nproc")
    assert world_size(options(None), None) == (0, "")
    path.write_text(yaml.safe_dump({"nproc_per_node": "two", "training": {}}))
    with pytest.raises(InputError) as error:
        trainconfig.load(path)
    assert error.value.code == "train_config.nproc-key" and error.value.params["value"] == "'two'"


@pytest.mark.parametrize("value", ["two", "-1"])
def test_a_bad_process_count_is_a_usage_error(pytester, value):
    result = pytester.runpytest("--dsocr-probe", "--dsocr-nproc", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dsocr-nproc must be a whole number of processes*"])


def test_a_rank_the_launcher_only_ended_is_not_named_over_the_one_that_died():
    from dsocr_probe.model.distributed_launch import _root_cause

    def entry(rank, code, trace):
        return (f"[{rank}]:\n  time      : 2026-12-01_17:00:00\n  host      : localhost\n  rank      : {rank} "
                f"(local_rank: {rank})\n  exitcode  : {code} (pid: 1{rank})\n  error_file: <N/A>\n  traceback : {trace}\n")

    report = ("Failures:\n" + entry(1, -9, "Signal 9 (SIGKILL) received by PID 11") + "-" * 40 + "\n"
              "Root Cause (first observed failure):\n" + entry(0, -15, "RuntimeError: Connection closed by peer")
              + "=" * 40)
    assert _root_cause(report)[1:] == (1, -9)
    crashed_first = "Root Cause (first observed failure):\n" + entry(0, 1, "ValueError: bad row") + "=" * 40
    assert _root_cause(crashed_first)[1:] == (0, 1)
