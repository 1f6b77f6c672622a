"""Property-based: special files and odd metadata layouts. Whatever the dataset folder holds, the
dataset probe ends within a bound, keeps its memory bounded, never crashes, and names each file,
row or choice it refused or made.

The statistics of the run (cases per class, worst wall time, peak traced memory) are printed at
the end with ``-s``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
from badfiles import image_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from probing import context, linux_cpu, probe

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX special files")

WALL_BOUND_S = 10.0
MEMORY_BOUND = 64 * 2**20  # traced Python memory of one case; reading /dev/zero without a bound takes GBs

STATS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_stats():
    yield
    for name, s in STATS.items():
        print(f"\n{name}: {int(s['cases'])} cases, worst wall {s['wall']:.3f} s, peak traced memory {s['peak'] / 2**20:.1f} MiB")


def _measured(kind: str, root: Path, **options):
    tracemalloc.start()
    start = time.monotonic()
    try:
        # A model that is never resolved: no demo target (and its training config) is built for the case.
        result = probe("dataset", context(linux_cpu(), data=root, model=str(root / "no-model"), **options))
        wall = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    s = STATS.setdefault(kind, {"cases": 0, "wall": 0.0, "peak": 0})
    s["cases"] += 1
    s["wall"], s["peak"] = max(s["wall"], wall), max(s["peak"], peak)
    assert wall < WALL_BOUND_S, wall
    assert peak < MEMORY_BOUND, peak
    errors = [f.title for f in result.findings if f.status.value == "error"]
    assert not errors, errors
    return result


def _table(result, code: str) -> list[dict]:
    """The finding's table in English (its reasons are catalog messages)."""
    return next((f.to_json()["table"] for f in result.findings if f.code == code), [])


# ---------------------------------------------------------------- special files as images

# kind -> words the row's reason must contain
SPECIAL = {
    "device": "character device",
    "null-device": "character device",
    "fifo": "named pipe",
    "socket": "socket",
    "directory": "a folder",
    "dangling": "does not exist",
    "loop": "symbolic link loop",
    "link-to-fifo": "named pipe",
    "oversized": "bytes read at most",
}
KINDS = ["good", "link-to-good", *SPECIAL]


def _make(images: Path, i: int, kind: str, keep: list) -> str:
    path = images / f"{i}-{kind}.png"
    if kind in ("good", "link-to-good"):
        target = images / f"{i}-target.png"
        target.write_bytes(image_bytes("RGB", (40, 40), "PNG"))
        if kind == "good":
            target.rename(path)
        else:
            path.symlink_to(target.name)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "null-device":
        path.symlink_to("/dev/null")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-to-fifo":
        os.mkfifo(images / f"{i}-pipe")
        path.symlink_to(f"{i}-pipe")
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        keep.append(sock)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(f"{i}-gone.png")
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "oversized":
        with open(path, "wb") as fh:  # sparse: no disk used, but larger than any image PIL would decode
            fh.write(image_bytes("RGB", (8, 8), "PNG"))
            fh.truncate(8 * 2**20)
    return f"images/{path.name}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6), st.sampled_from(["metadata.json", "metadata.jsonl"]))
def test_special_files_are_named_never_read(kinds, meta_name):
    from PIL import Image

    root = Path(tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/tmp")))
    keep: list = []
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 500_000  # so an 8 MiB file is above the cap derived from it
    try:
        images = root / "train" / "images"
        images.mkdir(parents=True)
        rows = [{"image_path": _make(images, i, k, keep), "text": f"row {i}"} for i, k in enumerate(kinds)]
        meta = root / "train" / meta_name
        if meta_name.endswith(".jsonl"):
            meta.write_text("\n".join(json.dumps(r) for r in rows))
        else:
            meta.write_text(json.dumps(rows))
        result = _measured("special files", root)
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
        for sock in keep:
            sock.close()
        shutil.rmtree(root)
    by_row = {r["row"]: r for r in _table(result, "dataset.bad-rows")}
    for i, kind in enumerate(kinds):
        if kind in SPECIAL:
            assert i in by_row and SPECIAL[kind] in by_row[i]["reason"], (kind, by_row.get(i))
            assert f"{i}-{kind}.png" in by_row[i]["file"] or kind in ("link-to-fifo",), by_row[i]
        else:
            assert i not in by_row, (kind, by_row[i])
    usable = sum(k not in SPECIAL for k in kinds)
    assert ("dataset.no-train-rows" in {f.code for f in result.findings}) == (usable == 0)


# ---------------------------------------------------------------- metadata layouts


@st.composite
def layouts(draw):
    folders = draw(st.lists(st.sampled_from(["train", "val", "validation", "test", "."]), min_size=1, max_size=4, unique=True))
    return {
        "folders": folders,
        "files": {f: draw(st.sampled_from([("metadata.json",), ("metadata.jsonl",), ("metadata.json", "metadata.jsonl")]))
                  for f in folders},
        "wrapper": draw(st.sampled_from(["list", "one-key", "two-lists"])),
        "rows": draw(st.integers(min_value=0, max_value=3)),
        "duplicate_key": draw(st.booleans()),
        "windows": draw(st.booleans()),
        "outside": draw(st.booleans()),
    }


def _metadata(spec: dict, rows: list[dict], name: str, duplicate: bool) -> str:
    if name.endswith(".jsonl"):
        lines = [json.dumps(r) for r in rows]
        if duplicate and lines:
            lines[0] = lines[0][:-1] + ', "text": "again"}'
        return "\n".join(lines)
    body = json.dumps(rows)
    if duplicate and rows:
        body = body.replace("}", ', "text": "again"}', 1)
    if name.endswith(".json") and spec["wrapper"] == "one-key":
        return '{"data": ' + body + "}"
    if name.endswith(".json") and spec["wrapper"] == "two-lists":
        return '{"data": ' + body + ', "extra": []}'
    return body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_every_layout_choice_is_named(spec):
    base = Path(tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/tmp")))
    root = base / "data"
    try:
        (base / "outside").mkdir()
        (base / "outside" / "far.png").write_bytes(image_bytes("RGB", (40, 40), "PNG"))
        for folder in spec["folders"]:
            where = root / folder
            (where / "images").mkdir(parents=True, exist_ok=True)
            rows = []
            for i in range(spec["rows"]):
                (where / "images" / f"{i}.png").write_bytes(image_bytes("L", (40 + i, 40), "PNG"))
                rows.append({"image_path": f"images/{i}.png", "text": f"{folder} {i}"})
            if rows and spec["windows"]:
                rows[0]["image_path"] = rows[0]["image_path"].replace("/", "\\")
            if len(rows) > 1 and spec["outside"]:  # row 0 is the Windows one
                rows[-1]["image_path"] = os.path.relpath(base / "outside" / "far.png", where)
            for name in spec["files"][folder]:
                (where / name).write_text(_metadata(spec, rows, name, spec["duplicate_key"]), encoding="utf-8")
        result = _measured("metadata layouts", root)
    finally:
        shutil.rmtree(base)
    codes = {f.code: f for f in result.findings}
    notes = _table(result, "dataset.ambiguous")
    text = "\n".join(f"{n['file']} {n['row']} {n['reason']}" for n in notes)
    splits = [f for f in spec["folders"] if f != "."]
    read = [f for f in splits if not (f == "validation" and "val" in splits)] or ["."]
    if "val" in splits and "validation" in splits:
        assert "validation/ is ignored" in text, text
    if splits and "." in spec["folders"]:
        assert f"{root}" in text and "is ignored" in text, text
    for folder in read:
        if len(spec["files"][folder]) == 2:
            assert "metadata.jsonl is ignored" in text, text
    json_read = any(spec["files"][f][0] == "metadata.json" for f in read)
    if spec["rows"] and spec["wrapper"] == "two-lists" and json_read:
        assert "'extra'" in text, text
    if spec["rows"] and spec["duplicate_key"]:
        assert "'text' given more than once" in text, text
    if spec["rows"] and spec["windows"]:
        assert any(n["row"] == 0 for n in _table(result, "dataset.windows-paths"))
    if spec["rows"] > 1 and spec["outside"]:
        assert any(n["row"] == spec["rows"] - 1 for n in _table(result, "dataset.outside-folder"))
    has_train = "train" in splits or not splits
    assert ("dataset.no-train-rows" in codes) == (not has_train or spec["rows"] == 0), (spec, list(codes))
    assert "dataset.bad-rows" not in codes, codes["dataset.bad-rows"].table
