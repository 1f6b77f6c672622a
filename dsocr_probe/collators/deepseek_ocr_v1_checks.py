"""Checks of a DeepSeek-OCR v1 batch against the layout the model expects.

Several of these mistakes pass silently through the real forward (too few image slots,
labels on image slots, no bos): only a check like this catches them before training.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import IGNORE_INDEX
from .deepseek_ocr_v1_layout import global_slots, local_slots

CHECKPOINT_BOS_ID = 0  # the published modeling code assumes bos 0


def expected_slots(patches, view, crop) -> tuple[int, str]:
    """Visual features the model writes for one (patches, global_view) pair, and how they add up."""
    import torch

    if torch.sum(view).item() == 0:
        return 0, "no image (all-zero global view)"
    glob = global_slots(view.shape[-1])
    text = f"global {view.shape[-1]}px: {glob}"
    if torch.sum(patches).item() == 0:
        return glob, text
    w, h = (int(x) for x in crop)
    local = local_slots((w, h), patches.shape[-1])
    return glob + local, f"{text} + {w}x{h} crops of {patches.shape[-1]}px: {local}"


def validate_layout(batch: Mapping[str, Any], *, bos_token_id: int | None = CHECKPOINT_BOS_ID,
                    image_token_id: int | None = None, pixel_dtype=None) -> list[str]:
    """Problems with a v1 batch (empty when sound): keys, pair structure, slot counts, labels, bos, dtypes."""
    import torch

    missing = [k for k in ("input_ids", "images", "images_seq_mask", "images_spatial_crop") if k not in batch]
    if missing:
        return [f"missing {', '.join(missing)}: forward() needs input_ids, images, images_seq_mask and images_spatial_crop"]
    ids, images, mask, crop = (batch[k] for k in ("input_ids", "images", "images_seq_mask", "images_spatial_crop"))
    problems = _structure(ids, images, mask, crop)
    if problems:
        return problems
    if mask.dtype != torch.bool:
        problems.append(f"images_seq_mask is {mask.dtype}: masked_scatter_ only supports boolean masks, the forward fails")
        mask = mask != 0
    problems += _slot_counts(images, mask, crop)
    if torch.sum(images[0][1]).item() == 0 and any(torch.sum(p[1]).item() != 0 for p in images[1:]):
        problems.append("the first sample has no image: the model then skips the vision path for the whole batch")
    if image_token_id is not None:
        problems += _image_ids(ids, mask, image_token_id)
    problems += _labels_and_padding(batch, mask)
    if bos_token_id is not None:
        wrong = [i for i, first in enumerate(ids[:, 0].tolist()) if first != bos_token_id]
        if wrong:
            problems.append(f"sample(s) {wrong} do not start with bos (id {bos_token_id}); the model trains on it silently")
    problems += _pixel_dtypes(images, pixel_dtype)
    return problems


def _structure(ids, images, mask, crop) -> list[str]:
    import torch

    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        return ["input_ids must be a [batch, length] tensor"]
    b = ids.shape[0]
    problems = []
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        problems.append(f"images_seq_mask must be a tensor shaped like input_ids {list(ids.shape)}")
    if not isinstance(crop, torch.Tensor) or list(crop.shape) != [b, 2] or crop.is_floating_point():
        problems.append(f"images_spatial_crop must be an integer tensor [{b}, 2] of (width_crops, height_crops)")
    if not isinstance(images, (list, tuple)) or len(images) != b:
        problems.append(f"images must be a list of {b} (patches, global_view) pairs, one per sample")
        return problems
    for i, pair in enumerate(images):
        is_pair = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not (is_pair and all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in pair)):
            problems.append(f"images[{i}] is not a (patches [n,3,s,s], global_view [1,3,S,S]) pair: "
                            "the model indexes images[i][1] (IndexError)")
    return problems


def _slot_counts(images, mask, crop) -> list[str]:
    problems = []
    for i, (pair, slots) in enumerate(zip(images, mask.sum(dim=1).tolist())):
        patches, view = pair
        w, h = (int(x) for x in crop[i])
        if view.shape[0] != 1 or view.shape[-1] != view.shape[-2]:
            problems.append(f"images[{i}][1] is {list(view.shape)}: the global view must be one square image [1, 3, S, S]")
            continue
        if patches.sum().item() != 0 and patches.shape[0] != w * h:
            problems.append(f"images[{i}][0] has {patches.shape[0]} crops but images_spatial_crop[{i}] says {w}x{h}")
            continue
        expected, how = expected_slots(patches, view, crop[i])
        if slots < expected:
            problems.append(
                f"sample {i} has {slots} image slots but the model writes {expected} visual features ({how}): "
                f"the real forward accepts this silently and leaves the last {expected - slots} unused "
                "(a row without its newline slot or a missing view separator)"
            )
        elif slots > expected:
            problems.append(
                f"sample {i} has {slots} image slots but the model writes only {expected} visual features ({how}): "
                "the forward fails with `Number of elements of source < number of ones in mask`"
            )
    return problems


def _image_ids(ids, mask, image_token_id: int) -> list[str]:
    problems = []
    off = int((mask & (ids != image_token_id)).sum())
    if off:
        problems.append(f"{off} image slot(s) do not hold the image token id {image_token_id}")
    stray = int((~mask & (ids == image_token_id)).sum())
    if stray:
        problems.append(f"{stray} image token(s) (id {image_token_id}) outside images_seq_mask: the model reads them as text")
    return problems


def _labels_and_padding(batch, mask) -> list[str]:
    import torch

    problems = []
    labels = batch.get("labels")
    if isinstance(labels, torch.Tensor) and labels.shape == mask.shape:
        on_images = int((mask & (labels != IGNORE_INDEX)).sum())
        if on_images:
            problems.append(f"{on_images} label(s) on image slots: they must be {IGNORE_INDEX}; "
                            "the model trains on them silently")
    attention = batch.get("attention_mask")
    if isinstance(attention, torch.Tensor) and attention.shape == mask.shape:
        padded = int((mask & (attention == 0)).sum())
        if padded:
            problems.append(f"{padded} image slot(s) on padding positions (attention_mask 0)")
    return problems


def _pixel_dtypes(images, pixel_dtype) -> list[str]:
    dtypes = {t.dtype for pair in images for t in pair}
    if len(dtypes) > 1:
        return [f"pixel tensors mix dtypes {sorted(map(str, dtypes))}"]
    if pixel_dtype is not None and dtypes and dtypes != {pixel_dtype}:
        return [f"pixels are {dtypes.pop()} but the model runs in {pixel_dtype}: without autocast the first convolution fails"]
    return []
