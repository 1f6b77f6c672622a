"""The distributed probe starts the configured run on two processes with torch's launcher (gloo on this CPU)
and reads what each rank did. Each test is one real 2-process run of a few steps."""

from __future__ import annotations

import importlib
import importlib.util
import time
from pathlib import Path

import pytest
import yaml
from pages import write_pages
from probing import codes, context, probe

from dsocr_probe.model import distributed_launch
from dsocr_probe.run import runner
from dsocr_probe.findings import Status
from dsocr_probe.messages import word

REMOTE_CODE_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
V1_ONLY = pytest.mark.skipif(not REMOTE_CODE_LOADS, reason="the v1 remote code imports only on transformers <= 4.47.1")
LIMIT_S = 60  # each 2-process run, start to end, on this CI's two cores


def _config(folder: Path, tmp_path: Path, data: Path | None = None, lora: dict | None = None, **training) -> Path:
    config = yaml.safe_load((folder / "training_config.yaml").read_text(encoding="utf-8")) \
        if (folder / "training_config.yaml").is_file() else None
    if config is None:
        from dsocr_probe.demo import target as demo

        config = demo.demo_train_config(folder, demo.V1)
    if data is not None:
        config["data"].update(train_dir=str(data / "train"), val_dir=str(data / "val"))
    config["lora"].update(lora or {})
    config["training"].update(training)
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _run(folder: Path, config: Path, **options):
    ctx = context(model=str(folder), train_config=config, trust_remote_code=True, allow_unpinned=True, nproc=2,
                  **options)
    started = time.perf_counter()
    result = probe("distributed", ctx)
    return result, {f.code: f for f in result.findings}, time.perf_counter() - started


def test_off_by_default_and_says_how_to_turn_it_on(demo, tmp_path):
    result = probe("distributed", context(model=str(demo.path), train_config=_config(demo.path, tmp_path),
                                          trust_remote_code=True, allow_unpinned=True))
    assert codes(result) == {"distributed.off": "skip"}
    assert "--dsocr-nproc" in result.findings[0].fix


def test_two_ranks_of_the_demo_train_in_step(demo, tmp_path):
    result, found, seconds = _run(demo.path, _config(demo.path, tmp_path))
    assert result.status is Status.PASS, [(f.code, f.title, f.detail) for f in result.findings]
    ranks = found["distributed.ranks"]
    assert ranks.evidence["backend"] == "gloo" and ranks.evidence["wrapped in"] == "DistributedDataParallel"
    assert [word(row["state"], "en") for row in ranks.table] == ["finished", "finished"]
    assert found["distributed.in-sync"].status is Status.PASS
    rows = found["distributed.rows"]
    assert sum(r["rows"] for r in rows.table) >= rows.params["rows"]  # every row is on some rank
    assert found["distributed.effective-batch"].params["effective"] == 2 * 2
    assert seconds < LIMIT_S, seconds


def test_three_rows_on_two_ranks_at_batch_4_are_named(demo, tmp_path):
    data = tmp_path / "data"
    write_pages(data / "train", ["first page", "second page", "third page"])
    write_pages(data / "val", ["check"])
    config = _config(demo.path, tmp_path, data=data, per_device_train_batch_size=4, gradient_accumulation_steps=1)
    result, found, seconds = _run(demo.path, config)
    short = found["distributed.rows-short"]
    assert short.status is Status.WARN and {"rows": 3, "world": 2, "batch": 4, "want": 8, "fit": 1}.items() <= short.params.items()
    assert "3 rows on 2 ranks at batch 4" in short.title
    assert found["distributed.effective-batch-large"].status is Status.WARN
    assert seconds < LIMIT_S, seconds


@pytest.fixture(scope="module")
def moe_checkpoint(tmp_path_factory):
    """The v1 stand-in with the checkpoint's routing (64 experts, 6 per token): a small batch reaches only some."""
    from dsocr_probe.demo.pages import write_dataset
    from dsocr_probe.demo.standin import write_v1_standin

    folder = write_v1_standin(tmp_path_factory.mktemp("moe") / "DeepSeek-OCR", weights=True, seed=0,
                              routed_experts=(64, 6))
    write_dataset(folder / "dataset", seed=0)
    return folder


EXPERT_TARGETS = {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


@V1_ONLY
def test_lora_on_moe_experts_without_unused_parameter_search_is_no_go_with_ddps_error(moe_checkpoint, tmp_path):
    config = _config(moe_checkpoint, tmp_path, lora=EXPERT_TARGETS, ddp_find_unused_parameters=False,
                     per_device_train_batch_size=1)
    result, found, seconds = _run(moe_checkpoint, config)
    stop = found["distributed.unused-parameters"]
    assert stop.status is Status.FAIL and result.status is Status.FAIL
    assert "Expected to have finished reduction in the prior iteration" in stop.detail
    assert "ddp_find_unused_parameters: true" in stop.fix
    assert ".experts." in found["distributed.no-gradient-modules"].params["modules"]
    assert seconds < LIMIT_S, seconds


@V1_ONLY
def test_the_same_with_unused_parameter_search_is_go_with_its_cost(moe_checkpoint, tmp_path):
    config = _config(moe_checkpoint, tmp_path, lora=EXPERT_TARGETS, ddp_find_unused_parameters=True,
                     per_device_train_batch_size=1)
    result, found, seconds = _run(moe_checkpoint, config)
    assert result.status is Status.WARN, [(f.code, f.title, f.detail) for f in result.findings]
    unused = found["distributed.unused-found"]
    assert unused.params["experts"] and "one more pass per step" in unused.detail
    assert found["distributed.ranks"].status is found["distributed.in-sync"].status is Status.PASS
    assert seconds < LIMIT_S, seconds


@pytest.fixture()
def launches(monkeypatch):
    """Every Outcome the probe's launches return."""
    seen = []
    real = distributed_launch.launch

    def recording(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(distributed_launch, "launch", recording)
    # The recording is kept in this process: under --dsocr-timeout the probe would run in a forked child.
    monkeypatch.setattr(runner, "_can_fork", lambda: False)
    return seen


def _nothing_left(outcome) -> None:
    pids = [int(d["pid"]) for d in outcome.ranks.values()]
    assert len(pids) == outcome.nproc and not outcome.survivors
    assert not [pid for pid in pids if distributed_launch.running(pid)]
    leftovers = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if distributed_launch.WORKER.encode() in (proc / "cmdline").read_bytes() \
                    and distributed_launch.running(int(proc.name)):
                leftovers.append(proc.name)
        except OSError:
            continue
    assert not leftovers


def test_a_killed_rank_is_named_and_nothing_is_left_running(demo, tmp_path, monkeypatch, launches):
    monkeypatch.setenv("DSOCR_PROBE_FAULT", "1:exit")
    result, found, seconds = _run(demo.path, _config(demo.path, tmp_path))
    failed = found["distributed.rank-failed"]
    assert failed.status is Status.FAIL and failed.params["rank"] == 1 and failed.params["exitcode"] == -9
    assert "rank" in failed.detail and "Signal 9" in failed.detail  # the launcher's own report
    _nothing_left(launches[-1])
    assert seconds < LIMIT_S, seconds


def test_a_hung_rank_ends_at_the_time_limit_and_nothing_is_left_running(demo, tmp_path, monkeypatch, launches):
    monkeypatch.setenv("DSOCR_PROBE_FAULT", "1:hang")
    result, found, seconds = _run(demo.path, _config(demo.path, tmp_path), timeout_s=40.0)
    timeout = found["distributed.rank-timeout"]
    assert timeout.status is Status.FAIL and timeout.params["limit"] == 30.0
    assert timeout.params["ranks"] == "1" and "_inject" in timeout.params["where"]  # named by its stack
    assert timeout.table[0]["stopped in"].startswith("torch/")  # rank 0 waits in a collective
    _nothing_left(launches[-1])
    assert seconds < 40 + distributed_launch.GRACE_S * 3, seconds


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed here")
def test_a_deepspeed_config_is_checked_and_its_step_skipped_where_deepspeed_is_not_installed(demo, tmp_path):
    config = _config(demo.path, tmp_path, deepspeed={"zero_optimization": {"stage": 2}, "bf16": {"enabled": "auto"}})
    result, found, seconds = _run(demo.path, config)
    assert found["distributed.deepspeed-config"].status is Status.PASS
    assert found["distributed.deepspeed-not-installed"].status is Status.SKIP
    assert found["distributed.ranks"].status is Status.PASS  # the same step, under plain DDP
    assert seconds < LIMIT_S, seconds


def test_a_run_the_ranks_cannot_build_is_not_checked_with_the_cause(demo, tmp_path):
    config = _config(demo.path, tmp_path, lora={"target_modules": ["no_such_proj"]})
    result, found, seconds = _run(demo.path, config)
    assert codes(result) == {"distributed.prerequisite": "skip"}, [(f.code, f.title) for f in result.findings]
    assert "get_peft_model" in found["distributed.prerequisite"].title
