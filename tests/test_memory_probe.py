"""The memory probe: a verdict before any weights load, the change that fits, and the card table.

The demo model (the OCR-2 demo, or the v1 stand-in where OCR-2 is absent) is probed from a copy of its
folder without weights, so the probe can only answer from config.json; the card sizes are set from the
probe's own forecasts so the same tests hold on every stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from probing import context, probe

from dsocr_probe.model import loading
from dsocr_probe.demo.target import demo_train_config
from dsocr_probe.model.memory_forecast import GIB

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def weightless(demo, tmp_path_factory) -> Path:
    """The demo's folder with config, tokenizer and code, but no weight files."""
    folder = tmp_path_factory.mktemp("weightless") / demo.path.name
    shutil.copytree(demo.path, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "dataset"))
    assert not loading.has_weights(folder)
    return folder


@pytest.fixture(autouse=True)
def no_weights(monkeypatch):
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))


def _config(demo, tmp_path: Path, batch: int) -> Path:
    config = demo_train_config(demo.path, None)
    config["training"]["per_device_train_batch_size"] = batch
    path = tmp_path / f"training-{batch}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _memory(weightless, config: Path, gib: float | None):
    ctx = context(model=str(weightless), train_config=config, trust_remote_code=True, allow_unpinned=True,
                  gpu_memory=int(gib * GIB) if gib else None)
    result = probe("memory", ctx)
    return result, {f.code: f for f in result.findings}


def test_without_a_card_it_forecasts_and_gives_no_verdict(demo, weightless, tmp_path):
    result, found = _memory(weightless, _config(demo, tmp_path, 2), None)
    forecast, cards = found["memory.no-card"], found["memory.cards"]
    assert result.status.value == "skip" and cards.status.value == "skip"
    parts = [row["part"] for row in forecast.to_json()["table"]]
    assert parts[:4] == ["weights (frozen)", "adapters + gradients + optimizer state", "activations at the peak",
                         "logits and loss at the peak"] and parts[-1] == "needed on the card"
    assert [row["card"] for row in cards.table] == ["8 GiB", "12 GiB", "16 GiB", "24 GiB", "48 GiB", "80 GiB"]
    assert "balanced routing" in forecast.to_json()["evidence"]["data-dependent code"]


def test_a_run_that_fits_is_go(demo, weightless, tmp_path):
    result, found = _memory(weightless, _config(demo, tmp_path, 2), 80)
    assert result.status.value == "pass"
    assert found["memory.fits"].params["largest"] > 2


def _need_bytes(finding) -> int:
    return finding.params["need_bytes"]


def test_a_run_that_cannot_fit_is_no_go_and_names_the_change_that_fits(demo, weightless, tmp_path):
    _, one = _memory(weightless, _config(demo, tmp_path, 1), None)
    _, many = _memory(weightless, _config(demo, tmp_path, 16), None)
    need_one, need_many = _need_bytes(one["memory.no-card"]), _need_bytes(many["memory.no-card"])
    card = need_one / 0.9 * 1.002 / GIB  # batch 1 fits with headroom, batch 16 does not
    assert need_many > card * GIB
    result, found = _memory(weightless, _config(demo, tmp_path, 16), card)
    verdict = found["memory.does-not-fit"]
    assert result.status.value == "fail"
    assert "per_device_train_batch_size" in verdict.params["change"] and "gradient_accumulation_steps" in verdict.fix
    changes = verdict.to_json()["evidence"]["single changes"].split("; ")
    assert any(c.endswith(", fits") for c in changes)
    assert any(c.startswith("`gradient_checkpointing: true`: ") for c in changes)  # each change has its own forecast


def test_the_forecast_grows_with_the_batch(demo, weightless, tmp_path):
    needs = [_need_bytes(_memory(weightless, _config(demo, tmp_path, b), None)[1]["memory.no-card"]) for b in (1, 4)]
    assert needs[0] < needs[1]


def test_gate_on_a_weightless_folder_is_no_go_before_weights_load(demo, weightless, pytester):
    """The whole gate as a user runs it: the memory probe is NO-GO on a card too small, the step SKIPs
    (no weights), and a size that is not a size is a usage error."""
    config = pytester.path / "training.yaml"
    config.write_text(yaml.safe_dump(demo_train_config(demo.path, None), sort_keys=False), encoding="utf-8")
    args = ["--dsocr-probe", "--dsocr-model", str(weightless), "--dsocr-train-config", str(config),
            "--dsocr-trust-remote-code", "--dsocr-allow-unpinned", "-k", "memory or step", "-p", "no:randomly",
            "--dsocr-report-dir", "reports"]
    result = pytester.runpytest_subprocess(*args, "--dsocr-gpu-memory", "256MiB")
    report = json.loads(next((pytester.path / "reports").glob("*.json")).read_text(encoding="utf-8"))
    found = {f["code"]: f for p in report["probes"] for f in p["findings"]}
    assert report["verdict"] == "NO-GO" and result.ret == 1
    assert found["memory.does-not-fit"]["status"] == "fail"
    assert found["step.no-weights"]["status"] == "skip"
    bad = pytester.runpytest_subprocess(*args, "--dsocr-gpu-memory", "lots")
    assert bad.ret == 4 and "16GiB" in bad.stderr.str()


def test_the_step_probe_forecasts_other_sizes_with_the_same_model_on_cuda(demo, monkeypatch):
    """On CUDA the step probe's forecast for the configured batch is the weightless step of its own rows,
    collator and LoRA settings (on the CPU, where it measures RSS, the linear fit stays)."""
    from types import SimpleNamespace

    import torch

    from dsocr_probe.inputs import samples
    from dsocr_probe.model.measure import Measure
    from dsocr_probe.probes import step_memory

    ctx = context(trust_remote_code=True)
    builder = loading.builder_for(ctx, None, torch.float32)
    rows = ctx.usable_rows(ctx.dataset().train.rows)
    worst = samples.largest(samples.measure(rows, ctx.image_facts, builder, ctx.tokenizer()), 1)
    run = SimpleNamespace(lora_settings=dict(ctx.train_config().lora), collator=builder)
    assert step_memory.weightless(ctx, run, worst, torch.float32, {}, "cpu") is None
    weightless = step_memory.weightless(ctx, run, worst, torch.float32, {}, "cuda:0")
    one, four = weightless(1), weightless(4)
    assert 0 < one < four
    monkeypatch.setattr(step_memory, "capacity_bytes", lambda device: 80 * GIB)
    measured = [Measure(1, 100, one, 0.1, slots=60, rows="largest 1"), Measure(2, 100, 2 * one, 0.2, slots=60)]
    finding = next(step_memory.cost_findings(measured, 4, "cuda:0", {"per_device_train_batch_size": 4},
                                             weightless=weightless))
    last = finding.to_json()["table"][-1]
    assert last["batch"] == "4 (forecast)" and last["peak memory"] == f"{four / GIB:.2f} GiB"
    assert "weightless" in finding.to_json()["evidence"]["forecast"]
