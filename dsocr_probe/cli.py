"""``dsocr-probe`` and ``python -m dsocr_probe``: the probes without typing ``pytest --dsocr-probe``.

Every argument goes to pytest after ``--dsocr-probe``, so the options, their ini twins, ``-k``/``-x``/``-v``
and the exit status are exactly those of ``pytest --dsocr-probe``.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

# What the exit status means, in the order pytest's own codes give them.
EXIT_CODES = (
    (0, "GO, or GO with warnings"),
    (1, "NO-GO (with --dsocr-strict also GO with warnings)"),
    (2, "interrupted: no verdict"),
    (4, "usage error: an option or the report folder is wrong"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(usage())
        return 0
    import pytest

    # With plugin autoloading switched off the entry point is not read; name the plugin instead
    # (naming it as well as autoloading it would register it twice).
    plugin = ["-p", "dsocr_probe.plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return int(pytest.main(["--dsocr-probe", *plugin, *args]))


def usage() -> str:
    from .plugin import probe_options

    lines = [
        "usage: dsocr-probe [options] [pytest options]",
        "",
        "Runs the fine-tuning probes (the same as `pytest --dsocr-probe`) and writes the Markdown report",
        "and its JSON twin. Without --dsocr-model the built-in demo target is probed.",
        "",
        "options (each also an ini setting dsocr_<name>):",
    ]
    for flag, help_ in probe_options():
        lines.append(f"  {flag:<28} {help_}")
    lines += ["", "Any pytest option works as well (-k, -x, -v, --junitxml ...; see `pytest --help`).", "",
              "exit status:"]
    lines += [f"  {code}  {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)
