"""Odd files and layouts in a dataset: special files are never read, every choice is named, messages
say what really happened."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from badfiles import image_bytes
from probing import codes, context, linux_cpu, probe

from dsocr_probe import messages
from dsocr_probe.inputs import dataset as dataset_mod
from dsocr_probe.inputs import files
from dsocr_probe.findings import InputError
from dsocr_probe.probes.context import finding_of

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX special files")


def _write(split: Path, rows: list, name: str = "metadata.json") -> None:
    split.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jsonl"):
        (split / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    else:
        (split / name).write_text(json.dumps(rows), encoding="utf-8")


def _page(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes("RGB", (64, 64), "PNG"))
    return path


def _run(root: Path, bound_s: float = 20.0):
    start = time.monotonic()
    result = probe("dataset", context(linux_cpu(), data=root))
    assert time.monotonic() - start < bound_s
    assert "error" not in {f.status.value for f in result.findings}, [f.title for f in result.findings]
    return result


def _table(result, code: str) -> list[dict]:
    """The finding's table in English (its reasons are catalog messages)."""
    return next((f.to_json()["table"] for f in result.findings if f.code == code), [])


def _reasons(result) -> dict:
    return {r["row"]: r["reason"] for r in _table(result, "dataset.bad-rows")}


# ---------------------------------------------------------------- special files


@posix_only
def test_special_files_as_images_are_refused_without_reading_them(tmp_path):
    train = tmp_path / "train"
    images = train / "images"
    images.mkdir(parents=True)
    _page(images / "good.png")
    (images / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(images / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(images / "sock.png"))
    (images / "folder.png").mkdir()
    (images / "dangling.png").symlink_to(images / "gone.png")
    (images / "loop.png").symlink_to(images / "loop.png")
    names = ["good", "zero", "pipe", "sock", "folder", "dangling", "loop"]
    try:
        _write(train, [{"image_path": f"images/{n}.png", "text": n} for n in names])
        data = dataset_mod.load(tmp_path)
        result = _run(tmp_path)
    finally:
        sock.close()
    assert [r.index for r in data.train.rows] == [0]  # the batch and step probes never see the others
    reasons = _reasons(result)
    assert "character device (through the symbolic link" in reasons[1] and "zero.png" in reasons[1]
    assert "named pipe" in reasons[2]
    assert "socket" in reasons[3]
    assert "a folder" in reasons[4]
    assert "symbolic link to" in reasons[5] and "gone.png" in reasons[5] and "does not exist" in reasons[5]
    assert "symbolic link loop" in reasons[6]
    assert all("only regular files are read" in reasons[i] for i in (1, 2, 3, 4))


@posix_only
def test_a_special_metadata_file_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    os.mkfifo(tmp_path / "train" / "metadata.json")
    result = _run(tmp_path)
    (row,) = _table(result, "dataset.bad-rows")
    assert "named pipe" in row["reason"] and row["file"].endswith("metadata.json")
    assert codes(result)["dataset.no-train-rows"] == "fail"


def test_a_file_swapped_for_a_pipe_after_the_check_is_still_refused(tmp_path, monkeypatch):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    monkeypatch.setattr(files, "file_problem", lambda path: None)  # as if it was a regular file a moment ago
    start = time.monotonic()
    assert "named pipe" in messages.word(files.open_regular(pipe, 1 << 20), "en")
    assert time.monotonic() - start < 5


def test_files_larger_than_any_decodable_image_are_not_read(tmp_path, monkeypatch):
    from PIL import Image

    from dsocr_probe.inputs import images

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    limit = images.max_image_bytes()
    big = tmp_path / "train" / "images" / "big.png"
    big.parent.mkdir(parents=True)
    big.write_bytes(image_bytes("RGB", (8, 8), "PNG") + b"\0" * (limit + 1))
    _write(tmp_path / "train", [{"image_path": "images/big.png", "text": "big"}])
    reason = _reasons(_run(tmp_path))[0]
    assert f"more than the {limit} bytes" in reason and "MAX_IMAGE_PIXELS = 1000" in reason


def test_the_dataset_probe_runs_under_the_timeout(tmp_path, monkeypatch):
    release = threading.Event()

    def hangs(folder):
        release.wait(30)
        raise AssertionError("released")

    monkeypatch.setattr(dataset_mod, "load", hangs)
    try:
        result = probe("dataset", context(linux_cpu(), data=tmp_path, timeout_s=0.3))
    finally:
        release.set()
    assert codes(result) == {"dataset.timeout": "fail"}


# ---------------------------------------------------------------- empty and ambiguous data


def test_an_empty_train_split_is_no_go(tmp_path):
    _write(tmp_path / "train", [])
    _page(tmp_path / "val" / "images" / "a.png")
    _write(tmp_path / "val", [{"image_path": "images/a.png", "text": "a"}])
    result = _run(tmp_path)
    assert codes(result)["dataset.no-train-rows"] == "fail"
    assert result.status.blocks


def test_only_a_validation_split_is_no_go(tmp_path):
    _page(tmp_path / "val" / "images" / "a.png")
    _write(tmp_path / "val", [{"image_path": "images/a.png", "text": "a"}])
    result = _run(tmp_path)
    f = next(f for f in result.findings if f.code == "dataset.no-train-rows")
    assert "No train split" in f.title and f.params["splits"] == "val"


def test_several_lists_in_a_metadata_object_name_the_ignored_ones(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    (tmp_path / "train" / "metadata.json").write_text(json.dumps(
        {"data": [{"image_path": "images/a.png", "text": "a"}], "extra": [{"image_path": "x", "text": "y"}]}))
    result = _run(tmp_path)
    (note,) = _table(result, "dataset.ambiguous")
    assert "'data'" in note["reason"] and "'extra'" in note["reason"] and "ignored" in note["reason"]
    assert codes(result)["dataset.ambiguous"] == "warn" and "dataset.bad-rows" not in codes(result)


def test_val_and_validation_folders_name_the_ignored_one(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    _write(tmp_path / "train", [{"image_path": "images/a.png", "text": "a"}])
    for name, text in (("val", "from val"), ("validation", "from validation")):
        _page(tmp_path / name / "images" / "v.png")
        _write(tmp_path / name, [{"image_path": "images/v.png", "text": text}])
    data = dataset_mod.load(tmp_path)
    assert [r.text for r in data.splits["val"].rows] == ["from val"]
    (note,) = _table(_run(tmp_path), "dataset.ambiguous")
    assert note["file"].endswith("validation") and "validation/ is ignored" in note["reason"]


def test_two_metadata_files_in_one_folder_name_the_ignored_one(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    _write(tmp_path / "train", [{"image_path": "images/a.png", "text": "json"}])
    _write(tmp_path / "train", [{"image_path": "images/a.png", "text": "jsonl"}], name="metadata.jsonl")
    result = _run(tmp_path)
    (note,) = _table(result, "dataset.ambiguous")
    assert note["file"].endswith("metadata.jsonl") and "metadata.jsonl is ignored" in note["reason"]


def test_metadata_beside_split_folders_is_named(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    _write(tmp_path / "train", [{"image_path": "images/a.png", "text": "a"}])
    _write(tmp_path, [{"image_path": "train/images/a.png", "text": "root"}])
    (note,) = _table(_run(tmp_path), "dataset.ambiguous")
    assert "metadata.json" in note["file"] and "is ignored" in note["reason"]


def test_a_key_given_twice_in_a_row_is_named(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    (tmp_path / "train" / "metadata.json").write_text(
        '[{"image_path": "images/a.png", "text": "first", "text": "second"}]', encoding="utf-8")
    data = dataset_mod.load(tmp_path)
    assert data.train.rows[0].text == "second"  # as json.load reads it
    (note,) = _table(_run(tmp_path), "dataset.ambiguous")
    assert note["row"] == 0 and "'text'" in note["reason"] and "last value" in note["reason"]


# ---------------------------------------------------------------- messages


def test_data_option_naming_a_file_says_so(tmp_path):
    _write(tmp_path, [])
    with pytest.raises(InputError) as error:
        dataset_mod.load(tmp_path / "metadata.json")
    f = finding_of(error.value)
    assert f.code == "dataset.not-a-folder" and "is a file, not a folder" in f.title and "does not exist" not in f.title
    assert f"--dsocr-data {tmp_path}" in f.fix and str(error.value) == f.title
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(InputError) as error:
        dataset_mod.load(tmp_path / "loop")
    assert "is a broken symbolic link, not a folder" in str(error.value)


def test_an_svg_is_named_without_a_buffer_address(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "images" / "page.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    (tmp_path / "train" / "images" / "page.bin").write_bytes(b"\x01\x02 not an image at all")
    _write(tmp_path / "train", [{"image_path": "images/page.svg", "text": "a"}, {"image_path": "images/page.bin", "text": "b"}])
    reasons = _reasons(_run(tmp_path))
    assert "page.svg is an SVG" in reasons[0] and "PNG" in reasons[0]
    assert "page.bin is not in a format PIL can read" in reasons[1] and "JPEG" in reasons[1]
    assert not any("BytesIO" in r or "0x" in r for r in reasons.values())


def test_a_broken_jsonl_line_is_named_by_its_number(tmp_path):
    _page(tmp_path / "train" / "images" / "a.png")
    good = json.dumps({"image_path": "images/a.png", "text": "a"})
    (tmp_path / "train" / "metadata.jsonl").write_text("\n".join([good, good, "", '{"image_path": oops', good]) + "\n")
    data = dataset_mod.load(tmp_path)
    (problem,) = data.train.problems
    assert "line 4" in messages.word(problem.reason, "en") and problem.index == 2
    assert len(data.train.rows) == 3  # the other lines are still read


def test_a_path_leaving_the_dataset_folder_is_named(tmp_path):
    root = tmp_path / "data"
    _page(tmp_path / "shared" / "a.png")
    _page(root / "images" / "b.png")
    _write(root / "train", [{"image_path": "../../shared/a.png", "text": "a"},
                            {"image_path": "../images/b.png", "text": "b"}])  # stays inside data/
    result = _run(root)
    (note,) = _table(result, "dataset.outside-folder")
    assert note["row"] == 0 and "'../../shared/a.png'" in note["reason"]
    assert "dataset.bad-rows" not in codes(result)


# ---------------------------------------------------------------- Windows paths


@pytest.mark.skipif(os.sep == "\\", reason="backslash is the separator there")
def test_windows_separators_are_read_with_a_warning(tmp_path):
    _page(tmp_path / "train" / "images" / "00001.png")
    _write(tmp_path / "train", [{"image_path": "images\\00001.png", "text": "a"},
                                {"image_path": "images\\00002.png", "text": "b"},
                                {"image_path": "C:\\data\\00003.png", "text": "c"}])
    data = dataset_mod.load(tmp_path)
    assert data.train.rows[0].image == tmp_path / "train" / "images" / "00001.png"
    result = _run(tmp_path)
    (note,) = _table(result, "dataset.windows-paths")
    assert note["row"] == 0 and "read as" in note["reason"]
    reasons = _reasons(result)
    assert set(reasons) == {1, 2}
    assert "images/00002.png" in reasons[1] and "images\\00002.png" in reasons[1] and "neither" in reasons[1]
    assert "Windows absolute path" in reasons[2]


@pytest.mark.skipif(os.sep == "\\", reason="backslash is the separator there")
def test_a_file_really_named_with_a_backslash_is_read_as_written(tmp_path):
    _page(tmp_path / "train" / "images\\00001.png")
    _write(tmp_path / "train", [{"image_path": "images\\00001.png", "text": "a"}])
    result = _run(tmp_path)
    assert "dataset.windows-paths" not in codes(result) and "dataset.bad-rows" not in codes(result)
