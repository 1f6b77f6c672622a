"""DeepSeek-OCR-2 page pixels, equal to what ``DeepseekOcr2ImageProcessorPil`` makes, made faster.

What that image processor does to one RGB page of ``w x h`` pixels (transformers 5.x):

- local tiles, only when ``crop_to_patches`` and ``max(w, h) > tile_size``: among the grids of
  ``cols x rows`` tiles with ``min_patches <= cols * rows <= max_patches``, the one whose
  ``cols / rows`` is closest to ``w / h`` (on a tie, the later grid in order of tile count wins
  while the page covers more than half of it); the page is resized to ``cols * tile x rows * tile``
  and cut left to right, top to bottom (tiling.closest_grid, the rule v1 uses too);
- the global view: the longer side resized to ``size.height`` (``tile_size`` without tiles), the
  other side by the same scale with ``round``, then centred on a square of the background colour;
- every view: ``float32(float64(uint8) * rescale_factor)``, then ``(x - mean) / std`` in float32.

The resizes are Pillow's, so they stay. The per-pixel arithmetic is a function of one uint8 value
per channel: it is done once per value (256 per channel, with the processor's exact steps and
dtypes) and applied as a table lookup straight into the batch tensor, in the model's dtype. That
skips the float64 copies and the stacking of per-view arrays, and the result is bit for bit the
same as the processor's pixels cast to that dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

from ..messages import N_
from .tiling import closest_grid

PIL_BACKEND_CLASS = "DeepseekOcr2ImageProcessorPil"
BILINEAR = 2  # what Pillow-based resizing uses when no filter is set
# Integer types of the same width as each float dtype: the table and the tensor are filled as raw bits.
_BITS = {2: "int16", 4: "int32", 8: "int64"}


class PageTooThin(ValueError):
    """A page too thin to make a global view of: ``msgid`` and ``params`` say why (``str()`` in English)."""

    def __init__(self, msgid: str, **params: Any):
        super().__init__(msgid % params)
        self.msgid = msgid
        self.params = params


class Unsupported(Exception):
    """A processor setting these pixels do not reproduce; the message says which."""


@dataclass(frozen=True)
class ViewSettings:
    """The image settings in force when ``DeepseekOcr2Processor`` is called with images."""

    global_size: int
    tile_size: int
    crop_to_patches: bool
    min_tiles: int
    max_tiles: int
    resample: int
    background: tuple[int, int, int]
    rescale_factor: float | None  # None: no rescaling
    mean: tuple[float, float, float] | None  # None: no normalisation
    std: tuple[float, float, float] | None
    convert_rgb: bool

    @classmethod
    def of(cls, processor: Any) -> "ViewSettings":
        """Read the settings once; Unsupported when the processor would do something else."""
        import transformers

        images = getattr(processor, "image_processor", None)
        if type(images) is not getattr(transformers, PIL_BACKEND_CLASS, None):
            raise Unsupported(
                f"the image processor is {type(images).__name__}, not {PIL_BACKEND_CLASS} itself "
                "(another backend or a subclass may make other pixels)"
            )
        def setting(name: str) -> Any:
            return effective_setting(processor, name)

        rescale, normalize = bool(setting("do_rescale")), bool(setting("do_normalize"))
        if not (rescale or normalize):
            raise Unsupported("neither rescaling nor normalisation is on, so the processor returns uint8 pixels")
        return cls(
            global_size=_positive(_height(setting("size")), "size.height"),
            tile_size=_positive(setting("tile_size"), "tile_size"),
            crop_to_patches=bool(setting("crop_to_patches")),
            min_tiles=_positive(setting("min_patches"), "min_patches"),
            max_tiles=_positive(setting("max_patches"), "max_patches"),
            resample=_resample(setting("resample")),
            background=_colour(setting("background_color")),
            rescale_factor=_number(setting("rescale_factor"), "rescale_factor") if rescale else None,
            mean=_per_channel(setting("image_mean"), "image_mean") if normalize else None,
            std=_per_channel(setting("image_std"), "image_std") if normalize else None,
            convert_rgb=bool(setting("do_convert_rgb")),
        )


def effective_setting(processor: Any, name: str) -> Any:
    """An image setting as a processor call uses it: the processor passes its own image defaults
    at call time, and they beat the image processor's."""
    overrides = getattr(processor, "images_kwargs", None)
    if isinstance(overrides, Mapping) and name in overrides:
        return overrides[name]
    return getattr(getattr(processor, "image_processor", None), name, None)


class PagePlan(NamedTuple):
    """How one page becomes views: tile grid (0 x 0 without tiles) and the global view's inner size."""

    cols: int
    rows: int
    global_width: int
    global_height: int

    @property
    def tiles(self) -> int:
        return self.cols * self.rows


class PageViews:
    """Pages (RGB PIL images) -> ``pixel_values``, ``num_local_patches`` and ``pixel_values_local``
    in ``dtype``, equal to ``DeepseekOcr2Processor``'s output cast to ``dtype``."""

    def __init__(self, settings: ViewSettings, dtype: Any):
        self.settings = settings
        self.dtype = dtype
        self._table = _pixel_table(settings, dtype)

    @property
    def global_side(self) -> int:
        s = self.settings
        return s.global_size if s.crop_to_patches else s.tile_size

    def plan(self, width: int, height: int) -> PagePlan:
        """The page's views; PageTooThin (a ValueError) when the page is too thin to make a global view of."""
        s = self.settings
        cols = rows = 0
        if s.crop_to_patches and max(width, height) > s.tile_size:
            cols, rows = closest_grid(width, height, s.tile_size, s.min_tiles, s.max_tiles)
        scale = self.global_side / max(width, height)
        inner = (round(width * scale), round(height * scale))
        if min(inner) < 1:
            raise PageTooThin(
                N_("a %(width)dx%(height)d px page is too thin: scaled to a %(side)d px global view its short "
                   "side becomes %(short)d px, and the image processor cannot resize to that; crop or pad the page"),
                width=width, height=height, side=self.global_side, short=min(inner),
            )
        return PagePlan(cols, rows, *inner)

    def __call__(self, pages: Sequence[Any], plans: Sequence[PagePlan]) -> dict[str, Any]:
        import torch

        side, tile = self.global_side, self.settings.tile_size
        global_views = torch.empty((len(pages), 3, side, side), dtype=self.dtype)
        n_tiles = [plan.tiles for plan in plans]
        local_views = torch.empty((sum(n_tiles), 3, tile, tile), dtype=self.dtype)
        global_bits, local_bits = _raw(global_views), _raw(local_views)
        k = 0
        for i, (page, plan) in enumerate(zip(pages, plans)):
            page = self._as_rgb(page)
            if plan.tiles:
                canvas = _array(page.resize((plan.cols * tile, plan.rows * tile), resample=self.settings.resample))
                for r in range(plan.rows):
                    for c in range(plan.cols):
                        self._paint(local_bits[k], canvas[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
                        k += 1
            self._paint(global_bits[i], _array(self._global_view(page, plan)))
        out = {"pixel_values": global_views, "num_local_patches": torch.tensor(n_tiles, dtype=torch.long)}
        if k:
            out["pixel_values_local"] = local_views
        return out

    def _as_rgb(self, page):
        # What the processor's RGB conversion does; a page with a transparency key is flattened on white.
        if not self.settings.convert_rgb:
            return page
        from PIL import Image

        if "A" in page.getbands() or page.info.get("transparency") is not None:
            rgba = page.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        return page if page.mode == "RGB" else page.convert("RGB")

    def _global_view(self, page, plan: PagePlan):
        from PIL import Image

        inner = page.resize((plan.global_width, plan.global_height), resample=self.settings.resample)
        side = max(inner.size)
        if inner.width == inner.height:
            return inner
        square = Image.new("RGB", (side, side), self.settings.background)
        square.paste(inner, ((side - inner.width) // 2, (side - inner.height) // 2))
        return square

    def _paint(self, target, pixels) -> None:
        """uint8 ``[h, w, 3]`` -> the channels-first view ``target``, through the per-value table."""
        import numpy as np

        if target.shape[1:] != pixels.shape[:2]:
            raise ValueError(f"a view of {pixels.shape[1]}x{pixels.shape[0]} px does not fit {target.shape[2]}x{target.shape[1]}")
        for channel in range(3):
            np.take(self._table[channel], pixels[..., channel], out=target[channel], mode="clip")


def _pixel_table(settings: ViewSettings, dtype: Any):
    """``[3, 256]`` raw bits of every uint8 value after rescale and normalise, in ``dtype``.

    The steps and dtypes are the processor's: rescale multiplies in float64 and stores float32;
    normalise subtracts and divides in float32 (a uint8 input is first cast to float32)."""
    import numpy as np
    import torch

    values = np.tile(np.arange(256, dtype=np.uint8), (3, 1))
    if settings.rescale_factor is not None:
        values = (values.astype(np.float64) * settings.rescale_factor).astype(np.float32)
    if settings.mean is not None:
        values = values.astype(np.float32)
        mean = np.array(settings.mean, dtype=np.float32)[:, None]
        std = np.array(settings.std, dtype=np.float32)[:, None]
        values = (values - mean) / std
    table = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(dtype)
    return _raw(table)


def _raw(tensor):
    """A numpy view of a floating tensor's bits (numpy has no bfloat16)."""
    import torch

    return tensor.view(getattr(torch, _BITS[tensor.element_size()])).numpy()


def _array(image):
    import numpy as np

    return np.asarray(image, dtype=np.uint8)


def _height(size: Any) -> Any:
    return size.get("height") if isinstance(size, Mapping) else getattr(size, "height", None)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Unsupported(f"{name}={value!r} is not a positive integer")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unsupported(f"{name}={value!r} is not a number")
    return value


def _per_channel(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value,) * 3
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return tuple(value)
    raise Unsupported(f"{name}={value!r} is not one number or three")


def _colour(value: Any) -> tuple[int, int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    if not ok or len(value) != 3:
        # A one-value colour paints only the first channel in the processor; not reproduced here.
        raise Unsupported(f"background_color={value!r} is not three integers in 0..255")
    return tuple(value)


def _resample(value: Any) -> int:
    if value is None:
        return BILINEAR
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise Unsupported(f"resample={value!r} is not a Pillow filter")
