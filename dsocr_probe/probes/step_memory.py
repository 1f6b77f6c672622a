"""The step probe's memory verdicts: out-of-memory with what fitted, and the forecast of the configured batch.

The forecast is the memory probe's weightless step of the same rows on CUDA (where the measured peak is the
allocator's), else linear in tokens and image slots through the sizes the probe measured.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ..findings import Finding, InputError, ProbeStop, fail, passed, warn
from ..messages import M, N_
from ..model.measure import Measure, capacity_bytes, forecast, gib
from .step_training import configured_batch, whole

HEADROOM = 0.9  # a forecast above 90 % of the device's memory is a warning
MEMORY_FIX = M(N_("set `gradient_checkpointing: true`, lower `per_device_train_batch_size` (raise "
                  "`gradient_accumulation_steps` to keep the effective batch), or lower `data.max_length` / use a "
                  "mode with fewer image tokens (tiny/small)"))


def weightless(ctx, training_run, worst: list, dtype: Any, training: dict, device: str) -> Callable[[int], int] | None:
    """On CUDA, where the measured peak is the allocator's: batch -> the memory probe's weightless forecast of the
    largest rows (same model, same LoRA, same collator); None where it cannot be made (the linear fit stands)."""
    from ..model import memory_forecast as mf

    if not device.startswith("cuda"):
        return None  # the CPU peak is the process's RSS, which the weightless step does not model
    try:
        skeleton = ctx.skeleton()
        if skeleton.model is None:
            return None
        plan = mf.plan_for(training, dtype)
        model = mf.prepare(skeleton.model, training_run.lora_settings, plan)
    except (ProbeStop, InputError, mf.ForecastError):
        return None
    rows = [s.row for s in worst]

    def peak(batch: int) -> int:
        chosen = (rows * batch)[:batch]
        return mf.forecast(model, training_run.collator([r.example() for r in chosen]), plan).peak

    return peak


def cost_findings(measures: list[Measure], configured: int, device: str, training: dict,
                  has_config: bool = True, weightless: Callable[[int], int] | None = None) -> Iterable[Finding]:
    capacity = capacity_bytes(device)
    main = measures[0]
    guess = forecast(measures, configured, main.length, capacity, HEADROOM, slots=main.slots)
    how = M(N_("linear in tokens and image slots per batch, through the measured sizes"))
    if weightless is not None:
        try:  # the memory probe's model: the configured batch's own step, and the largest batch from batch 1 and 2
            guess.peak_bytes = weightless(configured)
            one, two = weightless(1), weightless(2)
            per = max(1, two - one)
            guess.largest_batch = max(0, int((capacity * HEADROOM - (one - per)) // per)) if capacity else None
            how = M(N_("the memory probe's weightless step of the same rows (largest batch: linear through batch 1 "
                       "and 2)"))
        except Exception:  # noqa: BLE001 - the linear fit through the measured sizes stands
            pass
    table = [m.row() for m in measures]
    if configured != main.samples:  # fewer rows than the configured batch: the forecast says what a full one needs
        table.append({N_("batch"): M(N_("%(batch)d (forecast)"), batch=configured), N_("rows"): "",
                      N_("tokens / sample"): main.length, N_("image slots / sample"): main.slots or "?",
                      N_("peak memory"): gib(guess.peak_bytes), N_("time / step"): f"{guess.step_s:.3f} s"})
        peak, seconds = guess.peak_bytes, guess.step_s
    else:
        peak, seconds = main.peak_bytes, main.step_s
    evidence = {N_("device"): device, N_("device memory"): gib(capacity), N_("forecast"): how}
    accumulation = whole(training.get("gradient_accumulation_steps"), 1)
    if accumulation > 1:  # the probe's steps are one batch each; the run's accumulate several
        evidence[N_("optimizer step with gradient accumulation")] = (
            f"{accumulation} x {seconds:.3f} s = {accumulation * seconds:.2f} s")
    if device.startswith("cuda"):
        evidence.update({N_("largest batch expected to fit at this length"): guess.largest_batch,
                         N_("memory measured as"): "torch.cuda.max_memory_allocated"})
    else:  # the resident set barely moves for small models: no batch limit can be read from it
        evidence[N_("memory measured as")] = M(N_("process RSS, sampled (includes the Python process itself)"))
    what = M(_batch_words(has_config, training), batch=configured, length=main.length)
    params = {"what": what, "batch": configured, "length": main.length, "need": gib(peak), "have": gib(capacity),
              "default_batch": None if has_config else configured, "memory_fix": MEMORY_FIX}
    if device.startswith("cuda") and capacity and peak > capacity:
        yield fail("step.forecast-oom", table=table, evidence=evidence,
                   params={**params, "largest": guess.largest_batch, "fit_batch": max(1, guess.largest_batch or 1)})
    elif capacity and peak > capacity * HEADROOM:
        yield warn("step.forecast-tight", table=table, evidence=evidence,
                   params={**params, "share": f"{peak / capacity:.0%}"})
    else:
        yield passed("step.cost", table=table, evidence=evidence,
                     params={"what": what, "peak": gib(peak), "seconds": round(seconds, 3)})


def _batch_words(has_config: bool, training: dict) -> str:
    if not has_config:
        return N_("batch %(batch)d x %(length)d tokens (no training config: batch 1)")
    if "per_device_train_batch_size" not in training:
        return N_("batch %(batch)d x %(length)d tokens (no batch size configured: the Trainer's default)")
    return N_("batch %(batch)d x %(length)d tokens")


def oom_finding(batch: int | None, message: str, device: str, fitted: Measure | None, training: dict,
                length: int | None = None, blocking: bool = True) -> Finding:
    """Out of memory with ``batch`` rows (None: loading the weights alone), and what fitted before, if anything."""
    if batch is None:
        what = M(N_("the weights alone"))
    elif length:
        what = M(N_("a batch of %(batch)d (%(tokens)d tokens)"), batch=batch, tokens=length)
    else:
        what = M(N_("a batch of %(batch)d"), batch=batch)
    effective = configured_batch(training) * whole(training.get("gradient_accumulation_steps"), 1)
    accumulation = max(1, effective // fitted.samples) if fitted else None
    make = fail if blocking else warn
    return make(
        "step.out-of-memory",
        "fitted" if fitted else "nothing-fitted",
        evidence={N_("device memory"): gib(capacity_bytes(device)),
                  N_("configured batch"): training.get("per_device_train_batch_size")},
        params={"what": what, "device": device, "tokens": length, "message": message, "batch": batch,
                "fit_batch": fitted.samples if fitted else None, "fit_length": fitted.length if fitted else None,
                "fit_peak": gib(fitted.peak_bytes) if fitted else None,
                "accumulation": accumulation, "memory_fix": MEMORY_FIX},
    )
