"""The demo's dataset: a few text pages rendered with PIL, in the layout the team's data uses.

Each split folder holds ``images/*.png`` and a ``metadata.json`` list of
``{"image_path": "images/00001.png", "text": "..."}`` rows, paths relative to the metadata file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# Distinct targets, no train/val overlap. Latin script only: PIL's default font has no Cyrillic.
TRAIN_TEXTS = (
    "Meeting notes\nBudget review moved to Friday.",
    "Shopping list\nmilk, bread, two lemons",
    "Lecture 3: optics\nlight bends at the boundary",
    "Invoice 1042\nTotal due: 318.50 EUR",
    "Dear Anna,\nthank you for the letter.",
    "Room 12, shelf B\nbox of old maps",
)
VAL_TEXTS = (
    "Train leaves at 7:45\nplatform 4",
    "Recipe: pancakes\n2 eggs, 1 cup of flour",
)
# Page sizes (w, h): some smaller than one local tile, some cut into 2-4 tiles by crop-based processors.
PAGE_SIZES = ((256, 128), (224, 112), (160, 160), (288, 96), (96, 80), (240, 120))
INK = (24, 24, 32)
PAPER = (255, 255, 255)


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write ``root/train`` and ``root/val``; return ``root``."""
    rng = random.Random(seed)
    write_split(Path(root) / "train", TRAIN_TEXTS, rng)
    write_split(Path(root) / "val", VAL_TEXTS, rng)
    return Path(root)


def write_split(folder: Path, texts: tuple[str, ...] | list[str], rng: random.Random) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts, 1):
        name = f"images/{i:05d}.png"
        render_page(text, PAGE_SIZES[(i - 1) % len(PAGE_SIZES)], rng).save(folder / name)
        rows.append({"image_path": name, "text": text})
    (folder / "metadata.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return folder


def render_page(text: str, size: tuple[int, int], rng: random.Random):
    """White paper with the text's lines in dark ink, slightly off the margin like a scan."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(page)
    lines = text.splitlines()
    font, line_height = _fitting_font(draw, lines, size)
    x, y = 3 + rng.randint(0, 3), 3 + rng.randint(0, 3)
    for line in lines:
        draw.text((x, y), line, fill=INK, font=font)
        y += line_height
    return page


def _fitting_font(draw, lines: list[str], size: tuple[int, int]):
    """The largest default-font size (up to a sixth of the page height) at which every line fits."""
    from PIL import ImageFont

    width, height = size[0] - 10, size[1] - 10
    for points in range(max(8, size[1] // 6), 6, -1):
        try:  # scalable default font: Pillow >= 10.1 with FreeType
            font = ImageFont.load_default(size=points)
        except TypeError:
            return ImageFont.load_default(), 12
        line_height = int(points * 1.3)
        if line_height * len(lines) <= height and max(draw.textlength(line, font=font) for line in lines) <= width:
            return font, line_height
    return font, line_height
