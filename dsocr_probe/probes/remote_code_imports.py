"""The remote-code probe's import checks: the names the code imports from transformers, and its packages."""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict
from typing import Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .. import codescan
from ..codescan import ImportRef, RemoteCode
from ..findings import Finding, Status, passed
from ..knowledge import transformers_symbols as symbols
from ..messages import M, N_

# model_type values of DeepSeek-OCR v1 checkpoints (config.json, and the hub's processor tag).
V1_MODEL_TYPES = {"deepseekocr", "deepseek_vl_v2"}

Found = dict[tuple[str, str | None], tuple[symbols.Lookup, list[ImportRef]]]  # (module, name) -> lookup, imports


def transformers_findings(ctx, target, code: RemoteCode, weigh) -> Iterable[Finding]:
    refs = [r for r in code.external_imports() if r.top == "transformers"]
    installed = _installed_transformers()
    judged = ctx.facts.version("transformers") or installed
    replay = judged != installed  # replayed facts: only the version table can speak for that release
    where = (M(N_("transformers %(version)s (replayed: judged by the version facts)"), version=judged) if replay
             else f"transformers {judged}")

    uses: dict[tuple[str, str | None], list[ImportRef]] = defaultdict(list)
    for ref in refs:
        for name in ref.names or (None,):
            uses[(ref.module, name)].append(ref)
    missing: Found = {}
    broken: Found = {}
    unchecked: list[str] = []
    for (module, name), at in uses.items():
        lookup = symbols.in_version(module, name, judged) if replay else symbols.in_installed(module, name)
        if lookup.broken:
            broken[(module, name)] = (lookup, at)
        elif lookup.present is False:
            missing[(module, name)] = (lookup, at)
        elif lookup.present is None:
            unchecked.append(_qualified(module, name))

    blocking = {k: v for k, v in missing.items() if any(_runs_on_import(r) for r in v[1])}
    optional = {k: v for k, v in missing.items() if k not in blocking}
    advice = _version_advice(target, code, missing)
    if blocking:
        (first_module, first_name), (first_lookup, first_refs) = next(iter(blocking.items()))
        first_ref = next(r for r in first_refs if _runs_on_import(r))
        names = [_qualified(m, n) for m, n in blocking]
        yield Finding(
            weigh(Status.FAIL),
            "remote_code.missing-symbol",
            "replayed" if replay else "",
            table=_symbol_rows(blocking),
            source=symbols.REFERENCE,
            params={"symbols": names, "transformers": judged, "short": _short(names),
                    "file": first_ref.file, "line": first_ref.line,
                    "reason": first_lookup.reason or f"cannot import name '{first_name}' from '{first_module}'",
                    "advice": advice},
        )
    if optional:
        yield _symbols_finding(weigh(Status.WARN), "remote_code.optional-symbol", optional, judged,
                               source=symbols.REFERENCE, advice=advice)
    if broken:
        yield _symbols_finding(weigh(Status.FAIL), "remote_code.transformers-broken", broken, installed,
                               module=next(iter(broken))[0], reason=next(iter(broken.values()))[0].reason)
    if not missing and not broken:
        variant = "all" if not unchecked else "some-unchecked"
        evidence = {N_("checked against"): where, N_("names"): ", ".join(sorted(_qualified(m, n) for m, n in uses))}
        if unchecked:
            evidence[N_("not checked (not in the version facts)")] = ", ".join(unchecked)
        yield passed(
            "remote_code.transformers-imports",
            variant if uses else "nothing",
            evidence=evidence,
            params={"count": len(uses), "checked": len(uses) - len(unchecked), "unchecked": len(unchecked),
                    "where": where, "transformers": judged},
        )


def _runs_on_import(ref: ImportRef) -> bool:
    return not ref.guarded and not ref.in_function


def _qualified(module: str, name: str | None) -> str:
    return f"{module}.{name}" if name else module


def _short(names: list[str]) -> str:
    return ", ".join(n.split(".")[-1] for n in names)


def _symbols_finding(status: Status, code: str, found: Found, transformers: str, source: str = "",
                     **params) -> Finding:
    """One finding over a group of imported transformers names, with a row per name."""
    names = [_qualified(m, n) for m, n in found]
    return Finding(status, code, table=_symbol_rows(found), source=source,
                   params={"symbols": names, "transformers": transformers, "short": _short(names), **params})


def _symbol_rows(found: Found) -> list[dict]:
    rows = []
    for (module, name), (lookup, refs) in found.items():
        fact = symbols.fact_for(module, name)
        rows.append({
            N_("name"): _qualified(module, name),
            N_("imported at"): ", ".join(r.where for r in refs),
            N_("on import"): M(N_("yes")) if any(_runs_on_import(r) for r in refs) else M(N_("no")),
            N_("transformers that have it"): fact.present if fact else M(N_("not in the version facts")),
            N_("history"): M(fact.history) if fact else "",
            N_("error"): lookup.reason,
        })
    return rows


def _version_advice(target, code: RemoteCode, missing: Found) -> dict:
    """Which transformers to install for the missing names: the v1 stack, the releases the version facts
    name (with the one config.json was saved with, when it is one of them), or that saved release."""
    if _is_deepseek_ocr_v1(target, code):
        return M(N_("`%(stack)s` (the stack DeepSeek-OCR v1's remote code was written for)."),
                 stack=symbols.V1_STACK_FIX)
    saved = target.config.get("transformers_version")
    known = [f for f in (symbols.fact_for(m, n) for m, n in missing) if f is not None]
    if known:
        spec = SpecifierSet(",".join(f.present for f in known))
        if saved and _version_in(saved, spec):
            return M(N_("`pip install 'transformers%(spec)s'`, e.g. `pip install 'transformers==%(saved)s'` (the "
                        "release config.json was saved with), or change the imports in the remote code."),
                     spec=str(spec), saved=saved)
        return M(N_("`pip install 'transformers%(spec)s'`, or change the imports in the remote code."), spec=str(spec))
    if saved:
        return M(N_("`pip install 'transformers==%(saved)s'` (the release config.json was saved with), or change the "
                    "imports in the remote code."), saved=saved)
    return M(N_("Install the transformers release the remote code was written for, or change its imports to the "
                "names the installed release has."))


def _version_in(version: str, spec: SpecifierSet) -> bool:
    try:
        return Version(version) in spec
    except InvalidVersion:
        return False


def _is_deepseek_ocr_v1(target, code: RemoteCode) -> bool:
    model_type = str(target.model_type or "").lower()
    return model_type in V1_MODEL_TYPES or any(m.file.startswith("modeling_deepseekocr") for m in code.modules)


def _installed_transformers() -> str:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        import transformers

        return transformers.__version__


# ---------------------------------------------------------------- third-party packages


def package_findings(code: RemoteCode, weigh) -> Iterable[Finding]:
    """Third-party imports. transformers itself checks each remote file's imports before loading it
    (skipping those under try/except and `if is_..._available()`), so a missing one blocks loading
    even when it is imported inside a function."""
    absent: dict[str, list[ImportRef]] = defaultdict(list)
    present: set[str] = set()
    for ref in code.external_imports():
        if ref.top in ("transformers", "__future__") or codescan.is_stdlib(ref.module):
            continue
        if codescan.is_installed(ref.top):
            present.add(ref.top)
        else:
            absent[ref.top].append(ref)
    required = {top: refs for top, refs in absent.items() if any(not r.guarded for r in refs)}
    optional = {top: refs for top, refs in absent.items() if top not in required}
    for finding_code, found, status in (("remote_code.missing-package", required, Status.FAIL),
                                        ("remote_code.optional-package", optional, Status.WARN)):
        if found:
            pips = [codescan.pip_name(top) for top in found]
            yield Finding(weigh(status), finding_code, table=_package_rows(found),
                          params={"packages": pips, "names": ", ".join(pips), "pip_args": " ".join(pips)})
    if not absent:
        yield passed("remote_code.packages", "installed" if present else "stdlib-only",
                     params={"packages": sorted(present), "names": ", ".join(sorted(present))})


def _package_rows(found: dict[str, list[ImportRef]]) -> list[dict]:
    return [
        {N_("import"): top, N_("pip package"): codescan.pip_name(top),
         N_("imported at"): ", ".join(r.where for r in refs),
         N_("guarded"): M(N_("yes")) if all(r.guarded for r in refs) else M(N_("no"))}
        for top, refs in found.items()
    ]
