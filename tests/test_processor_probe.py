import json
import shutil

from probing import codes, context, linux_cpu, probe


def test_v1_processor_is_the_bare_tokenizer(v1_model):
    result = probe("processor", context(linux_cpu(), model=str(v1_model)))
    found = codes(result)
    assert found["processor.tokenizer-only"] == "warn"
    assert found["processor.class-not-shipped"] == "warn"
    assert found["processor.image-token"] == "pass"
    warn = next(f for f in result.findings if f.code == "processor.tokenizer-only")
    assert "DeepseekOCRCollator" in warn.fix


def test_with_the_dsocr_probe_builder_the_bare_tokenizer_is_fine(v1_model, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  remove_unused_columns: false\n")
    found = codes(probe("processor", context(linux_cpu(), model=str(v1_model), train_config=cfg)))
    assert found["processor.tokenizer-only"] == "pass" and found["processor.class-not-shipped"] == "pass"


def test_image_token_disagreeing_with_the_config_is_no_go(v1_model, tmp_path):
    folder = shutil.copytree(v1_model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["image_token_id"] = 5
    (folder / "config.json").write_text(json.dumps(cfg))
    assert codes(probe("processor", context(linux_cpu(), model=str(folder))))["processor.image-token-mismatch"] == "fail"


def test_untrusted_remote_tokenizer_is_not_imported(v1_model, tmp_path):
    folder = shutil.copytree(v1_model, tmp_path / "m")
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    result = probe("processor", context(linux_cpu(), model=str(folder)))
    last = result.findings[-1]
    assert (last.code, last.status.value) == ("loading.untrusted", "skip") and "trust-remote-code" in last.fix
