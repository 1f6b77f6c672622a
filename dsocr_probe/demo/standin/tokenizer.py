"""A tiny byte-level BPE tokenizer with DeepSeek-OCR's special-token strings.

bos, eos and pad take ids 0, 1 and 2 as in the checkpoint; the image, grounding and role
tokens are appended after the learned vocabulary, as there, but at small ids of our own,
so code that hard-codes the checkpoint's 128815 for ``<image>`` breaks on this tokenizer.
"""

from __future__ import annotations

from pathlib import Path

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image>"
# After the learned vocabulary, in the checkpoint's order.
ADDED = (IMAGE, "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>", "<|User|>", "<|Assistant|>")
ROLES = ("<|User|>", "<|Assistant|>")

# Enough text for a few hundred merges: the official prompts, English and the Russian of the
# team's handwriting, so test targets are not spelled byte by byte.
CORPUS = (
    "Free OCR. Convert the document to markdown. Parse the figure. Describe this image in detail.",
    "Locate the text in the image. OCR this image. Extract the table as markdown.",
    "the quick brown fox jumps over the lazy dog. The Quick Brown Fox Jumps Over The Lazy Dog.",
    "0123456789 page line word text title header footer table figure caption",
    "Привет мир. Рукописный текст, третья строка, проверка. Съешь же ещё этих мягких французских булок.",
    "рукописный конспект лекции, дата, подпись, номер страницы, заголовок, абзац, список, таблица",
)
LEARNED_VOCAB = 448


def build_tokenizer():
    """The ``tokenizers.Tokenizer``: byte-level BPE trained on CORPUS, then the added tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=LEARNED_VOCAB,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(CORPUS) * 4, trainer)
    # Plain strings: tokenizers makes them special, unnormalized, unstripped tokens.
    tok.add_special_tokens(list(ADDED))
    return tok


def write_tokenizer(folder: Path) -> dict[str, int]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; return the special ids."""
    tok = build_tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in (BOS, EOS, PAD, *ADDED)}
    entry = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "add_prefix_space": None,
        "added_tokens_decoder": {
            str(i): {"content": t, **entry, "special": True} for t, i in sorted(ids.items(), key=lambda kv: kv[1])
        },
        "additional_special_tokens": list(ROLES),
        "bos_token": BOS,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "legacy": True,
        "model_max_length": 8192,
        "pad_token": PAD,
        # The checkpoint names the slow class; AutoTokenizer loads the fast one from tokenizer.json.
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": None,
        "use_default_system_prompt": False,
    }
    special_map = {
        "additional_special_tokens": list(ROLES),
        "bos_token": {"content": BOS, **entry},
        "eos_token": {"content": EOS, **entry},
        "pad_token": {"content": PAD, **entry},
    }
    _dump(folder / "tokenizer_config.json", config)
    _dump(folder / "special_tokens_map.json", special_map)
    return {"size": tok.get_vocab_size(), **ids}


def _dump(path: Path, data) -> None:
    import json

    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
