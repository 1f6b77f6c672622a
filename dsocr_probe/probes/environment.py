"""Probe 1: the Python packages a LoRA run depends on, and the combinations known to break."""

from __future__ import annotations

import importlib.metadata
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import facts as facts_mod
from ..findings import Finding, fail, passed, warn
from ..rules import matching

# Without these, nothing trains: (distribution, why it is needed).
REQUIRED = (
    ("torch", "the model runs on it"),
    ("transformers", "loads the model and runs the Trainer"),
    ("peft", "adds the LoRA adapters"),
    ("accelerate", "the Trainer cannot start without it"),
    ("tokenizers", "fast tokenizers"),
)


def run(ctx) -> Iterable[Finding]:
    env = ctx.facts
    versions = env.versions
    yield passed(
        "environment.versions",
        f"Python {env.python} on {env.os}",
        table=[{"package": dist, "version": v or "not installed"} for dist, v in versions.items()],
    )
    for dist, why in REQUIRED:
        if versions.get(dist) is None:
            yield fail(
                "environment.missing",
                f"{dist} is not installed ({why})",
                fix=f"`pip install {dist}` (for torch, the build matching your CUDA driver).",
                params={"dist": dist},
            )
    for rule in matching(versions):
        params = {d: versions[d] for d in rule.when}
        yield Finding(
            rule.status, rule.code, rule.title.format(**params), detail=rule.detail, fix=rule.fix,
            source=rule.source, params=params, evidence={d: versions[d] for d in rule.when},
        )
    yield from _torchvision_pair(versions)
    yield from _declared_requirements(versions)


def _torchvision_pair(versions: dict[str, str | None]) -> Iterable[Finding]:
    """torchvision 0.N is built for torch 2.(N-15) only; any other pair fails at `import torchvision`."""
    tv, torch = versions.get("torchvision"), versions.get("torch")
    if not tv or not torch:
        return
    try:
        tv_v, torch_v = Version(tv), Version(torch)
    except InvalidVersion:
        return
    if tv_v.major != 0 or torch_v.major != 2:
        return
    wanted = tv_v.minor - 15
    if torch_v.minor != wanted:
        yield fail(
            "environment.torchvision-mismatch",
            f"torchvision {tv} is built for torch 2.{wanted}, but torch {torch} is installed",
            detail="torchvision's compiled operators load only against the torch release they were built for; "
            "the DeepSeek-OCR remote code imports torchvision.",
            fix=f"`pip install torchvision==0.{torch_v.minor + 15}.*` from the same index as your torch build.",
            source="torchvision release compatibility table",
            params={"torchvision": tv, "torch": torch, "built_for": f"2.{wanted}", "use": f"0.{torch_v.minor + 15}.*"},
        )


def _declared_requirements(versions: dict[str, str | None]) -> Iterable[Finding]:
    """What each installed package itself declares (Requires-Dist), checked like `pip check` would."""
    for dist, version in versions.items():
        if version is None or facts_mod.installed_version(dist) != version:
            continue  # replayed versions: their metadata is not on this machine
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = versions.get(canonicalize_name(req.name))
            if have is None or not req.specifier:
                continue
            if not req.specifier.contains(have, prereleases=True):
                yield fail(
                    "environment.requirement-conflict",
                    f"{dist} {version} requires {req.name}{req.specifier}, but {req.name} {have} is installed",
                    fix=f"`pip install '{req.name}{req.specifier}'` (or a {dist} release that accepts {req.name} {have}).",
                    params={"dist": dist, "requirement": str(req), "have": have, "version": version, "name": req.name,
                            "specifier": str(req.specifier)},
                )
