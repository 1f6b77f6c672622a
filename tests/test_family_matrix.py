"""Every kin family gets the right verdict: a tiny native checkpoint of each, built offline, through the
processor, batch and step probes in one run. A correct setup is GO; each seeded mistake is NO-GO
naming its cause. Families the installed transformers lacks are skipped with the reason."""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest
import transformers
import yaml
from packaging.version import Version

import tiny_families as tf
from dsocr_probe.probes.context import Options, ProbeContext
from dsocr_probe.findings import Status
from probing import linux_cpu
from dsocr_probe.plugin import run_probe
from dsocr_probe.probes import PROBES

CURRENT = Version(transformers.__version__).major >= 5
TORCHVISION = tf.has_torchvision()
# family -> (builder in tiny_families, transformers class it needs, LoRA task type)
FAMILIES = {
    "qwen2-vl": ("qwen2_vl", "Qwen2VLForConditionalGeneration", "CAUSAL_LM"),
    "got-ocr2": ("got_ocr2", "GotOcr2ForConditionalGeneration", "CAUSAL_LM"),
    "paligemma": ("paligemma", "PaliGemmaForConditionalGeneration", "CAUSAL_LM"),
    "gemma3": ("gemma3", "Gemma3ForConditionalGeneration", "CAUSAL_LM"),
    "idefics3": ("idefics3", "Idefics3ForConditionalGeneration", "CAUSAL_LM"),
    "llava": ("llava", "LlavaForConditionalGeneration", "CAUSAL_LM"),
    "llava-next": ("llava_next", "LlavaNextForConditionalGeneration", "CAUSAL_LM"),
    "florence-2": ("florence2", "Florence2ForConditionalGeneration", "SEQ_2_SEQ_LM"),
}
RUN = ("processor", "batch", "step")


def _needs(family: str) -> None:
    cls = FAMILIES[family][1]
    if not hasattr(transformers, cls):
        pytest.skip(f"transformers {transformers.__version__} has no {cls}")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    from dsocr_probe.demo.pages import write_dataset

    return write_dataset(tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each family's tiny checkpoint, built on first use and shared by the module's tests."""
    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("families")

    def folder(family: str, **settings) -> Path:
        _needs(family)
        key = family + repr(sorted(settings.items()))
        if key not in made:
            made[key] = getattr(tf, FAMILIES[family][0])(root / uuid.uuid4().hex[:8], **settings)
        return made[key]

    return folder


def gate(folder: Path, config: Path | None, pages: Path, probes=RUN) -> dict[str, list]:
    """The probes in one run (one context, as the plugin shares it): findings by probe."""
    facts = linux_cpu(transformers=transformers.__version__)
    ctx = ProbeContext(Options(model=str(folder), data=pages, train_config=config, device="cpu"), facts=facts)
    return {name: run_probe(next(s for s in PROBES if s.name == name), ctx).findings for name in probes}


def blocking(results: dict[str, list]) -> dict[str, str]:
    return {f.code: f.title for found in results.values() for f in found if f.status in (Status.FAIL, Status.ERROR)}


def shown(results: dict[str, list]) -> str:
    return "\n".join(f"{f.status.value} {f.code}: {f.title} | {f.fix or ''}" for found in results.values() for f in found)


def config_for(tmp_path: Path, folder: Path, pages: Path, family: str, **changes) -> Path:
    return tf.train_config(tmp_path, folder, pages, **{"task_type": FAMILIES[family][2], **changes})


# ---------------------------------------------------------------- a correct setup is GO


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_correct_setup_is_go(family, folders, pages, tmp_path):
    folder = folders(family)
    results = gate(folder, config_for(tmp_path, folder, pages, family), pages)
    if family == "qwen2-vl" and CURRENT and not TORCHVISION:
        check_torchvision_named_once(folder, pages)
        return
    assert not blocking(results), shown(results)
    warned = {f.code for found in results.values() for f in found if f.status is Status.WARN}
    assert warned <= {"batch.slots-not-compared"}, shown(results)
    assert "step.causality" in {f.code for f in results["step"] if f.status is Status.PASS}, shown(results)
    built = next(f for f in results["batch"] if f.code == "batch.built").evidence
    assert "image token" in built and "first / last supervised token" in built, built


def test_deepseek_ocr_v1_standin_is_go(v1_model, pages):
    """The v1 stand-in (remote code): the processor is the bare tokenizer, which the v1 builder expects;
    its step runs in the v1 gate tests."""
    if Version(transformers.__version__) > Version("4.47.1"):
        pytest.skip("the v1 remote code imports only on transformers <= 4.47.1")
    facts = linux_cpu(transformers=transformers.__version__)
    ctx = ProbeContext(Options(model=str(v1_model), data=pages, trust_remote_code=True, allow_unpinned=True),
                       facts=facts)
    results = {name: run_probe(next(s for s in PROBES if s.name == name), ctx).findings for name in ("processor", "batch")}
    assert not blocking(results), shown(results)
    assert "DeepseekOCRCollator" in next(f for f in results["batch"] if f.code == "batch.built").title


def test_deepseek_ocr2_is_go(tmp_path_factory, pages):
    if not hasattr(transformers, "DeepseekOcr2Processor"):
        pytest.skip(f"transformers {transformers.__version__} has no DeepSeek-OCR-2")
    from dsocr_probe.demo.ocr2 import write_tiny_ocr2

    folder = write_tiny_ocr2(tmp_path_factory.mktemp("ocr2") / "tiny-ocr2")
    results = gate(folder, None, pages, probes=("processor", "batch"))
    assert not blocking(results), shown(results)
    assert next(f for f in results["batch"] if f.code == "batch.image-features").status is Status.PASS


def check_torchvision_named_once(folder: Path, pages: Path, probes=("environment", "processor", "batch", "step")) -> None:
    """Without torchvision a Qwen-VL processor cannot load: the environment probe names the package and
    the build for this torch, and the probes after it say SKIP instead of repeating the blocker."""
    results = gate(folder, None, pages, probes=probes)
    found = blocking(results)
    assert list(found) == ["environment.processor-needs"], shown(results)
    need = next(f for f in results["environment"] if f.code == "environment.processor-needs")
    assert "torchvision==0." in need.fix and "torch" in need.fix
    assert all(f.code.endswith("prerequisite") for name in probes[1:] for f in results[name]
               if f.status is not Status.PASS), shown(results)
    assert all("processor files" not in (f.fix or "") for found in results.values() for f in found), shown(results)


@pytest.mark.parametrize("family, classes", [
    ("qwen2.5-vl", ("Qwen2_5_VLConfig", "Qwen2VLImageProcessor", "Qwen2_5_VLProcessor")),
    ("qwen3-vl", ("Qwen3VLConfig", "Qwen2VLImageProcessor", "Qwen3VLProcessor")),
])
def test_qwen_vl_without_torchvision_names_it(family, classes, pages, tmp_path):
    if not hasattr(transformers, classes[0]):
        pytest.skip(f"transformers {transformers.__version__} has no {classes[0]}")
    if TORCHVISION:
        pytest.skip("torchvision is installed: this is the path of a machine without it")
    check_torchvision_named_once(tf.qwen_vl_files(tmp_path / family, *classes), pages,
                                 probes=("environment", "processor", "batch"))


# ---------------------------------------------------------------- seeded mistakes are NO-GO naming the cause


def test_image_token_count_off_by_one_is_no_go(folders, pages, tmp_path):
    family = "gemma3" if hasattr(transformers, "Gemma3ForConditionalGeneration") else "paligemma"
    folder = folders(family)
    seeded = Path(shutil.copytree(folder, tmp_path / "seeded"))
    # Gemma3's model fills mm_tokens_per_image = 4 slots, PaliGemma's num_image_tokens = 16: one fewer each.
    value = 3 if family == "gemma3" else 15
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = seeded / name
        data = json.loads(path.read_text()) if path.is_file() else {}
        if "image_seq_length" in data:
            data["image_seq_length"] = value
            path.write_text(json.dumps(data))
    results = gate(seeded, None, pages, probes=("processor", "batch"))
    found = blocking(results)
    assert "processor.model-mismatch" in found and "batch.image-features" in found, shown(results)
    mismatch = next(f for f in results["processor"] if f.code == "processor.model-mismatch")
    assert "image_seq_length" in mismatch.title and ("4" in mismatch.title or "16" in mismatch.title)


@pytest.mark.skipif(CURRENT and not TORCHVISION, reason="Qwen2-VL's processor needs torchvision on transformers 5.x")
def test_processor_merge_size_that_disagrees_with_the_model_is_no_go(folders, pages):
    folder = folders("qwen2-vl", merge=1, model_merge=2)
    results = gate(folder, None, pages, probes=("processor", "batch"))
    mismatch = [f for f in results["processor"] if f.code == "processor.model-mismatch"]
    assert mismatch and mismatch[0].status is Status.FAIL, shown(results)
    assert "merge_size is 1" in mismatch[0].title and "spatial_merge_size is 2" in mismatch[0].title
    assert "`merge_size=2`" in mismatch[0].fix


def test_paligemma_target_in_the_bidirectional_prefix_is_no_go(folders, pages, tmp_path):
    """The target sent through `text` (as a generic processor collator does) gets token_type_ids 0: it
    becomes part of PaliGemma's bidirectional prefix and each target position sees the later ones."""
    folder = folders("paligemma")
    config = config_for(tmp_path, folder, pages, "paligemma", collator="dsocr_probe.collators.processor:ProcessorCollator")
    results = gate(folder, config, pages, probes=("step",))
    leak = [f for f in results["step"] if f.code == "step.prefix-leak"]
    assert leak and leak[0].status is Status.FAIL, shown(results)
    assert "suffix" in leak[0].fix and "prefix 0, suffix 1" in leak[0].detail


def test_paligemma_builder_passes_the_target_as_suffix(folders):
    from dsocr_probe import builder_for
    from dsocr_probe.collators.base import IGNORE_INDEX

    builder = builder_for(folders("paligemma"))
    batch = builder([{"image": _page(), "text": "Meeting notes"}])
    types, labels, ids = batch["token_type_ids"][0], batch["labels"][0], batch["input_ids"][0]
    supervised = labels != IGNORE_INDEX
    assert bool((types[supervised] == 1).all()) and bool((labels[types == 0] == IGNORE_INDEX).all())
    tok = builder.tokenizer
    assert tok.decode(ids[supervised]).endswith(tok.eos_token)  # nothing after eos is supervised
    assert tok.decode(ids[~supervised]).replace(tok.convert_ids_to_tokens(builder.image_token_id) * 16, "<I>") \
        == f"<I>{tok.bos_token}ocr\n"


USER_COLLATOR = '''
from dsocr_probe import builder_for

inner = builder_for({folder!r})


def collate(examples):
    batch = inner(examples)
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    labels[batch["input_ids"] == inner.image_token_id] = -100
    batch["labels"] = labels  # the prompt is supervised too
    return batch
'''


def test_labels_on_the_prompt_are_no_go(folders, pages, tmp_path, monkeypatch):
    family = "gemma3" if hasattr(transformers, "Gemma3ForConditionalGeneration") else "idefics3"
    folder = folders(family)
    module = f"dsocr_matrix_collator_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(USER_COLLATOR.format(folder=str(folder))))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_for(tmp_path, folder, pages, family, collator=f"{module}:collate")
    results = gate(folder, config, pages, probes=("batch",))
    assert "batch.labels-on-prompt" in blocking(results), shown(results)


def test_causal_lm_on_an_encoder_decoder_is_no_go(folders, pages, tmp_path):
    folder = folders("florence-2")
    results = gate(folder, config_for(tmp_path, folder, pages, "florence-2", task_type="CAUSAL_LM"), pages,
                   probes=("step",))
    wrong = [f for f in results["step"] if f.code == "step.task-type"]
    assert wrong and wrong[0].status is Status.FAIL, shown(results)
    assert "SEQ_2_SEQ_LM" in wrong[0].fix


def _page():
    from PIL import Image

    return Image.new("RGB", (48, 40), "white")


def test_image_token_is_the_one_the_model_fills(folders, pages):
    """Gemma3 prompts with <start_of_image> and fills <image_soft_token> (the config's id); GOT's
    processor names <imgpad> only in __init__: the processor probe reads the config's id for both."""
    for family, token in (("gemma3", "<image_soft_token>"), ("got-ocr2", "<imgpad>"), ("paligemma", "<image>")):
        if not hasattr(transformers, FAMILIES[family][1]):
            continue
        results = gate(folders(family), None, pages, probes=("processor",))
        found = next(f for f in results["processor"] if f.code == "processor.image-token")
        assert found.evidence["image token"] == token and found.evidence["found in"].startswith("config."), found.evidence


def test_builder_for_a_processor_needs_the_config(folders):
    from transformers import AutoConfig, AutoProcessor

    from dsocr_probe import builder_for

    folder = folders("paligemma")
    with pytest.raises(TypeError, match="config=model.config"):
        builder_for(AutoProcessor.from_pretrained(str(folder)))
    made = builder_for(AutoProcessor.from_pretrained(str(folder)), config=AutoConfig.from_pretrained(str(folder)))
    assert type(made).__name__ == "SuffixCollator" and type(builder_for(folder)).__name__ == "SuffixCollator"


def test_builder_for_refuses_bad_settings_with_its_reason_in_english(folders):
    """A training script gets the probes' input error, its English title as the message."""
    from dsocr_probe import builder_for
    from dsocr_probe.findings import InputError

    with pytest.raises(InputError) as error:
        builder_for(folders("paligemma"), max_length=0)
    assert error.value.code == "loading.builder" and error.value.params["family"] == "paligemma"
    assert str(error.value) == f"The batch builder for paligemma refuses these settings: {error.value.params['error']}"
    assert "max_length=0 must be a positive integer" in str(error.value)
