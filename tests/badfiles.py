"""Byte-level makers of the image files real datasets contain, good and broken."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

MODES = ("1", "L", "LA", "P", "PT", "RGB", "RGBA", "CMYK", "I;16", "F")  # PT: palette with transparency


def image_bytes(mode: str, size: tuple[int, int], fmt: str = "PNG", exif_orientation: int | None = None) -> bytes:
    pil_mode = "P" if mode == "PT" else mode
    im = Image.new(pil_mode, size)
    if mode == "PT":
        im.info["transparency"] = 0
    if fmt == "JPEG" and pil_mode not in ("L", "RGB", "CMYK"):
        im = im.convert("RGB")
    if fmt == "PNG" and pil_mode in ("CMYK", "F"):
        fmt = "TIFF"  # PNG cannot hold these modes; TIFF can
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation is not None and fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    if mode == "PT" and fmt == "PNG":
        kwargs["transparency"] = 0
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims far more pixels than PIL's limit; the data is a token IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]
