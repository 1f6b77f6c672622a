"""Rendered text pages for test datasets."""

from __future__ import annotations

import json
from pathlib import Path


def write_pages(folder: Path, texts: list[str], size=(96, 64)) -> Path:
    """A split folder with rendered text pages and a metadata.json of {image_path, text} rows."""
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts, 1):
        name = f"images/{i:05d}.png"
        im = Image.new("RGB", size, "white")
        ImageDraw.Draw(im).text((4, 4), text, fill="black")
        im.save(folder / name)
        rows.append({"image_path": name, "text": text})
    (folder / "metadata.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder
