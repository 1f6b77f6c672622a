"""Which packages the remote code's imports name, and whether they are here: stdlib, installed, the pip name."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from typing import Mapping

# Import names whose pip distribution is spelled differently.
PIP_NAMES = {
    "PIL": "pillow",
    "cv2": "opencv-python",
    "flash_attn": "flash-attn",
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "attr": "attrs",
    "google.protobuf": "protobuf",
    "fitz": "PyMuPDF",
    "Crypto": "pycryptodome",
}


def pip_name(import_name: str) -> str:
    """The distribution to pip-install for an import name (``cv2`` -> ``opencv-python``): the installed one
    that provides it, else the known name of the one that would."""
    for prefix in (import_name, import_name.split(".")[0]):
        if prefix in PIP_NAMES:
            return PIP_NAMES[prefix]
    provided = set(_installed_distributions().get(import_name.split(".")[0], ()))
    if len(provided) == 1:  # a namespace package (``google``) is shared by several
        return provided.pop()
    return import_name.split(".")[0].replace("_", "-")


@functools.lru_cache(maxsize=1)
def _installed_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def is_stdlib(import_name: str) -> bool:
    return import_name.split(".")[0] in sys.stdlib_module_names


def is_installed(import_name: str) -> bool:
    """Whether the top-level package can be found; finding it does not import it."""
    top = import_name.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
