import json

from pages import write_pages
from probing import codes, context, linux_cpu, probe


def _bad_rows(result):
    return next(f for f in result.findings if f.code == "dataset.bad-rows").table


def test_clean_dataset_passes(tmp_path):
    write_pages(tmp_path / "train", ["one", "two"])
    write_pages(tmp_path / "val", ["three"])
    result = probe("dataset", context(linux_cpu(), data=tmp_path))
    assert codes(result)["dataset.splits"] == "pass"
    assert "dataset.bad-rows" not in codes(result)


def test_each_bad_row_is_named_with_file_index_and_reason(tmp_path):
    split = write_pages(tmp_path / "train", ["one", "two"])
    (split / "images" / "empty.png").write_bytes(b"")
    (split / "images" / "text.png").write_text("not an image")
    rows = json.loads((split / "metadata.json").read_text())
    rows += [
        {"image_path": "images/missing.png", "text": "x"},
        {"image_path": "images/empty.png", "text": "x"},
        {"image_path": "images/text.png", "text": "x"},
        {"image_path": "images/00001.png"},
        {"image_path": "images/00002.png", "text": "   "},
    ]
    (split / "metadata.json").write_text(json.dumps(rows))
    table = _bad_rows(probe("dataset", context(linux_cpu(), data=tmp_path)))
    by_row = {r["row"]: r["reason"] for r in table}
    assert "does not exist" in by_row[2]
    assert "0 bytes" in by_row[3]
    assert "not a decodable image" in by_row[4]
    assert "missing key(s) text" in by_row[5]
    assert "empty target" in by_row[6]
    assert all(r["file"] for r in table)


def test_invalid_json_names_line(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metadata.json").write_text('[{"image_path": "a.png",]')
    table = _bad_rows(probe("dataset", context(linux_cpu(), data=tmp_path)))
    assert "invalid JSON at line 1" in table[0]["reason"]


def test_split_overlap_is_flagged(tmp_path):
    write_pages(tmp_path / "train", ["same page", "other"])
    write_pages(tmp_path / "val", ["same page"])
    assert codes(probe("dataset", context(linux_cpu(), data=tmp_path)))["dataset.split-overlap"] == "warn"


def test_no_dataset_skips_with_the_option_to_use(tmp_path):
    result = probe("dataset", context(linux_cpu(), data=tmp_path / "nope"))
    assert result.findings[0].code == "dataset.missing"
