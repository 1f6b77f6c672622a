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
from .engine_findings import engine_findings

STEPS = 3  # DDP's check of the previous step's reduction runs at the next forward: at least 2
DEFAULT_LIMIT_S = 600.0
REDUCTION_ERROR = "Expected to have finished reduction in the prior iteration"
TOLERANCE = 1e-5  # relative: the all-reduced gradients are the same numbers on every rank


def world_size(ctx, cfg) -> tuple[int, str]:
    """The number of processes and who asked for it: --dsocr-nproc, else the config's ``nproc_per_node``."""
    if ctx.options.nproc is not None:
        return ctx.options.nproc, "--dsocr-nproc"
    asked = getattr(cfg, "nproc_per_node", None) if cfg is not None else None
    return (asked, "nproc_per_node in the training config") if asked else (0, "")


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
        raise ProbeStop(skip(
            "distributed.off", "Not run: one process" if nproc == 1 else "Not run: no world size asked for",
            fix="Pass `--dsocr-nproc N` (ini `dsocr_nproc`), or put `nproc_per_node: N` at the top of the training "
            "config, to run the step on N processes as `torchrun --nproc_per_node N` would.",
            params={"nproc": nproc or None}))
    if any(i.kind in ("unreadable", "unknown-fsdp-option", "precision", "fsdp-and-deepspeed") for i in found.issues):
        raise ProbeStop(skip("distributed.not-launched", "Not run: the FSDP / DeepSpeed settings above fail first",
                             fix="Correct them, then run again."))
    data = ctx.needs(ctx.dataset, "distributed")
    if data is None or data.train is None or not ctx.usable_rows(data.train.rows):
        raise ProbeStop(skip("input.no-dataset", "No dataset to check",
                             fix="Pass --dsocr-data DIR (train/ and val/ with metadata.json) or set data.train_dir in "
                             "the training config."))
    device = loading.default_device(ctx)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        import torch

        have = torch.cuda.device_count()
        if have < nproc:
            raise ProbeStop(skip("distributed.gpus", f"Not run: {nproc} processes asked for, {have} GPUs visible",
                                 fix=f"Run on a machine with {nproc} GPUs, or pass `--dsocr-nproc {have}` "
                                 "(or `--dsocr-device cpu` for a gloo run).", params={"nproc": nproc, "have": have}))
    with tempfile.TemporaryDirectory(prefix="dsocr-distributed-out-") as output_dir:
        overrides = probe_overrides(output_dir, STEPS, training, configured=cfg is not None)
        overrides["max_steps"] = (STEPS, "a few optimizer steps: DDP checks each step's reduction at the next one")
        engine = None
        if found.deepspeed is not None and not engines.installed("deepspeed"):
            overrides["deepspeed"] = (None, "DeepSpeed is not installed: the step ran under plain DDP")
            engine = skip("distributed.deepspeed-not-installed",
                          "DeepSpeed is not installed: its step was not run (the checks above were)",
                          detail="The N-process step ran under plain DDP, with `deepspeed` removed for it.",
                          fix="`pip install deepspeed` on the training machine and run again to run ZeRO itself.")
        spec = {"options": _options(ctx), "overrides": overrides}
        outcome = distributed_launch.launch(spec, nproc, _limit(ctx), device=device)
    if engine is not None:
        yield engine
    _stop_if_not_built(outcome)
    yield from outcome_findings(outcome, backend, asked_by, training, fsdp=bool(found.fsdp))


def _stop_if_not_built(outcome) -> None:
    """A rank that could not build the run (untrusted code, no weights, a LoRA section peft refuses) meets what the
    step probe already reports: this probe then says it was not checked, with that cause."""
    stops = [d["stop"] for _, d in sorted(outcome.ranks.items()) if d.get("stop")]
    if not stops:
        return
    cause = Finding(Status(stops[0].get("status", "fail")), stops[0].get("code", ""), stops[0].get("title", ""),
                    detail=stops[0].get("detail", ""), fix=stops[0].get("fix", ""), params=stops[0].get("params") or {})
    raise ProbeStop(skip("distributed.prerequisite", f"Not checked: {cause.title}", detail=cause.detail,
                         fix=cause.fix, params=cause_params(cause)))


def outcome_findings(outcome, backend: str, asked_by: str, training: dict, fsdp: bool = False) -> Iterable[Finding]:
    """The findings of one launch, from what the ranks and the launcher reported."""
    ranks = outcome.ranks
    world = outcome.nproc
    evidence = {"backend": backend, "world size": world, "asked by": asked_by, "launcher": "torch.distributed.run",
                "wrapped in": _first(ranks, "wrapper") or "?", "find_unused_parameters": _first(ranks, "find_unused"),
                "wall time": f"{outcome.elapsed_s:.1f} s"}
    table = [_rank_row(r, ranks.get(r), outcome.where.get(r)) for r in range(world)]
    if outcome.survivors:
        yield fail("distributed.left-running", f"{len(outcome.survivors)} process(es) of the run survived its end",
                   detail="pids: " + ", ".join(map(str, outcome.survivors)),
                   fix="End them (`kill -9 <pid>`); this is a bug of the probe, please report it.",
                   params={"count": len(outcome.survivors), "pids": ", ".join(map(str, outcome.survivors))})
    if not outcome.ok:
        yield from _failure(outcome, backend, table, evidence, fsdp and backend == "gloo")
        yield from _unused(ranks, training, failed=True)
        return
    steps = min(len(ranks[r].get("times") or []) for r in range(world))
    yield passed("distributed.ranks", f"{world} ranks ({backend}) started and finished {steps} optimizer steps each",
                 table=table, evidence=evidence, params={"world": world, "backend": backend, "steps": steps})
    wrapper = str(evidence["wrapped in"])
    sharded = "FSDP" in wrapper or "FullyShard" in wrapper
    if fsdp and not sharded:
        yield skip("distributed.fsdp-not-applied",
                   f"FSDP was not applied here: the Trainer wrapped the model in {wrapper} on {backend}",
                   detail="accelerate turns FSDP on only for GPUs and other accelerators, not for processes on the "
                   "CPU: the step ran under plain DDP. The FSDP settings were read and checked above.",
                   fix="Run the probe with `--dsocr-nproc N` on the GPU machine to run the sharded step itself.",
                   params={"wrapper": wrapper, "backend": backend})
    if sharded:  # each rank holds its own shard of every gradient: there is nothing to compare
        yield skip("distributed.in-sync-sharded", f"Gradients are sharded by {wrapper}: not compared across ranks",
                   params={"wrapper": wrapper})
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
        yield fail("distributed.unused-parameters",
                   f"DDP stops at the second step on rank {rank}: {REDUCTION_ERROR} before starting a new one",
                   detail=quoted,
                   fix="Set `ddp_find_unused_parameters: true` in the training section (DDP then looks for them "
                   "every step, at the cost of one more pass over the autograd graph), or take LoRA off the modules "
                   "that get no gradient (listed below).",
                   table=table, evidence=evidence, params={"rank": rank, "error": quoted.splitlines()[0]})
        return
    if fsdp_on_cpu and errors and not outcome.timed_out:
        rank, error = min(errors.items())
        yield skip("distributed.fsdp-cpu", f"FSDP could not run on the CPU (gloo) here: {error}",
                   detail="The static FSDP checks above still hold; the sharded step needs GPUs (NCCL).",
                   fix="Run the probe with `--dsocr-nproc N` on the GPU machine.", table=table, evidence=evidence,
                   params={"error": error})
        return
    if outcome.timed_out:
        silent = [r for r in range(outcome.nproc) if not ranks.get(r, {}).get("finished")]
        # A rank whose innermost frame is torch's own waits in a collective for the one that is stuck elsewhere.
        stuck = [r for r in silent if outcome.where.get(r) and not outcome.where[r].startswith("torch/")] or silent
        yield fail("distributed.rank-timeout",
                   f"The {outcome.nproc}-process run did not finish within {outcome.limit_s:g} s: rank(s) "
                   f"{', '.join(map(str, stuck))} stopped"
                   + (f" in {outcome.where[stuck[0]]}" if len(stuck) == 1 and outcome.where.get(stuck[0]) else "")
                   + (", the others wait for it" if len(stuck) < len(silent) else ""),
                   detail="Each rank's last step is in the table; a rank that stops while the others wait in a "
                   "collective (all-reduce) hangs the whole run. Every process of it was ended.",
                   fix="Look at that rank's log (run with `-s`); raise --dsocr-timeout if the machine is only slow.",
                   table=table, evidence=evidence,
                   params={"world": outcome.nproc, "limit": outcome.limit_s, "ranks": ", ".join(map(str, stuck)),
                           "where": outcome.where.get(stuck[0]) if len(stuck) == 1 else None,
                           "waiting": len(stuck) < len(silent) or None})
        return
    failed = outcome.failed_rank if outcome.failed_rank is not None else min(errors, default=None)
    own = errors.get(failed) if failed is not None else None
    if failed is None and not ranks:
        tail = "\n".join(outcome.launcher_log.strip().splitlines()[-12:])
        yield fail("distributed.launch-failed", f"torch.distributed.run did not start the ranks (exit {outcome.returncode})",
                   detail=tail, fix="Read the launcher's message above; check that this torch has torch.distributed.",
                   evidence=evidence, params={"returncode": outcome.returncode})
        return
    how = own or (f"exit code {outcome.failed_exitcode}" if outcome.failed_exitcode is not None else "it stopped")
    yield fail("distributed.rank-failed", f"Rank {failed} failed: {how}",
               detail=outcome.report or (ranks.get(failed, {}).get("traceback") or "")[-1500:],
               fix="The launcher's report above names the rank and its exit; a rank killed by a signal "
               "(exit code -9) ran out of memory or was ended from outside. Fix what it names and run again.",
               table=table, evidence=evidence,
               params={"rank": failed, "error": own, "exitcode": outcome.failed_exitcode})


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
    return passed("distributed.in-sync", f"The {count} adapter tensors' gradients after DDP's sync and their updated "
                  f"weights agree on all {world} ranks", evidence={"largest relative difference": f"{worst:.1e}"},
                  params={"count": count, "world": world})


def _differ(name: str, key: str, rank: int, gap: float | None) -> Finding:
    what = "gradient after the sync" if key == "grads" else "weight after the steps"
    how = f"relative difference {gap:.2g}" if gap is not None else "present on one rank only"
    return fail("distributed.out-of-sync", f"The ranks disagree: {_short(name)}'s {what} differs on rank {rank} ({how})",
                detail="DDP all-reduces every gradient, so all ranks must hold the same numbers; they do not: a "
                "parameter DDP does not manage, or code that changes weights on one rank only.",
                fix="Do not change parameters or requires_grad after the Trainer is made; keep `modules_to_save` "
                "and the LoRA targets the same on every rank.",
                params={"name": _short(name), "rank": rank, "what": key,
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
            yield passed("distributed.all-used", "Every adapter got a gradient on every rank"
                         + ("; `ddp_find_unused_parameters` could be false (DDP then skips its search each step)"
                            if find_unused else ""), params={"find_unused": bool(find_unused) or None})
        return
    table = [{"rank": r, "adapters without gradient": len({_module(n) for n in names}),
              "modules": ", ".join(sorted({_module(n) for n in names})[:6]) + (" ..." if len(names) > 12 else "")}
             for r, names in sorted(per_rank.items())]
    # The experts themselves (``...experts.12``), each with its adapted projections.
    experts = sorted({m.split(".experts.")[0] + ".experts." + m.split(".experts.")[1].split(".")[0]
                      for m in modules if ".experts." in m})
    shown = ", ".join(modules[:8]) + (f" and {len(modules) - 8} more" if len(modules) > 8 else "")
    params = {"count": len(modules), "experts": len(experts) or None, "modules": shown}
    if failed:
        yield warn("distributed.no-gradient-modules", f"{len(modules)} adapted modules got no gradient on some rank",
                   detail=shown, fix="These are what DDP waited for: MoE experts no token of that rank's batch was "
                   "routed to, or modules off the loss's path.", table=table, params=params)
        return
    yield warn("distributed.unused-found",
               f"{len(modules)} adapted modules got no gradient on some rank"
               + (f" (in {len(experts)} MoE experts no token was routed to)" if experts else "")
               + "; DDP handles them because `ddp_find_unused_parameters` is true",
               detail=f"{shown}. With the flag, DDP walks the autograd graph after every forward to find them: one "
               "more pass per step, and no overlap of their gradients' communication with the backward.",
               fix="Keep `ddp_find_unused_parameters: true` while these are adapted; MoE routing changes per batch, "
               "so removing the flag stops the run at the next step where a rank routes around an expert.",
               table=table, params=params)


def _rows(ranks: dict, world: int, training: dict) -> Iterable[Finding]:
    """Rows per rank from the Trainer's own (distributed) sampler, and the effective batch."""
    rows = int(ranks[0].get("rows") or 0)
    batch = _whole(training.get("per_device_train_batch_size"), 8)
    accumulation = _whole(training.get("gradient_accumulation_steps"), 1)
    plans = {r: ranks[r].get("plan") for r in range(world)}
    table = []
    for r, plan in plans.items():
        seen = [i for b in plan or [] for i in b]
        table.append({"rank": r, "batches per epoch": len(plan) if plan is not None else "?",
                      "rows": len(seen), "distinct": len(set(seen)),
                      "batch sizes": ", ".join(str(len(b)) for b in plan or []) or "—",
                      "row indices": ", ".join(map(str, seen[:12])) + (" ..." if len(seen) > 12 else "")})
    sampler = ranks[0].get("sampler") or "?"
    evidence = {"sampler": sampler, "training rows": rows, "per device batch": batch,
                "gradient accumulation": accumulation, "world size": world}
    empty = [r for r, plan in plans.items() if plan is not None and not plan]
    params = {"rows": rows, "world": world, "batch": batch}
    if empty:
        yield fail("distributed.rank-empty", f"{rows} rows on {world} ranks at batch {batch}: rank(s) "
                   f"{', '.join(map(str, empty))} get no batch", table=table, evidence=evidence,
                   fix=f"Use at least {world * batch} training rows, a smaller `per_device_train_batch_size`, or "
                   "`dataloader_drop_last: false`.",
                   params={**params, "ranks": ", ".join(map(str, empty)), "want": world * batch})
    elif rows < world * batch:
        repeated = sum(r["rows"] - r["distinct"] for r in table) + max(0, sum(r["distinct"] for r in table) - rows)
        yield warn("distributed.rows-short",
                   f"{rows} rows on {world} ranks at batch {batch}: one step wants {world * batch}, so the "
                   f"sampler repeats rows to fill the ranks", table=table, evidence=evidence,
                   detail=f"Each rank's share of one epoch is in the table ({repeated} rows are repeats).",
                   fix=f"Lower `per_device_train_batch_size` to {max(1, rows // world)} or add training rows.",
                   params={**params, "want": world * batch, "fit": max(1, rows // world), "repeated": repeated})
    else:
        counts = sorted({r["rows"] for r in table})
        share = (f"{counts[0]} per rank" if len(counts) == 1
                 else ", ".join(f"rank {r['rank']}: {r['rows']}" for r in table))
        repeats = max(0, sum(r["rows"] for r in table) - rows)
        yield passed("distributed.rows", f"{rows} rows over {world} ranks: {share} per epoch"
                     + (f" ({repeats} repeated to even out the ranks)" if repeats else ""),
                     table=table, evidence=evidence, params={**params, "per_rank": counts[0] if len(counts) == 1 else None,
                             "shares": ", ".join(f"{r['rank']}: {r['rows']}" for r in table), "repeats": repeats or None})
    effective = batch * accumulation * world
    steps = math.ceil(math.ceil(rows / (batch * world)) / accumulation) if rows else 0
    formula = f"{batch} per device x {accumulation} accumulation x {world} ranks = {effective}"
    if rows and effective > rows:
        yield warn("distributed.effective-batch-large", f"Effective batch {formula}, more than the {rows} training rows",
                   detail="Every optimizer step repeats rows, and an epoch is one step: the learning-rate schedule "
                   "and `num_train_epochs` count far fewer updates than on one process.",
                   fix="Lower `gradient_accumulation_steps` or `per_device_train_batch_size` so that the effective "
                   f"batch is at most {rows}.", params={**params, "accumulation": accumulation, "effective": effective})
    else:
        yield passed("distributed.effective-batch", f"Effective batch {formula}: {steps} optimizer steps per epoch",
                     params={**params, "accumulation": accumulation, "effective": effective, "steps": steps})


# ---------------------------------------------------------------- helpers


def _rank_row(rank: int, data: dict | None, where: str | None = None) -> dict[str, Any]:
    if not data:
        return {"rank": rank, "state": "never started", "steps": 0, "time / step": "—", "first loss": "—"}
    extra = {"stopped in": where} if where else {}
    times = data.get("times") or []
    steady = times[1:] or times
    state = "finished" if data.get("finished") else ("failed" if data.get("error") else "did not finish")
    losses = data.get("losses") or []
    return {"rank": rank, "state": state, "steps": len(times),
            "time / step": f"{min(steady):.3f} s" if steady else "—",
            "first loss": f"{losses[0]:.4f}" if losses else "—", **extra}


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

