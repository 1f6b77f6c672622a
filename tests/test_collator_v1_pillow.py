"""The v1 global view on every supported Pillow: a page too thin to scale is padding only."""

from __future__ import annotations

from PIL import Image, ImageOps

from dsocr_probe.collators.deepseek_ocr_v1_images import PAD_COLOR, global_view
from dsocr_probe.collators.deepseek_ocr_v1_layout import MODES


def test_a_one_pixel_wide_page_gives_a_padding_only_view():
    page = Image.new("RGB", (1, 4000), (0, 0, 0))
    view = global_view(page, MODES["gundam"])
    assert view.size == (1024, 1024) and view.getcolors() == [(1024 * 1024, PAD_COLOR)]
    try:  # where Pillow itself copes, it gives the same picture
        assert ImageOps.pad(page, (1024, 1024), color=PAD_COLOR).tobytes() == view.tobytes()
    except ValueError as exc:
        assert "height and width must be > 0" in str(exc)


def test_ordinary_pages_are_padded_as_imageops_pads_them():
    page = Image.new("RGB", (300, 900), (10, 20, 30))
    assert global_view(page, MODES["gundam"]).tobytes() == ImageOps.pad(page, (1024, 1024), color=PAD_COLOR).tobytes()
