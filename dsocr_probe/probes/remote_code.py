"""Probe 3: the code ``trust_remote_code`` would run — read as text, never imported.

Lists the checkpoint's modules with their hashes, checks what they import against the
installed transformers and packages (:mod:`.remote_code_imports`), flags calls a model has no
business making (:mod:`.remote_code_hazards`), and requires a pinned commit before such code is
trusted.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .. import codescan
from ..codescan import AutoMapEntry, RemoteCode
from ..findings import Finding, Status, fail, passed, warn
from ..inputs import pinning
from ..inputs.target import download_command
from ..messages import M, N_
from .remote_code_hazards import hazard_findings
from .remote_code_imports import package_findings, transformers_findings

PROBE = "remote_code"

# Why a revision does not pin the code (pinning.Pin.why); worded with the target's revision and path.
UNPINNED_WHY = {
    "none": N_("No --dsocr-revision was given."),
    "branch": N_("`%(revision)s` is a branch or tag name, not a commit: it can point at other code tomorrow."),
    "plain-folder": N_("%(path)s is neither a git checkout nor a hub-cache snapshot, so nothing shows which commit "
                       "its files come from: a commit hash given for it proves nothing."),
    "git-head": N_("The folder holds commit %(head)s, not %(revision)s."),
    "git-dirty": N_("The git checkout is at %(revision)s, but these remote-code files differ from that commit "
                    "(changed, untracked or ignored): %(dirty)s."),
    "digest-mismatch": N_("The remote-code files do not match %(given)s: their digest now is %(digest)s."),
}
# How a pin was verified, as the remote_code.pinned variant names it.
PINNED_BY = {pinning.CONTENT: "content", pinning.SNAPSHOT: "snapshot", pinning.GIT: "git", pinning.DEMO: "demo"}


def run(ctx) -> Iterable[Finding]:
    target = ctx.needs(ctx.target, PROBE)
    code = codescan.collect(target.path)
    for error in code.config_errors:
        yield fail("remote_code.bad-auto-map", error.problem,
                   params={"file": error.file, "error": error.error, "key": error.key, "found": error.found})
    if not code.entries:
        yield passed(
            "remote_code.none",
            evidence={"model_type": target.model_type, N_("known to transformers"): _yes_no(target.native)},
        )
        return
    trusted = ctx.options.trust_remote_code
    # transformers runs auto_map code when trusted, even for a model_type it knows itself.
    active = trusted or not target.native
    weigh: Callable[[Status], Status] = (lambda s: s) if active else _only_if_trusted

    yield _modules_finding(target, code, trusted, active)
    yield from _broken_references(code, weigh)
    yield from transformers_findings(ctx, target, code, weigh)
    yield from package_findings(code, weigh)
    yield from hazard_findings(ctx, code, weigh)
    if trusted:
        yield _pin_finding(ctx, target, code)


def _only_if_trusted(status: Status) -> Status:
    """Without trust a natively known model never runs its auto_map code: warn, don't block."""
    return Status.WARN if status is Status.FAIL else status


def _yes_no(value: bool) -> dict:
    return M(N_("yes")) if value else M(N_("no"))


def _loader(by) -> str | dict:
    """What makes transformers load a module: the auto_map entry as written, or the import naming it."""
    return str(by) if isinstance(by, AutoMapEntry) else M(N_("import at %(where)s"), where=by.where)


def _revision(target) -> str | dict:
    return target.revision or M(N_("none"))


# ---------------------------------------------------------------- what would run


def _modules_finding(target, code: RemoteCode, trusted: bool, active: bool) -> Finding:
    files = [m.file for m in code.modules]
    table = [{N_("file"): m.file, "sha256": m.sha256, N_("bytes"): m.size, N_("loaded by"): _loader(m.reached_from)}
             for m in code.modules]
    pin = target.pin
    evidence = {
        "auto_map": "; ".join(str(e) for e in code.entries),
        "revision": _revision(target),
        N_("resolved commit"): pin.commit or target.commit or M(N_("unknown (no commit hash for this folder)")),
        N_("content digest (--dsocr-revision)"): pin.digest,
    }
    params = {"files": files, "count": len(files), "listed": ", ".join(files) or M(N_("nothing readable")),
              "digest": pin.digest, "model_type": target.model_type}
    if trusted:
        return passed("remote_code.modules", "trusted", table=table, evidence=evidence, params=params)
    if not active:
        return passed("remote_code.modules", "native", table=table, evidence=evidence, params=params)
    return warn("remote_code.modules", "untrusted", table=table, evidence=evidence, params=params)


def _broken_references(code: RemoteCode, weigh) -> Iterable[Finding]:
    if code.missing:
        files = [m.file for m in code.missing]
        yield Finding(
            weigh(Status.FAIL),
            "remote_code.missing-module",
            table=[{N_("missing file"): m.file, N_("referenced by"): _loader(m.referenced_from)} for m in code.missing],
            params={"files": files, "names": ", ".join(files), "download": download_command(),
                    "file_args": " ".join(files)},
        )
    for entry in code.external:
        yield Finding(
            weigh(Status.FAIL),
            "remote_code.external-module",
            params={"repo": entry.repo, "reference": entry.reference, "entry": str(entry), "file": entry.file,
                    "local_reference": entry.reference.split("--", 1)[1]},
        )
    for m in code.modules:
        if m.scan.error:
            yield Finding(weigh(Status.FAIL), "remote_code.unreadable", params={"file": m.file, "error": m.scan.error})


# ---------------------------------------------------------------- trust


def _pin_finding(ctx, target, code: RemoteCode) -> Finding:
    pin = target.pin
    evidence = {"revision": _revision(target),
                N_("resolved commit"): pin.commit or target.commit or M(N_("unknown")),
                N_("content digest (--dsocr-revision)"): pin.digest,
                "sha256": {m.file: m.sha256 for m in code.modules}}
    if pin.pinned:
        return passed("remote_code.pinned", PINNED_BY[pin.how], evidence=evidence,
                      params={"revision": target.revision, "how": pin.how, "digest": pin.digest, "commit": pin.commit})
    allowed = ctx.options.allow_unpinned
    # A commit is worth naming when the folder shows it (a hub snapshot) and it is the one scanned.
    by_commit = bool(target.commit) and pin.why != "git-head"
    variant = ("accepted" if allowed else "refused") + ("-commit" if by_commit else "-digest")
    reason = M(UNPINNED_WHY[pin.why], revision=target.revision, path=str(target.path), digest=pin.digest,
               head=pin.fact("head"), dirty=pin.fact("dirty"), given=pin.fact("given"))
    return Finding(
        Status.WARN if allowed else Status.FAIL,
        "remote_code.unpinned",
        variant,
        evidence=evidence,
        params={"revision": target.revision, "revision_shown": _revision(target), "why": pin.why, "reason": reason,
                "commit": target.commit, "path": str(target.path), "digest": pin.digest,
                "head": pin.fact("head"), "dirty": pin.fact("dirty"), "given": pin.fact("given")},
    )
