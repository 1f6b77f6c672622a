"""scripts/train_lora.py trains a few steps on the demo model of this stack and saves the adapter.

Current stack: the tiny native DeepSeek-OCR-2; legacy stack: the v1 remote-code stand-in.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from pages import write_pages

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_lora.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_lora", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo():
    from dsocr_probe.demo import demo_target, demo_train_config

    target = demo_target()
    if not any(target.path.glob("*.safetensors")):
        pytest.skip(f"the demo model has no weights on this transformers: {target.notes}")
    return target, demo_train_config(target.path)


def write_config(tmp_path: Path, base: dict, **training) -> Path:
    data = tmp_path / "data"
    write_pages(data / "train", ["hello world", "the quick brown fox"])
    config = {
        "model": base["model"],
        # No dropout, a high rate: the same two pages every step, so the loss must fall.
        "lora": {**base["lora"], "lora_dropout": 0.0},
        "training": {
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-2,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "dataloader_num_workers": 0,
            "remove_unused_columns": False,
            **training,
        },
        "data": {**base["data"], "train_dir": str(data / "train"), "val_dir": None},
    }
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_trains_and_saves_the_adapter(demo, tmp_path, capsys):
    target, base = demo
    config = write_config(tmp_path, base, gradient_checkpointing=True)
    out = tmp_path / "adapter"

    code = load_script().main(["--config", str(config), "--output-dir", str(out), "--max-steps", "6", "--device", "cpu"])

    assert code == 0, capsys.readouterr().err
    assert (out / "adapter_config.json").is_file()
    assert (out / "adapter_model.safetensors").is_file()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM"
    assert set(adapter["target_modules"]) == set(base["lora"]["target_modules"])
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 6
    assert losses[-1] < losses[0], losses


def test_refusal_is_a_message_and_exit_code(demo, tmp_path, capsys):
    target, base = demo
    config = write_config(tmp_path, base)
    raw = yaml.safe_load(config.read_text())
    raw["model"]["name"] = str(tmp_path / "nowhere")
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")

    code = load_script().main(["--config", str(config), "--output-dir", str(tmp_path / "out"), "--max-steps", "1"])

    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "nowhere" in err and "fix:" in err


def test_dataset_and_builder_survive_spawned_workers(demo, tmp_path):
    """DataLoader workers started with spawn receive both by pickling (the seed team's Windows error)."""
    import pickle

    from dsocr_probe import dataset, loading
    from dsocr_probe.context import Options, ProbeContext
    from dsocr_probe.training import ExampleDataset

    target, base = demo
    config = write_config(tmp_path, base)
    ctx = ProbeContext(Options(model=str(target.path), train_config=config, trust_remote_code=True))
    rows = dataset.load(tmp_path / "data").train.rows
    data = pickle.loads(pickle.dumps(ExampleDataset(rows)))
    builder = pickle.loads(pickle.dumps(loading.builder_for(ctx)))

    batch = builder([data[0], data[1]])
    assert batch["labels"].shape[0] == 2
    assert data[1] == {"image": str(rows[1].image), "text": "the quick brown fox"}


def test_training_arguments_keep_the_examples_whole(tmp_path):
    import transformers
    from packaging.version import Version

    from dsocr_probe.training import trainer_processing_kwargs, training_arguments

    args = training_arguments({"remove_unused_columns": True, "per_device_train_batch_size": 1}, tmp_path, max_steps=3)
    assert args.remove_unused_columns is False and args.max_steps == 3 and args.output_dir == str(tmp_path)
    expected = "processing_class" if Version(transformers.__version__) >= Version("4.46.0") else "tokenizer"
    assert list(trainer_processing_kwargs(object())) == [expected]
