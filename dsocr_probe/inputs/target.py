"""Find the model the run is about: a local folder or a hub id already in the local cache.

Nothing here downloads or executes model code; it reads ``config.json`` as data. A target that
cannot be used raises :class:`~dsocr_probe.findings.InputError` (``target.*``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings import InputError

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Target:
    name: str  # what the user gave (hub id or path), or the demo's name
    path: Path  # local folder holding config.json
    config: dict[str, Any]
    revision: str | None = None  # what the user asked for
    commit: str | None = None  # the commit the files come from, when known
    demo: bool = False
    dataset: Path | None = None  # the demo brings its own data
    notes: list[str] = field(default_factory=list)

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def auto_map(self) -> dict[str, str]:
        return dict(self.config.get("auto_map") or {})

    @property
    def native(self) -> bool:
        """True when the installed transformers knows this model_type without remote code."""
        from transformers import CONFIG_MAPPING

        return self.model_type in CONFIG_MAPPING

    @property
    def needs_remote_code(self) -> bool:
        return bool(self.auto_map) and not self.native

    @functools.cached_property
    def pin(self):
        """Whether the revision pins this folder's remote code, verified (see :mod:`dsocr_probe.inputs.pinning`)."""
        from .pinning import verify

        return verify(self)

    @property
    def pinned(self) -> bool:
        return self.pin.pinned

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.is_file() else None

    def read_json(self, name: str) -> dict[str, Any] | None:
        p = self.file(name)
        if p is None:
            return None
        return json.loads(p.read_text(encoding="utf-8"))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "model_type": self.model_type,
            "architectures": self.config.get("architectures"),
            "revision": self.revision,
            "commit": self.commit,
            "demo": self.demo,
            "remote_code": self.needs_remote_code,
        }


def resolve(model: str, revision: str | None = None) -> Target:
    """A local folder, or a hub id resolved from the local cache only (never the network)."""
    local = Path(model).expanduser()
    if local.is_dir():
        folder = local.resolve()
        return Target(model, folder, _read_config(local), revision=revision, commit=_snapshot_commit(folder, revision))
    if _is_windows_path(model) and os.name != "nt":
        raise InputError("target.windows-path", model=model, system=platform.system() or os.name)
    if local.exists():
        raise InputError("target.not-a-folder", model=model)
    if _looks_local(model):
        raise InputError("target.missing-folder", model=model, absolute=str(local.absolute()), cwd=str(Path.cwd()))
    from huggingface_hub import snapshot_download

    # A content pin (sha256:...) is checked against the files, not asked of the cache.
    asked = None if revision and revision.lower().startswith("sha256:") else revision
    try:
        path = Path(snapshot_download(model, revision=asked, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: not in the cache
        variant = "revision" if asked else ""  # the download command names the revision asked for
        raise InputError("target.not-cached", variant, model=model, revision=asked, download=download_command(),
                         error=f"{type(exc).__name__}: {exc}") from exc
    commit = path.name if _is_commit(path.name) else None
    return Target(model, path, _read_config(path), revision=revision, commit=commit)


def download_command() -> str:
    """The download command the installed huggingface_hub provides: ``hf download`` (newer), else ``huggingface-cli``."""
    try:
        scripts = {e.name for e in importlib.metadata.distribution("huggingface_hub").entry_points
                   if e.group == "console_scripts"}
    except importlib.metadata.PackageNotFoundError:
        scripts = set()
    return "hf download" if "hf" in scripts else "huggingface-cli download"


_WINDOWS_PATH_RE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _is_windows_path(model: str) -> bool:
    """``C:\\models\\x``, ``D:/x``, ``\\\\server\\share``."""
    return bool(_WINDOWS_PATH_RE.match(model))


def _looks_local(model: str) -> bool:
    """A path, not a hub id (``org/name``): ``./x``, ``~/x``, ``/x``, backslashes, more than one ``/``,
    or a first part that names a folder here (``models/NoSuchModel`` beside a ``models/`` folder)."""
    if model.startswith((".", "~", "/")) or "\\" in model or model.count("/") > 1:
        return True
    if os.sep != "/" and os.sep in model:
        return True
    return "/" in model and Path(model.split("/", 1)[0]).expanduser().is_dir()


def topic_of(name: str) -> str:
    """The report's file-name topic: the last part of a hub id or path, made file-name safe."""
    base = name.rstrip("/\\").replace("\\", "/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base) or "model"


def _is_commit(rev: str | None) -> bool:
    return bool(rev and COMMIT_RE.match(rev))


def _snapshot_commit(folder: Path, revision: str | None) -> str | None:
    """The commit a local folder's files come from, when the folder shows it: a Hugging Face cache
    snapshot is named by its commit. A plain folder cannot show one; a revision given for it is
    recorded as given, not as resolved."""
    if folder.parent.name != "snapshots" or not _is_commit(folder.name):
        return None
    if _is_commit(revision) and revision != folder.name:
        raise InputError("target.revision-mismatch", revision=revision, commit=folder.name, path=str(folder))
    return folder.name


def _read_config(folder: Path) -> dict[str, Any]:
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise InputError("target.no-config", folder=str(folder))
    try:
        return json.loads(cfg.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("target.bad-config", path=str(cfg), error=str(exc)) from exc
