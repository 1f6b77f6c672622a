"""Probe: will the configured step fit on the card? Answered from config.json alone, before any weights load.

The model is the weightless meta-device instance (the skeleton the model-API probe reads), in the
run's dtype, wrapped with LoRA as the ``lora`` section says; the batch is the worst one the run will
see (the split's largest rows, or without data the longest sample the mode and ``max_length``
allow), made by the verified batch builder. One forward and backward run under a ledger of every
storage's lifetime (:mod:`dsocr_probe.model.memory_forecast`), with the configured mixed precision,
gradient checkpointing, optimizer and gradient accumulation. The answer: the peak with its parts,
against the card in hand, the replayed machine's, or ``--dsocr-gpu-memory``; the largest batch that
fits; when it does not fit, the cheapest change that does, each with its own forecast; and a table
for common cards.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..model import loading, memory_batch
from ..model import memory_forecast as mf
from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_

HEADROOM = 0.9  # a need above 90 % of the card is tight: other processes, a display, allocator spikes
CARDS_GIB = (8, 12, 16, 24, 48, 80)


def run(ctx) -> Iterable[Finding]:
    ctx.needs(ctx.target, "memory")
    sk = ctx.needs(ctx.skeleton, "memory")
    if sk.model is None:
        raise ProbeStop(skip("memory.no-model", params={"error": sk.build_error}))
    cfg = ctx.unless_broken(ctx.train_config)
    training = dict(cfg.training) if cfg is not None else {}
    plan, dtype_source = _plan(ctx, cfg, training)
    batch = _whole(training.get("per_device_train_batch_size", 8), 1) if cfg is not None else 1
    capacity, card = _capacity(ctx)
    builder = ctx.needs(lambda: loading.builder_for(ctx, None, plan.dtype), "memory")
    tokenizer = _tokenizer(ctx)
    with tempfile.TemporaryDirectory(prefix="dsocr-memory-") as tmp:
        worst = _worst(ctx, builder, tokenizer, batch, Path(tmp))
        try:
            model = mf.prepare(sk.model, dict(cfg.lora) if cfg is not None and cfg.lora else {}, plan)
            main = _forecast(model, builder, worst.rows, plan, worst)
            one = main if batch == 1 else _forecast(model, builder, worst.rows[:1], plan, worst)
            two = main if batch == 2 else _forecast(model, builder, (worst.rows * 2)[:2], plan, worst)
        except mf.ForecastError as exc:
            raise ProbeStop(skip("memory.not-run", params={"error": exc.message})) from exc
        evidence = _evidence(ctx, plan, dtype_source, worst, main, batch, card)
        table = [{N_("part"): name, N_("memory"): _gib(value)} for name, value in main.parts()]
        params = {"batch": batch, "length": main.length, "need": _gib(main.need), "peak": _gib(main.peak),
                  "need_bytes": main.need}
        if capacity is None:
            yield skip("memory.no-card", table=table, evidence=evidence, params=params)
            yield _cards_finding(one, two, main, batch, judged=False)
            return
        largest = mf.linear_in_batch(one, two, int(capacity * HEADROOM))
        evidence[N_("largest batch that fits at this length")] = M(
            N_("%(largest)d (linear through the forecasts at batch 1 and 2)"), largest=largest)
        params.update(have=_gib(capacity), card=card, share=f"{main.need / capacity:.0%}", largest=largest)
        if main.need <= capacity * HEADROOM:
            yield passed("memory.fits", table=table, evidence=evidence, params=params)
        else:
            changes = _changes(model, builder, worst, plan, batch, capacity, largest)
            if changes:
                evidence[N_("single changes")] = [_change_line(c, capacity) for c in changes]
            fitting = next((c for c in changes if c["need"] <= capacity * HEADROOM), None)
            variant = "change" if fitting else "no-change"
            if fitting:
                params.update(change=fitting["change"], change_need=_gib(fitting["need"]))
            code, make = ("memory.tight", warn) if main.need <= capacity else ("memory.does-not-fit", fail)
            yield make(code, variant, table=table, evidence=evidence, params=params)
        yield _cards_finding(one, two, main, batch, judged=True)


def _change_line(change: dict[str, Any], capacity: int) -> dict:
    if change["need"] <= capacity * HEADROOM:
        return M(N_("%(change)s: %(need)s needed, fits"), change=change["change"], need=_gib(change["need"]))
    return M(N_("%(change)s: %(need)s needed, does not fit"), change=change["change"], need=_gib(change["need"]))


def _cards_finding(one: mf.StepForecast, two: mf.StepForecast, main: mf.StepForecast, batch: int,
                   judged: bool) -> Finding:
    """The same run on common cards (a table beside the verdict; a SKIP where no card was judged)."""
    rows = []
    smallest = None
    for gib in CARDS_GIB:
        capacity = gib * mf.GIB
        fits = main.need <= capacity * HEADROOM
        verdict = M(N_("fits")) if fits else M(N_("tight")) if main.need <= capacity else M(N_("does not fit"))
        if fits and smallest is None:
            smallest = gib
        rows.append({N_("card"): f"{gib} GiB", N_("the configured batch"): verdict,
                     N_("largest batch at this length"): mf.linear_in_batch(one, two, int(capacity * HEADROOM))})
    make = passed if judged else skip
    return make("memory.cards", "fits-from" if smallest is not None else "fits-none", table=rows,
                params={"batch": batch, "smallest": smallest, "largest_card": CARDS_GIB[-1]})


# ---------------------------------------------------------------- the run's settings


def _plan(ctx, cfg, training: dict) -> tuple[mf.RunPlan, Any]:
    import torch

    named = cfg.model.get("torch_dtype", cfg.model.get("dtype")) if cfg is not None else None
    if named == "auto":
        named = ctx.target().config.get("torch_dtype", ctx.target().config.get("dtype")) or "float32"
    if named:
        dtype, source = ctx.needs(lambda: loading.parse_dtype(named, "model.torch_dtype"), "memory"), "model.torch_dtype"
    elif torch.cuda.is_available():
        dtype, source = loading.model_dtype(ctx, "cuda"), M(N_("as the step probe loads it on this GPU"))
    else:
        dtype, source = torch.bfloat16, M(N_("bfloat16, as the step probe loads it on a GPU with bf16 (no GPU here)"))
    plan = mf.plan_for(training, dtype)
    return plan, source


def _capacity(ctx) -> tuple[int | None, str]:
    """--dsocr-gpu-memory, else the first CUDA device of this (or the replayed) machine."""
    if ctx.options.gpu_memory:
        return int(ctx.options.gpu_memory), "--dsocr-gpu-memory"
    facts = ctx.facts
    if facts.cuda_available and facts.devices:
        device = facts.devices[0]
        return int(device.total_memory_bytes), device.name
    return None, ""


def _worst(ctx, builder, tokenizer, batch: int, folder: Path) -> memory_batch.WorstCase:
    data = ctx.dataset() if _has_dataset(ctx) else None
    if data is not None and data.train is not None and data.train.rows:
        worst = memory_batch.from_dataset(ctx.usable_rows(data.train.rows), ctx.image_facts, builder, tokenizer, batch)
        if worst is not None:
            return worst
    if tokenizer is None:
        raise ProbeStop(skip("memory.no-batch"))
    return memory_batch.synthesized(folder, builder, tokenizer, batch)


def _forecast(model, builder, rows: list, plan: mf.RunPlan, worst) -> mf.StepForecast:
    try:
        batch = builder([r.example() for r in rows])
    except Exception as exc:  # the batch probe names the row and the reason
        raise ProbeStop(skip("memory.batch-refused", params={"error": loading.error_words(exc)})) from exc
    length = int(batch["input_ids"].shape[-1]) if "input_ids" in batch else (worst.tokens or 0)
    return mf.forecast(model, batch, plan, length=length, slots=worst.slots or 0)


# ---------------------------------------------------------------- what would fit


def _changes(model, builder, worst, plan: mf.RunPlan, batch: int, capacity: int, largest: int) -> list[dict[str, Any]]:
    """:func:`_each_change`, stopping at a change whose weightless step fails (its forecast is not known)."""
    out: list[dict[str, Any]] = []
    try:
        for change in _each_change(model, builder, worst, plan, batch, capacity, largest):
            out.append(change)
    except mf.ForecastError:
        pass  # the changes forecast so far are listed; the verdict above stands on the configured run
    return out


def _each_change(model, builder, worst, plan: mf.RunPlan, batch: int, capacity: int, largest: int):
    """Single changes, cheapest first, each with its own forecast: checkpointing (costs time, not results),
    a smaller batch with more accumulation (same effective batch), a mode with fewer image tokens, a shorter
    max_length (drops or splits the longest samples)."""
    if not plan.checkpointing:
        f = _forecast(model, builder, worst.rows, plan.replace(checkpointing=True), worst)
        yield {"change": "`gradient_checkpointing: true`", "need": f.need}
    if batch > 1:  # the largest smaller batch that fits: from the linear estimate down, each forecast for real
        for smaller in range(max(1, min(batch - 1, largest)), max(0, min(batch - 1, largest) - 4), -1):
            accumulation = math.ceil(batch * plan.accumulation / smaller)
            f = _forecast(model, builder, worst.rows[:smaller], plan.replace(accumulation=accumulation), worst)
            yield {"change": f"`per_device_train_batch_size: {smaller}`, `gradient_accumulation_steps: "
                             f"{accumulation}`", "need": f.need}
            if f.need <= capacity * HEADROOM:
                break
    for mode in _smaller_modes(builder):
        other = _with_mode(builder, mode)
        try:
            f = _forecast(model, other, worst.rows, plan, worst)
        except ProbeStop:
            continue
        yield {"change": f"`data.mode: {mode}`", "need": f.need}
        if f.need <= capacity * HEADROOM:
            break
    tokenizer = getattr(builder, "tokenizer", None)
    if tokenizer is not None and worst.slots is not None and worst.target and worst.target > 64:
        for share in (0.5, 0.25):
            target = max(16, int(worst.target * share))
            f = _forecast(model, builder, memory_batch.with_target(worst.rows, tokenizer, target), plan, worst)
            yield {"change": M(N_("`data.max_length: %(length)d` (longer samples split)"), length=worst.slots + target),
               "need": f.need}
            if f.need <= capacity * HEADROOM:
                break


def _smaller_modes(builder) -> list[str]:
    """DeepSeek-OCR v1 modes with fewer image tokens than the builder's, largest first."""
    mode = getattr(builder, "mode", None)
    if mode is None or not hasattr(mode, "base_size"):
        return []
    from ..collators.deepseek_ocr_v1_layout import MODES

    cost = lambda m: (m.crop_mode, m.base_size, m.image_size)  # noqa: E731
    return [name for name, m in sorted(MODES.items(), key=lambda kv: cost(kv[1]), reverse=True)
            if cost(m) < cost(mode) and name != mode.name]


def _with_mode(builder, mode: str):
    return type(builder)(builder.tokenizer, mode=mode, dtype=builder.dtype, max_length=builder.max_length,
                         prompt=builder.prompt_as_written)


def _evidence(ctx, plan, dtype_source: Any, worst, main: mf.StepForecast, batch: int, card: str) -> dict:
    reads = ", ".join(f"{k} x{v}" for k, v in main.reads.items() if k != "fused attention")
    handled = [M(N_("MoE gates: %(count)d top-k calls answered with balanced routing (expert (t*k+j) mod E, T*k/E "
                    "tokens each)"), count=main.routed) if main.routed else M(N_("no MoE gate met")),
               M(N_("values read from weight-derived tensors (.item(), nonzero): %(reads)s"), reads=reads) if reads
               else M(N_("values read from weight-derived tensors (.item(), nonzero): none")),
               M(N_("masked_scatter_ and the inputs' own masks and counts run on the real batch tensors")),
               M(N_("attention: the fused kernel's memory (output and log-sum-exp), not the math path's"))]
    none = M(N_("none"))
    return {
        N_("model"): type(ctx.skeleton().model).__name__,
        N_("weights"): M(N_("none read: meta device, %(dtype)s (%(source)s)"), dtype=_name(plan.dtype), source=dtype_source),
        N_("mixed precision"): _name(plan.autocast) if plan.autocast else none,
        N_("gradient checkpointing"): M(N_("on")) if plan.checkpointing else M(N_("off")),
        N_("optimizer"): M(N_("%(optim)s (state counted by its rule)"), optim=plan.optim),
        N_("gradient accumulation"): plan.accumulation, N_("batch"): batch, N_("worst sample"): worst.source,
        N_("tokens per sample"): main.length,
        N_("image slots + prompt per sample"): worst.slots if worst.slots is not None else "?",
        N_("card"): card or none, N_("peak falls in"): M(main.phase), N_("data-dependent code"): handled,
        N_("allowance"): M(N_("%(mib)d MiB for the CUDA context and workspaces + %(slack)s of the peak for the "
                              "allocator's fragmentation"), mib=mf.CONTEXT_BYTES // 1024**2, slack=f"{mf.SLACK:.0%}"),
    }


# ---------------------------------------------------------------- helpers


def _has_dataset(ctx) -> bool:
    try:
        return ctx.dataset() is not None
    except ProbeStop:
        return False  # the dataset probe reports it; the forecast falls back to the longest sample allowed


def _whole(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return default
    return int(value)


def _gib(n: float) -> str:
    return f"{n / mf.GIB:.2f} GiB"


def _name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _tokenizer(ctx):
    # The tokenizer counts the prompt's tokens; without one the forecast takes the builder's own count.
    return ctx.unless_broken(ctx.tokenizer)
