"""Which of a checkpoint's own modules ``trust_remote_code`` would load, read as text, never imported.

:func:`collect` follows the ``auto_map`` entries of the checkpoint's JSON files and the imports
between its files, scans each module (:mod:`dsocr_probe.codescan.scan`) and places every hazard
on the call graph (:mod:`dsocr_probe.codescan.callgraph`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Union

from .callgraph import CallGraph
from .scan import Hazard, ImportRef, ModuleScan, scan_file

# The JSON files whose auto_map makes transformers import code from the checkpoint.
AUTO_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class AutoMapEntry:
    """One `auto_map` reference, e.g. config.json: AutoModel -> modeling_x.XForCausalLM."""

    source: str  # the JSON file it is in
    auto_class: str
    reference: str  # "module.Class" or "owner/repo--module.Class"

    @property
    def repo(self) -> str | None:
        """The other repository the code comes from (``owner/repo--module.Class``), if any."""
        return self.reference.split("--", 1)[0] if "--" in self.reference else None

    @property
    def module(self) -> str:
        return self.reference.split("--", 1)[-1].rsplit(".", 1)[0]

    @property
    def file(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def __str__(self) -> str:
        return f"{self.source}: {self.auto_class} → {self.reference}"


# What makes transformers load a module: an auto_map entry, or an import in another module of the checkpoint.
Loader = Union[AutoMapEntry, ImportRef]


@dataclass(frozen=True)
class AutoMapError:
    """A JSON file whose auto_map cannot be followed, and how: ``unreadable`` (``error`` is the parser's
    message), ``not-a-mapping`` (``found`` is the type it has) or ``not-a-reference`` (``found`` is the
    value of entry ``key``, which is not 'module.Class')."""

    file: str
    problem: str
    error: str = ""
    key: str = ""
    found: str = ""


@dataclass
class RemoteModule:
    file: str  # relative to the model folder
    sha256: str
    size: int
    reached_from: Loader
    scan: ModuleScan


@dataclass(frozen=True)
class MissingModule:
    file: str
    referenced_from: Loader


@dataclass
class RemoteCode:
    """The code trusting this checkpoint would execute, as far as it can be read statically."""

    root: Path
    entries: list[AutoMapEntry] = field(default_factory=list)
    modules: list[RemoteModule] = field(default_factory=list)
    missing: list[MissingModule] = field(default_factory=list)
    external: list[AutoMapEntry] = field(default_factory=list)  # code from another repository
    config_errors: list[AutoMapError] = field(default_factory=list)

    def imports(self) -> Iterator[ImportRef]:
        for m in self.modules:
            yield from m.scan.imports

    def hazards(self) -> Iterator[Hazard]:
        for m in self.modules:
            yield from m.scan.hazards

    def external_imports(self) -> Iterator[ImportRef]:
        """Absolute imports that do not resolve to a file of the checkpoint."""
        for ref in self.imports():
            if ref.level == 0 and _local_files(ref, self.root) is None:
                yield ref


def auto_map_entries(folder: Path) -> tuple[list[AutoMapEntry], list[AutoMapError]]:
    """Every auto_map reference in the checkpoint's JSON files, and the files that could not be read."""
    entries: list[AutoMapEntry] = []
    errors: list[AutoMapError] = []
    for name in AUTO_MAP_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors.append(AutoMapError(name, "unreadable", error=str(exc)))
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not auto_map:
            continue
        if isinstance(auto_map, list):  # older tokenizer_config.json: [slow, fast]
            auto_map = {"AutoTokenizer": auto_map}
        if not isinstance(auto_map, dict):
            errors.append(AutoMapError(name, "not-a-mapping", found=type(auto_map).__name__))
            continue
        for auto_class, value in auto_map.items():
            refs = value if isinstance(value, (list, tuple)) else [value]
            for ref in refs:
                if ref is None:
                    continue  # e.g. no slow tokenizer
                if not isinstance(ref, str) or "." not in ref:
                    errors.append(AutoMapError(name, "not-a-reference", key=repr(auto_class), found=repr(ref)))
                    continue
                entries.append(AutoMapEntry(name, auto_class, ref))
    return entries, errors


def collect(folder: Path) -> RemoteCode:
    """Follow auto_map entries and the imports between the checkpoint's files, transitively."""
    folder = Path(folder)
    entries, errors = auto_map_entries(folder)
    code = RemoteCode(folder, entries=entries, config_errors=errors)
    queue: list[tuple[str, Loader]] = []
    for entry in entries:
        if entry.repo is not None:
            code.external.append(entry)
        else:
            queue.append((entry.file, entry))
    seen: set[str] = set()
    missing: dict[str, MissingModule] = {}
    while queue:
        rel, why = queue.pop(0)
        if rel in seen:
            continue
        path = folder / rel
        if rel.startswith("../") or not path.is_file():
            # transformers copies only the model folder's own files; anything else is not there.
            missing.setdefault(rel, MissingModule(rel, why))
            continue
        seen.add(rel)
        data = path.read_bytes()
        scan = scan_file(path, folder)
        code.modules.append(RemoteModule(rel, hashlib.sha256(data).hexdigest(), len(data), why, scan))
        for ref in scan.imports:
            for target in _local_files(ref, folder) or ():
                queue.append((target, ref))
    code.missing = list(missing.values())
    _place_hazards(code)
    return code


def _place_hazards(code: RemoteCode) -> None:
    """Attach to every hazard when it runs, from the call graph of the collected files."""
    files = [m.file for m in code.modules if m.scan.error is None]
    roots = [(e.auto_class, e.file, e.reference.rsplit(".", 1)[-1]) for e in code.entries if e.repo is None]
    graph = CallGraph(code.root, files, roots)
    for m in code.modules:
        m.scan.hazards = [replace(h, reach=graph.reach(h.file, h.line, h.in_function)) for h in m.scan.hazards]


def _local_files(ref: ImportRef, root: Path) -> list[str] | None:
    """The checkpoint files an import loads; None when it is not an import of the checkpoint's own code.

    Relative imports always point into the checkpoint (a file that is not there is returned
    anyway, so it is reported missing); an absolute import is local when a file of that name
    sits beside the importing one.
    """
    here = (root / ref.file).parent
    if ref.level == 0:
        if not _module_path(here, ref.top):
            return None
        base, parts = here, ref.module.split(".")
    else:
        base = here
        for _ in range(ref.level - 1):
            base = base.parent
        parts = ref.module.split(".") if ref.module else []
    files: list[str] = []
    if parts:
        found = _module_path(base, *parts)
        files.append(_rel(found, root) if found else _rel(base.joinpath(*parts).with_suffix(".py"), root))
        package = base.joinpath(*parts)
    else:
        package = base
    for name in ref.names:  # `from .pkg import submodule` loads the submodule's file too
        sub = _module_path(package, name)
        if sub:
            files.append(_rel(sub, root))
        elif not parts and not (package / "__init__.py").is_file():
            files.append(_rel(package / f"{name}.py", root))  # `from . import x` with no x.py
    return files


def _module_path(base: Path, *parts: str) -> Path | None:
    stem = base.joinpath(*parts)
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _rel(path: Path, root: Path) -> str:
    # Lexical, not resolve(): files in a hub cache snapshot are symlinks into a blob store.
    return Path(os.path.relpath(os.path.normpath(path), os.path.normpath(root))).as_posix()
