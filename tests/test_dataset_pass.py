"""The dataset pass across processes: the same verdicts as in this process, worker processes that end
with the probe's timeout, a worker's death named, and page sizes read from headers that match the
decoded, upright page."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import passwork
import pytest
from badfiles import bomb_png, image_bytes, truncated
from PIL import Image
from probing import codes, context, linux_cpu, probe

from dsocr_probe.inputs import filepass, images
from dsocr_probe.messages import word
from dsocr_probe.collators.base import open_rgb

POOL = {"workers": 2, "decide_after_s": 0, "pool_pays_s": 0}  # workers even for a handful of tiny files


def _files(folder: Path) -> list[Path]:
    """One file of each kind the decoder must judge, plus plain pages."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "page.png": image_bytes("RGB", (40, 30), "PNG"),
        "page.jpg": image_bytes("L", (30, 50), "JPEG"),
        "turned.jpg": image_bytes("RGB", (60, 20), "JPEG", exif_orientation=6),
        "cut.png": truncated(image_bytes("RGB", (64, 64), "PNG")),
        "empty.png": b"",
        "text.png": "это не картинка".encode(),
        "vector.png": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "bomb.png": bomb_png(),
        "sixteen.png": image_bytes("I;16", (20, 10), "PNG"),
    }
    for i in range(12):
        contents[f"p{i:02d}.png"] = image_bytes("L", (16 + i, 16), "PNG")
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents] + [folder / "missing.png"]


def _pass(work, paths, **kw) -> dict:
    verdicts = dict(filepass.run(work, paths, initializer=images.use_decoder_limits,
                                 initargs=images.decoder_limits(), **kw))
    assert sorted(verdicts) == sorted(paths)
    return verdicts


@pytest.mark.parametrize("work", [images.inspect_image, images.read_size], ids=["decode", "header"])
def test_worker_processes_give_the_verdicts_of_this_process(tmp_path, work):
    paths = _files(tmp_path)
    here = _pass(work, paths, workers=1)
    assert _pass(work, paths, **POOL) == here
    assert "decompression bomb" in word(here[tmp_path / "bomb.png"], "en")


def test_workers_refuse_what_this_process_refuses(tmp_path, monkeypatch):
    """A pixel limit set in this process (as a training script may) holds in the workers too."""
    paths = _files(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    pooled = _pass(images.inspect_image, paths, **POOL)
    assert "decompression bomb" in word(pooled[tmp_path / "turned.jpg"], "en")  # 1 200 pixels > 2 x 500
    assert pooled == _pass(images.inspect_image, paths, workers=1)


def test_a_worker_that_dies_names_its_file_and_the_rest_is_read(tmp_path):
    paths = _files(tmp_path)
    crash = tmp_path / "crash.png"
    crash.write_bytes(image_bytes("RGB", (8, 8), "PNG"))
    # First in line, so it goes to a worker: the files this process reads itself while the workers start
    # (from the end of the line) would end this process on such a file, as a pass without workers does.
    verdicts = _pass(passwork.crash_on_marked, [crash, *paths], **POOL)
    assert verdicts[crash] == filepass.WORKER_DIED
    del verdicts[crash]
    assert verdicts == _pass(images.inspect_image, paths, workers=1)


def test_workers_that_cannot_start_leave_the_pass_to_this_process(tmp_path):
    paths = _files(tmp_path)
    verdicts = dict(filepass.run(images.inspect_image, paths, initializer=passwork.refuse_to_start, **POOL))
    assert verdicts == _pass(images.inspect_image, paths, workers=1)


def test_a_small_pass_starts_no_worker_process(tmp_path, monkeypatch):
    def no_pool(*args, **kw):
        raise AssertionError("a pool was started for a few tiny files")

    monkeypatch.setattr(filepass, "_Workers", no_pool)
    assert len(_pass(images.inspect_image, _files(tmp_path), workers=2)) == 22


def test_the_worker_count_follows_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert filepass.worker_count() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert filepass.worker_count() == filepass.MAX_WORKERS
    assert filepass.worker_count(12) == 12


# ---------------------------------------------------------------- the probe on worker processes


def _dataset(root: Path, n: int) -> Path:
    train = root / "train"
    paths = _files(train / "images")
    rows = [{"image_path": f"images/{p.name}", "text": f"row {i}"} for i, p in enumerate(paths)]
    for i in range(n):
        name = f"images/extra{i:03d}.png"
        (train / name).write_bytes(image_bytes("L", (24, 20 + i), "PNG"))
        rows.append({"image_path": name, "text": f"extra {i}"})
    (train / "metadata.json").write_text(json.dumps(rows), encoding="utf-8")
    return root


def _findings(result) -> list:
    return [(f.code, f.status.value, f.title, f.table, f.evidence) for f in result.findings]


def test_the_dataset_probe_on_worker_processes_says_what_it_says_alone(tmp_path, monkeypatch):
    root = _dataset(tmp_path, 10)
    alone = probe("dataset", context(linux_cpu(), data=root, workers=1))
    monkeypatch.setattr(filepass, "DECIDE_AFTER_S", 0)
    monkeypatch.setattr(filepass, "POOL_PAYS_S", 0)
    pooled = probe("dataset", context(linux_cpu(), data=root, workers=2, timeout_s=60))
    assert _findings(pooled) == _findings(alone)
    assert codes(alone)["dataset.bad-rows"] == "fail"


def test_a_timeout_during_the_pass_ends_the_worker_processes(tmp_path, monkeypatch):
    root = _dataset(tmp_path, 40)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv(passwork.PID_DIR, str(pids))
    monkeypatch.setenv(passwork.SLEEP, "0.4")  # 62 files on 2 workers: far beyond the limit
    monkeypatch.setattr(images, "inspect_image", passwork.noted_inspect)
    monkeypatch.setattr(filepass, "DECIDE_AFTER_S", 0)
    monkeypatch.setattr(filepass, "POOL_PAYS_S", 0)
    start = time.monotonic()
    result = probe("dataset", context(linux_cpu(), data=root, workers=2, timeout_s=2.5))
    assert codes(result) == {"dataset.timeout": "fail"}
    assert time.monotonic() - start < 10
    workers = {int(p.name) for p in pids.iterdir()} - {os.getpid()}  # this process reads too while they start
    assert workers  # the files were being read by worker processes
    for pid in workers:
        with pytest.raises(ProcessLookupError):  # gone, and reaped
            os.kill(pid, 0)
    assert not multiprocessing.active_children()
    deadline = time.monotonic() + 5
    while any(t.name == "dsocr-probe-dataset" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "dsocr-probe-dataset" for t in threading.enumerate())  # its thread stopped too


def test_the_batch_probe_alone_reads_its_rows_in_one_pass(tmp_path, monkeypatch):
    """Without the dataset probe before it, the rows the batch and step probes take come from one pass."""
    root = _dataset(tmp_path, 3)
    calls = []
    real = filepass.run
    monkeypatch.setattr(filepass, "run", lambda work, paths, **kw: (calls.append(len(paths)), real(work, paths, **kw))[1])
    ctx = context(linux_cpu(), data=root)
    rows = ctx.usable_rows(ctx.dataset().train.rows)
    assert calls == [25] and len(rows) == 19  # 22 files + 3 extra, of which 6 are refused
    ctx.usable_rows(ctx.dataset().train.rows)
    assert calls == [25]  # read once per run


# ---------------------------------------------------------------- sizes from headers


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return out


def _png_with(orientation: int, where: str, how: str) -> bytes:
    """A 60x20 PNG whose orientation is in an eXIf chunk or in XMP, before or after its pixel data."""
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), "white").save(buf, "PNG")
    chunks = _png_chunks(buf.getvalue())
    if how == "exif":
        exif = Image.Exif()
        exif[images.EXIF_ORIENTATION] = orientation
        extra = (b"eXIf", exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else exif.tobytes())
    else:
        xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>'
               % orientation)
        extra = (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp.encode())
    idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    chunks.insert(idat if where == "before" else len(chunks) - 1, extra)
    return _png(chunks)


UPRIGHT_CASES = {
    "plain.png": image_bytes("RGB", (60, 20), "PNG"),
    "plain.jpg": image_bytes("RGB", (60, 20), "JPEG"),
    "turned-jpeg-6.jpg": image_bytes("RGB", (60, 20), "JPEG", exif_orientation=6),
    "turned-jpeg-3.jpg": image_bytes("RGB", (60, 20), "JPEG", exif_orientation=3),
    "exif-before-pixels.png": _png_with(8, "before", "exif"),
    "exif-after-pixels.png": _png_with(6, "after", "exif"),
    "xmp-after-pixels.png": _png_with(5, "after", "xmp"),
    "xmp-before-pixels.png": _png_with(7, "before", "xmp"),
    "mirrored-after-pixels.png": _png_with(2, "after", "exif"),
}


@pytest.mark.parametrize("name", UPRIGHT_CASES)
def test_the_header_size_is_the_size_of_the_page_the_builders_see(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(UPRIGHT_CASES[name])
    seen = open_rgb(path, 0).size  # ImageOps.exif_transpose first, as every batch builder does
    assert images.read_size(path) == seen
    assert images.inspect_image(path)[1] == seen


def test_the_header_size_decodes_no_pixels(tmp_path, monkeypatch):
    from PIL import ImageFile

    for name in ("plain.png", "plain.jpg", "turned-jpeg-6.jpg", "exif-before-pixels.png"):
        (tmp_path / name).write_bytes(UPRIGHT_CASES[name])
    cut = tmp_path / "cut.png"
    cut.write_bytes(truncated(image_bytes("RGB", (64, 48), "PNG")))

    def no_decoding(self):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    sizes = {p.name: images.read_size(p) for p in tmp_path.iterdir()}
    assert sizes == {"plain.png": (60, 20), "plain.jpg": (60, 20), "turned-jpeg-6.jpg": (20, 60),
                     "exif-before-pixels.png": (20, 60), "cut.png": (64, 48)}


def test_the_worker_count_is_an_option(pytester):
    from dsocr_probe.plugin import options_from

    assert options_from(pytester.parseconfig("--dsocr-workers", "3")).workers == 3
    assert options_from(pytester.parseconfig()).workers == 0
    result = pytester.runpytest("--dsocr-probe", "--dsocr-workers", "two")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dsocr-workers must be a whole number of processes*"])
