"""May the checkpoint's own Python code be imported? The one decision, for every loader and probe.

Code is imported only when the user trusts it (``--dsocr-trust-remote-code``) and its revision pins the
files that were read (:mod:`dsocr_probe.inputs.pinning`), or the user accepts the risk (``--dsocr-allow-unpinned``).
A native model is built from transformers' own classes unless remote code is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..findings import InputError, Status
from ..messages import N_

# What to do when remote code is not trusted (the remote-code probe and the loaders say it).
TRUST_FIX = N_("Read the remote-code findings, then re-run with --dsocr-trust-remote-code --dsocr-revision <commit>.")


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


def import_refusal(options, target) -> InputError | None:
    """What loading the config or the model raises instead of importing the target's remote code (None: it may).

    Untrusted is a SKIP, trusted but unpinned (without --dsocr-allow-unpinned) a FAIL: the code is
    read, never run.
    """
    if not target.auto_map or (target.native and not options.trust_remote_code):
        return None  # no auto_map code, or transformers' own class is used
    why = refusal(options, target)
    if why is None:
        return None
    if why.reason == "untrusted":
        return InputError("remote_code.untrusted", status=Status.SKIP)
    return InputError("remote_code.unpinned", "not-imported", pin=why.digest)
