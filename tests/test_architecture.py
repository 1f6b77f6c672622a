"""The layering holds: `lint-imports` keeps the contracts in pyproject.toml, and they cover every probe."""

import subprocess
import sys
from pathlib import Path

import pytest

from dsocr_probe.probes import PROBES

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") == len(contracts())


def test_every_probe_is_in_the_independence_contract():
    (independence,) = [c for c in contracts() if c["type"] == "independence"]
    assert independence["modules"] == [f"dsocr_probe.probes.{spec.module}" for spec in PROBES]


SERVICES = ("inputs", "model", "collators", "codescan", "knowledge", "demo")
FINDING_MAKERS = {"Finding", "passed", "warn", "fail", "skip", "ProbeStop", "probe_error", "finding_of"}


def test_services_never_make_findings():
    """Below the probes, a bad input is an InputError (code and params); only the probe layer makes findings."""
    import ast

    made = []
    for package in SERVICES:
        for path in sorted((ROOT / "dsocr_probe" / package).rglob("*.py")):
            if "standin/files" in path.as_posix():
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in FINDING_MAKERS:
                    made.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not made, "findings made below the probes:\n" + "\n".join(made)
