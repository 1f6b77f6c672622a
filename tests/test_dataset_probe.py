import json

from pages import write_pages
from probing import codes, context, linux_cpu, probe


def _bad_rows(result):
    """The bad rows in English (their reasons are catalog messages)."""
    return next(f for f in result.findings if f.code == "dataset.bad-rows").to_json()["table"]


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


def test_deeply_nested_json_is_a_finding_not_a_crash(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metadata.json").write_text("[" * 100_000 + "]" * 100_000)
    table = _bad_rows(probe("dataset", context(linux_cpu(), data=tmp_path)))
    assert "nested too deeply" in table[0]["reason"]


def test_a_nul_byte_in_a_path_names_the_row(tmp_path):
    split = write_pages(tmp_path / "train", ["one"])
    rows = json.loads((split / "metadata.json").read_text())
    rows.append({"image_path": "images/a\x00b.png", "text": "x"})
    (split / "metadata.json").write_text(json.dumps(rows))
    by_row = {r["row"]: r["reason"] for r in _bad_rows(probe("dataset", context(linux_cpu(), data=tmp_path)))}
    assert list(by_row) == [1] and "NUL character" in by_row[1]


def test_every_bad_row_reaches_the_json_report_and_the_markdown_says_how_many_are_not_shown(tmp_path):
    from dsocr_probe.report import render as report
    from dsocr_probe.probes.context import Options
    from dsocr_probe.findings import RunRecord

    split = write_pages(tmp_path / "data" / "train", ["one"])
    rows = json.loads((split / "metadata.json").read_text())
    rows += [{"image_path": f"images/missing-{i}.png", "text": "x"} for i in range(60)]
    (split / "metadata.json").write_text(json.dumps(rows))
    result = probe("dataset", context(linux_cpu(), data=tmp_path / "data"))
    assert len(_bad_rows(result)) == 60
    record = RunRecord(target={"name": "m"}, environment={"python": "3.11", "os": "Linux", "versions": {}}, results=[result])
    md, js = report.write(record, Options(report_dir=tmp_path / "reports"))
    listed = json.loads(js.read_text(encoding="utf-8"))["probes"][0]["findings"]
    assert len(next(f for f in listed if f["code"] == "dataset.bad-rows")["table"]) == 60
    text = md.read_text(encoding="utf-8")
    assert "missing-49.png" in text and "missing-50.png" not in text
    assert "... and 10 more rows, all in the JSON report" in text


def test_the_probe_and_the_builders_refuse_the_same_pixel_counts(tmp_path):
    """Between PIL's limit and twice that PIL only warns; both sides treat such a page as a bomb."""
    import pytest
    from badfiles import bomb_png

    from dsocr_probe.collators.base import BadExample, open_rgb

    split = write_pages(tmp_path / "train", ["one"])
    (split / "images" / "big.png").write_bytes(bomb_png(10_000, 10_000))  # 1e8 px: over the limit, under twice it
    rows = json.loads((split / "metadata.json").read_text())
    rows.append({"image_path": "images/big.png", "text": "x"})
    (split / "metadata.json").write_text(json.dumps(rows))
    by_row = {r["row"]: r["reason"] for r in _bad_rows(probe("dataset", context(linux_cpu(), data=tmp_path)))}
    assert "decompression bomb" in by_row[1]
    with pytest.raises(BadExample, match="DecompressionBomb") as err:
        open_rgb(split / "images" / "big.png", 7)
    assert err.value.index == 7 and err.value.path.endswith("big.png")


def _v1_project(tmp_path, v1_model, size, mode, max_length, exif=None):
    import yaml
    from PIL import Image

    split = write_pages(tmp_path / "data" / "train", ["a short line", "another line"], size=size)
    if exif:  # the stored pixels are turned; the EXIF tag says how to turn them upright
        page = Image.open(split / "images" / "00001.png")
        turned = page.transpose(Image.Transpose.ROTATE_90)
        tag = Image.Exif()
        tag[0x0112] = exif
        turned.save(split / "images" / "00001.png", exif=tag)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"train_dir": str(tmp_path / "data" / "train"), "mode": mode,
                                            "max_length": max_length}}))
    return context(linux_cpu(), model=str(v1_model), train_config=cfg)


def _counted_before_target(finding) -> list[int]:
    import re

    return [int(re.search(r"\((\d+) for bos, prompt and image slots", row["reason"]).group(1))
            for row in finding.to_json()["table"]]


def test_sample_length_counts_the_image_slots_not_only_the_target(tmp_path, v1_model):
    """Gundam on an A4 scan: 900-odd image slots leave little of max_length for the prompt and target."""
    from dsocr_probe.collators.deepseek_ocr_v1_layout import image_token_count

    slots = image_token_count(1240, 1754, "gundam")
    result = probe("dataset", _v1_project(tmp_path, v1_model, (1240, 1754), "gundam", slots + 3))
    f = next(f for f in result.findings if f.code == "dataset.too-long")
    assert f.status.value == "fail" and len(f.table) == 2 and "mode with fewer image slots" in f.fix
    assert all(slots < n < slots + 20 for n in _counted_before_target(f))  # slots + bos + prompt
    assert f.to_json()["evidence"]["counted before the target"].endswith("(DeepseekOCRCollator)")

    # The same pages in tiny mode (64 slots) fit.
    result = probe("dataset", _v1_project(tmp_path / "tiny", v1_model, (1240, 1754), "tiny", slots + 3))
    assert codes(result)["dataset.lengths"] == "pass"


def test_sample_length_uses_the_upright_page(tmp_path, v1_model):
    """An EXIF-rotated scan is counted as the builder sees it, turned upright first."""
    from dsocr_probe.model import loading
    from dsocr_probe.collators.base import open_rgb

    ctx = _v1_project(tmp_path, v1_model, (1754, 700), "gundam", 1, exif=6)
    assert open_rgb(tmp_path / "data" / "train" / "images" / "00001.png", 0).size == (1754, 700)  # stored 700x1754
    builder = loading.builder_for(ctx)
    assert builder.tokens_before_target(1754, 700) != builder.tokens_before_target(700, 1754)
    f = next(f for f in probe("dataset", ctx).findings if f.code == "dataset.too-long")
    assert _counted_before_target(f) == [builder.tokens_before_target(1754, 700)] * 2


def test_a_model_that_cannot_be_found_is_not_reported_again_as_a_dataset_problem():
    result = probe("dataset", context(linux_cpu(), model="dsocr-probe-tests/not-in-any-cache"))
    assert [(f.code, f.status.value) for f in result.findings] == [("input.no-dataset", "skip")]
