"""Fixtures shared by the tests: tiny offline models and datasets, built once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# pytester's in-process runs drop modules first imported inside them; extension modules such as
# torch cannot be imported twice in one process, so they are loaded here, before any run.
import PIL.Image  # noqa: F401
import tokenizers  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401
import transformers.modeling_utils  # noqa: F401  (registers torch ops once)
import transformers.trainer  # noqa: F401  (imports accelerate and, where installed, datasets: pyarrow types register once)
from pages import write_pages

from dsocr_probe.demo.target import CACHE_ENV


def _import_the_package() -> None:
    """Every module of the package, loaded before any in-process run: one that a run imported first
    would be dropped after it and imported anew by the next, and a test holding the old module (or an
    object of one of its classes) would no longer see what the probes use."""
    import importlib
    import pkgutil

    import dsocr_probe

    for info in pkgutil.walk_packages(dsocr_probe.__path__, "dsocr_probe."):
        if info.name.endswith("__main__") or ".standin.files" in info.name:
            continue
        importlib.import_module(info.name)


_import_the_package()


def pytest_configure(config):
    # The tests build the demo target into a cache of their own, removed at the end, never into the
    # user's ~/.cache (CI sets its own). `pytest --dsocr-probe` run here keeps the usual cache.
    if os.environ.get(CACHE_ENV) or config.getoption("dsocr_probe", False):
        return
    folder = tempfile.mkdtemp(prefix="dsocr-probe-cache-")
    os.environ[CACHE_ENV] = folder
    config.add_cleanup(lambda: (os.environ.pop(CACHE_ENV, None), shutil.rmtree(folder, ignore_errors=True)))


@pytest.fixture(scope="module")
def demo():
    """This stack's demo target with weights (the OCR-2 demo, or the v1 stand-in where OCR-2 is absent)."""
    from dsocr_probe.demo.target import demo_target

    target = demo_target()
    if not any(target.path.glob("*.safetensors")):
        pytest.skip(f"the demo model has no weights on this transformers: {target.notes}")
    return target


@pytest.fixture(scope="session")
def v1_model(tmp_path_factory) -> Path:
    """Our remote-code stand-in of DeepSeek-OCR v1 (config, tokenizer, modeling code; no weights)."""
    from dsocr_probe.demo.standin import write_v1_standin

    return write_v1_standin(tmp_path_factory.mktemp("v1") / "DeepSeek-OCR")


@pytest.fixture()
def seed_data(tmp_path) -> Path:
    """The seed team's data: 3 training pages and 1 validation page."""
    root = tmp_path / "data" / "processed"
    write_pages(root / "train", ["Привет мир", "рукописный текст", "третья строка"])
    write_pages(root / "val", ["проверка"])
    return root
