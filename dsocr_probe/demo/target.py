"""The built-in demo target: what the probes check when no --dsocr-model is given.

On a transformers with native DeepSeek-OCR-2 it is a tiny random-weight DeepSeek-OCR-2
(:mod:`dsocr_probe.demo.ocr2`); on older stacks, our remote-code stand-in of DeepSeek-OCR v1.
Either comes with a small rendered dataset (``dataset/train``, ``dataset/val``) and a
``training_config.yaml`` that fits them, so a newcomer sees a full report with no download.

The folder is built once per transformers version and kept under ``$DSOCR_PROBE_CACHE``
(default ``~/.cache/dsocr-probe``). It is built in a temporary folder beside it and renamed
into place, so a killed build never leaves a half-written demo behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..inputs.target import Target

# Bump when the demo's files change shape, so cached folders from older releases are not reused.
FORMAT = 3
SEED = 0
CACHE_ENV = "DSOCR_PROBE_CACHE"
MANIFEST = "demo.json"  # written last: its presence marks a complete build
TRAIN_CONFIG = "training_config.yaml"
OCR2 = "ocr2"
V1 = "v1"
STALE_BUILD_S = 3600  # leftovers of killed builds older than this are removed


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dsocr-probe").expanduser()


def demo_family() -> str:
    """``ocr2`` where transformers ships DeepSeek-OCR-2 (>= 5.10.1), else ``v1``."""
    import transformers

    return OCR2 if hasattr(transformers, "DeepseekOcr2ForConditionalGeneration") else V1


def demo_folder() -> Path:
    import transformers

    return cache_root() / f"demo-{demo_family()}-transformers-{transformers.__version__}-format-{FORMAT}"


def demo_target() -> Target:
    """The demo model folder (built on first use, then reused) as a probe Target."""
    folder = demo_folder()
    if not (folder / MANIFEST).is_file():
        _build_atomically(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return Target(
        name=f"dsocr-demo-{manifest['family']}",
        path=folder,
        config=config,
        demo=True,
        dataset=folder / "dataset",
        notes=list(manifest.get("notes", [])),
    )


def demo_train_config(root: Path | None = None, family: str | None = None) -> dict[str, Any]:
    """The training YAML's mapping for the demo: sections model / lora / training / data.

    root: the demo folder the paths point into (default: this stack's demo folder). Paths are
    absolute so the config works from any working directory.
    """
    family = family or demo_family()
    root = Path(root) if root is not None else demo_folder()
    v1 = family == V1
    return {
        "model": {
            "name": str(root),
            "auto_class": "AutoModel" if v1 else "AutoModelForImageTextToText",
            "trust_remote_code": v1,
        },
        "lora": {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            # The language model's attention projections: the part of v1 that receives gradients.
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            # OCR-2's vision encoder has projections of the same names; keep the demo's adapters off it.
            **({} if v1 else {"exclude_modules": r"(.*\.)?(vision_tower)\..*"}),
            "bias": "none",
            "task_type": "CAUSAL_LM",
        },
        "training": {
            "output_dir": "outputs/dsocr-demo-lora",
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "num_train_epochs": 3,
            "learning_rate": 2e-4,
            "optim": "adamw_torch",
            "remove_unused_columns": False,
            "dataloader_num_workers": 0,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
        },
        "data": {
            "train_dir": str(root / "dataset" / "train"),
            "val_dir": str(root / "dataset" / "val"),
            # v1 Tiny: 512 px, 73 image slots. OCR-2 pages: up to 833 slots (global + 4 tiles + separator).
            "max_length": 512 if v1 else 1024,
            "mode": "tiny" if v1 else "gundam",
        },
    }


def _build_atomically(final: Path) -> None:
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    if (final / MANIFEST).is_file():
        return  # another process finished it meanwhile
    if final.exists():  # only a hand-edited folder lacks the manifest: builds appear whole, by rename
        shutil.rmtree(final)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".building", dir=root))
    try:
        _build(work, final)
        try:
            os.rename(work, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
            shutil.rmtree(work, ignore_errors=True)  # another process finished first; use its build
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _build(work: Path, final: Path) -> None:
    """Write the whole demo into ``work``; paths inside point at ``final``, where it will live."""
    import transformers
    import yaml

    from .pages import write_dataset

    started = time.perf_counter()
    family = demo_family()
    notes: list[str] = []
    if family == OCR2:
        from .ocr2 import write_tiny_ocr2

        write_tiny_ocr2(work, seed=SEED)
    else:
        _write_v1(work, notes)
    write_dataset(work / "dataset", seed=SEED)
    config = demo_train_config(final, family)
    (work / TRAIN_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    manifest = {
        "family": family,
        "format": FORMAT,
        "seed": SEED,
        "transformers": transformers.__version__,
        "build_seconds": round(time.perf_counter() - started, 2),
        "notes": notes,
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _write_v1(work: Path, notes: list[str]) -> None:
    from .standin import StandinUnavailable, write_v1_standin

    try:
        write_v1_standin(work, weights=True, seed=SEED)
    except StandinUnavailable as exc:
        # Between 4.48 and 5.10 neither model runs: the v1 remote code cannot import (exactly what
        # the probes should report) and OCR-2 is not shipped yet. Keep the files, without weights.
        notes.append(f"v1 stand-in without weights: {exc}")


def _remove_stale_builds(root: Path) -> None:
    now = time.time()
    for leftover in root.glob(".demo-*.building"):
        try:
            if now - leftover.stat().st_mtime > STALE_BUILD_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
