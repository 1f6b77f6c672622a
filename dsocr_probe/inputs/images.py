"""One page image, read the way training reads it: a regular file, within the decoder's own limits,
decoded once. The dataset probe's verdict on a row's image comes from here, and the batch and step
probes take only the rows it accepts (cached per run on the probe context).

:func:`read_size` reads the page's size from the header alone, for passes that need every row's size
but not its pixels. Both give the size the batch builders see: they turn the page upright by its EXIF
orientation first (``ImageOps.exif_transpose``), so a quarter-turned page has width and height swapped.
A file they refuse gets its reason as a catalog message instead: a verdict that is a tuple is a usable page.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct

from ..collators.base import bombs_refused
from ..messages import M, N_
from ..messages.catalog import is_message
from .files import NOT_FOUND, open_regular, read_bounded

MISSING = M(N_("image file does not exist"))
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # orientations whose upright page has width and height swapped


def max_image_bytes() -> int | None:
    """The largest image file worth reading: PIL refuses more than Image.MAX_IMAGE_PIXELS pixels as a
    bomb (the builders too), and no format stores a pixel in more than 8 bytes (16-bit RGBA, uncompressed)."""
    from PIL import Image

    pixels = Image.MAX_IMAGE_PIXELS
    return None if pixels is None else int(pixels) * 8 + (1 << 20)  # + headers and metadata


def decoder_limits() -> tuple[int | None, bool]:
    """The decoder settings that decide which files are refused, as this process has them."""
    from PIL import Image, ImageFile

    return Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES


def use_decoder_limits(max_pixels: int | None, load_truncated: bool) -> None:
    """In a worker process: the parent's decoder settings, so that it refuses the same files."""
    from PIL import Image, ImageFile

    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = load_truncated


def inspect_image(path) -> tuple[str, tuple[int, int], str] | dict:
    """(mode, size, content hash) of a decodable image, or the reason it cannot be used."""
    from PIL import Image

    limit = max_image_bytes()
    opened = open_regular(path, limit, _too_large())
    if is_message(opened):
        return MISSING if opened == NOT_FOUND else opened
    with opened as fh:
        raw = read_bounded(fh, limit)
    if not raw:
        return EMPTY
    try:
        with bombs_refused(), Image.open(io.BytesIO(raw)) as im:
            mode, size = im.mode, im.size
            im.load()
            if im.getexif().get(EXIF_ORIENTATION, 1) in QUARTER_TURNS:
                size = size[::-1]  # the builders turn the page upright first
    except Exception as exc:
        reason = _refusal(exc, path, raw[:4096])
        if reason is None:
            raise
        return reason
    return mode, size, hashlib.sha256(raw).hexdigest()


def read_size(path) -> tuple[int, int] | dict:
    """The page's (width, height) as the builders see it, from the file's header: the pixels are not
    decoded (but for the rare PNG that keeps metadata after them), so a file whose pixel data is cut short
    still has a size here: only :func:`inspect_image` says whether it decodes. When there is no size, the
    reason, worded as :func:`inspect_image` words it."""
    from PIL import Image

    limit = max_image_bytes()
    opened = open_regular(path, limit, _too_large())
    if is_message(opened):
        return MISSING if opened == NOT_FOUND else opened
    with opened as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return EMPTY
        try:
            with bombs_refused(), Image.open(fh) as im:
                size = im.size
                if _orientation(im, fh) in QUARTER_TURNS:
                    size = size[::-1]
        except Exception as exc:
            fh.seek(0)
            reason = _refusal(exc, path, fh.read(4096))
            if reason is None:
                raise
            return reason
    return size


EMPTY = M(N_("image file is empty (0 bytes)"))
PNG_PIXELS = (b"IDAT", b"fdAT")
PNG_METADATA = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")  # where an orientation can be: EXIF, XMP, a raw EXIF profile


def _too_large() -> dict:
    from PIL import Image

    return M(N_("no image PIL accepts (Image.MAX_IMAGE_PIXELS = %(pixels)s) is that large"), pixels=Image.MAX_IMAGE_PIXELS)


def _orientation(im, fh) -> int:
    """The EXIF orientation the decoder would find. PIL reads a PNG's chunks after the pixel data only
    while decoding (its ``getexif`` decodes first); when none of them can hold an orientation, the
    header already has everything, and the pixels are left alone."""
    from PIL import Image

    if im.format == "PNG" and "exif" not in im.info and not _png_metadata_after_pixels(fh):
        exif = Image.Image.getexif(im)
    else:
        exif = im.getexif()
    return exif.get(EXIF_ORIENTATION, 1)


def _png_metadata_after_pixels(fh) -> bool:
    """Whether a PNG has EXIF or text chunks after its pixel data (read chunk headers only, skip the data)."""
    position = fh.tell()
    try:
        fh.seek(8)
        seen_pixels = False
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return False
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                return False
            if kind in PNG_PIXELS:
                seen_pixels = True
            elif seen_pixels and kind in PNG_METADATA:
                return True
            fh.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    finally:
        fh.seek(position)


def _refusal(exc: BaseException, path, head: bytes) -> dict | None:
    """Why the decoder refused the file (a message); None for an error that is not about the file."""
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return M(N_("refused as a decompression bomb: %(error)s"), error=str(exc))
    if isinstance(exc, Image.UnidentifiedImageError):
        return _unidentified(path, head)
    if isinstance(exc, (OSError, ValueError, SyntaxError, EOFError)):
        return M(N_("not a decodable image (%(error)s)"), error=f"{type(exc).__name__}: {_named(str(exc), path)}")
    return None


def _unidentified(path, raw: bytes) -> dict:
    """``raw``: the file's first 4096 bytes (or all of it)."""
    from PIL import Image

    Image.init()
    formats = ", ".join(sorted(set(Image.OPEN)))
    head = raw[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in raw[:4096].lower()):
        return M(N_("not a decodable image: %(name)s is an SVG (vector) file; save the page as PNG or JPEG (PIL reads: "
                    "%(formats)s)"), name=path.name, formats=formats)
    return M(N_("not a decodable image: %(name)s is not in a format PIL can read (PIL reads: %(formats)s)"),
             name=path.name, formats=formats)


def _named(message: str, path) -> str:
    """A decoder message names the in-memory buffer it read; name the file instead."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", path.name, message)
