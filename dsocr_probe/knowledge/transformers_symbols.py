"""Whether a name that remote code imports from transformers exists, and in which releases.

The installed release is asked directly (importing the transformers module and looking the
name up; the remote code itself is not touched). Names that moved or vanished between releases
are kept below as data with their source, so a finding can say which versions have them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..messages import M, N_
from .rules import REFERENCE


@dataclass(frozen=True)
class SymbolFact:
    module: str
    name: str | None  # None: the module itself (every name imported from it)
    present: str  # specifier of the transformers releases that have it
    history: str  # a msgid: which releases have it, in words
    source: str = REFERENCE

    def present_in(self, version: str) -> bool | None:
        try:
            return Version(version) in SpecifierSet(self.present, prereleases=True)
        except InvalidVersion:
            return None


_UP_TO_4_47 = N_("present up to 4.47.1, removed in 4.48.0")
SYMBOL_FACTS: tuple[SymbolFact, ...] = (
    SymbolFact("transformers.models.llama.modeling_llama", "LlamaFlashAttention2", "<=4.47.1", _UP_TO_4_47),
    SymbolFact("transformers.models.llama.modeling_llama", "LlamaSdpaAttention", "<=4.47.1", _UP_TO_4_47),
    SymbolFact("transformers.utils.import_utils", "is_torch_fx_available", "<5.0.0", N_("removed in 5.0.0")),
    SymbolFact("transformers.modeling_layers", None, ">=4.52.1", N_("first in 4.52.1 (4.52.0 was yanked)")),
)

# The stack DeepSeek-OCR v1's remote code runs on (reference: "Working stacks").
V1_STACK_FIX = "pip install 'transformers>=4.46,<=4.47.1' 'peft<=0.17.1'"


def fact_for(module: str, name: str | None) -> SymbolFact | None:
    for fact in SYMBOL_FACTS:
        if fact.module == module and fact.name in (name, None):
            return fact
    return None


@dataclass(frozen=True)
class Lookup:
    present: bool | None  # None: could not be decided (a replayed version the facts do not cover)
    reason: Any = ""  # why it is missing: the import error's message where there is one, else a message (M)
    broken: bool = False  # the name exists, but importing it raises on this machine


@lru_cache(maxsize=None)
def in_installed(module: str, name: str | None) -> Lookup:
    """Import the transformers module and look the name up, as ``from module import name`` would."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return Lookup(False, f"No module named '{exc.name}'")
        return Lookup(False, f"{type(exc).__name__}: {exc}", broken=True)
    except Exception as exc:  # e.g. a transformers module that fails on this torch
        return Lookup(False, f"{type(exc).__name__}: {exc}", broken=True)
    if name is None or name == "*":
        return Lookup(True)
    try:
        getattr(mod, name)  # transformers' lazy modules import the object here
        return Lookup(True)
    except AttributeError:
        pass
    except Exception as exc:  # the lazy module knows the name, but its module fails to import
        return Lookup(False, _cause(exc), broken=True)
    try:  # `from transformers.models import llama` names a submodule
        importlib.import_module(f"{module}.{name}")
        return Lookup(True)
    except ModuleNotFoundError:
        return Lookup(False, f"cannot import name '{name}' from '{module}'")
    except Exception as exc:
        return Lookup(False, _cause(exc), broken=True)


def _cause(exc: BaseException) -> Any:
    """transformers wraps the real import error; the root cause is what a user can act on."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if root is exc:
        return f"{type(exc).__name__}: {exc}"
    return M(N_("%(error)s (caused by %(cause)s)"), error=f"{type(exc).__name__}: {exc}",
             cause=f"{type(root).__name__}: {root}")


def in_version(module: str, name: str | None, version: str) -> Lookup:
    """For a transformers release that is not installed (replayed facts): known facts only."""
    fact = fact_for(module, name)
    if fact is None:
        return Lookup(None, M(N_("not checked: transformers %(version)s is not installed here"), version=version))
    present = fact.present_in(version)
    if present:
        return Lookup(present)
    return Lookup(present, M(N_("%(name)s is %(history)s"), name=f"{module}.{name}" if name else module,
                             history=M(fact.history)))
