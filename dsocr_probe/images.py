"""One page image, read the way training reads it: a regular file, within the decoder's own limits,
decoded once. The dataset probe's verdict on a row's image comes from here, and the batch and step
probes take only the rows it accepts (cached per run on the probe context)."""

from __future__ import annotations

import hashlib
import re

from .collators.base import bombs_refused
from .dataset import NOT_FOUND, open_regular, read_bounded

MISSING = "image file does not exist"
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # orientations whose upright page has width and height swapped


def max_image_bytes() -> int | None:
    """The largest image file worth reading: PIL refuses more than Image.MAX_IMAGE_PIXELS pixels as a
    bomb (the builders too), and no format stores a pixel in more than 8 bytes (16-bit RGBA, uncompressed)."""
    from PIL import Image

    pixels = Image.MAX_IMAGE_PIXELS
    return None if pixels is None else int(pixels) * 8 + (1 << 20)  # + headers and metadata


def inspect_image(path) -> tuple[str, tuple[int, int], str] | str:
    """(mode, size, content hash) of a decodable image, or the reason it cannot be used."""
    from PIL import Image

    limit = max_image_bytes()
    opened = open_regular(path, limit, f": no image PIL accepts (Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}) is that large")
    if isinstance(opened, str):
        return MISSING if opened == NOT_FOUND else opened
    with opened as fh:
        raw = read_bounded(fh, limit)
    if not raw:
        return "image file is empty (0 bytes)"
    import io

    try:
        with bombs_refused(), Image.open(io.BytesIO(raw)) as im:
            mode, size = im.mode, im.size
            im.load()
            if im.getexif().get(EXIF_ORIENTATION, 1) in QUARTER_TURNS:
                size = size[::-1]  # the builders turn the page upright first
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"refused as a decompression bomb: {exc}"
    except Image.UnidentifiedImageError:
        return _unidentified(path, raw)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return f"not a decodable image ({type(exc).__name__}: {_named(str(exc), path)})"
    return mode, size, hashlib.sha256(raw).hexdigest()


def _unidentified(path, raw: bytes) -> str:
    from PIL import Image

    Image.init()
    formats = ", ".join(sorted(set(Image.OPEN)))
    head = raw[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in raw[:4096].lower()):
        what = "an SVG (vector) file; save the page as PNG or JPEG"
    else:
        what = "not in a format PIL can read"
    return f"not a decodable image: {path.name} is {what} (PIL reads: {formats})"


def _named(message: str, path) -> str:
    """A decoder message names the in-memory buffer it read; name the file instead."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", path.name, message)
