"""ProcessorCollator on another native family: a tiny Idefics3 (the SmolVLM / SmolDocling architecture).

Idefics3 exists on both stacks and its processor does what generic code must survive: it expands
``<image>`` into tiles wrapped in extra tokens (``<fake_token_around_image>``, ``<row_1_col_1>``,
``<global-img>``) and formats prompts with a chat template. Built offline from a tiny config.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import transformers
from PIL import Image

from dsocr_probe.collators import ProcessorCollator
from dsocr_probe.collators.base import IGNORE_INDEX, BadExample, open_rgb
from dsocr_probe.collators.processor import common_prefix, prompt_problem, torch_dtype

pytestmark = pytest.mark.skipif(
    not hasattr(transformers, "Idefics3ForConditionalGeneration"),
    reason=f"transformers {transformers.__version__} has no Idefics3 (needs >= 4.46)",
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
# Our own minimal chat format in the style of Idefics3's: "User:<image>...<end_of_utterance>\nAssistant:".
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
PROMPT = "User:<image>Free OCR.<end_of_utterance>\nAssistant:"
VISION_SIZE, PATCH, SCALE = 32, 8, 2  # 16 patches, pixel-shuffled by 2: 4 slots per tile
IMAGE_SEQ_LEN = (VISION_SIZE // PATCH) ** 2 // SCALE**2


def build_tokenizer(eos_appended: bool = False):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["User: Assistant: Free OCR. Meeting notes, shopping list, invoice, lecture, letter"] * 3, trainer)
    if eos_appended:
        eos = "<end_of_utterance>"
        tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, tok.token_to_id(eos))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],
    )


def build_processor(tokenizer, chat_template: str | None = CHAT_TEMPLATE):
    images_cls = getattr(transformers, "Idefics3ImageProcessorPil", None) or transformers.Idefics3ImageProcessor
    images = images_cls(size={"longest_edge": 2 * VISION_SIZE}, max_image_size={"longest_edge": VISION_SIZE})
    return transformers.Idefics3Processor(
        image_processor=images, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=chat_template
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny random-weight Idefics3 checkpoint saved like a real one (config, safetensors, processor)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    root = tmp_path_factory.mktemp("idefics3")
    tokenizer = build_tokenizer()
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = Idefics3Config(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": VISION_SIZE, "patch_size": PATCH},
        text_config={"model_type": "llama", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 1024, "pad_token_id": ids["<|endoftext|>"],
                     "bos_token_id": ids["<|im_start|>"], "eos_token_id": ids["<end_of_utterance>"]},
        scale_factor=SCALE,
        image_token_id=ids["<image>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(config).save_pretrained(str(root))
    build_processor(tokenizer).save_pretrained(str(root))
    return root


@pytest.fixture(scope="module")
def processor(folder):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    from dsocr_probe.inputs.dataset import load
    from dsocr_probe.demo.pages import write_dataset

    return load(write_dataset(tmp_path_factory.mktemp("pages"))).examples("train")[:3]


@pytest.fixture(scope="module")
def builder(processor):
    return ProcessorCollator(processor)


def test_default_prompt_comes_from_the_chat_template(builder, processor):
    assert builder.prompt == PROMPT
    bare = build_processor(processor.tokenizer, chat_template=None)
    assert ProcessorCollator(bare).prompt == "<image>\nFree OCR. "


def test_outputs_are_the_processors_plus_labels(builder, processor, examples):
    batch = builder(examples)
    eos = processor.tokenizer.eos_token
    ref = processor(
        images=[[open_rgb(e["image"], i)] for i, e in enumerate(examples)],
        text=[PROMPT + e["text"] + eos for e in examples],
        padding=True,
        return_tensors="pt",
    )
    assert set(batch) == set(ref) | {"labels"}
    for key in ref:
        assert torch.equal(batch[key], ref[key]), key
    assert batch["pixel_values"].dtype == torch.float32


def test_labels_mask_the_whole_prompt_and_image_block(builder, processor, examples):
    tok = processor.tokenizer
    batch = builder(examples)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert (labels[mask == 0] == IGNORE_INDEX).all()
    assert (labels[ids == tok.convert_tokens_to_ids("<image>")] == IGNORE_INDEX).all()
    for i, example in enumerate(examples):
        real = ids[i][mask[i].bool()]
        sup = labels[i][labels[i] != IGNORE_INDEX]
        assert torch.equal(sup, real[-len(sup):])
        assert tok.decode(sup) == example["text"] + tok.eos_token
        masked = tok.decode(real[: len(real) - len(sup)])
        assert masked.startswith("User:<fake_token_around_image>") and masked.endswith("Assistant:")
        assert "<row_1_col_1>" in masked and "<global-img>" in masked
    assert builder.validate(batch) == []


def test_forward_backward_gives_finite_loss(folder, builder, examples):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(folder)).train()
    out = model(**builder(examples[:2]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_prompt_per_example(builder, processor, examples):
    other = "User:<image>Read the page.<end_of_utterance>\nAssistant:"
    batch = builder([dict(examples[0], prompt=other), examples[1]])
    tok = processor.tokenizer
    assert "Read the page." in tok.decode(batch["input_ids"][0])
    sup = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    assert tok.decode(sup) == examples[0]["text"] + tok.eos_token


def test_bad_rows_are_named(builder, examples, tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(BadExample, match="cannot decode image") as err:
        builder([examples[0], {"image": missing, "text": "x"}])
    assert (err.value.index, err.value.path) == (1, missing)
    with pytest.raises(BadExample, match="exactly once"):
        builder([dict(examples[0], prompt="User: no image here\nAssistant:")])
    with pytest.raises(BadExample, match="'text' is empty"):
        builder([{"image": examples[0]["image"], "text": "   "}])


def test_too_long_example_is_refused(processor, examples):
    lengths = ProcessorCollator(processor)(examples)["attention_mask"].sum(dim=-1)
    limit = int(lengths.max()) - 1
    with pytest.raises(BadExample, match=f"exceed max_length {limit}") as err:
        ProcessorCollator(processor, max_length=limit)(examples)
    assert err.value.index == int(lengths.argmax())
    with pytest.raises(ValueError, match="max_length"):
        ProcessorCollator(processor, max_length=0)


def test_pixel_dtype_follows_the_argument(processor, examples):
    batch = ProcessorCollator(processor, dtype="bfloat16")(examples[:1])
    assert batch["pixel_values"].dtype == torch.bfloat16
    assert batch["input_ids"].dtype == torch.long
    # masks that are not pixels keep their own type
    assert not batch["pixel_attention_mask"].dtype == torch.bfloat16


def test_eos_is_not_doubled_when_the_tokenizer_appends_it(examples):
    proc = build_processor(build_tokenizer(eos_appended=True))
    batch = ProcessorCollator(proc)(examples[:1])
    real = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    eos = proc.tokenizer.eos_token_id
    assert real[-1] == eos and real[-2] != eos


def test_refuses_what_cannot_take_images_or_pad(processor):
    with pytest.raises(TypeError, match="DeepseekOCRCollator"):
        ProcessorCollator(processor.tokenizer)
    no_pad = build_processor(build_tokenizer())
    no_pad.tokenizer.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        ProcessorCollator(no_pad)


def test_validate_flags_labels_on_slots_and_samples_without_image(builder, examples):
    batch = builder(examples[:2])
    slot = (batch["input_ids"][0] == builder.image_token_id).nonzero()[0, 0]
    bad = {**batch, "labels": batch["labels"].clone()}
    bad["labels"][0, slot] = builder.image_token_id
    assert any("on image slot" in str(p).replace("on an image slot", "on image slot") for p in builder.validate(bad))
    blind = {**batch, "input_ids": batch["input_ids"].masked_fill(batch["input_ids"] == builder.image_token_id, 7)}
    assert any("no <image> slot" in str(p) for p in builder.validate(blind))


def test_pickles(builder, examples):
    again = pickle.loads(pickle.dumps(builder))
    a, b = builder(examples[:2]), again(examples[:2])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.describe() == builder.describe()


def test_helpers():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert torch_dtype("bf16") is torch.bfloat16 and torch_dtype(torch.float16) is torch.float16
    for bad in ("int64", "nonsense", torch.long):
        with pytest.raises(ValueError, match="floating torch dtype"):
            torch_dtype(bad)
    assert prompt_problem("<image>x", "<image>") is None
    assert "found 2" in prompt_problem("<image><image>", "<image>")
    assert "string" in prompt_problem(3, "<image>")


def test_a_page_of_one_pixel_is_read_as_rgb_alone_and_in_a_batch(processor):
    """A 1x1 RGB array is ambiguous to transformers' channel guess; the builder says which it is."""
    tiny, normal = Image.new("RGB", (1, 1), "white"), Image.new("RGB", (70, 50), "white")
    builder = ProcessorCollator(processor, prompt=PROMPT)
    batch = builder([{"image": tiny, "text": "a"}, {"image": normal, "text": "b"}])  # 4.x: "Invalid mode" without it
    alone = builder([{"image": tiny, "text": "a"}])
    want = processor(images=[[normal]], text=[PROMPT], return_tensors="pt")["pixel_values"]
    # A white page gives white tiles: as many as a normal page's, every one equal to the normal page's first.
    assert alone["pixel_values"].shape == want.shape
    assert torch.equal(alone["pixel_values"][0, 0], want[0, 0])
    assert batch["input_ids"].shape[0] == 2
