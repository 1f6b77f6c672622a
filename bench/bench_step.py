"""What the step probe's bookkeeping costs: its Trainer run against a bare ``Trainer.train()``, side by side.

Both run the configured Trainer on the same LoRA-wrapped model, the same rows and the same
arguments (a few optimizer steps), in alternating rounds, so drift on a shared machine hits both
alike:

- bare: ``run.trainer(...).train()``, as ``scripts/train_lora.py`` calls it;
- probe: the same through ``dsocr_probe.probes.step_training.train`` — the watch's callbacks (loss of
  every step, a stopwatch with GPU syncs, the gradient report at the first step, the adapters'
  weights before and after), the peak-memory meter (CUDA stats, or an RSS sampling thread on the
  CPU) and the batch's length. On CUDA the probe also collects garbage and empties the cache after each run,
  so the next run's peak does not count this one's leftovers (about 0.2 s a run, not paid on the CPU).

    python bench/bench_step.py [--model DIR --data DIR --config YAML --trust-remote-code] [--device cuda]
                               [--rounds 7] [--steps 5]

Without --model it uses the built-in demo target of this stack and its config. Goal: ratio of
medians <= 1.15.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the built-in demo)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the model's demo data)")
    parser.add_argument("--config", type=Path, help="training YAML (default: the demo's)")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per round (the probe runs 5)")
    args = parser.parse_args(argv)

    import torch

    from dsocr_probe.model import gradients, loading, trainrun
    from dsocr_probe.inputs import samples
    from dsocr_probe.probes.context import Options, ProbeContext
    from dsocr_probe.probes.step_training import _quiet, train
    from dsocr_probe.knowledge.trial_settings import probe_overrides
    from dsocr_probe.model.training import dataset_for

    # The demo is our own code; a user's model is trusted only when asked.
    options = Options(model=args.model, data=args.data, device=args.device, train_config=args.config,
                      trust_remote_code=args.trust_remote_code or args.model is None, allow_unpinned=args.model is None)
    ctx = ProbeContext(options)
    device = loading.default_device(ctx)
    dtype = loading.model_dtype(ctx, device)
    cfg = ctx.train_config()
    training = dict(cfg.training) if cfg is not None else {}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        run = trainrun.build(ctx, device, dtype, probe_overrides(out, args.steps, training))
        measured = samples.measure(ctx.dataset().train.rows, ctx.image_facts, loading.builder_for(ctx, None, dtype),
                                   ctx.tokenizer())
        chosen = samples.largest(measured, int(run.arguments.per_device_train_batch_size))
        rows = [s.row for s in chosen]

        def bare() -> None:
            trainer = run.trainer(train_dataset=dataset_for(run.trainer_class, rows), arguments=run.arguments)
            _quiet(trainer)
            trainer.train()

        def probed() -> None:
            result = train(run, chosen, device, args.steps, inspect=gradients.collect)
            if result.oom:
                raise SystemExit(f"out of memory: {result.oom}")

        bare()  # warm-up: first-call allocations, kernel choice, the accelerator's set-up
        bare_s, probe_s = [], []
        for _ in range(args.rounds):
            for fn, times in ((bare, bare_s), (probed, probe_s)):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)

    median_ratio = statistics.median(probe_s) / statistics.median(bare_s)
    best_ratio = min(probe_s) / min(bare_s)
    print(f"model: {ctx.target().name} ({ctx.target().model_type}) on {device}, {dtype}")
    print(f"rows: {len(rows)} largest of the split, {args.steps} optimizer steps per round, {args.rounds} rounds")
    print(f"bare Trainer.train(): median {statistics.median(bare_s):.3f} s, fastest {min(bare_s):.3f} s")
    print(f"step probe's run:     median {statistics.median(probe_s):.3f} s, fastest {min(probe_s):.3f} s")
    print(f"ratio probe / bare: {median_ratio:.3f}x on medians, {best_ratio:.3f}x on the fastest rounds (goal <= 1.15x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
