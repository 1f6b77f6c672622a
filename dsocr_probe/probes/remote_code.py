"""Probe 3: the code ``trust_remote_code`` would run — read as text, never imported.

Lists the checkpoint's modules with their hashes, checks what they import against the
installed transformers and packages, flags calls a model has no business making, and
requires a pinned commit before such code is trusted.
"""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..codescan import callgraph, scan as codescan
from ..inputs import pinning
from ..knowledge import transformers_symbols as symbols
from ..codescan.scan import Hazard, ImportRef, RemoteCode
from ..findings import Finding, Status, fail, passed, skip, warn
from ..inputs.target import download_command

PROBE = "remote_code"
# model_type values of DeepSeek-OCR v1 checkpoints (config.json, and the hub's processor tag).
V1_MODEL_TYPES = {"deepseekocr", "deepseek_vl_v2"}
# torch.load reads weights only, no pickled code, by default from this release on (PyTorch 2.6 notes).
TORCH_SAFE_LOAD_SINCE = "2.6"


@dataclass(frozen=True)
class HazardRule:
    title: str
    at_import: Status  # the call sits at module level: it runs when from_pretrained imports the file
    when_called: Status  # inside a function that loading or a training step reaches
    fix: str  # formatted with the first occurrence's {call} and {where}


# Where a hazard runs, as the findings' tables say it.
RUNS = {callgraph.IMPORT: "on import", callgraph.LOAD: "in from_pretrained", callgraph.FORWARD: "in the training step",
        callgraph.INFERENCE: "only when called (not by training)", callgraph.UNREACHED: "never (nothing calls it)"}


HAZARD_RULES: dict[str, HazardRule] = {
    codescan.NETWORK: HazardRule(
        "Network access", Status.FAIL, Status.FAIL,
        "Remove the network call `{call}` at {where}: loading and training read local files only "
        "(pass local paths or PIL images instead of URLs).",
    ),
    codescan.PROCESS: HazardRule(
        "Starts other programs", Status.FAIL, Status.FAIL,
        "Remove `{call}` at {where}, or do not trust this code: a model has no reason to start programs.",
    ),
    codescan.EVAL: HazardRule(
        "Runs code built from strings", Status.FAIL, Status.FAIL,
        "Replace `{call}(...)` at {where} with plain code (`ast.literal_eval` for literals), or do not trust this code.",
    ),
    codescan.PICKLE: HazardRule(
        "Unpickles data (unpickling can run any code)", Status.FAIL, Status.FAIL,
        "Replace `{call}` at {where} with safetensors or `torch.load(..., weights_only=True)`.",
    ),
    codescan.TORCH_LOAD: HazardRule(
        "torch.load without weights_only=True", Status.FAIL, Status.FAIL,
        "Write `torch.load(..., weights_only=True)` at {where}.",
    ),
    codescan.FILE_WRITE: HazardRule(
        "Writes or deletes files outside the model cache", Status.FAIL, Status.FAIL,
        "Remove `{call}` at {where}, or make it write only under a folder the caller passes in.",
    ),
    codescan.OBFUSCATED: HazardRule(
        "Obfuscated code", Status.FAIL, Status.FAIL,
        "Do not trust this code until `{call}` at {where} is decoded and reviewed; model code has no reason to hide text.",
    ),
    codescan.CUDA: HazardRule(
        "Hard-coded CUDA device (the model cannot run on CPU or other devices)", Status.WARN, Status.WARN,
        "Replace `{call}` at {where} with `.to(device)` (e.g. `.to(self.device)` or `.to(input_ids.device)`).",
    ),
}


def run(ctx) -> Iterable[Finding]:
    target = ctx.needs(ctx.target, PROBE)
    code = codescan.collect(target.path)
    for error in code.config_errors:
        yield fail(
            f"{PROBE}.bad-auto-map",
            f"auto_map cannot be read: {error}",
            fix="Restore the file from the checkpoint; an auto_map value is 'module.Class' (or a [slow, fast] pair for tokenizers).",
            params={"error": error},
        )
    if not code.entries:
        yield passed(
            f"{PROBE}.none",
            "No remote code runs: the checkpoint maps no code of its own (no auto_map)",
            evidence={"model_type": target.model_type, "known to transformers": target.native},
        )
        return
    trusted = ctx.options.trust_remote_code
    # transformers runs auto_map code when trusted, even for a model_type it knows itself.
    active = trusted or not target.native
    weigh: Callable[[Status], Status] = (lambda s: s) if active else _only_if_trusted

    yield _modules_finding(target, code, trusted, active)
    yield from _broken_references(code, weigh)
    yield from _transformers_imports(ctx, target, code, weigh)
    yield from _packages(code, weigh)
    yield from _hazards(ctx, code, weigh)
    if trusted:
        yield _pin_finding(ctx, target, code)


def _files(n: int) -> str:
    return f"{n} file" + ("" if n == 1 else "s")


def _only_if_trusted(status: Status) -> Status:
    """Without trust a natively known model never runs its auto_map code: warn, don't block."""
    return Status.WARN if status is Status.FAIL else status


# ---------------------------------------------------------------- what would run


def _modules_finding(target, code: RemoteCode, trusted: bool, active: bool) -> Finding:
    files = [m.file for m in code.modules]
    table = [{"file": m.file, "sha256": m.sha256, "bytes": m.size, "loaded by": m.reached_from} for m in code.modules]
    pin = target.pin
    evidence = {
        "auto_map": "; ".join(str(e) for e in code.entries),
        "revision": target.revision or "none",
        "resolved commit": pin.commit or target.commit or "unknown (no commit hash for this folder)",
        "content digest (--dsocr-revision)": pin.digest,
    }
    listed = ", ".join(files) or "nothing readable"
    count = _files(len(files))
    params = {"files": files, "count": len(files), "listed": ", ".join(files) or None, "digest": pin.digest}
    if trusted:
        return passed(f"{PROBE}.modules", f"Remote code that runs on load ({count}): {listed}",
                      table=table, evidence=evidence, params=params)
    if not active:
        return passed(
            f"{PROBE}.modules",
            f"transformers loads `{target.model_type}` natively; the checkpoint's own code ({listed}) runs only if trusted",
            detail="With trust_remote_code=True, transformers prefers the auto_map classes over its own; "
            "the findings below are about that code.",
            table=table, evidence=evidence, params=params,
        )
    return warn(
        f"{PROBE}.modules",
        f"Loading this model needs trust_remote_code, which would execute {count}: {listed}",
        detail="Nothing was imported: the files were read as text. The findings below say what they would do.",
        fix="Review the listed files, then re-run with `--dsocr-trust-remote-code --dsocr-revision <pin>`: the "
        f"checkpoint's commit (a hub snapshot or a clean git checkout), or `{pin.digest}`, the digest of these files.",
        table=table, evidence=evidence, params=params,
    )


def _broken_references(code: RemoteCode, weigh) -> Iterable[Finding]:
    if code.missing:
        names = ", ".join(m.file for m in code.missing)
        yield Finding(
            weigh(Status.FAIL),
            f"{PROBE}.missing-module",
            f"Remote code refers to files that are not in the checkpoint: {names}",
            detail="Loading stops with an import error at the first of them.",
            fix=f"Restore {names} from the same checkpoint commit (e.g. `{download_command()} <repo> "
            f"{' '.join(m.file for m in code.missing)} --revision <commit>`), or remove the reference.",
            table=[{"missing file": m.file, "referenced by": m.referenced_from} for m in code.missing],
            params={"files": [m.file for m in code.missing], "names": names, "download": download_command(),
                    "file_args": " ".join(m.file for m in code.missing)},
        )
    for entry in code.external:
        yield Finding(
            weigh(Status.FAIL),
            f"{PROBE}.external-module",
            f"{entry} loads code from another repository ({entry.repo}) that was not scanned",
            fix=f"Scan that repository at a pinned commit (`--dsocr-model {entry.repo} --dsocr-revision <commit>`), or copy "
            f"{entry.file} into this checkpoint and set auto_map to `{entry.reference.split('--', 1)[1]}`.",
            params={"repo": entry.repo, "reference": entry.reference, "entry": str(entry), "file": entry.file,
                    "local_reference": entry.reference.split("--", 1)[1]},
        )
    for m in code.modules:
        if m.scan.error:
            yield Finding(
                weigh(Status.FAIL),
                f"{PROBE}.unreadable",
                f"{m.file} cannot be parsed, so it was not checked: {m.scan.error}",
                detail="Importing it would fail the same way.",
                fix=f"Restore {m.file} from the checkpoint (it is damaged or written for another Python version).",
                params={"file": m.file, "error": m.scan.error},
            )


# ---------------------------------------------------------------- imports


def _transformers_imports(ctx, target, code: RemoteCode, weigh) -> Iterable[Finding]:
    refs = [r for r in code.external_imports() if r.top == "transformers"]
    installed = _installed_transformers()
    judged = ctx.facts.version("transformers") or installed
    replay = judged != installed  # replayed facts: only the version table can speak for that release
    release = f"transformers {judged}"
    where = release + (" (replayed: judged by the version facts)" if replay else "")

    uses: dict[tuple[str, str | None], list[ImportRef]] = defaultdict(list)
    for ref in refs:
        for name in ref.names or (None,):
            uses[(ref.module, name)].append(ref)
    missing: dict[tuple[str, str | None], tuple[symbols.Lookup, list[ImportRef]]] = {}
    broken: dict[tuple[str, str | None], tuple[symbols.Lookup, list[ImportRef]]] = {}
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
    fix = _version_fix(target, code, missing)
    fix_params = _version_fix_params(target, code, missing)
    if blocking:
        first_module, first_name = next(iter(blocking))
        first_lookup, first_refs = blocking[(first_module, first_name)]
        first_ref = next(r for r in first_refs if _runs_on_import(r))
        names = [_qualified(m, n) for m, n in blocking]
        yield Finding(
            weigh(Status.FAIL),
            f"{PROBE}.missing-symbol",
            f"The remote code imports names that {release} does not have: {', '.join(n.split('.')[-1] for n in names)}",
            detail=f"Importing {first_ref.file} stops at line {first_ref.line}: "
            + (first_lookup.reason or f"cannot import name '{first_name}' from '{first_module}'")
            + (f" (judged by the version facts: {where})" if replay else ""),
            fix=fix,
            table=_symbol_rows(blocking),
            source=symbols.REFERENCE,
            params={"symbols": names, "transformers": judged, "short": ", ".join(n.split('.')[-1] for n in names),
                    "file": first_ref.file, "line": first_ref.line,
                    "reason": first_lookup.reason or f"cannot import name '{first_name}' from '{first_module}'",
                    "replayed": judged if replay else None, **fix_params},
        )
    if optional:
        names = [_qualified(m, n) for m, n in optional]
        yield Finding(
            weigh(Status.WARN),
            f"{PROBE}.optional-symbol",
            f"Names missing from {release} on optional paths: {', '.join(n.split('.')[-1] for n in names)}",
            detail="These imports sit inside try/except ImportError, an `if is_..._available()` check, or a function: "
            "loading works, the code path that needs them does not.",
            fix=fix,
            table=_symbol_rows(optional),
            source=symbols.REFERENCE,
            params={"symbols": names, "transformers": judged, "short": ", ".join(n.split('.')[-1] for n in names),
                    **fix_params},
        )
    if broken:
        names = [_qualified(m, n) for m, n in broken]
        first_lookup = next(iter(broken.values()))[0]
        yield Finding(
            weigh(Status.FAIL),
            f"{PROBE}.transformers-broken",
            f"transformers {installed} has {', '.join(n.split('.')[-1] for n in names)}, but importing it fails here",
            detail=first_lookup.reason,
            fix=f"Repair the installation: `python -c \"import {next(iter(broken))[0]}\"` shows the error; "
            "usually torch and transformers do not match (see the environment probe's findings).",
            table=_symbol_rows(broken),
            params={"symbols": names, "transformers": installed, "short": ", ".join(n.split('.')[-1] for n in names),
                    "module": next(iter(broken))[0]},
        )
    if not missing and not broken:
        if not uses:
            title = "The remote code imports nothing from transformers"
        elif unchecked:
            title = (f"{len(uses) - len(unchecked)} of {len(uses)} names the remote code imports from transformers "
                     f"exist in {where}; {len(unchecked)} not checked")
        else:
            title = f"All {len(uses)} names the remote code imports from transformers exist in {where}"
        yield passed(
            f"{PROBE}.transformers-imports",
            title,
            evidence={"checked against": where, "names": ", ".join(sorted(_qualified(m, n) for m, n in uses)),
                      **({"not checked (not in the version facts)": ", ".join(unchecked)} if unchecked else {})},
            params={"count": len(uses), "transformers": judged},
        )


def _runs_on_import(ref: ImportRef) -> bool:
    return not ref.guarded and not ref.in_function


def _qualified(module: str, name: str | None) -> str:
    return f"{module}.{name}" if name else module


def _symbol_rows(found: dict) -> list[dict]:
    rows = []
    for (module, name), (lookup, refs) in found.items():
        fact = symbols.fact_for(module, name)
        rows.append({
            "name": _qualified(module, name),
            "imported at": ", ".join(r.where + (" (optional)" if not _runs_on_import(r) else "") for r in refs),
            "transformers that have it": f"{fact.present} ({fact.history})" if fact else "not in the version facts",
            "error": lookup.reason,
        })
    return rows


def _version_fix(target, code: RemoteCode, missing: dict) -> str:
    if _is_deepseek_ocr_v1(target, code):
        return f"`{symbols.V1_STACK_FIX}` (the stack DeepSeek-OCR v1's remote code was written for)."
    saved = target.config.get("transformers_version")
    facts = [symbols.fact_for(m, n) for m, n in missing]
    known = [f for f in facts if f is not None]
    if known:
        spec = SpecifierSet(",".join(f.present for f in known))
        hint = ""
        if saved and _version_in(saved, spec):
            hint = f", e.g. `pip install 'transformers=={saved}'` (the release config.json was saved with)"
        return f"`pip install 'transformers{spec}'`{hint}, or change the imports in the remote code."
    if saved:
        return f"`pip install 'transformers=={saved}'` (the release config.json was saved with), or change the imports in the remote code."
    return "Install the transformers release the remote code was written for, or change its imports to the names the installed release has."


def _version_fix_params(target, code: RemoteCode, missing: dict) -> dict:
    """The values :func:`_version_fix` words its advice with; None where that branch is not taken."""
    out = {"v1_stack": None, "spec": None, "saved_in_spec": None, "saved": None}
    if _is_deepseek_ocr_v1(target, code):
        out["v1_stack"] = symbols.V1_STACK_FIX
        return out
    saved = target.config.get("transformers_version")
    known = [f for f in (symbols.fact_for(m, n) for m, n in missing) if f is not None]
    if known:
        spec = SpecifierSet(",".join(f.present for f in known))
        out["spec"] = str(spec)
        out["saved_in_spec"] = saved if saved and _version_in(saved, spec) else None
    elif saved:
        out["saved"] = saved
    return out


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


def _packages(code: RemoteCode, weigh) -> Iterable[Finding]:
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
    if required:
        pips = [codescan.pip_name(top) for top in required]
        yield Finding(
            weigh(Status.FAIL),
            f"{PROBE}.missing-package",
            f"The remote code needs packages that are not installed: {', '.join(pips)}",
            detail="transformers checks every import of a remote-code file before loading it and refuses with "
            "'This modeling file requires the following packages that were not found in your environment'.",
            fix=f"`pip install {' '.join(pips)}`",
            table=_package_rows(required),
            params={"packages": pips, "names": ", ".join(pips), "pip_args": " ".join(pips)},
        )
    if optional:
        pips = [codescan.pip_name(top) for top in optional]
        yield Finding(
            weigh(Status.WARN),
            f"{PROBE}.optional-package",
            f"Optional packages of the remote code are not installed: {', '.join(pips)}",
            detail="Their imports are guarded (try/except ImportError or an `if is_..._available()` check): "
            "the code runs without them, on its fallback path.",
            fix=f"Optional: `pip install {' '.join(pips)}` to use the code path that needs them.",
            table=_package_rows(optional),
            params={"packages": pips, "names": ", ".join(pips), "pip_args": " ".join(pips)},
        )
    if not absent:
        yield passed(
            f"{PROBE}.packages",
            f"Every package the remote code imports is installed: {', '.join(sorted(present))}"
            if present else "The remote code imports only the standard library and transformers",
            params={"packages": sorted(present)},
        )


def _package_rows(found: dict[str, list[ImportRef]]) -> list[dict]:
    return [
        {"import": top, "pip package": codescan.pip_name(top), "imported at": ", ".join(r.where for r in refs),
         "guarded": "yes" if all(r.guarded for r in refs) else "no"}
        for top, refs in found.items()
    ]


# ---------------------------------------------------------------- hazards


def _hazards(ctx, code: RemoteCode, weigh) -> Iterable[Finding]:
    """One finding per kind of hazard that loading or training reaches, one warning for all the others.

    Obfuscated code is judged wherever it sits: hidden text defeats reading the call graph.
    """
    by_kind: dict[str, list[Hazard]] = defaultdict(list)
    off_path: list[Hazard] = []
    for hazard in code.hazards():
        if hazard.on_training_path or hazard.kind == codescan.OBFUSCATED:
            by_kind[hazard.kind].append(hazard)
        else:
            off_path.append(hazard)
    if not by_kind and not off_path:
        yield passed(
            f"{PROBE}.no-hazards",
            f"No network, process, eval, unpickling, file-write, obfuscation or hard-coded CUDA calls in {_files(len(code.modules))}",
        )
        return
    if off_path:
        yield _off_path_finding(off_path)
    torch_version = ctx.facts.version("torch")
    for kind in codescan.HAZARD_KINDS:
        found = by_kind.get(kind)
        if not found:
            continue
        rule = HAZARD_RULES[kind]
        status = max((weigh(_hazard_status(rule, h, torch_version)) for h in found), key=lambda s: s.rank)
        first = found[0]
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        fix = rule.fix.format(call=first.call, where=first.where)
        if len(found) > 1:
            fix += " The table lists every place."
        yield Finding(
            status,
            f"{PROBE}.{kind}",
            f"{rule.title}: `{first.call}` at {first.where}{more}",
            detail=_hazard_detail(kind, found, torch_version),
            fix=fix,
            table=[
                {"where": h.where, "call": h.call, "runs": _runs(h), "note": h.note, "code": h.code}
                for h in found
            ],
            params={"kind": kind, "count": len(found), "where": first.where, "call": first.call,
                    "more": len(found) - 1 if len(found) > 1 else None,
                    "on_import": ", ".join(h.where for h in found if not h.in_function) or None,
                    **_torch_load_params(kind, torch_version)},
        )


def _runs(h: Hazard) -> str:
    """``in the training step: DeepseekOCRModel.forward → .cuda()``: when, and along which calls."""
    if h.reach is None:
        return "when called" if h.in_function else "on import"
    runs = RUNS[h.reach.phase]
    if h.reach.guard:
        runs += f" only under `{h.reach.guard}`, which that path never sets"
    return f"{runs}: {h.reach.describe(h.call)}" if h.reach.path else runs


def _off_path_finding(found: list[Hazard]) -> Finding:
    """Risky calls that neither loading nor a training step reaches: they run only if a script calls them."""
    guarded = [h for h in found if h.reach and h.reach.guard]
    found = [h for h in found if h not in guarded] + guarded  # what only a script runs first; guarded loads last
    first = found[0]
    roots = list(dict.fromkeys(h.reach.path[0] for h in found if h.reach and h.reach.path and not h.reach.guard))
    kinds = list(dict.fromkeys(h.kind for h in found))
    more = len(found) - 1
    path = first.reach.describe(first.call) if first.reach else first.call
    detail = ("None of them runs on import, in from_pretrained or in a training step; they run only when "
              f"{', '.join(roots)} is called.") if roots else ""
    guard_text = None
    if guarded:
        g = guarded[0]
        guard_text = (f"{g.where} (`{g.call}`) is on the loading or training path ({' → '.join(g.reach.path)}), but only under "
                      f"`{g.reach.guard}`, and no call on that path sets it.")
        detail = f"{detail} {guard_text}".strip()
    return warn(
        f"{PROBE}.off-path",
        f"Risky calls outside loading and training: `{first.call}` in {path}" + (f" (+{more} more)" if more else ""),
        detail=detail,
        fix=(f"Training can start. Before calling {', '.join(roots)} yourself, review the listed lines (eval of "
             "generated text runs whatever the model writes; `ast.literal_eval` parses literals safely)."
             if roots else "Training can start. Review the listed lines before passing that argument yourself."),
        table=[{"kind": h.kind, "where": h.where, "call": h.call, "runs": _runs(h),
                "note": h.note, "code": h.code}
               for h in found],
        params={"count": len(found), "call": first.call, "path": path, "where": first.where,
                "more": more or None, "kinds": kinds, "roots": ", ".join(roots) or None,
                "guarded": guard_text and guarded[0].where, "guard": guard_text and guarded[0].reach.guard,
                "guard_call": guard_text and guarded[0].call,
                "guard_path": guard_text and " → ".join(guarded[0].reach.path)},
    )


def _hazard_status(rule: HazardRule, hazard: Hazard, torch_version: str | None) -> Status:
    if hazard.kind == codescan.TORCH_LOAD and hazard.note == "no weights_only argument" and _torch_loads_safely(torch_version):
        return Status.WARN  # safe by default on this torch, unsafe on an older one
    return rule.when_called if hazard.in_function else rule.at_import


def _torch_loads_safely(torch_version: str | None) -> bool:
    try:
        return torch_version is not None and Version(torch_version).release >= Version(TORCH_SAFE_LOAD_SINCE).release
    except InvalidVersion:
        return False


def _torch_load_params(kind: str, torch_version: str | None) -> dict:
    """For torch.load: the torch version, under the key that says whether it loads safely by default."""
    if kind != codescan.TORCH_LOAD:
        return {}
    safe = _torch_loads_safely(torch_version)
    return {"torch_safe": torch_version if safe else None, "torch_unsafe": None if safe else (torch_version or "?")}


def _hazard_detail(kind: str, found: list[Hazard], torch_version: str | None) -> str:
    on_import = [h.where for h in found if not h.in_function]
    parts = []
    if on_import:
        parts.append(f"Runs as soon as from_pretrained imports the file: {', '.join(on_import)}.")
    if kind == codescan.TORCH_LOAD:
        parts.append(
            f"torch {torch_version or '?'} "
            + ("defaults to weights_only=True, but an older torch unpickles arbitrary code here."
               if _torch_loads_safely(torch_version) else "unpickles arbitrary code here (weights_only defaults to True only from 2.6).")
        )
    return " ".join(parts)


# ---------------------------------------------------------------- trust


# Why a revision does not pin the code (pinning.Pin.why), as the finding's detail says it.
UNPINNED_WHY = {
    "none": "No --dsocr-revision was given.",
    "branch": "`{revision}` is a branch or tag name, not a commit: it can point at other code tomorrow.",
    "plain-folder": "{path} is neither a git checkout nor a hub-cache snapshot, so nothing shows which commit its "
                    "files come from: a commit hash given for it proves nothing.",
    "git-head": "The folder holds commit {head}, not {revision}.",
    "git-dirty": "The git checkout is at {revision}, but these remote-code files differ from that commit "
                 "(changed, untracked or ignored): {dirty}.",
    "digest-mismatch": "The remote-code files do not match {given}: their digest now is {digest}.",
}
UNPINNED_RISK = (" Without a verified pin the next download or edit can bring different code, which runs with your "
                 "permissions. The sha256 of every file scanned here is in the evidence.")


def _pin_finding(ctx, target, code: RemoteCode) -> Finding:
    pin = target.pin
    hashes = {m.file: m.sha256 for m in code.modules}
    evidence = {"revision": target.revision or "none", "resolved commit": pin.commit or target.commit or "unknown",
                "content digest (--dsocr-revision)": pin.digest, "sha256": hashes}
    if pin.pinned:
        if pin.how == pinning.CONTENT:
            title = f"Trusted remote code is pinned by content: {pin.digest}"
        elif pin.commit:
            title = f"Trusted remote code is pinned to commit {pin.commit} ({pin.how}, checked)"
        else:
            title = "Trusted remote code is the built-in demo's own"
        return passed(f"{PROBE}.pinned", title, evidence=evidence,
                      params={"revision": target.revision, "how": pin.how, "digest": pin.digest})
    allowed = ctx.options.allow_unpinned
    facts = {"revision": target.revision, "path": str(target.path), "digest": pin.digest, **dict(pin.facts)}
    why = UNPINNED_WHY[pin.why].format(**facts)
    if target.commit and pin.why != "git-head":
        fix = (f"Pin the commit scanned here: `--dsocr-revision {target.commit}`, and "
               f"`from_pretrained(..., revision=\"{target.commit}\", trust_remote_code=True)` in the training script.")
    else:
        fix = (f"Pin the files scanned here by content: `--dsocr-revision {pin.digest}` (`model.revision` in the "
               "training config); any change to them changes the digest.")
    return Finding(
        Status.WARN if allowed else Status.FAIL,
        f"{PROBE}.unpinned",
        f"Remote code is trusted without a verified pin (revision: {target.revision or 'none'})"
        + (" — accepted because --dsocr-allow-unpinned was given" if allowed else ""),
        detail=why + UNPINNED_RISK,
        fix=fix,
        evidence=evidence,
        params={"revision": target.revision, "revision_shown": target.revision or "none",
                "commit": target.commit if target.commit and pin.why != "git-head" else None,
                "path": str(target.path), "digest": pin.digest, "why": pin.why,
                "head": pin.fact("head"), "dirty": pin.fact("dirty"), "given": pin.fact("given"),
                "branch": target.revision if pin.why == "branch" else None,
                "plain_folder": str(target.path) if pin.why == "plain-folder" else None,
                "allowed_by": "--dsocr-allow-unpinned" if allowed else None},
    )
