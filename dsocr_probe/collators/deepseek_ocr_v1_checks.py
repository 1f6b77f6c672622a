"""Checks of a DeepSeek-OCR v1 batch against the layout the model expects.

Several of these mistakes pass silently through the real forward (too few image slots,
labels on image slots, no bos): only a check like this catches them before training.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..messages import M, N_
from .base import IGNORE_INDEX, Problem, problem
from .deepseek_ocr_v1_layout import global_slots, local_slots

CHECKPOINT_BOS_ID = 0  # the published modeling code assumes bos 0


def expected_slots(patches, view, crop) -> tuple[int, dict]:
    """Visual features the model writes for one (patches, global_view) pair, and how they add up (a message)."""
    import torch

    if torch.sum(view).item() == 0:
        return 0, M(N_("no image (all-zero global view)"))
    side = view.shape[-1]
    glob = global_slots(side)
    if torch.sum(patches).item() == 0:
        return glob, M(N_("global %(side)dpx: %(slots)d"), side=side, slots=glob)
    w, h = (int(x) for x in crop)
    local = local_slots((w, h), patches.shape[-1])
    return glob + local, M(N_("global %(side)dpx: %(slots)d + %(width)dx%(height)d crops of %(crop)dpx: %(local)d"),
                           side=side, slots=glob, width=w, height=h, crop=patches.shape[-1], local=local)


def validate_layout(batch: Mapping[str, Any], *, bos_token_id: int | None = CHECKPOINT_BOS_ID,
                    image_token_id: int | None = None, pixel_dtype=None) -> list[Problem]:
    """Problems with a v1 batch (empty when sound): keys, pair structure, slot counts, labels, bos, dtypes."""
    import torch

    missing = [k for k in ("input_ids", "images", "images_seq_mask", "images_spatial_crop") if k not in batch]
    if missing:
        return [problem("batch.missing-key", "layout", missing=", ".join(missing))]
    ids, images, mask, crop = (batch[k] for k in ("input_ids", "images", "images_seq_mask", "images_spatial_crop"))
    problems = _structure(ids, images, mask, crop)
    if problems:
        return problems
    if mask.dtype != torch.bool:
        problems.append(problem("batch.mask-dtype", "validator", dtype=str(mask.dtype)))
        mask = mask != 0
    problems += _slot_counts(images, mask, crop)
    if torch.sum(images[0][1]).item() == 0 and any(torch.sum(p[1]).item() != 0 for p in images[1:]):
        problems.append(problem("batch.first-sample-text-only"))
    if image_token_id is not None:
        problems += _image_ids(ids, mask, image_token_id)
    problems += _labels_and_padding(batch, mask)
    if bos_token_id is not None:
        wrong = [i for i, first in enumerate(ids[:, 0].tolist()) if first != bos_token_id]
        if wrong:
            problems.append(problem("batch.no-bos", samples=str(wrong), bos=bos_token_id))
    problems += _pixel_dtypes(images, pixel_dtype)
    return problems


def _structure(ids, images, mask, crop) -> list[Problem]:
    import torch

    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        return [problem("batch.layout", "ids-shape")]
    b = ids.shape[0]
    problems = []
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        problems.append(problem("batch.layout", "mask-shape", shape=str(list(ids.shape))))
    if not isinstance(crop, torch.Tensor) or list(crop.shape) != [b, 2] or crop.is_floating_point():
        problems.append(problem("batch.layout", "crop-shape", batch=b))
    if not isinstance(images, (list, tuple)) or len(images) != b:
        problems.append(problem("batch.layout", "images-list", batch=b))
        return problems
    for i, pair in enumerate(images):
        is_pair = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not (is_pair and all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in pair)):
            problems.append(problem("batch.layout", "not-a-pair", index=i))
    return problems


def _slot_counts(images, mask, crop) -> list[Problem]:
    problems = []
    for i, (pair, slots) in enumerate(zip(images, mask.sum(dim=1).tolist())):
        patches, view = pair
        w, h = (int(x) for x in crop[i])
        if view.shape[0] != 1 or view.shape[-1] != view.shape[-2]:
            problems.append(problem("batch.layout", "view-shape", index=i, shape=str(list(view.shape))))
            continue
        if patches.sum().item() != 0 and patches.shape[0] != w * h:
            problems.append(problem("batch.layout", "crop-count", index=i, crops=patches.shape[0], width=w, height=h))
            continue
        expected, how = expected_slots(patches, view, crop[i])
        if slots < expected:
            problems.append(problem("batch.image-slots", "too-few", sample=i, slots=slots, expected=expected, how=how,
                                    unused=expected - slots))
        elif slots > expected:
            problems.append(problem("batch.image-slots", "too-many", sample=i, slots=slots, expected=expected, how=how))
    return problems


def _image_ids(ids, mask, image_token_id: int) -> list[Problem]:
    problems = []
    off = int((mask & (ids != image_token_id)).sum())
    if off:
        problems.append(problem("batch.layout", "slot-ids", count=off, token_id=image_token_id))
    stray = int((~mask & (ids == image_token_id)).sum())
    if stray:
        problems.append(problem("batch.layout", "stray-image-tokens", count=stray, token_id=image_token_id))
    return problems


def _labels_and_padding(batch, mask) -> list[Problem]:
    import torch

    problems = []
    labels = batch.get("labels")
    if isinstance(labels, torch.Tensor) and labels.shape == mask.shape:
        on_images = int((mask & (labels != IGNORE_INDEX)).sum())
        if on_images:
            problems.append(problem("batch.labels-on-images", "mask", count=on_images))
    attention = batch.get("attention_mask")
    if isinstance(attention, torch.Tensor) and attention.shape == mask.shape:
        padded = int((mask & (attention == 0)).sum())
        if padded:
            problems.append(problem("batch.padding", "slots", count=padded))
    return problems


def _pixel_dtypes(images, pixel_dtype) -> list[Problem]:
    dtypes = {t.dtype for pair in images for t in pair}
    if len(dtypes) > 1:
        return [problem("batch.layout", "mixed-pixel-dtypes", dtypes=str(sorted(map(str, dtypes))))]
    if pixel_dtype is not None and dtypes and dtypes != {pixel_dtype}:
        return [problem("batch.pixel-dtype", "validator", dtype=str(dtypes.pop()), model_dtype=str(pixel_dtype))]
    return []
