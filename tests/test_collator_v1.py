"""The DeepSeek-OCR v1 batch builder against the layout facts of reference/deepseek_ocr_v1.md.

The expected numbers are worked out by hand from the reference (nq = image_size/64,
nb = base_size/64; global nb*(nb+1)+1; crops nq*h*(nq*w+1)) and double-checked by the small
formula in this file, not by the code under test.
"""

from __future__ import annotations

import copy
import importlib
import multiprocessing
import pickle

import pytest
import torch
from PIL import Image

from dsocr_probe.collators import DeepseekOCRCollator
from dsocr_probe.collators.base import BadExample
from dsocr_probe.collators.deepseek_ocr_v1 import crop_grid, image_token_count, validate_layout

REMOTE_CODE_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
legacy_only = pytest.mark.skipif(not REMOTE_CODE_LOADS, reason="the v1 remote code imports only on transformers <= 4.47.1")

SIZES = {"tiny": (512, 512, False), "small": (640, 640, False), "base": (1024, 1024, False),
         "large": (1280, 1280, False), "gundam": (1024, 640, True)}
PAD = 127 / 255 * 2 - 1  # the (127, 127, 127) pad colour after normalisation
COLOR = (200, 40, 40)

# mode, (width, height), crop grid (w, h), image slots
TABLE = [
    # no cropping: the count depends on the mode only
    *[(mode, size, (1, 1), slots)
      for mode, slots in (("tiny", 73), ("small", 111), ("base", 273), ("large", 421))
      for size in ((96, 64), (3000, 800), (800, 3000), (1300, 1300), (512, 512))],
    # gundam, no crops (both sides <= 640): global 16*17+1
    ("gundam", (96, 64), (1, 1), 273),
    ("gundam", (640, 640), (1, 1), 273),
    ("gundam", (640, 100), (1, 1), 273),
    # gundam with crops: 273 + 10*h*(10*w+1)
    ("gundam", (641, 641), (2, 2), 693),  # square: (2,2) and (3,3) tie; too small for (3,3)
    ("gundam", (700, 600), (2, 2), 693),  # one side over 640; (2,2) and (3,3) tie
    ("gundam", (1300, 1300), (2, 2), 693),  # 1.69 Mpx <= 0.5*640^2*9
    ("gundam", (1400, 1400), (3, 3), 1203),  # 1.96 Mpx > 1.8432 Mpx: the larger grid wins
    ("gundam", (1400, 700), (2, 1), 483),  # 2:1 ties with (4,2)
    ("gundam", (1810, 905), (2, 1), 483),  # 1 638 050 px, just under 0.5*640^2*8
    ("gundam", (1812, 906), (4, 2), 1093),  # 1 641 672 px, just over
    ("gundam", (2000, 1000), (4, 2), 1093),
    ("gundam", (700, 1400), (1, 2), 493),
    ("gundam", (1000, 2000), (2, 4), 1113),
    ("gundam", (1000, 3000), (1, 3), 603),  # tall page
    ("gundam", (3000, 1000), (3, 1), 583),  # wide page
    ("gundam", (2480, 3508), (2, 3), 903),  # A4 scan at 300 dpi
    ("gundam", (1200, 900), (3, 2), 893),
    ("gundam", (650, 20), (9, 1), 1183),  # a thin strip: nine tiny crops
    ("gundam", (20, 650), (1, 9), 1263),
]


def slots_by_formula(mode: str, grid: tuple[int, int]) -> int:
    base, image, crop = SIZES[mode]
    nb, nq = (base if crop else image) // 64, image // 64
    w, h = grid
    local = nq * h * (nq * w + 1) if crop and w * h > 1 else 0
    return nb * (nb + 1) + 1 + local


def normalised(rgb) -> torch.Tensor:
    return torch.tensor([c / 255 * 2 - 1 for c in rgb]).view(3, 1, 1)


@pytest.fixture(scope="module")
def tokenizer(v1_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(v1_model), trust_remote_code=False)


@pytest.fixture(scope="module")
def image_id(tokenizer):
    return tokenizer.convert_tokens_to_ids("<image>")


def page(size, color=COLOR):
    return Image.new("RGB", size, color)


# ---------------------------------------------------------------- layout table


def test_table_matches_the_formula():
    for mode, _, grid, slots in TABLE:
        assert slots_by_formula(mode, grid) == slots, (mode, grid)


@pytest.mark.parametrize("mode, size, grid, slots", TABLE, ids=[f"{m}-{w}x{h}" for m, (w, h), _, _ in TABLE])
def test_layout_in_every_mode(tokenizer, image_id, mode, size, grid, slots):
    base, image, crop = SIZES[mode]
    batch = DeepseekOCRCollator(tokenizer, mode)([{"image": page(size), "text": "text"}])

    assert crop_grid(*size, mode) == grid
    assert image_token_count(*size, mode) == slots
    mask = batch["images_seq_mask"]
    assert mask.dtype == torch.bool
    assert int(mask.sum()) == slots
    assert mask[0, 1:1 + slots].all()  # the default prompt starts with <image>, right after bos
    assert (batch["input_ids"][mask] == image_id).all()
    assert (batch["labels"][mask] == -100).all()
    assert batch["images_spatial_crop"].dtype == torch.long
    assert batch["images_spatial_crop"].tolist() == [list(grid)]

    patches, view = batch["images"][0]
    global_side = base if crop else image
    assert view.shape == (1, 3, global_side, global_side) and view.dtype == torch.float32
    w, h = grid
    if w * h == 1:
        assert patches.shape == (1, 3, image, image) and not patches.any()
    else:
        assert patches.shape == (w * h, 3, 640, 640)
        assert torch.allclose(patches, normalised(COLOR).expand_as(patches[0]), atol=1e-6)
    centre = view[0, :, global_side // 2, global_side // 2]
    assert torch.allclose(centre, normalised(COLOR).flatten(), atol=1e-6)


# ---------------------------------------------------------------- pixels


@pytest.mark.parametrize("rgb", [(255, 255, 255), (0, 0, 0), (127, 127, 127), (10, 128, 250)])
def test_normalisation_to_minus_one_one(tokenizer, rgb):
    view = DeepseekOCRCollator(tokenizer, "tiny")([{"image": page((40, 30), rgb), "text": "x"}])["images"][0][1]
    assert torch.allclose(view[0], normalised(rgb).expand(3, 512, 512), atol=1e-6)


@pytest.mark.parametrize("mode", ["tiny", "small"])
def test_small_modes_stretch_to_a_square_without_padding(tokenizer, mode):
    view = DeepseekOCRCollator(tokenizer, mode)([{"image": page((400, 100), (255, 255, 255)), "text": "x"}])["images"][0][1]
    assert (view == 1).all()


@pytest.mark.parametrize("mode, side", [("base", 1024), ("large", 1280), ("gundam", 1024)])
def test_larger_views_keep_the_aspect_and_pad_grey(tokenizer, mode, side):
    builder = DeepseekOCRCollator(tokenizer, mode)
    wide = builder([{"image": page((400, 200), (255, 255, 255)), "text": "x"}])["images"][0][1][0]
    band = side // 4  # a 2:1 page fills the middle half
    assert torch.allclose(wide[:, : band - 2], torch.full_like(wide[:, : band - 2], PAD))
    assert torch.allclose(wide[:, -(band - 2):], torch.full_like(wide[:, -(band - 2):], PAD))
    assert (wide[:, band + 2: side - band - 2] == 1).all()
    tall = builder([{"image": page((200, 400), (255, 255, 255)), "text": "x"}])["images"][0][1][0]
    assert torch.allclose(tall[:, :, : band - 2], torch.full_like(tall[:, :, : band - 2], PAD))
    assert (tall[:, :, band + 2: side - band - 2] == 1).all()


@pytest.mark.parametrize("grid", [(3, 2), (2, 3), (4, 2)])
def test_crops_are_cut_row_by_row(tokenizer, grid):
    w, h = grid
    colors = [(20 * k, 255 - 20 * k, (37 * k) % 256) for k in range(w * h)]
    image = Image.new("RGB", (640 * w, 640 * h))
    for k, color in enumerate(colors):
        row, col = divmod(k, w)
        image.paste(color, (col * 640, row * 640, (col + 1) * 640, (row + 1) * 640))
    batch = DeepseekOCRCollator(tokenizer, "gundam")([{"image": image, "text": "x"}])
    assert batch["images_spatial_crop"].tolist() == [[w, h]]
    patches = batch["images"][0][0]
    for k, color in enumerate(colors):
        assert torch.allclose(patches[k], normalised(color).expand(3, 640, 640), atol=1e-6), k


def test_pixel_dtype_follows_the_model(tokenizer):
    model = torch.nn.Linear(2, 2).to(torch.bfloat16)
    builder = DeepseekOCRCollator.for_model(tokenizer, model, mode="gundam")
    batch = builder([{"image": page((1400, 700)), "text": "x"}, {"image": page((50, 50)), "text": "y"}])
    assert {t.dtype for pair in batch["images"] for t in pair} == {torch.bfloat16}
    assert builder.validate(batch) == []
    fp32 = DeepseekOCRCollator(tokenizer, "gundam")
    assert any("bfloat16" in str(p) and "float32" in str(p) for p in fp32.validate(batch))


# ---------------------------------------------------------------- tokens and labels


def test_sequence_labels_and_padding(tokenizer, image_id):
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    texts = ["Привет мир", "a somewhat longer target line"]
    batch = builder([{"image": page((64, 64)), "text": t} for t in texts])
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    prompt_ids = tokenizer.encode("\nFree OCR.", add_special_tokens=False)  # stripped, as infer() feeds it
    for i, text in enumerate(texts):
        target = tokenizer.encode(text, add_special_tokens=False) + [eos]
        expected = [bos] + [image_id] * 73 + prompt_ids + target
        n = len(expected)
        assert batch["input_ids"][i, :n].tolist() == expected
        assert batch["labels"][i, :n].tolist() == [-100] * (n - len(target)) + target
        assert batch["attention_mask"][i, :n].all()
        tail = slice(n, None)
        assert (batch["input_ids"][i, tail] == pad).all() and not batch["attention_mask"][i, tail].any()
        assert (batch["labels"][i, tail] == -100).all() and not batch["images_seq_mask"][i, tail].any()
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # padding was exercised
    assert builder.validate(batch) == []


def test_prompt_text_around_the_image(tokenizer, image_id):
    builder = DeepseekOCRCollator(tokenizer, "tiny", prompt="<|User|>Page <image>\n<|grounding|>Convert the document to markdown. ")
    batch = builder([{"image": page((64, 64)), "text": "# Title"},
                     {"image": page((64, 64)), "text": "x", "prompt": "<image>\nOCR this image. "}])
    head = tokenizer.encode("<|User|>Page ", add_special_tokens=False)
    ids = batch["input_ids"][0].tolist()
    assert ids[: 1 + len(head)] == [tokenizer.bos_token_id] + head
    assert ids[1 + len(head): 1 + len(head) + 73] == [image_id] * 73
    assert batch["images_seq_mask"][1, 1:74].all()
    assert builder.validate(batch) == []


def test_ids_come_from_the_tokenizer(tokenizer, image_id):
    builder = DeepseekOCRCollator(tokenizer)
    assert builder.image_token_id == image_id != 128815
    assert (builder.bos_token_id, builder.eos_token_id, builder.pad_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    facts = builder.describe()
    assert facts["family"] == "deepseek-ocr-v1" and facts["mode"] == "gundam" and facts["crop_mode"] is True


def test_text_only_sample_gets_the_zero_image(tokenizer):
    builder = DeepseekOCRCollator(tokenizer, "gundam")
    batch = builder([{"image": page((1400, 700)), "text": "page"}, {"image": None, "text": "plain", "prompt": "Say: "}])
    patches, view = batch["images"][1]
    assert patches.shape == (1, 3, 640, 640) and view.shape == (1, 3, 1024, 1024)
    assert not patches.any() and not view.any()
    assert batch["images_spatial_crop"].tolist() == [[2, 1], [1, 1]]
    assert not batch["images_seq_mask"][1].any()
    assert builder.validate(batch) == []


def test_a_batch_of_text_only_samples_is_left_to_the_skipped_vision_path(tokenizer):
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    batch = builder([{"image": None, "text": "one", "prompt": "Say: "}, {"image": None, "text": "two", "prompt": "Say: "}])
    assert not batch["images_seq_mask"].any()
    assert all(not t.any() for pair in batch["images"] for t in pair)
    assert builder.validate(batch) == []


def test_explicit_sizes_instead_of_a_mode(tokenizer):
    builder = DeepseekOCRCollator(tokenizer, None, base_size=1024, image_size=1024, crop_mode=False)
    assert (builder.mode.base_size, builder.mode.image_size, builder.mode.crop_mode) == (1024, 1024, False)
    assert int(builder([{"image": page((90, 60)), "text": "x"}])["images_seq_mask"].sum()) == 273
    no_crop = DeepseekOCRCollator(tokenizer, "gundam", crop_mode=False)  # global view at image_size 640
    assert no_crop.mode.name == "custom"
    assert int(no_crop([{"image": page((2000, 1000)), "text": "x"}])["images_seq_mask"].sum()) == 111


# ---------------------------------------------------------------- refusals


def test_refuses_a_batch_whose_first_sample_has_no_image(tokenizer):
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    with pytest.raises(BadExample, match="first") as info:
        builder([{"image": None, "text": "plain", "prompt": "Say: "}, {"image": page((64, 64)), "text": "x"}])
    assert info.value.index == 0


def test_refuses_more_than_one_image_placeholder(tokenizer, tmp_path):
    path = tmp_path / "p.png"
    page((64, 64)).save(path)
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    with pytest.raises(BadExample, match="exactly one") as info:
        builder([{"image": path, "text": "a"}, {"image": path, "text": "b", "prompt": "<image><image>\nFree OCR. "}])
    assert (info.value.index, info.value.path) == (1, str(path))
    assert str(path) in str(info.value)
    with pytest.raises(BadExample, match="0 '<image>' placeholders"):
        builder([{"image": path, "text": "a", "prompt": "Free OCR. "}])


@pytest.mark.parametrize(
    "example, words",
    [
        ({"image": "missing.png", "text": "x"}, "cannot decode image"),
        ({"text": "x"}, "no 'image'"),
        ({"image": None, "text": "x"}, "without the placeholder"),
        ({"image": page((8, 8)), "text": "   "}, "empty"),
        ({"image": page((8, 8)), "text": 3}, "must be a string"),
        ({"image": page((8, 8)), "text": "see <image>"}, "target text contains"),
        ("not a mapping", "expected a mapping"),
    ],
)
def test_bad_examples_are_named_by_index(tokenizer, example, words):
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    with pytest.raises(BadExample, match=words) as info:
        builder([{"image": page((8, 8)), "text": "fine"}, example])
    assert info.value.index == 1


def test_a_target_over_max_length_is_refused_not_truncated(tokenizer):
    text = "a long line of handwriting " * 4
    fits = len(DeepseekOCRCollator(tokenizer, "tiny")([{"image": page((8, 8)), "text": text}])["input_ids"][0])
    assert len(DeepseekOCRCollator(tokenizer, "tiny", max_length=fits)([{"image": page((8, 8)), "text": text}])["input_ids"][0]) == fits
    with pytest.raises(BadExample, match=f"needs {fits} tokens.*max_length={fits - 1}"):
        DeepseekOCRCollator(tokenizer, "tiny", max_length=fits - 1)([{"image": page((8, 8)), "text": text}])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mode": "huge"}, "unknown mode"),
        ({"mode": None, "base_size": 1024}, "needs base_size, image_size and crop_mode"),
        ({"mode": "base", "base_size": 1000}, "multiple of 64"),
        ({"mode": "gundam", "image_size": 1024}, "image_size=640"),
        ({"prompt": "Free OCR."}, "exactly once"),
        ({"dtype": "int8"}, "floating dtype"),
        ({"max_length": 0}, "positive"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(tokenizer, kwargs, words):
    with pytest.raises(ValueError, match=words):
        DeepseekOCRCollator(tokenizer, **kwargs)


def test_a_tokenizer_without_the_image_token_is_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="no single '<image>' token"):
        DeepseekOCRCollator(PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]"))


# ---------------------------------------------------------------- validate()


@pytest.fixture(scope="module")
def good_batch(tokenizer):
    builder = DeepseekOCRCollator(tokenizer, "gundam")
    return builder([{"image": page((1400, 700)), "text": "one"}, {"image": page((64, 64)), "text": "two"}])


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("one slot short", "leaves the last 1 unused"),
        ("one slot too many", "Number of elements of source < number of ones in mask"),
        ("int mask", "boolean masks"),
        ("labels on image slots", "labels on image slots"),
        ("no bos", "do not start with bos"),
        ("first without image", "skips the vision path"),
        ("images not pairs", "not a (patches"),
        ("crop grid disagrees", "crops but images_spatial_crop"),
        ("no images", "missing images"),
    ],
)
def test_validate_names_each_mistake(tokenizer, good_batch, mistake, words):
    builder = DeepseekOCRCollator(tokenizer, "gundam")
    assert builder.validate(good_batch) == [] and validate_layout(good_batch) == []
    bad = copy.deepcopy(good_batch)
    mask = bad["images_seq_mask"]
    if mistake == "one slot short":
        mask[0, mask[0].nonzero().max()] = False
    elif mistake == "one slot too many":
        mask[0, mask[0].nonzero().max() + 1] = True
    elif mistake == "int mask":
        bad["images_seq_mask"] = mask.long()
    elif mistake == "labels on image slots":
        bad["labels"][mask] = bad["input_ids"][mask]
    elif mistake == "no bos":
        for key in ("input_ids", "attention_mask", "labels", "images_seq_mask"):
            bad[key] = bad[key][:, 1:]
    elif mistake == "first without image":
        bad["images"][0] = tuple(torch.zeros_like(t) for t in bad["images"][0])
    elif mistake == "images not pairs":
        bad["images"] = [view for _, view in bad["images"]]
    elif mistake == "crop grid disagrees":
        bad["images_spatial_crop"][0] = torch.tensor([3, 1])
    else:
        del bad["images"]
    problems = [str(p) for p in builder.validate(bad)]  # a problem's words are its finding's English title
    assert any(words in p for p in problems), problems


# ---------------------------------------------------------------- workers


def test_builder_pickles(tokenizer, good_batch):
    builder = DeepseekOCRCollator(tokenizer, "gundam")
    clone = pickle.loads(pickle.dumps(builder))
    again = clone([{"image": page((1400, 700)), "text": "one"}, {"image": page((64, 64)), "text": "two"}])
    for key in ("input_ids", "labels", "images_seq_mask", "images_spatial_crop"):
        assert torch.equal(again[key], good_batch[key])


def test_builder_runs_in_a_spawned_dataloader_worker(tokenizer, tmp_path):
    paths = []
    for i, size in enumerate(((64, 48), (48, 64))):
        paths.append(tmp_path / f"{i}.png")
        page(size).save(paths[-1])
    rows = [{"image": str(p), "text": f"row {i}"} for i, p in enumerate(paths)]
    builder = DeepseekOCRCollator(tokenizer, "tiny")
    loader = torch.utils.data.DataLoader(rows, batch_size=2, collate_fn=builder, num_workers=1,
                                         multiprocessing_context=multiprocessing.get_context("spawn"))
    (batch,) = list(loader)
    assert torch.equal(batch["input_ids"], builder(rows)["input_ids"])
    assert batch["images_seq_mask"].sum().item() == 2 * 73


# ---------------------------------------------------------------- through the stand-in (legacy stack)


@pytest.fixture(scope="module")
def model(v1_model):
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(v1_model), trust_remote_code=True)
    torch.manual_seed(0)
    return AutoModel.from_config(config, trust_remote_code=True).train()


@legacy_only
@pytest.mark.parametrize("mode", list(SIZES))
def test_slots_equal_the_stand_ins_visual_features(tokenizer, model, mode):
    batch = DeepseekOCRCollator(tokenizer, mode)([{"image": page((1400, 700)), "text": "x"}])
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)  # no fewer features than slots
        mask = batch["images_seq_mask"]
        mask[0, mask[0].nonzero().max() + 1] = True
        with pytest.raises(RuntimeError, match="Number of elements of source"):
            model(**batch)  # and not one more


@legacy_only
def test_forward_and_backward_on_a_real_batch(tokenizer, model):
    builder = DeepseekOCRCollator.for_model(tokenizer, model, mode="gundam")
    batch = builder([
        {"image": page((1400, 700)), "text": "Привет мир"},
        {"image": page((300, 200), (250, 250, 250)), "text": "рукописный текст"},
        {"image": None, "text": "plain text", "prompt": "Repeat: "},
    ])
    assert builder.validate(batch) == []
    with torch.no_grad():
        text_only = builder([{"image": None, "text": "plain text", "prompt": "Repeat: "}])
        assert torch.isfinite(model(**text_only).loss)
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.get_parameter("model.layers.0.self_attn.q_proj.weight").grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("mode", ["tiny", "gundam"])
@pytest.mark.parametrize("size", [(64, 64), (1400, 700), (700, 1400), (1240, 1754)])
def test_tokens_before_target_match_the_batch(tokenizer, mode, size):
    builder = DeepseekOCRCollator(tokenizer, mode)
    batch = builder([{"image": page(size), "text": "one two"}])
    unsupervised = int((batch["labels"][0] == -100).sum())  # bos, prompt and image slots; no padding in a batch of 1
    assert builder.tokens_before_target(*size) == unsupervised
