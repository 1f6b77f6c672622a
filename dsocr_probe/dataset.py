"""Read dataset splits: folders with a metadata.json of ``{"image_path": ..., "text": ...}`` rows.

Loading only parses; every row that cannot be used is kept as a :class:`RowProblem` with
its file and index, so the dataset probe can name it. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .findings import ProbeStop, fail

METADATA_NAMES = ("metadata.json", "metadata.jsonl")
SPLIT_NAMES = ("train", "val", "validation", "test")


@dataclass
class Row:
    split: str
    index: int
    image: Path
    text: str

    def example(self) -> dict[str, Any]:
        return {"image": self.image, "text": self.text}


@dataclass
class RowProblem:
    split: str
    file: Path
    index: int | None  # None: the file as a whole
    reason: str


@dataclass
class Split:
    name: str
    metadata: Path
    rows: list[Row] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


@dataclass
class Dataset:
    root: Path
    splits: dict[str, Split]

    @property
    def train(self) -> Split | None:
        return self.splits.get("train")

    def examples(self, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.splits[split].rows if split in self.splits else []
        return [r.example() for r in rows[:limit]]


def load(folder: Path) -> Dataset:
    """A folder with split subfolders (train/, val/) or a single split with its own metadata file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeStop(
            fail(
                "dataset.missing",
                f"Dataset folder {folder} does not exist",
                fix="Pass the folder that holds train/ and val/ (each with metadata.json) to --dsocr-data.",
                params={"folder": str(folder)},
            )
        )
    found = {name: folder / name for name in SPLIT_NAMES if _metadata_file(folder / name)}
    if not found and _metadata_file(folder):
        found = {"train": folder}
    if not found:
        raise ProbeStop(
            fail(
                "dataset.no-metadata",
                f"No metadata.json in {folder} or its train/ and val/ folders",
                fix='Write train/metadata.json as a list of {"image_path": "images/00001.jpg", "text": "..."} rows.',
                params={"folder": str(folder)},
            )
        )
    return load_splits(found, root=folder)


def load_splits(split_folders: dict[str, Path], root: Path | None = None) -> Dataset:
    splits = {}
    for name, sub in split_folders.items():
        meta = _metadata_file(sub)
        if meta is None:
            splits[name] = Split(name, sub / METADATA_NAMES[0], problems=[RowProblem(name, sub / METADATA_NAMES[0], None, "metadata.json is missing")])
            continue
        splits["val" if name == "validation" else name] = read_split(name, meta)
    return Dataset(Path(root or next(iter(split_folders.values()), Path("."))), splits)


def _metadata_file(folder: Path) -> Path | None:
    for name in METADATA_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_split(name: str, meta: Path) -> Split:
    split = Split(name, meta)
    try:
        text = meta.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, f"not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8"))
        return split
    try:
        if meta.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"))
        return split
    except RecursionError:
        split.problems.append(RowProblem(name, meta, None, "JSON nested too deeply to read; rows are flat objects"))
        return split
    if isinstance(records, dict):  # {"data": [...]} is a common wrapper
        records = next((v for v in records.values() if isinstance(v, list)), records)
    if not isinstance(records, list):
        split.problems.append(RowProblem(name, meta, None, f"expected a list of rows, got a {type(records).__name__}"))
        return split
    for i, rec in enumerate(records):
        problem = _row_problem(rec)
        if problem:
            split.problems.append(RowProblem(name, meta, i, problem))
            continue
        image = Path(rec["image_path"]).expanduser()
        if not image.is_absolute():
            image = meta.parent / image  # relative to the metadata file, wherever training is launched
        split.rows.append(Row(name, i, image, rec["text"]))
    return split


def _row_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"row is a {type(rec).__name__}, not an object with image_path and text"
    missing = [k for k in ("image_path", "text") if k not in rec]
    if missing:
        return f"missing key(s) {', '.join(missing)} (has: {', '.join(map(str, rec)) or 'nothing'})"
    if not isinstance(rec["image_path"], str) or not rec["image_path"].strip():
        return f"image_path must be a non-empty string, got {rec['image_path']!r}"
    if "\x00" in rec["image_path"]:
        return f"image_path contains a NUL character: {rec['image_path']!r}"
    if not isinstance(rec["text"], str):
        return f"text must be a string, got {type(rec['text']).__name__}"
    return None
