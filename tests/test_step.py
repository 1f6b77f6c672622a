"""The step probe: a real LoRA training step on this stack's demo model.

Current stack: the tiny native DeepSeek-OCR-2; legacy stack: the v1 remote-code stand-in, whose
vision path runs under torch.no_grad() as the published model's does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from probing import codes, context, probe

from dsocr_probe.model import gradients, loading
from dsocr_probe.findings import Status
from dsocr_probe.model.measure import Measure, forecast
from dsocr_probe.probes.step_learning import loss_falls

# DeepSeek-OCR v1's SAM and CLIP linear layers (reference: linear module names).
V1_VISION_TARGETS = ["qkv", "proj", "lin1", "lin2", "qkv_proj", "out_proj", "fc1", "fc2"]


def write_config(tmp_path: Path, demo, lora: dict | None = None, **training) -> Path:
    """The demo's training config with some sections replaced."""
    config = yaml.safe_load((demo.path / "training_config.yaml").read_text(encoding="utf-8"))
    if lora is not None:
        config["lora"] = lora
    config["training"].update(training)
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_step(demo, config: Path | None = None):
    return probe("step", context(trust_remote_code=True, train_config=config, device="cpu"))


def by_code(result, code: str):
    return next(f for f in result.findings if f.code == code)


def test_go_on_the_demo_model(demo, tmp_path):
    result = run_step(demo, write_config(tmp_path, demo))

    assert result.status is Status.PASS, [(f.code, f.status, f.title, f.detail) for f in result.findings]
    expected = {"step.model-loaded", "step.lora", "step.loss", "step.gradients", "step.loss-falls", "step.cost"}
    assert expected <= set(codes(result))
    grads = by_code(result, "step.gradients")
    assert grads.evidence["with gradient"] == grads.evidence["adapters"] > 0
    cost = by_code(result, "step.cost").to_json()
    # The configured batch of the largest rows, the first rows, and one sample for a second size.
    assert [(row["batch"], row["rows"]) for row in cost["table"]] == [(2, "largest 2"), (2, "first 2"), (1, "largest 1")]
    ran = by_code(result, "step.run")
    assert ran.evidence["trainer"].startswith("transformers.trainer.Trainer")
    assert "verified batch builder" in ran.to_json()["evidence"]["collator from"]
    used = {row["argument"]: row for row in ran.to_json()["table"]}
    assert used["max_steps"]["used"] == "5" and used["max_steps"]["changed by"] != "—"
    assert used["learning_rate"]["changed by"] == "—"  # the team's own value, as configured
    assert used["max_steps"]["changed by"].startswith("probe:")
    assert used["use_cpu"]["changed by"].startswith("training script:")  # the script does the same on the CPU
    assert used["logging_steps"]["changed by"] == "—"  # the demo's config already logs every step
    assert "push_to_hub" not in used  # the probe's False is the default: nothing changed, nothing listed
    assert "`use_cpu`" not in ran.detail and "`max_steps`" in ran.detail


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad=True:UserWarning")  # the cause, shown
@pytest.mark.parametrize("reentrant", [None, True])
def test_gradient_checkpointing_as_the_trainer_enables_it(demo, tmp_path, reentrant):
    """Non-reentrant by default. Reentrant passes no gradient into checkpointed blocks on transformers 4.x,
    where nothing makes the frozen embeddings' output require grad (5.x does it itself)."""
    extra = {} if reentrant is None else {"gradient_checkpointing_kwargs": {"use_reentrant": reentrant}}
    result = run_step(demo, write_config(tmp_path, demo, gradient_checkpointing=True, **extra))

    if reentrant and demo.model_type == "DeepseekOCR":
        finding = by_code(result, "step.no-gradients")
        assert finding.status is Status.FAIL and "use_reentrant: false" in finding.fix
    else:
        assert result.status is Status.PASS, [(f.code, f.title, f.detail) for f in result.findings]


def test_seq2seq_task_type_is_no_go_naming_causal_lm(demo, tmp_path):
    lora = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "task_type": "SEQ_2_SEQ_LM"}
    result = run_step(demo, write_config(tmp_path, demo, lora=lora))

    finding = by_code(result, "step.task-type")
    assert finding.status is Status.FAIL
    assert "CAUSAL_LM" in finding.title and "lora.task_type: CAUSAL_LM" in finding.fix
    if demo.model_type == "DeepseekOCR":  # v1's forward has no **kwargs: the real error shows
        assert "unexpected keyword argument 'decoder_input_ids'" in finding.detail
    # The rest of the step still ran, with the right task type.
    assert codes(result)["step.loss-falls"] == "pass"


def test_adapters_only_on_vision_modules_is_no_go(demo, tmp_path):
    if demo.model_type != "DeepseekOCR":
        pytest.skip("only DeepSeek-OCR v1 runs its vision path under torch.no_grad(); OCR-2's vision adapters learn")
    lora = {"r": 8, "lora_alpha": 16, "target_modules": V1_VISION_TARGETS, "task_type": "CAUSAL_LM"}
    result = run_step(demo, write_config(tmp_path, demo, lora=lora))

    finding = by_code(result, "step.adapters-vision-only")
    assert finding.status is Status.FAIL
    assert "q_proj" in finding.fix and "v_proj" in finding.fix
    assert all("no_grad" in row["gradient"] for row in finding.to_json()["table"])
    assert "step.loss-falls" not in codes(result)  # nothing can learn: no overfit run


def test_out_of_memory_is_a_finding_with_what_fitted(demo, tmp_path, monkeypatch):
    """The first batch of 2 runs out of memory: the probe reports batch 1 as what fits, and survives."""
    real_load = loading.load_model

    def load_with_small_memory(ctx, device, dtype):
        model = real_load(ctx, device, dtype)
        forward = model.forward

        def limited(*args, **kwargs):
            if kwargs["input_ids"].shape[0] >= 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(*args, **kwargs)

        model.forward = limited
        return model

    monkeypatch.setattr(loading, "load_model", load_with_small_memory)
    result = run_step(demo, write_config(tmp_path, demo, per_device_train_batch_size=4))

    finding = by_code(result, "step.out-of-memory")
    assert finding.status is Status.FAIL
    assert "batch of 4" in finding.title  # the configured batch, of the demo's four largest rows
    assert "largest setting that fitted: batch 1" in finding.detail
    assert "per_device_train_batch_size: 1" in finding.fix and "gradient_accumulation_steps: 4" in finding.fix
    assert codes(result)["step.loss-falls"] == "pass"  # batch 1 was then checked as fully


def test_untrusted_remote_code_is_not_imported(v1_model, seed_data):
    result = probe("step", context(model=str(v1_model), data=seed_data, device="cpu"))

    assert codes(result) == {"loading.untrusted": "skip"}
    assert "--dsocr-trust-remote-code" in result.findings[0].fix


def test_no_data_is_a_skip(v1_model):
    result = probe("step", context(model=str(v1_model), trust_remote_code=True, device="cpu"))

    assert codes(result) == {"step.no-data": "skip"}
    assert "--dsocr-data" in result.findings[0].fix


# ---------------------------------------------------------------- the parts, without a model


class VisionUnderNoGrad(torch.nn.Module):
    """A vision encoder under no_grad feeding a language layer, as DeepSeek-OCR v1 does."""

    def __init__(self):
        super().__init__()
        self.vision_model = torch.nn.Linear(4, 4)
        self.language = torch.nn.Linear(4, 4)

    def forward(self, x):
        with torch.no_grad():
            x = self.vision_model(x)
        return self.language(x).pow(2).mean()


def test_gradient_report_finds_adapters_under_no_grad():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(VisionUnderNoGrad(), LoraConfig(r=2, target_modules=["vision_model", "language"]))
    model(torch.randn(3, 4)).backward()

    report = gradients.collect(model)

    by_module = {a.module: a for a in report.adapters}
    assert by_module["vision_model"].norm is None and not by_module["vision_model"].learns
    assert by_module["language"].learns
    assert report.frozen_with_grad == [] and report.trainable_without_grad == []
    reason = gradients.why_not_learning(by_module["vision_model"], {"vision_model"})
    assert "no_grad" in reason


@pytest.mark.parametrize(
    "losses, falls",
    [
        ([6.2399, 6.2391, 6.2384, 6.2374, 6.2366], True),  # tiny but steady
        ([2.0, 1.5, 1.7, 1.2, 1.6], True),  # zigzag with a large fall
        ([6.2, 6.2, 6.2, 6.2, 6.2], False),  # nothing learns
        ([6.2, 6.19, 6.21, 6.18, 6.2], False),  # noise
        ([6.2, 6.3, 6.4, 6.5, 6.6], False),  # diverges
        ([6.2, math.nan, 1.0, 1.0, 1.0], False),
        ([6.2], False),
    ],
)
def test_loss_falls(losses, falls):
    assert loss_falls(losses) is falls


def test_forecast_is_linear_in_tokens():
    small = Measure(samples=1, length=100, peak_bytes=1_000, step_s=1.0)
    large = Measure(samples=2, length=100, peak_bytes=1_400, step_s=1.5)

    guess = forecast([small, large], samples=4, length=200, capacity_bytes=10_000, headroom=0.9)

    # 4 bytes and 0.005 s per token on top of 600 bytes and 0.5 s; 800 tokens.
    assert guess.peak_bytes == 600 + 4 * 800
    assert guess.step_s == pytest.approx(0.5 + 0.005 * 800)
    assert guess.fits
    assert guess.largest_batch == (9_000 - 600) // (4 * 200)


def test_forecast_takes_image_slots_as_an_axis_of_their_own():
    """Crops cost the vision encoder memory beyond their tokens: 3 sizes separate the two slopes."""
    def peak(samples, length, slots):  # 500 base, 2 per token, 10 more per image slot
        return 500 + 2 * samples * length + 10 * samples * slots

    sizes = [(2, 300, 200), (2, 150, 40), (1, 300, 200)]
    measures = [Measure(b, t, peak(b, t, s), 1.0, slots=s) for b, t, s in sizes]

    guess = forecast(measures, samples=4, length=300, capacity_bytes=None, slots=200)
    assert guess.peak_bytes == pytest.approx(peak(4, 300, 200), abs=2)
    tokens_only = forecast(measures[:1] + measures[2:], samples=4, length=300, capacity_bytes=None, slots=200)
    assert tokens_only.peak_bytes == pytest.approx(peak(4, 300, 200), abs=2)  # same slots per sample: tokens carry it
    # A long text-only page has many tokens and no slots: a tokens-only line would overestimate it.
    text_page = forecast(measures, samples=4, length=300, capacity_bytes=None, slots=0)
    assert text_page.peak_bytes == pytest.approx(peak(4, 300, 0), abs=2)


# ---------------------------------------------------------------- loading


def test_dtype_names():
    from dsocr_probe.findings import InputError
    from dsocr_probe.probes.context import finding_of

    assert loading.parse_dtype("bf16") is torch.bfloat16
    assert loading.parse_dtype("torch.float32") is torch.float32
    with pytest.raises(InputError) as error:
        loading.parse_dtype("float8", "model.torch_dtype")
    assert error.value.code == "loading.dtype" and error.value.params == {"where": "model.torch_dtype", "value": "float8"}
    assert "bfloat16" in finding_of(error.value).fix


def test_model_class_is_the_one_the_checkpoint_maps(demo):
    ctx = context(trust_remote_code=True)
    cls, how = loading.model_class(ctx)
    if demo.model_type == "DeepseekOCR":
        assert how.startswith("AutoModel (auto_map")  # the only class v1's auto_map names
    else:
        assert cls.__name__ == "DeepseekOcr2ForConditionalGeneration"


def test_missing_weights_are_named(v1_model):
    from dsocr_probe.findings import InputError
    from dsocr_probe.probes.context import finding_of

    with pytest.raises(InputError) as error:
        loading.load_model(context(model=str(v1_model), trust_remote_code=True, allow_unpinned=True), "cpu", torch.float32)
    assert error.value.code == "loading.no-weights" and error.value.params == {"path": str(v1_model)}
    assert "huggingface-cli download" in finding_of(error.value).fix


@pytest.mark.parametrize("where", ["loading", "first step"])
def test_cpu_memory_error_is_a_finding_and_the_process_survives(demo, tmp_path, monkeypatch, where):
    """Python's MemoryError wherever the step probe allocates: a NO-GO finding, never a crash."""
    real_load = loading.load_model

    def load(ctx, device, dtype):
        if where == "loading":
            raise MemoryError()
        model = real_load(ctx, device, dtype)
        if where == "first step":
            def no_memory(*args, **kwargs):
                raise MemoryError("cannot allocate 2.0 GiB")
            model.forward = no_memory
        return model

    monkeypatch.setattr(loading, "load_model", load)
    result = run_step(demo, write_config(tmp_path, demo))
    finding = by_code(result, "step.out-of-memory")
    assert finding.status is Status.FAIL and "MemoryError" in finding.detail
    assert {"loading": "the weights alone", "first step": "a batch of 2"}[where] in finding.title
    assert "Nothing fitted" in finding.detail
    assert not [f for f in result.findings if f.status is Status.ERROR]
