"""Property-based: a batch builder either returns a sound batch for every example it was given, or
raises one BadExample naming a bad example by index (and path) — never another error, never a
shorter batch."""

from __future__ import annotations

import io
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from badfiles import MODES, bomb_png, image_bytes, truncated
from dsocr_probe import BadExample
from dsocr_probe.messages import render_text, word

_CYRILLIC = re.compile("[А-Яа-яЁё]")

GOOD_KINDS = ("file", "pil")
BAD_KINDS = ("zero-byte", "truncated", "not-image", "bomb", "missing-file", "no-image-key", "text-not-string",
             "empty-text", "too-long", "not-a-mapping")


@st.composite
def examples(draw):
    return {
        "kind": draw(st.sampled_from(GOOD_KINDS * 3 + BAD_KINDS)),
        "mode": draw(st.sampled_from(MODES)),
        "size": draw(st.sampled_from([(1, 1), (1, 300), (300, 1), (1, 4000), (40, 30), (700, 500), (1500, 900)])),
        "fmt": draw(st.sampled_from(["PNG", "JPEG"])),
        "exif": draw(st.sampled_from([None, 6, 8])),
        "name": draw(st.sampled_from(["p.png", "с пробелом.png", "日本.png"])),
        "text": draw(st.text(alphabet="abcdef ghij.,", min_size=1, max_size=20).filter(str.strip)),
    }


def _materialise(folder: Path, i: int, spec: dict):
    kind = spec["kind"]
    path = folder / f"{i}-{spec['name']}"
    text = spec["text"]
    if kind == "not-a-mapping":
        return [str(path), text]
    data = {
        "zero-byte": b"",
        "truncated": truncated(image_bytes("RGB", (64, 64))),
        "not-image": b"%PDF-1.4 not an image",
        "bomb": bomb_png(),
    }.get(kind)
    if data is None and kind not in ("missing-file", "pil"):
        data = image_bytes(spec["mode"], spec["size"], spec["fmt"], spec["exif"])
    if data is not None:
        path.write_bytes(data)
    if kind == "pil":
        with Image.open(io.BytesIO(image_bytes(spec["mode"], spec["size"], spec["fmt"]))) as im:
            im.load()
            return {"image": im.copy(), "text": text}
    if kind == "no-image-key":
        return {"picture": str(path), "text": text}
    if kind == "text-not-string":
        return {"image": str(path), "text": ["not", "a", "string"]}
    if kind == "empty-text":
        return {"image": str(path), "text": "  \n"}
    if kind == "too-long":
        return {"image": str(path), "text": "word " * 2000}
    return {"image": str(path), "text": text}


def _sliver(spec) -> bool:
    w, h = spec["size"]
    return max(w, h) / min(w, h) > 100


def _check(builder, specs, refuses=lambda spec: False, may_refuse=lambda spec: False):
    """``refuses``: well-formed examples this builder must still refuse; ``may_refuse``: ones it may
    refuse or take (either way with nothing dropped, and a refusal naming them)."""
    folder = Path(tempfile.mkdtemp())
    try:
        batch_in = [_materialise(folder, i, s) for i, s in enumerate(specs)]
        bad = [i for i, s in enumerate(specs) if s["kind"] in BAD_KINDS or refuses(s)]
        allowed = bad + [i for i, s in enumerate(specs) if may_refuse(s)]
        try:
            batch = builder(batch_in)
        except BadExample as exc:
            assert allowed, f"a good batch was refused: {exc}"
            assert exc.index in allowed, (exc.index, allowed, str(exc))
            assert f"example {exc.index}" in str(exc) and exc.reason
            assert word(exc.message, "en") == str(exc) and _CYRILLIC.search(word(exc.message, "ru"))
            if specs[exc.index]["kind"] in ("zero-byte", "truncated", "not-image", "bomb", "missing-file"):
                assert exc.path and Path(exc.path).name == Path(batch_in[exc.index]["image"]).name
            return
        assert not bad, f"bad examples {bad} were not refused"
        assert batch["input_ids"].shape[0] == len(specs)  # nothing dropped
        assert builder.validate(batch) == []
    finally:
        shutil.rmtree(folder)


def test_bad_example_is_worded_in_the_report_language():
    from dsocr_probe.collators.base import example_text
    from dsocr_probe.model import loading

    path = "scans/page 7.png"
    with pytest.raises(BadExample) as err:
        example_text({"image": path, "text": "  "}, 1, path)
    exc = err.value
    assert str(exc) == "example 1 (scans/page 7.png): 'text' is empty: nothing to learn from this example"
    ru = word(exc.message, "ru")
    assert _CYRILLIC.search(ru) and path in ru and re.search(r"\b1\b", ru) and "'text'" in ru
    assert word(exc.message, "en") == str(exc)
    assert pickle.loads(pickle.dumps(exc)).message == exc.message
    # A finding that quotes the builder's refusal words it in the report's language.
    error = loading.error_words(exc, whole=True)
    assert word(error, "en") == f"BadExample: {exc}"
    title = render_text("batch.builder-raised", "row", {"count": 2, "error": error}, "ru").title
    assert ru in title and "nothing to learn" not in title
    # Any other error is quoted as before.
    assert loading.error_words(ValueError("bad\nmore")) == "ValueError: bad"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(examples(), min_size=1, max_size=3))
def test_v1_builder_on_any_examples(v1_builder, specs):
    _check(v1_builder, specs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(examples(), min_size=1, max_size=3))
def test_v1_builder_with_crops_on_any_examples(v1_gundam_builder, specs):
    _check(v1_gundam_builder, specs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(examples(), min_size=1, max_size=3))
def test_processor_builder_on_any_examples(processor_builder, specs):
    # Idefics3's image processor takes slivers that OCR-2's refuses; a refusal must still name the example.
    _check(processor_builder, specs, may_refuse=_sliver)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(examples(), min_size=1, max_size=3))
def test_ocr2_builder_on_any_examples(ocr2_builder, specs):
    # The OCR-2 image processor cannot resize a 1-pixel sliver (its short side rounds to 0):
    # the builder must say so for that example rather than crash or drop it.
    _check(ocr2_builder, specs, refuses=_sliver)


@pytest.fixture(scope="module")
def v1_builder(v1_model):
    from transformers import AutoTokenizer

    from dsocr_probe import DeepseekOCRCollator

    return DeepseekOCRCollator(AutoTokenizer.from_pretrained(str(v1_model), trust_remote_code=False), mode="tiny", max_length=400)


@pytest.fixture(scope="module")
def v1_gundam_builder(v1_model):
    from transformers import AutoTokenizer

    from dsocr_probe import DeepseekOCRCollator

    return DeepseekOCRCollator(AutoTokenizer.from_pretrained(str(v1_model), trust_remote_code=False), mode="gundam",
                               max_length=2000)


@pytest.fixture(scope="module")
def processor_builder():
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Idefics3Processor"):
        pytest.skip(f"transformers {transformers.__version__} has no Idefics3 (needs >= 4.46)")
    from test_collator_processor import PROMPT, build_processor, build_tokenizer

    from dsocr_probe import ProcessorCollator

    return ProcessorCollator(build_processor(build_tokenizer()), prompt=PROMPT, max_length=400)


@pytest.fixture(scope="module")
def ocr2_builder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "DeepseekOcr2Processor"):
        pytest.skip(f"transformers {transformers.__version__} has no DeepSeek-OCR-2 (needs >= 5.10.1)")
    from dsocr_probe import DeepseekOCR2Collator
    from dsocr_probe.demo.ocr2 import build_processor, build_tokenizer

    return DeepseekOCR2Collator(build_processor(build_tokenizer()), max_length=1200)
