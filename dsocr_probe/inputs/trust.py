"""May the checkpoint's own Python code be imported? The one decision, for every loader and probe.

Code is imported only when the user trusts it (``--dsocr-trust-remote-code``) and its revision pins the
files that were read (:mod:`dsocr_probe.inputs.pinning`), or the user accepts the risk (``--dsocr-allow-unpinned``).
A native model is built from transformers' own classes unless remote code is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..findings import Finding, fail, skip

TRUST_FIX = "Read the remote-code findings, then re-run with --dsocr-trust-remote-code --dsocr-revision <commit>."


@dataclass(frozen=True)
class Refusal:
    """Why remote code is not imported: ``untrusted`` or ``unpinned`` (``digest`` pins what was read)."""

    reason: str
    digest: str = ""


def refusal(options, target) -> Refusal | None:
    """Why the target's remote code must not be imported under these options (None: it may be)."""
    if not options.trust_remote_code:
        return Refusal("untrusted")
    if not target.pinned and not options.allow_unpinned:
        return Refusal("unpinned", target.pin.digest)
    return None


def import_refusal(options, target) -> Finding | None:
    """The remote-code probe's finding for a model whose code would be imported (None: it may be).

    Untrusted is a SKIP, trusted but unpinned (without --dsocr-allow-unpinned) a FAIL: the code is
    read, never run.
    """
    if not target.auto_map or (target.native and not options.trust_remote_code):
        return None  # no auto_map code, or transformers' own class is used
    why = refusal(options, target)
    if why is None:
        return None
    if why.reason == "untrusted":
        return skip("remote_code.untrusted", "Remote code is not imported without --dsocr-trust-remote-code",
                    fix=TRUST_FIX)
    return fail("remote_code.unpinned", "Remote code is not imported: the revision does not pin it verifiably",
                fix=f"Re-run with --dsocr-revision {why.digest} (the digest of the files read here), or "
                "--dsocr-allow-unpinned to accept the risk.",
                params={"pin": why.digest})
