import yaml
from packaging.version import Version

from dsocr_probe.probes.train_config import check_arguments
from dsocr_probe.probes.train_config_data import pickle_problem
from pages import write_pages
from probing import codes, context, linux_cpu, probe


def _codes(training, version="5.23.0"):
    return {f.code: f for f in check_arguments(training, Version(version))}


def test_optimizer_is_never_an_argument_use_optim():
    f = _codes({"optimizer": "adamw_torch"})["train_config.renamed-argument"]
    assert f.status.value == "fail" and "`optim`" in f.fix


def test_evaluation_strategy_removed_in_4_51_and_deprecated_before():
    import transformers

    installed = Version(transformers.__version__)
    found = _codes({"evaluation_strategy": "epoch"}, str(installed))
    if installed >= Version("4.51.0"):
        assert "eval_strategy" in found["train_config.renamed-argument"].fix
    else:
        assert "eval_strategy" in found["train_config.deprecated-argument"].fix


def test_tokenizer_belongs_to_trainer():
    f = _codes({"tokenizer": "x"})["train_config.trainer-argument"]
    assert "processing_class" in f.fix


def test_typo_gets_the_nearest_name():
    f = _codes({"per_device_train_batchsize": 2})["train_config.unknown-argument"]
    assert "per_device_train_batch_size" in f.fix


def test_valid_arguments_pass():
    assert set(_codes({"per_device_train_batch_size": 1, "optim": "adamw_torch"})) == {"train_config.arguments"}


def _project(tmp_path, training: dict, n_train=3):
    write_pages(tmp_path / "data" / "train", [f"line {i}" for i in range(n_train)])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"train_dir": str(tmp_path / "data" / "train")}, "training": training}))
    return cfg


def test_batch_math_against_the_data(tmp_path):
    cfg = _project(tmp_path, {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
                              "num_train_epochs": 50, "remove_unused_columns": False})
    result = probe("train_config", context(linux_cpu(), train_config=cfg))
    found = codes(result)
    assert found["train_config.batch-larger-than-data"] == "warn"
    assert found["train_config.effective-batch"] == "warn"
    assert found["train_config.epochs"] == "warn"
    f = next(f for f in result.findings if f.code == "train_config.effective-batch")
    assert f.evidence["optimizer steps in all"] == 50


def test_remove_unused_columns_default_warns_for_scripts_of_the_teams_own(tmp_path):
    """scripts/train_lora.py sets it to False itself (so the step probe's run does too): not a blocker of that run."""
    cfg = _project(tmp_path, {"per_device_train_batch_size": 1})
    assert codes(probe("train_config", context(linux_cpu(), train_config=cfg)))["train_config.remove-unused-columns"] == "warn"


def test_bad_yaml_names_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  a: 1\n b: [\n")
    result = probe("train_config", context(linux_cpu(), train_config=cfg))
    assert result.findings[0].code == "train_config.yaml"
    assert "c.yaml:" in result.findings[0].title


def test_plain_training_arguments_mapping(tmp_path):
    cfg = tmp_path / "args.yaml"
    cfg.write_text("per_device_train_batch_size: 1\nremove_unused_columns: false\n")
    assert "train_config.arguments" in codes(probe("train_config", context(linux_cpu(), train_config=cfg)))


def _local():
    def collate(examples):
        return examples

    return collate


def test_pickle_problem_of_local_function():
    assert "local object" in pickle_problem(_local())
    assert pickle_problem(sorted) is None


def test_workers_without_a_collator_pickle_the_verified_builder_and_the_dataset(tmp_path, v1_model, monkeypatch):
    from dsocr_probe.model import loading

    cfg = _project(tmp_path, {"per_device_train_batch_size": 1, "remove_unused_columns": False, "dataloader_num_workers": 2})
    spawn = linux_cpu()
    spawn.mp_start_method = "spawn"
    ctx = context(spawn, model=str(v1_model), train_config=cfg)
    f = next(f for f in probe("train_config", ctx).findings if f.code.startswith("train_config.workers"))
    assert f.status.value == "pass" and f.evidence["pickled"] == "DeepseekOCRCollator, ExampleDataset"

    # A builder holding something that cannot cross into a worker is named.
    unpicklable = loading.builder_for(ctx)
    unpicklable.hook = lambda batch: batch
    monkeypatch.setattr(loading, "builder_for", lambda ctx: unpicklable)
    f = next(f for f in probe("train_config", context(spawn, model=str(v1_model), train_config=cfg)).findings
             if f.code.startswith("train_config.workers"))
    assert f.code == "train_config.workers-pickle" and f.status.value == "fail"
    assert "DeepseekOCRCollator: " in f.title and "dataloader_num_workers: 0" in f.fix
