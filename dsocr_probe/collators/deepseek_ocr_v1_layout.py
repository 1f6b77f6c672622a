"""DeepSeek-OCR v1 image-token layout, as numbers: modes, crop grids and slot counts.

Facts from the checkpoint's processor_config.json and the official inference path
(reference/deepseek_ocr_v1.md, "Token layout", "Image preprocessing", "Modes").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .tiling import closest_grid

PATCH_SIZE = 16  # processor_config.json
DOWNSAMPLE_RATIO = 4  # processor_config.json: one visual feature per 64x64 pixels
TILE = 640  # crops are always 640x640; images up to 640 on both sides are never cropped
MIN_CROPS, MAX_CROPS = 2, 9
SQUASH_LIMIT = 640  # without cropping, views up to this size are resized to a square, not padded


@dataclass(frozen=True)
class Mode:
    name: str
    base_size: int  # the global view's side when cropping
    image_size: int  # the crops' side; the global view's side without cropping
    crop_mode: bool

    @property
    def global_size(self) -> int:
        return self.base_size if self.crop_mode else self.image_size


# The official README's table.
MODES = {
    "tiny": Mode("tiny", 512, 512, False),
    "small": Mode("small", 640, 640, False),
    "base": Mode("base", 1024, 1024, False),
    "large": Mode("large", 1280, 1280, False),
    "gundam": Mode("gundam", 1024, 640, True),
}


def resolve_mode(mode: str | Mode | None = "gundam", *, base_size: int | None = None, image_size: int | None = None,
                 crop_mode: bool | None = None) -> Mode:
    """A mode by name, optionally overridden; with mode=None all three sizes must be given."""
    if isinstance(mode, Mode):
        start = mode
    elif mode is None:
        if None in (base_size, image_size, crop_mode):
            raise ValueError("mode=None needs base_size, image_size and crop_mode, "
                             "e.g. base_size=1024, image_size=640, crop_mode=True")
        start = Mode("custom", base_size, image_size, bool(crop_mode))
    else:
        key = str(mode).strip().lower()
        if key not in MODES:
            raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        start = MODES[key]
    changes = {k: v for k, v in (("base_size", base_size), ("image_size", image_size), ("crop_mode", crop_mode)) if v is not None}
    chosen = replace(start, **changes)
    if chosen != start:
        chosen = replace(chosen, name="custom")
    _check(chosen)
    return chosen


def _check(mode: Mode) -> None:
    unit = PATCH_SIZE * DOWNSAMPLE_RATIO
    for field in ("base_size", "image_size"):
        size = getattr(mode, field)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % unit:
            raise ValueError(f"{field}={size!r}: must be a positive multiple of {unit} "
                             f"(patch {PATCH_SIZE} x downsample {DOWNSAMPLE_RATIO})")
    if mode.crop_mode and mode.image_size != TILE:
        raise ValueError(f"crop_mode needs image_size={TILE}: the official preprocessing always cuts {TILE}x{TILE} crops")


def queries_per_side(size: int) -> int:
    """Visual features along one side of a square view of ``size`` pixels."""
    return math.ceil(size / PATCH_SIZE / DOWNSAMPLE_RATIO)


def global_slots(size: int) -> int:
    """A global view: n rows of n features, each row closed by a newline slot, then one separator."""
    n = queries_per_side(size)
    return n * (n + 1) + 1


def local_slots(grid: tuple[int, int], size: int = TILE) -> int:
    """Crops of a (width, height) grid: nq*h rows of nq*w features plus a newline each; none for 1x1."""
    w, h = grid
    if w * h <= 1:
        return 0
    n = queries_per_side(size)
    return n * h * (n * w + 1)


def best_grid(width: int, height: int, tile: int = TILE) -> tuple[int, int]:
    """The (w, h) grid with 2 <= w*h <= 9 whose aspect is closest to the image's (tiling.closest_grid)."""
    return closest_grid(width, height, tile, MIN_CROPS, MAX_CROPS)


def crop_grid(width: int, height: int, mode: str | Mode | None = "gundam", **sizes) -> tuple[int, int]:
    """(width_crops, height_crops) for an image of this size: (1, 1) when the mode does not crop."""
    m = resolve_mode(mode, **sizes)
    _check_image_size(width, height)
    if not m.crop_mode or (width <= TILE and height <= TILE):
        return (1, 1)
    return best_grid(width, height, TILE)


def image_token_count(width: int, height: int, mode: str | Mode | None = "gundam", **sizes) -> int:
    """Image slots (= visual features the model writes) for one image of this size."""
    m = resolve_mode(mode, **sizes)
    if not m.crop_mode:
        _check_image_size(width, height)
        return global_slots(m.image_size)
    return global_slots(m.base_size) + local_slots(crop_grid(width, height, m), m.image_size)


def _check_image_size(width: int, height: int) -> None:
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError(f"image size must be two positive integers, got {width!r} x {height!r}")
