"""DeepSeek-OCR v1 image preprocessing: global view, crops and normalisation, as the official path does it.

Facts: reference/deepseek_ocr_v1.md, "Image preprocessing" (pad colour = mean x 255 truncated,
mean = std = 0.5, crops resized to the grid and cut row by row).
"""

from __future__ import annotations

from .deepseek_ocr_v1_layout import SQUASH_LIMIT, TILE, Mode, crop_grid

IMAGE_MEAN = (0.5, 0.5, 0.5)  # processor_config.json
IMAGE_STD = (0.5, 0.5, 0.5)
PAD_COLOR = tuple(int(m * 255) for m in IMAGE_MEAN)  # (127, 127, 127)


def global_view(image, mode: Mode):
    """The whole page as one square view (PIL)."""
    if mode.crop_mode:
        return _pad(image, mode.base_size)
    if mode.image_size <= SQUASH_LIMIT:
        image = image.resize((mode.image_size, mode.image_size))
    return _pad(image, mode.image_size)


def _pad(image, side: int):
    """ImageOps.pad to a square; a page whose short side scales to 0 pixels leaves only the padding
    (as Pillow 13 does; Pillow 10 and 11 raise `height and width must be > 0`)."""
    from PIL import Image, ImageOps

    if round(min(image.size) / max(image.size) * side) == 0:
        return Image.new(image.mode, (side, side), PAD_COLOR)
    return ImageOps.pad(image, (side, side), color=PAD_COLOR)


def crops(image, grid: tuple[int, int]) -> list:
    """The image resized to the grid and cut into TILE x TILE crops, left to right, top to bottom."""
    w, h = grid
    resized = image.resize((TILE * w, TILE * h))
    return [resized.crop((c * TILE, r * TILE, (c + 1) * TILE, (r + 1) * TILE)) for r in range(h) for c in range(w)]


def to_tensor(image, dtype):
    """uint8 RGB -> [3, H, W] in [-1, 1], computed in float32 and then cast (as the official path)."""
    import numpy as np
    import torch

    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return ((pixels - mean) / std).to(dtype)


def image_pair(image, mode: Mode, dtype):
    """One image -> (patches [n, 3, s, s], global_view [1, 3, S, S], (w, h) grid)."""
    import torch

    grid = crop_grid(image.width, image.height, mode)
    view = to_tensor(global_view(image, mode), dtype)[None]
    if grid == (1, 1):
        patches = torch.zeros(1, 3, mode.image_size, mode.image_size, dtype=dtype)
    else:
        patches = torch.stack([to_tensor(c, dtype) for c in crops(image, grid)])
    return patches, view, grid


def empty_pair(mode: Mode, dtype):
    """A sample without an image: all-zero views of the mode's sizes, which the model reads as 'no image'."""
    import torch

    patches = torch.zeros(1, 3, mode.image_size, mode.image_size, dtype=dtype)
    view = torch.zeros(1, 3, mode.global_size, mode.global_size, dtype=dtype)
    return patches, view, (1, 1)
