"""Find the model the run is about: a local folder or a hub id already in the local cache.

Nothing here downloads or executes model code; it reads ``config.json`` as data.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .findings import ProbeStop, fail

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

    @property
    def pinned(self) -> bool:
        return bool(self.revision and COMMIT_RE.match(self.revision))

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
        return Target(model, local.resolve(), _read_config(local), revision=revision, commit=revision if _is_commit(revision) else None)
    if local.exists() or model.startswith((".", "/", "~")) or os.sep in model.replace("/", "", 1):
        raise ProbeStop(
            fail(
                "target.not-a-folder",
                f"`{model}` is not a model folder",
                fix="Pass a folder that holds config.json, or a hub id like `deepseek-ai/DeepSeek-OCR`.",
                params={"model": model},
            )
        )
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: not in the cache
        rev = f" --revision {revision}" if revision else ""
        raise ProbeStop(
            fail(
                "target.not-cached",
                f"`{model}` is not in the local Hugging Face cache",
                detail=f"{type(exc).__name__}: {exc}",
                fix=f"Probes never download. Fetch it once: `huggingface-cli download {model}{rev}`, "
                "or pass the local folder with --dsocr-model.",
                params={"model": model},
            )
        ) from exc
    commit = path.name if _is_commit(path.name) else None
    return Target(model, path, _read_config(path), revision=revision, commit=commit)


def topic_of(name: str) -> str:
    """The report's file-name topic: the last part of a hub id or path, made file-name safe."""
    base = name.rstrip("/\\").replace("\\", "/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base) or "model"


def _is_commit(rev: str | None) -> bool:
    return bool(rev and COMMIT_RE.match(rev))


def _read_config(folder: Path) -> dict[str, Any]:
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise ProbeStop(
            fail(
                "target.no-config",
                f"{folder} has no config.json",
                fix="Point --dsocr-model at the model folder itself (the one with config.json and the weights).",
            )
        )
    try:
        return json.loads(cfg.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProbeStop(
            fail("target.bad-config", f"{cfg} is not valid JSON: {exc}", fix="Restore config.json from the checkpoint.")
        ) from exc
