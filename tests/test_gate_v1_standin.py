"""The whole gate on the v1 stand-in, which mirrors the published remote code (eval only in infer(), a SAM
torch.load only when a checkpoint path is given): trusted and pinned, it is GO with warnings."""

from __future__ import annotations

import importlib
import json

import pytest
import yaml

REMOTE_CODE_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
pytestmark = pytest.mark.skipif(not REMOTE_CODE_LOADS, reason="the v1 remote code imports only on transformers <= 4.47.1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The stand-in with weights, its rendered pages and a training config that fits them."""
    from dsocr_probe.demo import target as demo
    from dsocr_probe.demo.pages import write_dataset
    from dsocr_probe.demo.standin import write_v1_standin

    folder = write_v1_standin(tmp_path_factory.mktemp("gate") / "DeepSeek-OCR", weights=True, seed=0)
    write_dataset(folder / "dataset", seed=0)
    config = folder.parent / "training_config.yaml"
    config.write_text(yaml.safe_dump(demo.demo_train_config(folder, demo.V1), sort_keys=False), encoding="utf-8")
    return folder, config


def _gate(pytester, checkpoint, revision):
    folder, config = checkpoint
    # A process of its own, as a user runs it: an in-process run would drop the training stack's modules after it.
    result = pytester.runpytest_subprocess("--dsocr-probe", "--dsocr-model", str(folder), "--dsocr-trust-remote-code",
                                "--dsocr-revision", revision, "--dsocr-train-config", str(config),
                                "--dsocr-report-dir", "reports", "-p", "no:randomly")
    report = json.loads(next((pytester.path / "reports").glob("*.json")).read_text(encoding="utf-8"))
    return result, report, {f["code"]: f for p in report["probes"] for f in p["findings"]}


def test_trusted_and_pinned_by_content_the_gate_is_go_with_the_infer_warning(pytester, checkpoint):
    from dsocr_probe.inputs.pinning import content_digest

    result, report, findings = _gate(pytester, checkpoint, content_digest(checkpoint[0]))
    blocking = [(code, f["title"]) for code, f in findings.items() if f["status"] in ("fail", "error")]
    assert not blocking
    assert result.ret == 0 and report["verdict"] == "GO with warnings"
    off_path = findings["remote_code.off-path"]
    assert off_path["status"] == "warn" and off_path["params"]["count"] == 8
    assert "DeepseekOCRForCausalLM.infer" in off_path["params"]["roots"]
    assert off_path["params"]["guard"] == "if checkpoint is not None:"
    assert findings["remote_code.pinned"]["status"] == "pass"
    assert findings["step.loss"]["status"] == findings["step.gradients"]["status"] == "pass"  # it really trained


def test_a_commit_hash_on_the_plain_folder_is_no_go_and_names_the_digest(pytester, checkpoint):
    from dsocr_probe.inputs.pinning import content_digest

    result, report, findings = _gate(pytester, checkpoint, "0123456789abcdef0123456789abcdef01234567")
    assert report["verdict"] == "NO-GO" and result.ret != 0
    assert findings["remote_code.unpinned"]["status"] == "fail"
    assert f"--dsocr-revision {content_digest(checkpoint[0])}" in findings["remote_code.unpinned"]["fix"]
