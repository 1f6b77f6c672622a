"""What a batch trains on, in words: the decoded prompt, the image token, the slots per image and
the first and last supervised tokens of its first sample, so a reader sees whether the batch is
what inference feeds the model (the family's chat template or documented prompt)."""

from __future__ import annotations

from typing import Any, Mapping

from ..messages import M, N_

IGNORE_INDEX = -100
SHOWN = 400  # characters of the decoded prompt kept in the report


def describe(batch: Mapping[str, Any], tokenizer: Any, image_token_id: int | None) -> dict[str, Any]:
    """Evidence entries (keys are msgids); decoded text stays as the tokenizer gives it."""
    import torch

    ids, labels = batch.get("input_ids"), batch.get("labels")
    if not isinstance(ids, torch.Tensor) or not isinstance(labels, torch.Tensor) or tokenizer is None:
        return {}
    mask = batch.get("attention_mask")
    keep = mask[0].bool() if isinstance(mask, torch.Tensor) and mask.shape == ids.shape else torch.ones_like(ids[0]).bool()
    row, row_labels = ids[0][keep].tolist(), labels[0][keep].tolist() if labels.shape == ids.shape else None
    out: dict[str, Any] = {}
    if image_token_id is not None:
        token = tokenizer.convert_ids_to_tokens(image_token_id)
        out[N_("image token")] = M(N_("%(token)s = id %(id)d"), token=repr(token), id=image_token_id)
        out[N_("image slots in sample 0")] = str(sum(1 for t in row if t == image_token_id))
    if row_labels is None:  # an encoder-decoder: labels are the decoder's own sequence
        out[N_("encoder text")] = _shown(tokenizer, row, image_token_id)
        target = [t for t in labels[0].tolist() if t != IGNORE_INDEX]
        if target:
            out[N_("first / last supervised token")] = f"{_token(tokenizer, target[0])} / {_token(tokenizer, target[-1])}"
        return out
    supervised = [i for i, t in enumerate(row_labels) if t != IGNORE_INDEX]
    if not supervised:
        return out
    out[N_("prompt (decoded)")] = _shown(tokenizer, row[: supervised[0]], image_token_id)
    out[N_("first / last supervised token")] = (f"{_token(tokenizer, row[supervised[0]])} / "
                                            f"{_token(tokenizer, row[supervised[-1]])}")
    after = row[supervised[-1] + 1:]
    if after:
        out[N_("after the last supervised token")] = _shown(tokenizer, after, image_token_id)
    return out


def _token(tokenizer: Any, token_id: int) -> str:
    return repr(tokenizer.decode([token_id]))


def _shown(tokenizer: Any, ids: list[int], image_token_id: int | None) -> str:
    """Decoded text with each run of image slots written once with its length."""
    parts: list[str] = []
    run: list[int] = []
    slot = tokenizer.convert_ids_to_tokens(image_token_id) if image_token_id is not None else None

    def flush():
        if run:
            parts.append(tokenizer.decode(run))
            run.clear()

    i = 0
    while i < len(ids):
        if image_token_id is not None and ids[i] == image_token_id:
            j = i
            while j < len(ids) and ids[j] == image_token_id:
                j += 1
            flush()
            parts.append(f"{slot}×{j - i}")
            i = j
            continue
        run.append(ids[i])
        i += 1
    flush()
    text = "".join(parts)
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "…")
