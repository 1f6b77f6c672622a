"""Property-based: whatever a metadata file and its images hold, the dataset probe names every
unusable row (file, index, reason), passes every usable one, and never crashes."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badfiles import MODES, bomb_png, image_bytes, truncated
from probing import context, linux_cpu, probe

GOOD = "good"
# kind -> the words the probe's reason must contain
BAD = {
    "zero-byte": "0 bytes",
    "truncated": "not a decodable image",
    "not-image": "not a decodable image",
    "bomb": "decompression bomb",
    "missing-file": "does not exist",
    "missing-key": "missing key(s)",
    "text-not-string": "text must be a string",
    "path-not-string": "image_path must be a non-empty string",
    "row-not-object": "not an object",
    "empty-text": "empty target text",
    "nul-path": "NUL character",
}

names = st.sampled_from(["page", "скан страницы", "with space", "日本語", "a"]).map(lambda s: s + ".png")
sizes = st.sampled_from([(1, 1), (1, 400), (400, 1), (1, 4000), (4000, 1), (16, 16), (37, 23)])
texts = st.text(min_size=1, max_size=30).filter(lambda t: t.strip())


@st.composite
def rows(draw):
    kind = draw(st.sampled_from([GOOD, GOOD, GOOD, *BAD]))
    return {
        "kind": kind,
        "name": draw(names),
        "mode": draw(st.sampled_from(MODES)),
        "size": draw(sizes),
        "fmt": draw(st.sampled_from(["PNG", "JPEG"])),
        "exif": draw(st.sampled_from([None, 1, 3, 6, 8])),
        "text": draw(texts),
        "blank": draw(st.sampled_from(["", "   ", "\n\t"])),
        "absolute": draw(st.booleans()),
    }


def _materialise(split: Path, specs: list[dict]) -> list:
    (split / "images").mkdir(parents=True)
    records = []
    for i, spec in enumerate(specs):
        kind = spec["kind"]
        rel = f"images/{i}-{spec['name']}"
        path = split / rel
        ref = str(path) if spec["absolute"] else rel
        if kind == "row-not-object":
            records.append([ref, spec["text"]])
            continue
        if kind == "missing-key":
            records.append({"image_path": ref})
            continue
        if kind == "text-not-string":
            records.append({"image_path": ref, "text": 42})
            continue
        if kind == "nul-path":
            records.append({"image_path": ref + "\x00", "text": spec["text"]})
            continue
        if kind == "path-not-string":
            records.append({"image_path": None, "text": spec["text"]})
            continue
        data = {
            "zero-byte": b"",
            "truncated": truncated(image_bytes("RGB", (64, 64), "PNG")),
            "not-image": "это не картинка".encode(),
            "bomb": bomb_png(),
        }.get(kind)
        if data is None and kind != "missing-file":
            data = image_bytes(spec["mode"], spec["size"], spec["fmt"], spec["exif"])
        if data is not None:
            path.write_bytes(data)
        records.append({"image_path": ref, "text": spec["blank"] if kind == "empty-text" else spec["text"]})
    (split / "metadata.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return records


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), min_size=1, max_size=5))
def test_every_row_is_accounted_for(specs):
    root = Path(tempfile.mkdtemp())
    try:
        _materialise(root / "train", specs)
        result = probe("dataset", context(linux_cpu(), data=root))
        statuses = {f.status.value for f in result.findings}
        assert "error" not in statuses, [f.title for f in result.findings]
        bad = next((f.to_json()["table"] for f in result.findings if f.code == "dataset.bad-rows"), [])
        by_row: dict[int, list[str]] = {}
        for row in bad:
            assert row["file"] and row["split"] == "train"
            by_row.setdefault(row["row"], []).append(row["reason"])
        for i, spec in enumerate(specs):
            if spec["kind"] == GOOD:
                assert i not in by_row, (spec, by_row.get(i))
            else:
                assert any(BAD[spec["kind"]] in r for r in by_row.get(i, [])), (spec, by_row.get(i))
    finally:
        shutil.rmtree(root)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_metadata_bytes_give_a_finding_not_a_crash(raw):
    root = Path(tempfile.mkdtemp())
    try:
        (root / "train").mkdir()
        (root / "train" / "metadata.json").write_bytes(raw)
        result = probe("dataset", context(linux_cpu(), data=root))
        assert "error" not in {f.status.value for f in result.findings}
    finally:
        shutil.rmtree(root)


def test_non_utf8_metadata_names_the_byte(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metadata.json").write_bytes('[{"image_path": "a.png", "text": "привет"}]'.encode("cp1251"))
    result = probe("dataset", context(linux_cpu(), data=tmp_path))
    (row,) = next(f for f in result.findings if f.code == "dataset.bad-rows").to_json()["table"]
    assert "not UTF-8" in row["reason"] and "offset" in row["reason"]
