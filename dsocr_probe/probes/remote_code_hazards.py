"""The remote-code probe's hazards: risky calls weighed by when they run (import, loading, a training step)."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from packaging.version import InvalidVersion, Version

from .. import codescan
from ..codescan import Hazard, RemoteCode
from ..findings import Finding, Status, passed, warn
from ..knowledge import hazards as hz
from ..messages import M, N_

# The finding code of each hazard kind.
HAZARD_CODES = {
    hz.NETWORK: "remote_code.network", hz.PROCESS: "remote_code.process", hz.EVAL: "remote_code.eval",
    hz.PICKLE: "remote_code.pickle", hz.TORCH_LOAD: "remote_code.torch-load", hz.FILE_WRITE: "remote_code.file-write",
    hz.OBFUSCATED: "remote_code.obfuscated", hz.CUDA: "remote_code.cuda",
}
# Where a hazard runs, as the findings' tables say it.
RUNS = {codescan.IMPORT: N_("on import"), codescan.LOAD: N_("in from_pretrained"),
        codescan.FORWARD: N_("in the training step"), codescan.INFERENCE: N_("only when called (not by training)"),
        codescan.UNREACHED: N_("never (nothing calls it)")}


def hazard_findings(ctx, code: RemoteCode, weigh) -> Iterable[Finding]:
    """One finding per kind of hazard that loading or training reaches, one warning for all the others.

    Obfuscated code is judged wherever it sits: hidden text defeats reading the call graph.
    """
    by_kind: dict[str, list[Hazard]] = defaultdict(list)
    off_path: list[Hazard] = []
    for hazard in code.hazards():
        if hazard.on_training_path or hazard.kind == hz.OBFUSCATED:
            by_kind[hazard.kind].append(hazard)
        else:
            off_path.append(hazard)
    if not by_kind and not off_path:
        yield passed("remote_code.no-hazards", params={"count": len(code.modules)})
        return
    if off_path:
        yield _off_path_finding(off_path)
    torch_version = ctx.facts.version("torch")
    for kind in hz.HAZARD_KINDS:
        found = by_kind.get(kind)
        if not found:
            continue
        status = max((weigh(_hazard_status(h, torch_version)) for h in found), key=lambda s: s.rank)
        first = found[0]
        on_import = [h.where for h in found if not h.in_function]
        # "one" or "more" places, whether any runs on import, and for torch.load whether this torch loads safely.
        parts = ["more" if len(found) > 1 else "one", "on-import" if on_import else ""]
        if kind == hz.TORCH_LOAD:
            parts.append("safe" if _torch_loads_safely(torch_version) else "unsafe")
        yield Finding(
            status,
            HAZARD_CODES[kind],
            "-".join(p for p in parts if p),
            table=[{N_("where"): h.where, N_("call"): h.call, N_("runs"): _runs(h), N_("note"): h.note_message,
                    N_("code"): _as_code(h.code)} for h in found],
            params={"kind": kind, "count": len(found), "where": first.where, "call": first.call,
                    "more": len(found) - 1, "on_import": ", ".join(on_import), "torch": torch_version or "?"},
        )


def _runs(h: Hazard) -> dict:
    """``in the training step: DeepseekOCRModel.forward → .cuda()``: when, and along which calls."""
    if h.reach is None:
        return M(N_("when called")) if h.in_function else M(RUNS[codescan.IMPORT])
    runs = M(RUNS[h.reach.phase])
    if h.reach.guard:
        runs = M(N_("%(runs)s only under `%(guard)s`, which that path never sets"), runs=runs, guard=h.reach.guard)
    return M(N_("%(runs)s: %(path)s"), runs=runs, path=h.reach.describe(h.call)) if h.reach.path else runs


def _off_path_finding(found: list[Hazard]) -> Finding:
    """Risky calls that neither loading nor a training step reaches: they run only if a script calls them."""
    guarded = [h for h in found if h.reach and h.reach.guard]
    found = [h for h in found if h not in guarded] + guarded  # what only a script runs first; guarded loads last
    first = found[0]
    roots = list(dict.fromkeys(h.reach.path[0] for h in found if h.reach and h.reach.path and not h.reach.guard))
    more = len(found) - 1
    g = guarded[0] if guarded else None
    variant = "-".join(p for p in ("more" if more else "one", "roots" if roots else "", "guard" if g else "") if p)
    return warn(
        "remote_code.off-path",
        variant,
        table=[{N_("kind"): h.kind, N_("where"): h.where, N_("call"): h.call, N_("runs"): _runs(h),
                N_("note"): h.note_message, N_("code"): _as_code(h.code)} for h in found],
        params={"count": len(found), "call": first.call, "where": first.where, "more": more,
                "path": first.reach.describe(first.call) if first.reach else first.call,
                "kinds": list(dict.fromkeys(h.kind for h in found)), "roots": ", ".join(roots),
                "guarded": g and g.where, "guard": g and g.reach.guard, "guard_call": g and g.call,
                "guard_path": g and " → ".join(g.reach.path)},
    )


def _hazard_status(hazard: Hazard, torch_version: str | None) -> Status:
    if hazard.kind == hz.TORCH_LOAD and hazard.note == codescan.NO_WEIGHTS_ONLY and _torch_loads_safely(torch_version):
        return Status.WARN  # safe by default on this torch, unsafe on an older one
    at_import, when_called = hz.SEVERITY[hazard.kind]
    return when_called if hazard.in_function else at_import


def _torch_loads_safely(torch_version: str | None) -> bool:
    try:
        return torch_version is not None and Version(torch_version).release >= Version(hz.TORCH_SAFE_LOAD_SINCE).release
    except InvalidVersion:
        return False


def _as_code(line: str) -> str:
    """A source line as a code span, so a report shows it as the code it is."""
    return f"`{line.replace('`', chr(39))}`" if line else line
