"""The step probe runs the team's real training: their Trainer class, arguments, collator and rows.

Each test writes a training config for this stack's demo model (and, where it needs one, a small
module with the team's own Trainer subclass or collator next to it) and runs the probes the way
``pytest --dsocr-probe --dsocr-train-config`` does.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from pages import write_pages
from probing import codes, context, probe

from dsocr_probe.model import loading, trainrun
from dsocr_probe.findings import Status

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_lora.py"
_unique = itertools.count()


def demo_config(demo) -> dict:
    return yaml.safe_load((demo.path / "training_config.yaml").read_text(encoding="utf-8"))


def write_config(tmp_path: Path, config: dict, raw: dict[str, str] | None = None) -> Path:
    """The config as YAML; ``raw`` replaces a training key's line with text written as a user would."""
    text = yaml.safe_dump(config, sort_keys=False)
    for key, value in (raw or {}).items():
        text = text.replace("training:\n", f"training:\n  {key}: {value}\n", 1)
    path = tmp_path / "training_config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def module(tmp_path: Path, source: str) -> str:
    """A module of the team's own next to the config; returns its (unique) import name."""
    name = f"team_code_{next(_unique)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return name


def by_code(result, code: str):
    return next(f for f in result.findings if f.code == code)


def step(config: Path):
    return probe("step", context(trust_remote_code=True, train_config=config, device="cpu"))


def train_config(config: Path):
    return probe("train_config", context(trust_remote_code=True, train_config=config, device="cpu"))


@pytest.fixture()
def no_weights(monkeypatch):
    """Fail the test if a probe loads weights."""
    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(loading, "load_model", refuse)


# ---------------------------------------------------------------- values


def test_a_number_written_as_a_string_is_no_go_before_weights_load(demo, tmp_path, monkeypatch):
    config = demo_config(demo)
    del config["training"]["learning_rate"]
    path = write_config(tmp_path, config, raw={"learning_rate": "2e-4"})
    assert yaml.safe_load(path.read_text())["training"]["learning_rate"] == "2e-4"  # PyYAML's reading

    with monkeypatch.context() as mp:
        mp.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))
        result = train_config(path)
    finding = by_code(result, "train_config.number-as-string")
    assert finding.status is Status.FAIL
    assert "learning_rate" in finding.title and "learning_rate: 2.0e-4" in finding.fix

    # The run itself confirms it: the Trainer's optimizer refuses the string.
    ran = step(path)
    failed = by_code(ran, "step.forward-fails")
    assert failed.status is Status.FAIL
    assert "not supported between instances of 'float' and 'str'" in failed.title


@pytest.mark.parametrize(("key", "value", "code", "words"), [
    ("bf16", '"false"', "train_config.bool-as-string", "bf16: false"),
    ("optim", "adamw", "train_config.bad-choice", "adamw_torch"),
    ("lr_scheduler_type", "cosin", "train_config.bad-choice", "cosine"),
    ("per_device_train_batch_size", "0", "train_config.out-of-range", "≥ 1"),
    ("gradient_accumulation_steps", "0", "train_config.out-of-range", "≥ 1"),
    ("num_train_epochs", "null", "train_config.null-value", "num_train_epochs"),
    ("num_train_epochs", "four", "train_config.wrong-type", "a number"),
    ("per_device_train_batch_size", "2.5", "train_config.wrong-type", "whole number"),
])
def test_values_the_run_cannot_use_are_findings_not_probe_errors(demo, tmp_path, no_weights, key, value, code, words):
    config = demo_config(demo)
    config["training"].pop(key, None)
    result = train_config(write_config(tmp_path, config, raw={key: value}))

    assert not [f for f in result.findings if f.status is Status.ERROR], result.findings
    finding = by_code(result, code)
    assert finding.status is Status.FAIL and finding.params["key"] == key
    assert words in f"{finding.title} {finding.detail} {finding.fix}"


def test_fp16_and_bf16_together_get_transformers_own_rule(demo, tmp_path, no_weights):
    config = demo_config(demo)
    config["training"].update(fp16=True, bf16=True)
    result = train_config(write_config(tmp_path, config))

    assert codes(result)["train_config.fp16-and-bf16"] == "fail"
    assert "GPU" not in by_code(result, "train_config.fp16-and-bf16").title


def test_a_misspelled_section_is_named_with_the_one_meant(demo, tmp_path, no_weights):
    config = demo_config(demo)
    config["trainig"] = config.pop("training")
    config["wandb"] = {"project": "ocr"}
    result = train_config(write_config(tmp_path, config))

    finding = by_code(result, "train_config.unknown-section")
    assert finding.status is Status.FAIL and "`training:`" in finding.title
    other = by_code(result, "train_config.unknown-key")
    assert other.status is Status.WARN and other.params["key"] == "wandb"


# ---------------------------------------------------------------- the Trainer class

OLD_TRAINER = """
    from transformers import Trainer

    class TeamTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
"""
NEW_TRAINER = """
    from transformers import Trainer

    class TeamTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
"""


def test_a_trainer_subclass_without_num_items_in_batch_is_no_go(demo, tmp_path):
    config = demo_config(demo)
    config["trainer"] = f"{module(tmp_path, OLD_TRAINER)}:TeamTrainer"
    path = write_config(tmp_path, config)

    finding = by_code(train_config(path), "train_config.trainer-num-items")
    assert finding.status is Status.FAIL
    assert "num_items_in_batch" in finding.title and "compute_loss" in finding.title
    assert "num_items_in_batch=None" in finding.fix
    # Confirmed by the run: the Trainer calls it with the argument.
    failed = by_code(step(path), "step.forward-fails")
    assert "num_items_in_batch" in failed.title
    assert "TeamTrainer" in failed.detail


def test_the_same_subclass_with_the_argument_is_go(demo, tmp_path):
    config = demo_config(demo)
    config["trainer"] = f"{module(tmp_path, NEW_TRAINER)}:TeamTrainer"
    path = write_config(tmp_path, config)

    checked = train_config(path)
    assert codes(checked)["train_config.trainer"] == "pass"
    assert "train_config.trainer-num-items" not in codes(checked)
    result = step(path)
    assert result.status is Status.PASS, [(f.code, f.title) for f in result.findings]
    assert "TeamTrainer" in by_code(result, "step.run").evidence["trainer"]


def test_a_trainer_that_does_not_import_is_named(demo, tmp_path, no_weights):
    config = demo_config(demo)
    config["trainer"] = "no_such_package_here:Trainer"
    result = train_config(write_config(tmp_path, config))

    finding = by_code(result, "train_run.trainer-import")
    assert finding.status is Status.FAIL and "no_such_package_here" in finding.title


def test_sft_trainer_with_an_sft_config_section_trains(demo, tmp_path):
    trl = pytest.importorskip("trl")
    config = demo_config(demo)
    config["trainer"] = "trl:SFTTrainer"
    # What Unsloth's DeepSeek-OCR notebook passes: the rows go to the collator untouched.
    config["training"].update(dataset_text_field="", dataset_kwargs={"skip_prepare_dataset": True})
    path = write_config(tmp_path, config)

    checked = train_config(path)
    assert checked.status is not Status.FAIL, [(f.code, f.title) for f in checked.findings]
    assert by_code(checked, "train_config.trainer").params["args"] == "SFTConfig"
    result = step(path)
    assert result.status is Status.PASS, [(f.code, f.title, f.detail) for f in result.findings]
    ran = by_code(result, "step.run")
    assert ran.evidence["arguments class"] == "SFTConfig" and "SFTTrainer" in ran.evidence["trainer"]
    assert trl.__version__


# ---------------------------------------------------------------- the collator

DROPS_LABELS = """
    class WithoutLabels:
        \"\"\"The verified builder, minus labels: the model then returns no loss.\"\"\"

        def __init__(self, processing):
            if hasattr(processing, "image_processor"):  # DeepSeek-OCR-2's processor
                from dsocr_probe import DeepseekOCR2Collator as Builder
            else:  # DeepSeek-OCR v1: the tokenizer
                from dsocr_probe import DeepseekOCRCollator as Builder
            self.inner = Builder(processing)

        def __call__(self, examples):
            batch = dict(self.inner(examples))
            batch.pop("labels")
            return batch
"""


def test_a_collator_that_only_training_shows_wrong_fails_with_the_trainers_message(demo, tmp_path):
    config = demo_config(demo)
    name = module(tmp_path, DROPS_LABELS)
    config["data"]["collator"] = f"{name}:WithoutLabels"
    result = step(write_config(tmp_path, config))

    failed = by_code(result, "step.forward-fails")
    assert failed.status is Status.FAIL
    assert "did not return a loss" in failed.title  # the Trainer's own words
    assert "WithoutLabels" in failed.detail and f"data.collator: {name}:WithoutLabels" in failed.detail


# ---------------------------------------------------------------- which rows, which run


def test_the_batch_measured_is_the_largest_of_the_split(demo, tmp_path):
    config = demo_config(demo)
    data = tmp_path / "data"
    write_pages(data / "train", ["short", "a", "b"], size=(96, 64))
    write_pages(tmp_path / "big", ["a longer target text than the other rows"], size=(160, 160))
    rows = json.loads((data / "train" / "metadata.json").read_text())
    (data / "train" / "images" / "big.png").write_bytes((tmp_path / "big" / "images" / "00001.png").read_bytes())
    rows.append({"image_path": "images/big.png", "text": "a longer target text than the other rows"})
    (data / "train" / "metadata.json").write_text(json.dumps(rows))
    config["data"].update(train_dir=str(data / "train"), val_dir=None)
    config["training"]["per_device_train_batch_size"] = 1
    result = step(write_config(tmp_path, config))

    assert result.status is Status.PASS, [(f.code, f.title) for f in result.findings]
    ran = by_code(result, "step.run")
    assert ran.evidence["largest batch"] == "#3 big.png"
    assert ran.evidence["first rows"] == "#0 00001.png"
    measured = by_code(result, "step.rows").to_json()["table"]
    assert measured[0]["image"].endswith("big.png") and measured[0]["batch"] == "largest"


def test_no_update_with_a_zero_learning_rate(demo, tmp_path):
    config = demo_config(demo)
    config["training"]["learning_rate"] = 0.0
    result = step(write_config(tmp_path, config))

    finding = by_code(result, "step.no-update")
    assert finding.status is Status.FAIL and "learning_rate" in finding.fix


def test_the_script_and_the_probe_build_the_same_run(demo, tmp_path, monkeypatch):
    """Field by field: the step probe's run differs from the script's only in the overrides it lists."""
    config = demo_config(demo)
    config["training"].update(gradient_accumulation_steps=2, warmup_steps=1, weight_decay=0.01)
    path = write_config(tmp_path, config)
    built = []
    real = trainrun.build
    monkeypatch.setattr(trainrun, "build", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    step(path)
    probed = built[0]

    spec = importlib.util.spec_from_file_location("train_lora_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    # The demo's v1 stand-in has no commit to pin: the script needs --allow-unpinned for it, as the demo's probe run does.
    trained = script.build(script.parse_args(["--config", str(path), "--device", "cpu", "--allow-unpinned"]))

    assert probed.trainer_class is trained.trainer_class
    assert type(probed.arguments) is type(trained.arguments)
    overridden = {s.name for s in probed.overrides()} - {s.name for s in trained.overrides()}
    ours, theirs = probed.arguments.to_dict(), trained.arguments.to_dict()
    differing = {k for k in ours if ours[k] != theirs[k]}
    assert differing <= overridden | {"logging_dir", "run_name"}  # names derived from output_dir
    assert "max_steps" in overridden and "gradient_accumulation_steps" not in differing
    assert type(probed.collator) is type(trained.collator)
    assert probed.collator.describe() == trained.collator.describe()
    assert probed.lora_settings == trained.lora_settings
    assert probed.model.peft_config["default"].to_dict() == trained.model.peft_config["default"].to_dict()
    def name(obj):  # remote code is imported per loading context: the same class, by its qualified name
        return f"{type(obj).__module__}.{type(obj).__qualname__}"

    assert name(probed.model.base_model.model) == name(trained.model.base_model.model)
    assert {str(r["image"]) for r in probed.train_dataset} <= {str(r["image"]) for r in trained.train_dataset}
    assert torch.is_tensor(next(trained.model.parameters()))


# ---------------------------------------------------------------- what the run's other settings do


def test_an_eval_strategy_without_val_rows_is_no_go_as_the_trainer_says(demo, tmp_path):
    """The probe trains with evaluation off, but it makes the Trainer with the team's own settings first."""
    config = demo_config(demo)
    config["data"]["val_dir"] = None
    config["training"].update(eval_strategy="steps", eval_steps=10)
    result = step(write_config(tmp_path, config))

    finding = by_code(result, "step.trainer-init")
    assert finding.status is Status.FAIL and "eval_dataset" in finding.title


def test_gradient_accumulation_runs_for_real(demo, tmp_path):
    config = demo_config(demo)
    config["training"].update(per_device_train_batch_size=1, gradient_accumulation_steps=3)
    result = step(write_config(tmp_path, config))

    assert result.status is Status.PASS, [(f.code, f.title) for f in result.findings]
    finding = by_code(result, "step.accumulation")
    assert finding.evidence["batches per optimizer step"] == [3]


def test_a_json_string_for_the_checkpointing_kwargs_is_read_as_transformers_reads_it(demo, tmp_path):
    config = demo_config(demo)
    config["training"].update(gradient_checkpointing=True, gradient_checkpointing_kwargs='{"use_reentrant": false}')
    result = step(write_config(tmp_path, config))

    assert not [f for f in result.findings if f.status is Status.ERROR], [(f.code, f.title) for f in result.findings]
    assert result.status is Status.PASS, [(f.code, f.title) for f in result.findings]


@pytest.mark.parametrize(("key", "value"), [("init_lora_weights", "gaussian"), ("task_type", "causal_lm")])
def test_lora_values_peft_and_the_script_take_are_no_problem(demo, tmp_path, no_weights, key, value):
    config = demo_config(demo)
    config["lora"][key] = value
    result = train_config(write_config(tmp_path, config))

    assert not [f for f in result.findings if f.status.blocks], [(f.code, f.title) for f in result.findings]


def test_the_script_trains_on_the_folder_given_with_data(demo, tmp_path):
    config = demo_config(demo)
    path = write_config(tmp_path, config)
    other = write_pages(tmp_path / "other" / "train", ["only one row"])
    spec = importlib.util.spec_from_file_location("train_lora_script_data", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    run = script.build(script.parse_args(["--config", str(path), "--device", "cpu", "--allow-unpinned",
                                          "--data", str(other.parent)]))
    assert [str(r["image"]) for r in run.train_dataset] == [str(other / "images" / "00001.png")]


def test_a_collator_class_is_made_the_same_way_by_the_batch_probe(demo, tmp_path):
    """Named as a class, the team's collator is made with the tokenizer or processor, as the run makes it."""
    config = demo_config(demo)
    config["data"]["collator"] = f"{module(tmp_path, DROPS_LABELS)}:WithoutLabels"
    result = probe("batch", context(trust_remote_code=True, train_config=write_config(tmp_path, config), device="cpu"))

    assert not [f for f in result.findings if f.status is Status.ERROR], [(f.code, f.title) for f in result.findings]
    assert "batch.built" in codes(result)
