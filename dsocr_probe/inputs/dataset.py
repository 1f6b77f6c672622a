"""Read dataset splits: folders with a metadata.json of ``{"image_path": ..., "text": ...}`` rows.

Loading parses and looks at each image path's file type (never its content); every row that
cannot be used is kept as a :class:`RowProblem` with its file and index, so the dataset probe
can name it, and every choice between candidates (two metadata files, two names of one split,
a key given twice) is kept as a :class:`Note`. Nothing is dropped or decided silently. Their
reasons are catalog messages. A dataset folder that cannot be read at all raises
:class:`~dsocr_probe.findings.InputError`.

Only regular files are read (:mod:`dsocr_probe.inputs.files`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings import InputError
from ..messages import M, N_
from ..messages.catalog import is_message
from .files import file_problem, open_regular, read_bounded, special_kind

METADATA_NAMES = ("metadata.json", "metadata.jsonl")
SPLIT_NAMES = ("train", "val", "validation", "test")
SPLIT_ALIASES = {"validation": "val"}  # folder name -> the split it means
METADATA_MAX_BYTES = 1 << 30  # far above any real metadata file; a bound for one that never ends
WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")  # C:\... or \\server\share


@dataclass
class Row:
    split: str
    index: int
    image: Path
    text: str
    also_tried: Path | None = None  # the other reading of a path with Windows separators
    written: str = ""  # image_path as the metadata file has it

    def example(self) -> dict[str, Any]:
        return {"image": self.image, "text": self.text}


@dataclass
class RowProblem:
    split: str
    file: Path
    index: int | None  # None: the file as a whole
    reason: dict  # a message


@dataclass
class Note:
    """Something the loader read in a way the file does not make certain; a warning, not a blocker."""

    kind: str  # "ambiguous", "windows-path" or "outside"
    split: str
    file: Path
    index: int | None
    text: dict  # a message


@dataclass
class Split:
    name: str
    metadata: Path
    rows: list[Row] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass
class Dataset:
    root: Path
    splits: dict[str, Split]
    notes: list[Note] = field(default_factory=list)  # choices made between folders and files

    @property
    def train(self) -> Split | None:
        return self.splits.get("train")

    def all_notes(self) -> list[Note]:
        return self.notes + [n for split in self.splits.values() for n in split.notes]

    def examples(self, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.splits[split].rows if split in self.splits else []
        return [r.example() for r in rows[:limit]]


# ---------------------------------------------------------------- folders


def load(folder: Path) -> Dataset:
    """A folder with split subfolders (train/, val/) or a single split with its own metadata file."""
    folder = Path(folder)
    if not folder.is_dir():
        if os.path.lexists(folder):
            raise _not_a_folder(folder)
        raise InputError("dataset.missing", folder=str(folder))
    notes: list[Note] = []
    found: dict[str, Path] = {}
    for name in SPLIT_NAMES:
        sub = folder / name
        if not _has_metadata(sub):
            continue
        split = SPLIT_ALIASES.get(name, name)
        if split in found:
            notes.append(Note("ambiguous", split, sub, None,
                              M(N_("%(name)s/ and %(read)s/ both hold the %(split)s split; %(read)s/ is read, "
                                   "%(name)s/ is ignored"), name=name, read=found[split].name, split=split)))
            continue
        found[split] = sub
    if found and _has_metadata(folder):
        meta = _metadata_file(folder)[0]
        notes.append(Note("ambiguous", "train", meta, None,
                          M(N_("%(file)s beside split folders (%(folders)s): the split folders are read, %(file)s in "
                               "%(folder)s is ignored"), file=meta.name, folder=str(folder),
                            folders=", ".join(p.name + "/" for p in found.values()))))
    if not found and _has_metadata(folder):
        found = {"train": folder}
    if not found:
        raise InputError("dataset.no-metadata", folder=str(folder))
    data = load_splits(found, root=folder, inside=folder)
    data.notes[:0] = notes
    return data


def _not_a_folder(path: Path) -> InputError:
    if os.path.exists(path):
        what = special_kind(os.stat(path).st_mode) or M(N_("a file"))
    else:
        what = M(N_("a broken symbolic link"))  # dangling, or a loop
    if path.name in METADATA_NAMES:
        return InputError("dataset.not-a-folder", "metadata-file", folder=str(path), what=what, parent=str(path.parent))
    return InputError("dataset.not-a-folder", "other", folder=str(path), what=what)


def load_splits(split_folders: dict[str, Path], root: Path | None = None, inside: Path | None = None) -> Dataset:
    """``inside``: the folder image paths should stay in (default: the folder that holds each split)."""
    root = Path(root or next(iter(split_folders.values()), Path(".")))
    splits: dict[str, Split] = {}
    notes: list[Note] = []
    for name, sub in split_folders.items():
        meta, ignored = _metadata_file(sub)
        canonical = SPLIT_ALIASES.get(name, name)
        if meta is None:
            splits[canonical] = Split(name, sub / METADATA_NAMES[0],
                                      problems=[RowProblem(name, sub / METADATA_NAMES[0], None,
                                                           M(N_("metadata.json is missing")))])
            continue
        for other in ignored:
            notes.append(Note("ambiguous", name, other, None,
                              M(N_("%(read)s and %(other)s are both in %(folder)s: %(read)s is read, %(other)s is "
                                   "ignored"), read=meta.name, other=other.name, folder=str(sub))))
        splits[canonical] = read_split(name, meta, root=inside or sub.parent)
    return Dataset(root, splits, notes)


def _metadata_file(folder: Path) -> tuple[Path | None, list[Path]]:
    """The metadata file a folder holds (metadata.json before metadata.jsonl) and the ones not read.
    A candidate that exists but is not a regular file is still chosen, so its problem is reported."""
    present = [folder / name for name in METADATA_NAMES if os.path.lexists(folder / name)]
    return (present[0], present[1:]) if present else (None, [])


def _has_metadata(folder: Path) -> bool:
    return _metadata_file(folder)[0] is not None


# ---------------------------------------------------------------- one metadata file


class _Object(dict):
    """A JSON object that remembers the keys it was given more than once (JSON readers keep the last)."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    repeated = []
    for key, value in pairs:
        if key in obj and key not in repeated:
            repeated.append(key)
        obj[key] = value
    obj.repeated = tuple(repeated)
    return obj


def read_split(name: str, meta: Path, root: Path | None = None) -> Split:
    """The rows of one metadata file; ``root``: the dataset folder its image paths should stay in."""
    split = Split(name, meta)
    opened = open_regular(meta, METADATA_MAX_BYTES)
    if is_message(opened):
        split.problems.append(RowProblem(name, meta, None, opened))
        return split
    with opened as fh:
        raw = read_bounded(fh, METADATA_MAX_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, M(N_("not UTF-8 (invalid byte at offset %(offset)d); save it "
                                                                 "as UTF-8"), offset=exc.start)))
        return split
    try:
        records = _json_lines(split, meta, text) if meta.suffix == ".jsonl" else json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, M(N_("invalid JSON at line %(line)d column %(column)d: "
                                                                 "%(error)s"), line=exc.lineno, column=exc.colno,
                                                              error=exc.msg)))
        return split
    except RecursionError:
        split.problems.append(RowProblem(name, meta, None, M(N_("JSON nested too deeply to read; rows are flat objects"))))
        return split
    if isinstance(records, dict):  # {"data": [...]} is a common wrapper
        lists = [k for k, v in records.items() if isinstance(v, list)]
        if len(lists) > 1:
            split.notes.append(Note("ambiguous", name, meta, None,
                                    M(N_("the top-level object holds %(count)d lists (%(lists)s): the rows are read "
                                         "from %(read)s, the others are ignored"), count=len(lists),
                                      lists=", ".join(map(repr, lists)), read=repr(lists[0]))))
        records = records[lists[0]] if lists else records
    if not isinstance(records, list):
        if isinstance(records, dict):
            reason = M(N_("expected a list of rows, got an object without a list of rows"))
        else:
            reason = M(N_("expected a list of rows, got a %(type)s"), type=type(records).__name__)
        split.problems.append(RowProblem(name, meta, None, reason))
        return split
    base = Path(root) if root is not None else meta.parent
    for i, rec in enumerate(records):
        if rec is _BROKEN_LINE:
            continue  # already a problem with its line number
        problem = _row_problem(rec)
        if problem:
            split.problems.append(RowProblem(name, meta, i, problem))
            continue
        if getattr(rec, "repeated", ()):
            split.notes.append(Note("ambiguous", name, meta, i, M(N_("key(s) %(keys)s given more than once: the last "
                                                                     "value is read, as every JSON reader does"),
                                                                  keys=", ".join(map(repr, rec.repeated)))))
        row = _row(split, meta, i, rec, base)
        if row is not None:
            split.rows.append(row)
    return split


_BROKEN_LINE = object()


def _json_lines(split: Split, meta: Path, text: str) -> list[Any]:
    """One row per non-blank line; a broken line is a problem of its own, named by its line number."""
    records: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line, object_pairs_hook=_object))
        except json.JSONDecodeError as exc:
            split.problems.append(RowProblem(split.name, meta, len(records),
                                             M(N_("invalid JSON on line %(line)d column %(column)d: %(error)s"),
                                               line=lineno, column=exc.colno, error=exc.msg)))
            records.append(_BROKEN_LINE)
        except RecursionError:
            split.problems.append(RowProblem(split.name, meta, len(records),
                                             M(N_("line %(line)d is nested too deeply to read"), line=lineno)))
            records.append(_BROKEN_LINE)
    return records


def _row(split: Split, meta: Path, index: int, rec: dict, root: Path) -> Row | None:
    written = rec["image_path"]
    image, also_tried = _image_path(split, meta, index, written)
    problem = file_problem(image)
    if problem:
        split.problems.append(RowProblem(split.name, image, index, problem))
        return None
    if not Path(written).is_absolute() and ".." in Path(written.replace("\\", "/")).parts and _outside(image, root):
        split.notes.append(Note("outside", split.name, image, index,
                                M(N_("%(written)s leaves the dataset folder %(folder)s through '..'"),
                                  written=repr(written), folder=str(root))))
    return Row(split.name, index, image, rec["text"], also_tried, written)


def _image_path(split: Split, meta: Path, index: int, written: str) -> tuple[Path, Path | None]:
    """Where a row's image is, relative to its metadata file. A path written with Windows separators
    is read with / on systems where \\ is an ordinary character, unless a file has that very name."""
    def place(text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else meta.parent / path  # relative to the metadata file, wherever training runs

    literal = place(written)
    if os.sep == "\\" or "\\" not in written:
        return literal, None
    if WINDOWS_ABSOLUTE.match(written):
        return literal, None  # cannot be read here at all; the probe says why
    normalised = place(written.replace("\\", "/"))
    if os.path.lexists(literal):
        if os.path.lexists(normalised):
            split.notes.append(Note("ambiguous", split.name, meta, index,
                                    M(N_("%(written)s names both %(literal)s and %(normalised)s: the file named as "
                                         "written is read"), written=repr(written), literal=str(literal),
                                      normalised=str(normalised))))
        return literal, None
    if os.path.lexists(normalised):
        split.notes.append(Note("windows-path", split.name, normalised, index,
                                M(N_("%(written)s is written with Windows separators (\\); read as %(normalised)s"),
                                  written=repr(written), normalised=str(normalised))))
    return normalised, literal


def _outside(image: Path, root: Path) -> bool:
    inside = os.path.normpath(os.path.abspath(root))
    return os.path.commonpath([inside, os.path.normpath(os.path.abspath(image))]) != inside


def _row_problem(rec: Any) -> dict | None:
    if not isinstance(rec, dict):
        return M(N_("row is a %(type)s, not an object with image_path and text"), type=type(rec).__name__)
    missing = [k for k in ("image_path", "text") if k not in rec]
    if missing and rec:
        return M(N_("missing key(s) %(missing)s (has: %(keys)s)"), missing=", ".join(missing),
                 keys=", ".join(map(str, rec)))
    if missing:
        return M(N_("missing key(s) %(missing)s (has: nothing)"), missing=", ".join(missing))
    if not isinstance(rec["image_path"], str) or not rec["image_path"].strip():
        return M(N_("image_path must be a non-empty string, got %(value)s"), value=repr(rec["image_path"]))
    if "\x00" in rec["image_path"]:
        return M(N_("image_path contains a NUL character: %(value)s"), value=repr(rec["image_path"]))
    if not isinstance(rec["text"], str):
        return M(N_("text must be a string, got %(type)s"), type=type(rec["text"]).__name__)
    return None
