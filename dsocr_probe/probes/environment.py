"""Probe 1: the Python packages a LoRA run depends on, and the combinations known to break."""

from __future__ import annotations

import importlib.metadata
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..inputs import facts as facts_mod
from ..findings import Finding, fail, passed
from ..knowledge.rules import matching
from ..messages import M, N_

# Without these, nothing trains: (distribution, why it is needed).
REQUIRED = (
    ("torch", N_("the model runs on it")),
    ("transformers", N_("loads the model and runs the Trainer")),
    ("peft", N_("adds the LoRA adapters")),
    ("accelerate", N_("the Trainer cannot start without it")),
    ("tokenizers", N_("fast tokenizers")),
)


def run(ctx) -> Iterable[Finding]:
    env = ctx.facts
    versions = env.versions
    yield passed(
        "environment.versions",
        table=[{N_("package"): dist, N_("version"): v or M(N_("not installed"))} for dist, v in versions.items()],
        params={"python": env.python, "os": env.os},
    )
    for dist, why in REQUIRED:
        if versions.get(dist) is None:
            yield fail("environment.missing", params={"dist": dist, "why": M(why)})
    for rule in matching(versions):
        params = {d: versions[d] for d in rule.when}
        yield Finding(rule.status, rule.code, source=rule.source, params=params, evidence=dict(params))
    pair = list(_torchvision_pair(versions))
    yield from pair
    if not pair:  # a wrong release pair already explains a failing import
        yield from _torchvision_import(env)
    yield from _flash_attn_import(env)
    yield from _declared_requirements(versions)
    yield from _processor_needs(ctx, versions)


def _processor_needs(ctx, versions: dict[str, str | None]) -> Iterable[Finding]:
    """Packages the checkpoint's processor needs by its family (torchvision for the Qwen-VL video
    processors on transformers 5.x), named here so the processor probe does not repeat the blocker."""
    from ..knowledge import families
    from ..model import loading
    from ..findings import ProbeStop

    target = getattr(ctx, "target", None)
    if not callable(target) or ctx.options.model is None:
        return
    try:
        fam = families.family_for(target().config)
    except ProbeStop:  # a target that does not resolve is the next probes' finding
        return
    transformers_version = versions.get("transformers")
    try:
        modern = transformers_version is not None and Version(transformers_version).major >= 5
    except InvalidVersion:
        modern = False
    for dist in fam.processor_needs:
        if versions.get(dist) is not None or not modern:
            continue
        use = loading.torchvision_for_torch(versions.get("torch") or "2.0") if dist == "torchvision" else dist
        ctx.__dict__.setdefault("_environment_reported", set()).add(dist)
        yield fail(
            "environment.processor-needs",
            params={"family": fam.name, "dist": dist, "use": use, "torch": versions.get("torch"),
                    "transformers": transformers_version},
        )


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
            source="torchvision release compatibility table",
            params={"torchvision": tv, "torch": torch, "built_for": f"2.{wanted}", "use": f"0.{torch_v.minor + 15}.*"},
        )


def build_of(version: str | None, cuda: str | None = None) -> str | None:
    """What a torch-family wheel was built for, from its local version part (`+cu130`, `+cpu`,
    `+rocm6.2`), else from the CUDA torch reports (PyPI's default wheels carry no local part)."""
    try:
        local = Version(version).local if version else None
    except InvalidVersion:
        local = None
    if local and local.startswith("cu") and local[2:].isdigit():
        return f"CUDA {local[2:-1]}.{local[-1]}"
    if local == "cpu":
        return "CPU"
    if local and local.startswith("rocm"):
        return f"ROCm {local[4:]}"
    if local:
        return local
    return f"CUDA {cuda}" if cuda else None


def _torchvision_import(env) -> Iterable[Finding]:
    """`import torchvision` failed in a fresh interpreter: its compiled operators do not fit torch."""
    if env.import_errors.get("torchvision") is None:
        return
    error = env.import_errors["torchvision"]
    tv, torch = env.versions.get("torchvision"), env.versions.get("torch")
    tv_build = build_of(tv)
    torch_build = build_of(torch, env.torch_cuda) or "CPU"
    mismatch = tv_build is not None and tv_build != torch_build
    try:
        use = f"0.{Version(torch).minor + 15}.*"
    except (InvalidVersion, TypeError):
        use = None
    yield fail(
        "environment.torchvision-import",
        ("builds" if mismatch else "fails") + ("" if use else "-any"),
        evidence={"torchvision": tv, "torch": torch, N_("error"): error},
        params={"torchvision": tv, "torch": torch, "tv_build": tv_build if mismatch else None,
                "torch_build": torch_build, "error": error, "use": use},
    )


def _flash_attn_import(env) -> Iterable[Finding]:
    """flash-attn installed but not importable: transformers and remote code import it when it is there."""
    error = env.import_errors.get("flash-attn")
    if error is None:
        return
    fa, torch = env.versions.get("flash-attn"), env.versions.get("torch")
    yield fail(
        "environment.flash-attn-import",
        "symbol" if "undefined symbol" in error else "fails",
        evidence={"flash-attn": fa, "torch": torch, N_("error"): error},
        params={"flash_attn": fa, "torch": torch, "torch_minor": _minor(torch), "error": error,
                "symbol": "undefined symbol" if "undefined symbol" in error else None},
    )


def _minor(version: str | None) -> str | None:
    try:
        v = Version(version)
    except (InvalidVersion, TypeError):
        return version
    return f"{v.major}.{v.minor}"


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
                    params={"dist": dist, "requirement": str(req), "have": have, "version": version, "name": req.name,
                            "specifier": str(req.specifier)},
                )
