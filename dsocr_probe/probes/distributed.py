"""Probe 10: the same training run on several processes, under ``torch.distributed``.

With ``--dsocr-nproc N`` (or ``nproc_per_node: N`` at the top of the training config) the run the step
probe checks is started on N processes by torch's own launcher (gloo on the CPU, NCCL on GPUs), so the
configured Trainer wraps the model in DistributedDataParallel as a multi-GPU launch does (see
:mod:`dsocr_probe.model.distributed_launch` and :mod:`dsocr_probe.run.distributed_worker`). From what each rank
wrote it establishes that every rank started and finished; that the adapters' gradients after DDP's
sync, and the updated weights, agree across ranks; which adapters got no gradient on some rank (MoE
experts no token of that rank's batch was routed to, adapters under ``torch.no_grad()``) and what
``ddp_find_unused_parameters`` makes of them; the rows each rank's sampler gives against the dataset;
the effective batch; the time per step of each rank. FSDP and DeepSpeed settings are read first (see
:mod:`dsocr_probe.inputs.engines`), before any weights load.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Iterable

from ..model import distributed_launch, loading, lora
from ..inputs import engines
from ..findings import Finding, ProbeStop, Status, cause_params, fail, passed, skip, warn
from ..knowledge.trial_settings import probe_overrides
from ..messages import M, N_
from .engine_findings import engine_findings

STEPS = 3  # DDP's check of the previous step's reduction runs at the next forward: at least 2
DEFAULT_LIMIT_S = 600.0
REDUCTION_ERROR = "Expected to have finished reduction in the prior iteration"
TOLERANCE = 1e-5  # relative: the all-reduced gradients are the same numbers on every rank


def world_size(ctx, cfg) -> tuple[int, Any]:
    """The number of processes and who asked for it (an option's name or a message): --dsocr-nproc, else the
    config's ``nproc_per_node``."""
    if ctx.options.nproc is not None:
        return ctx.options.nproc, "--dsocr-nproc"
    asked = getattr(cfg, "nproc_per_node", None) if cfg is not None else None
    return (asked, M(N_("nproc_per_node in the training config"))) if asked else (0, "")


def run(ctx) -> Iterable[Finding]:
    ctx.needs(ctx.target, "distributed")
    cfg = ctx.unless_broken(ctx.train_config)
    training = dict(cfg.training) if cfg is not None else {}
    # Only ZeRO stage 3 asks whether the model has a vision tower (from the weightless skeleton's module names).
    vision_tower = bool(training.get("deepspeed")) and bool(lora.vision_modules(_module_names(ctx)))
    found = engines.read(training, cfg.path.parent if cfg is not None else None, vision_tower=vision_tower)
    yield from engine_findings(found, training)
    nproc, asked_by = world_size(ctx, cfg)
    if nproc < 2:
        raise ProbeStop(skip("distributed.off", "one-process" if nproc == 1 else "no-world-size",
                             params={"nproc": nproc or None}))
    if any(i.kind in ("unreadable", "unknown-fsdp-option", "precision", "fsdp-and-deepspeed") for i in found.issues):
        raise ProbeStop(skip("distributed.not-launched"))
    data = ctx.needs(ctx.dataset, "distributed")
    if data is None or data.train is None or not ctx.usable_rows(data.train.rows):
        raise ProbeStop(skip("input.no-dataset"))
    device = loading.default_device(ctx)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        import torch

        have = torch.cuda.device_count()
        if have < nproc:
            raise ProbeStop(skip("distributed.gpus", params={"nproc": nproc, "have": have}))
    with tempfile.TemporaryDirectory(prefix="dsocr-distributed-out-") as output_dir:
        overrides = probe_overrides(output_dir, STEPS, training, configured=cfg is not None)
        overrides["max_steps"] = (STEPS, "a few optimizer steps: DDP checks each step's reduction at the next one")
        engine = None
        if found.deepspeed is not None and not engines.installed("deepspeed"):
            overrides["deepspeed"] = (None, "DeepSpeed is not installed: the step ran under plain DDP")
            engine = skip("distributed.deepspeed-not-installed")
        spec = {"options": _options(ctx), "overrides": overrides}
        outcome = distributed_launch.launch(spec, nproc, _limit(ctx), device=device)
    if engine is not None:
        yield engine
    _stop_if_not_built(outcome)
    yield from outcome_findings(outcome, backend, asked_by, training, fsdp=bool(found.fsdp))


def _stop_if_not_built(outcome) -> None:
    """A rank that could not build the run (untrusted code, no weights, a LoRA section peft refuses) meets what the
    step probe already reports: this probe then says it was not checked, with that cause (the rank's code, variant
    and params, worded here in the report's language)."""
    stops = [d["stop"] for _, d in sorted(outcome.ranks.items()) if d.get("stop")]
    if not stops:
        return
    stop = stops[0]
    cause = Finding(Status(stop.get("status") or "fail"), stop["code"], stop.get("variant", ""),
                    params=stop.get("params") or {})
    raise ProbeStop(skip("distributed.prerequisite", params=cause_params(cause)))


def outcome_findings(outcome, backend: str, asked_by: str, training: dict, fsdp: bool = False) -> Iterable[Finding]:
    """The findings of one launch, from what the ranks and the launcher reported."""
    ranks = outcome.ranks
    world = outcome.nproc
    evidence = {N_("backend"): backend, N_("world size"): world, N_("asked by"): asked_by,
                N_("launcher"): "torch.distributed.run", N_("wrapped in"): _first(ranks, "wrapper") or "?",
                "find_unused_parameters": _first(ranks, "find_unused"),
                N_("wall time"): M(N_("%(seconds)s s"), seconds=f"{outcome.elapsed_s:.1f}")}
    table = [_rank_row(r, ranks.get(r), outcome.where.get(r)) for r in range(world)]
    if outcome.survivors:
        yield fail("distributed.left-running",
                   params={"count": len(outcome.survivors), "pids": ", ".join(map(str, outcome.survivors))})
    if not outcome.ok:
        yield from _failure(outcome, backend, table, evidence, fsdp and backend == "gloo")
        yield from _unused(ranks, training, failed=True)
        return
    steps = min(len(ranks[r].get("times") or []) for r in range(world))
    yield passed("distributed.ranks", table=table, evidence=evidence,
                 params={"world": world, "backend": backend, "steps": steps})
    wrapper = str(evidence["wrapped in"])
    sharded = "FSDP" in wrapper or "FullyShard" in wrapper
    if fsdp and not sharded:
        yield skip("distributed.fsdp-not-applied", params={"wrapper": wrapper, "backend": backend})
    if sharded:  # each rank holds its own shard of every gradient: there is nothing to compare
        yield skip("distributed.in-sync-sharded", params={"wrapper": wrapper})
    else:
        yield _agreement(ranks, world)
    yield from _unused(ranks, training, failed=False)
    yield from _rows(ranks, world, training)


def _failure(outcome, backend: str, table: list, evidence: dict, fsdp_on_cpu: bool) -> Iterable[Finding]:
    ranks = outcome.ranks
    errors = {r: d["error"] for r, d in ranks.items() if d.get("error")}
    reduction = {r: e for r, e in errors.items() if REDUCTION_ERROR in e}
    if reduction:
        rank, error = min(reduction.items())
        quoted = _quote(error)
        yield fail("distributed.unused-parameters", table=table, evidence=evidence,
                   params={"rank": rank, "error": quoted.splitlines()[0], "quote": quoted})
        return
    if fsdp_on_cpu and errors and not outcome.timed_out:
        rank, error = min(errors.items())
        yield skip("distributed.fsdp-cpu", table=table, evidence=evidence, params={"error": error})
        return
    if outcome.timed_out:
        silent = [r for r in range(outcome.nproc) if not ranks.get(r, {}).get("finished")]
        # A rank whose innermost frame is torch's own waits in a collective for the one that is stuck elsewhere.
        stuck = [r for r in silent if outcome.where.get(r) and not outcome.where[r].startswith("torch/")] or silent
        where = outcome.where.get(stuck[0]) if len(stuck) == 1 else None
        waited = len(stuck) < len(silent)
        variant = ("where-waited" if waited else "where") if where else ("waited" if waited else "stopped")
        yield fail("distributed.rank-timeout", variant, table=table, evidence=evidence,
                   params={"world": outcome.nproc, "limit": outcome.limit_s, "ranks": ", ".join(map(str, stuck)),
                           "stuck": len(stuck), "where": where})
        return
    failed = outcome.failed_rank if outcome.failed_rank is not None else min(errors, default=None)
    own = errors.get(failed) if failed is not None else None
    if failed is None and not ranks:
        tail = "\n".join(outcome.launcher_log.strip().splitlines()[-12:])
        yield fail("distributed.launch-failed", evidence=evidence,
                   params={"returncode": outcome.returncode, "log": tail})
        return
    if failed is None:
        variant = "no-rank"
    else:
        variant = "error" if own else "exitcode" if outcome.failed_exitcode is not None else "stopped"
    yield fail("distributed.rank-failed", variant, table=table, evidence=evidence,
               params={"rank": failed, "error": own, "exitcode": outcome.failed_exitcode,
                       "returncode": outcome.returncode,
                       "report": outcome.report or (ranks.get(failed, {}).get("traceback") or "")[-1500:]})


def _agreement(ranks: dict, world: int) -> Finding:
    """After DDP's all-reduce every rank holds the same gradient, and after the step the same weights."""
    worst, where = 0.0, ""
    for key in ("grads", "weights"):
        reference = ranks[0].get(key) or {}
        for r in range(1, world):
            other = ranks[r].get(key) or {}
            for name in set(reference) | set(other):
                a, b = reference.get(name), other.get(name)
                if (a is None) != (b is None):
                    return _differ(name, key, r, None)
                if a is None:
                    continue
                for x, y in zip(a, b):
                    gap = abs(x - y) / max(1e-12, abs(x), abs(y))
                    if gap > worst:
                        worst, where = gap, name
                if worst > TOLERANCE:
                    return _differ(where, key, r, worst)
    count = len(ranks[0].get("grads") or {})
    return passed("distributed.in-sync", evidence={N_("largest relative difference"): f"{worst:.1e}"},
                  params={"count": count, "world": world})


def _differ(name: str, key: str, rank: int, gap: float | None) -> Finding:
    what = M(N_("gradient after the sync")) if key == "grads" else M(N_("weight after the steps"))
    return fail("distributed.out-of-sync", "differs" if gap is not None else "one-rank",
                params={"name": _short(name), "rank": rank, "what": what,
                        "gap": f"{gap:.2g}" if gap is not None else None})


def _unused(ranks: dict, training: dict, failed: bool) -> Iterable[Finding]:
    """Adapters whose gradient this rank's own backward never produced (read before the sync)."""
    per_rank = {r: sorted(set(d.get("adapters") or []) - set(d.get("reached") or []))
                for r, d in ranks.items() if d.get("reached") is not None}
    modules = sorted({_module(n) for names in per_rank.values() for n in names})
    if not modules:
        if not failed and per_rank:
            # Only where no expert is adapted: the experts a batch reaches change from batch to batch.
            experts = any(".experts." in n for d in ranks.values() for n in d.get("adapters") or [])
            find_unused = _first(ranks, "find_unused") and not experts
            yield passed("distributed.all-used", "flag-unneeded" if find_unused else "used",
                         params={"find_unused": bool(find_unused)})
        return
    table = [{N_("rank"): r, N_("adapters without gradient"): len({_module(n) for n in names}),
              N_("modules"): ", ".join(sorted({_module(n) for n in names})[:6]) + (" ..." if len(names) > 12 else "")}
             for r, names in sorted(per_rank.items())]
    # The experts themselves (``...experts.12``), each with its adapted projections.
    experts = sorted({m.split(".experts.")[0] + ".experts." + m.split(".experts.")[1].split(".")[0]
                      for m in modules if ".experts." in m})
    shown = ", ".join(modules[:8]) + (f", ... (+{len(modules) - 8})" if len(modules) > 8 else "")
    params = {"count": len(modules), "experts": len(experts) or None, "modules": shown}
    if failed:
        yield warn("distributed.no-gradient-modules", table=table, params=params)
        return
    yield warn("distributed.unused-found", "experts" if experts else "modules", table=table, params=params)


def _rows(ranks: dict, world: int, training: dict) -> Iterable[Finding]:
    """Rows per rank from the Trainer's own (distributed) sampler, and the effective batch."""
    rows = int(ranks[0].get("rows") or 0)
    batch = _whole(training.get("per_device_train_batch_size"), 8)
    accumulation = _whole(training.get("gradient_accumulation_steps"), 1)
    plans = {r: ranks[r].get("plan") for r in range(world)}
    table = []
    for r, plan in plans.items():
        seen = [i for b in plan or [] for i in b]
        table.append({N_("rank"): r, N_("batches per epoch"): len(plan) if plan is not None else "?",
                      N_("rows"): len(seen), N_("distinct"): len(set(seen)),
                      N_("batch sizes"): ", ".join(str(len(b)) for b in plan or []) or "—",
                      N_("row indices"): ", ".join(map(str, seen[:12])) + (" ..." if len(seen) > 12 else "")})
    sampler = ranks[0].get("sampler") or "?"
    evidence = {N_("sampler"): sampler, N_("training rows"): rows, N_("per device batch"): batch,
                N_("gradient accumulation"): accumulation, N_("world size"): world}
    empty = [r for r, plan in plans.items() if plan is not None and not plan]
    params = {"rows": rows, "world": world, "batch": batch}
    if empty:
        yield fail("distributed.rank-empty", table=table, evidence=evidence,
                   params={**params, "ranks": ", ".join(map(str, empty)), "empty": len(empty), "want": world * batch})
    elif rows < world * batch:
        repeated = sum(r["rows"] - r["distinct"] for r in table) + max(0, sum(r["distinct"] for r in table) - rows)
        yield warn("distributed.rows-short", table=table, evidence=evidence,
                   params={**params, "want": world * batch, "fit": max(1, rows // world), "repeated": repeated})
    else:
        counts = sorted({r["rows"] for r in table})
        repeats = max(0, sum(r["rows"] for r in table) - rows)
        variant = ("even" if len(counts) == 1 else "uneven") + ("-repeats" if repeats else "")
        yield passed("distributed.rows", variant, table=table, evidence=evidence,
                     params={**params, "per_rank": counts[0] if len(counts) == 1 else None,
                             "shares": ", ".join(f"{r['rank']}: {r['rows']}" for r in table), "repeats": repeats})
    effective = batch * accumulation * world
    steps = math.ceil(math.ceil(rows / (batch * world)) / accumulation) if rows else 0
    if rows and effective > rows:
        yield warn("distributed.effective-batch-large",
                   params={**params, "accumulation": accumulation, "effective": effective})
    else:
        yield passed("distributed.effective-batch",
                     params={**params, "accumulation": accumulation, "effective": effective, "steps": steps})


# ---------------------------------------------------------------- helpers


def _rank_row(rank: int, data: dict | None, where: str | None = None) -> dict[str, Any]:
    if not data:
        return {N_("rank"): rank, N_("state"): M(N_("never started")), N_("steps"): 0, N_("time / step"): "—",
                N_("first loss"): "—"}
    extra = {N_("stopped in"): where} if where else {}
    times = data.get("times") or []
    steady = times[1:] or times
    state = (M(N_("finished")) if data.get("finished") else
             M(N_("failed")) if data.get("error") else M(N_("did not finish")))
    losses = data.get("losses") or []
    return {N_("rank"): rank, N_("state"): state, N_("steps"): len(times),
            N_("time / step"): M(N_("%(seconds)s s"), seconds=f"{min(steady):.3f}") if steady else "—",
            N_("first loss"): f"{losses[0]:.4f}" if losses else "—", **extra}


def _quote(error: str) -> str:
    """DDP's message, with the parameter list cut to its first names."""
    lines = []
    for line in error.splitlines():
        if len(line) > 400:
            line = line[:400] + " ..."
        lines.append(line)
    return "\n".join(lines[:8])


def _module(name: str) -> str:
    from ..model.gradients import strip_peft_prefix

    return strip_peft_prefix(name.split(".lora_")[0])


def _short(name: str) -> str:
    return _module(name) if ".lora_" in name else name


def _first(ranks: dict, key: str) -> Any:
    return next((d[key] for _, d in sorted(ranks.items()) if d.get(key) is not None), None)


def _whole(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return default
    return int(value)


def _limit(ctx) -> float:
    """Below the probe's own --dsocr-timeout, so the launch ends (and cleans up) before the probe is abandoned."""
    return ctx.options.timeout_s * 0.75 if ctx.options.timeout_s > 0 else DEFAULT_LIMIT_S


def _options(ctx) -> dict[str, Any]:
    o = ctx.options
    return {"model": o.model, "revision": o.revision, "trust_remote_code": o.trust_remote_code,
            "allow_unpinned": o.allow_unpinned, "data": str(o.data) if o.data else None,
            "train_config": str(o.train_config) if o.train_config else None, "device": o.device}


def _module_names(ctx) -> list[str]:
    try:
        return list(ctx.skeleton().linear_names)
    except Exception:  # ProbeStop included: the model API probe reports why there is no skeleton
        return []

