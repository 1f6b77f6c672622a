"""Read dataset splits: folders with a metadata.json of ``{"image_path": ..., "text": ...}`` rows.

Loading parses and looks at each image path's file type (never its content); every row that
cannot be used is kept as a :class:`RowProblem` with its file and index, so the dataset probe
can name it, and every choice between candidates (two metadata files, two names of one split,
a key given twice) is kept as a :class:`Note`. Nothing is dropped or decided silently.

Only regular files are read: a device, a named pipe or a socket can block forever or never end.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..findings import ProbeStop, fail

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
    reason: str


@dataclass
class Note:
    """Something the loader read in a way the file does not make certain; a warning, not a blocker."""

    kind: str  # "ambiguous", "windows-path" or "outside"
    split: str
    file: Path
    index: int | None
    text: str


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


# ---------------------------------------------------------------- reading files safely


def special_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file, from its type alone; None when it can, or when it
    simply does not exist (the caller says that in its own words)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop: the link points back at itself"
        return f"cannot read the file: {exc.strerror or exc}"
    except ValueError as exc:  # a path the OS cannot name (a NUL byte)
        return f"cannot read the file: {exc}"
    kind = special_kind(st.st_mode)
    if kind is None:
        return None
    via = f" (through the symbolic link {path})" if os.path.islink(path) else ""
    return f"{kind}{via}, not a regular file: only regular files are read"


NOT_FOUND = "file does not exist"


def open_regular(path: Path, limit: int | None, limit_reason: str = "") -> BinaryIO | str:
    """``path`` opened for reading, or why it is not read: missing, not a regular file, or larger than
    ``limit`` bytes (``limit_reason`` says where that limit comes from). The type is checked again on the open file, so a file swapped for a pipe between
    the check and the open is still refused, and the open itself never waits for a writer."""
    problem = file_problem(path)
    if problem:
        return problem
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return NOT_FOUND
    except (OSError, ValueError) as exc:
        return f"cannot read the file: {getattr(exc, 'strerror', None) or exc}"
    st = os.fstat(fd)
    kind = special_kind(st.st_mode)
    if kind is not None or (limit is not None and st.st_size > limit):
        os.close(fd)
        if kind is not None:
            return f"{kind}, not a regular file: only regular files are read"
        return f"{st.st_size} bytes, more than the {limit} bytes read at most{limit_reason}"
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bounded(fh: BinaryIO, limit: int | None) -> bytes:
    """The file's bytes, but no more than ``limit`` + 1: a file that grows while it is read still ends.
    Read in pieces the size the file says it has (``read(n)`` sets aside all ``n`` bytes at once)."""
    chunks: list[bytes] = []
    size = 0
    want = os.fstat(fh.fileno()).st_size + 1
    while limit is None or size <= limit:
        chunk = fh.read(want if limit is None else min(want, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        want = 1 << 20
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # a file read in one piece is not copied


# ---------------------------------------------------------------- folders


def load(folder: Path) -> Dataset:
    """A folder with split subfolders (train/, val/) or a single split with its own metadata file."""
    folder = Path(folder)
    if not folder.is_dir():
        if os.path.lexists(folder):
            raise ProbeStop(_not_a_folder(folder))
        raise ProbeStop(
            fail(
                "dataset.missing",
                f"Dataset folder {folder} does not exist",
                fix="Pass the folder that holds train/ and val/ (each with metadata.json) to --dsocr-data.",
                params={"folder": str(folder)},
            )
        )
    notes: list[Note] = []
    found: dict[str, Path] = {}
    for name in SPLIT_NAMES:
        sub = folder / name
        if not _has_metadata(sub):
            continue
        split = SPLIT_ALIASES.get(name, name)
        if split in found:
            notes.append(Note("ambiguous", split, sub, None,
                              f"{name}/ and {found[split].name}/ both hold the {split} split; "
                              f"{found[split].name}/ is read, {name}/ is ignored"))
            continue
        found[split] = sub
    if found and _has_metadata(folder):
        meta = _metadata_file(folder)[0]
        notes.append(Note("ambiguous", "train", meta, None,
                          f"{meta.name} beside split folders ({', '.join(p.name + '/' for p in found.values())}): "
                          f"the split folders are read, {meta.name} in {folder} is ignored"))
    if not found and _has_metadata(folder):
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
    data = load_splits(found, root=folder, inside=folder)
    data.notes[:0] = notes
    return data


def _not_a_folder(path: Path):
    if os.path.exists(path):
        what = special_kind(os.stat(path).st_mode) or "a file"
    else:
        what = "a broken symbolic link"  # dangling, or a loop
    if path.name in METADATA_NAMES:
        fix = f"Pass the folder that holds it: --dsocr-data {path.parent}"
    else:
        fix = "Pass the folder that holds train/ and val/ (each with metadata.json) to --dsocr-data."
    return fail("dataset.not-a-folder", f"--dsocr-data {path} is {what}, not a folder", fix=fix,
                params={"folder": str(path), "what": what,
                        "parent": str(path.parent) if path.name in METADATA_NAMES else None})


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
                                      problems=[RowProblem(name, sub / METADATA_NAMES[0], None, "metadata.json is missing")])
            continue
        for other in ignored:
            notes.append(Note("ambiguous", name, other, None,
                              f"{meta.name} and {other.name} are both in {sub}: {meta.name} is read, {other.name} is ignored"))
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
    if isinstance(opened, str):
        split.problems.append(RowProblem(name, meta, None, opened))
        return split
    with opened as fh:
        raw = read_bounded(fh, METADATA_MAX_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, f"not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8"))
        return split
    try:
        records = _json_lines(split, meta, text) if meta.suffix == ".jsonl" else json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        split.problems.append(RowProblem(name, meta, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"))
        return split
    except RecursionError:
        split.problems.append(RowProblem(name, meta, None, "JSON nested too deeply to read; rows are flat objects"))
        return split
    if isinstance(records, dict):  # {"data": [...]} is a common wrapper
        lists = [k for k, v in records.items() if isinstance(v, list)]
        if len(lists) > 1:
            split.notes.append(Note("ambiguous", name, meta, None,
                                    f"the top-level object holds {len(lists)} lists ({', '.join(map(repr, lists))}): "
                                    f"the rows are read from {lists[0]!r}, the others are ignored"))
        records = records[lists[0]] if lists else records
    if not isinstance(records, list):
        got = "an object without a list of rows" if isinstance(records, dict) else f"a {type(records).__name__}"
        split.problems.append(RowProblem(name, meta, None, f"expected a list of rows, got {got}"))
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
            split.notes.append(Note("ambiguous", name, meta, i, "key(s) " + ", ".join(map(repr, rec.repeated))
                                    + " given more than once: the last value is read, as every JSON reader does"))
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
                                             f"invalid JSON on line {lineno} column {exc.colno}: {exc.msg}"))
            records.append(_BROKEN_LINE)
        except RecursionError:
            split.problems.append(RowProblem(split.name, meta, len(records), f"line {lineno} is nested too deeply to read"))
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
                                f"{written!r} leaves the dataset folder {root} through '..'"))
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
                                    f"{written!r} names both {literal} and {normalised}: the file named as written is read"))
        return literal, None
    if os.path.lexists(normalised):
        split.notes.append(Note("windows-path", split.name, normalised, index,
                                f"{written!r} is written with Windows separators (\\); read as {normalised}"))
    return normalised, literal


def _outside(image: Path, root: Path) -> bool:
    inside = os.path.normpath(os.path.abspath(root))
    return os.path.commonpath([inside, os.path.normpath(os.path.abspath(image))]) != inside


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
