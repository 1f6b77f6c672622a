"""The training-config probe's data side: remove_unused_columns, the collator, and what DataLoader workers must
receive by pickling (a helper of that probe)."""

from __future__ import annotations

import pickle
import types
from typing import Any, Iterable

from ..findings import Finding, InputError, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_
from ..model import trainrun
from .context import finding_of


def collator_and_workers(ctx, cfg) -> Iterable[Finding]:
    t = cfg.training
    if t.get("remove_unused_columns", True) is not False:
        # scripts/train_lora.py (and so the step probe) sets it itself: a warning for scripts of the team's own.
        yield warn("train_config.remove-unused-columns")
    workers = int(t.get("dataloader_num_workers", 0))
    spawn = ctx.facts.mp_start_method == "spawn"
    spec = cfg.data.get("collator")
    if not spec:
        if workers:
            yield from _builder_and_dataset_pickle(ctx, workers)
        return
    try:
        collator = trainrun.resolve_object(spec, cfg)
    except Exception as exc:
        yield fail("train_config.collator-import", params={"spec": spec, "error": f"{type(exc).__name__}: {exc}"})
        return
    problem = pickle_problem(collator)
    evidence = {N_("collator"): spec, "dataloader_num_workers": workers, N_("start method"): ctx.facts.mp_start_method,
                "os": ctx.facts.os}
    if problem is None:
        yield passed("train_config.collator-pickles", evidence=evidence, params={"spec": spec})
    elif workers and spawn:
        yield fail("train_config.collator-pickle", "spawn", evidence=evidence,
                   params={"workers": workers, "problem": problem, "os": ctx.facts.os})
    else:
        yield warn("train_config.collator-pickle", "fork", evidence=evidence,
                   params={"problem": problem, "workers": workers})


def _builder_and_dataset_pickle(ctx, workers: int) -> Iterable[Finding]:
    """With workers and no collator of the team's own, the training script hands the DataLoader
    the verified batch builder and an ExampleDataset: pickle both, as a spawned worker will."""
    from ..model import loading
    from ..model.training import ExampleDataset

    try:
        builder = loading.builder_for(ctx)
    except (ProbeStop, InputError) as stopped:
        cause = stopped.finding if isinstance(stopped, ProbeStop) else finding_of(stopped)
        yield skip("train_config.workers", "not-checked", params={"workers": workers, "cause": cause.ref()})
        return
    try:
        data = ctx.dataset()
    except ProbeStop:
        data = None  # the dataset probe reports it
    train = data.train if data is not None else None
    parts = {type(builder).__name__: builder}
    if train is not None:
        parts["ExampleDataset"] = ExampleDataset(train.rows)
    problems = {name: problem for name, obj in parts.items() if (problem := pickle_problem(obj))}
    evidence = {N_("pickled"): ", ".join(parts), "dataloader_num_workers": workers,
                N_("start method"): ctx.facts.mp_start_method}
    if problems:
        listed = [M(N_("%(name)s: %(problem)s"), name=name, problem=problem) for name, problem in problems.items()]
        yield fail("train_config.workers-pickle", evidence=evidence, params={"workers": workers, "problem": listed})
        return
    yield passed("train_config.workers", evidence=evidence, params={"workers": workers})


def pickle_problem(obj: Any) -> Any:
    """Why a spawned DataLoader worker could not receive ``obj`` (the pickling error, or a message), or None."""
    try:
        pickle.dumps(obj)
    except Exception as exc:  # pickle's own words, quoted as it prints them
        return "`" + f"{type(exc).__name__}: {exc}".replace("`", "'") + "`"
    owner = obj if isinstance(obj, (types.FunctionType, type)) else type(obj)
    if getattr(owner, "__module__", "") == "__main__":
        return M(N_("it is defined in __main__, which a spawned worker re-imports without running the script's body"))
    return None
