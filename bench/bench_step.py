"""What the step probe's bookkeeping costs: its training loop against a bare one, side by side.

Both loops run the same LoRA-wrapped model on the same batch with the same optimizer, in
alternating rounds, so drift on a shared machine hits both alike:

- bare: forward with labels, backward, AdamW step, zero_grad;
- probe: the same through ``dsocr_probe.probes.step.overfit`` — per-step stopwatch (with GPU
  syncs), peak-memory meter (CUDA stats, or an RSS sampling thread on CPU), the gradient
  report after the first backward, and the loss read back every step.

    python bench/bench_step.py [--model DIR --data DIR --trust-remote-code] [--device cuda]
                               [--rounds 7] [--steps 5]

Without --model it uses the built-in demo target of this stack. Goal: ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def bare_loop(model, batch, optimizer, steps: int, device: str) -> None:
    import torch

    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the built-in demo)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the model's demo data)")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per round (the probe runs 5)")
    parser.add_argument("--samples", type=int, default=1, help="batch size")
    args = parser.parse_args(argv)

    import torch

    from dsocr_probe import gradients, loading, lora
    from dsocr_probe.context import Options, ProbeContext
    from dsocr_probe.plugin import run_probe
    from dsocr_probe.probes import PROBES
    from dsocr_probe.probes.step import LEARNING_RATE, _to_device, overfit

    # The demo is our own code; a user's model is trusted only when asked.
    options = Options(model=args.model, data=args.data, device=args.device,
                      trust_remote_code=args.trust_remote_code or args.model is None)
    ctx = ProbeContext(options)
    device = loading.default_device(ctx)
    dtype = loading.model_dtype(ctx, device)
    builder = loading.builder_for(ctx, None, dtype)
    examples = ctx.dataset().examples("train", args.samples)
    batch = _to_device(builder(examples), device)
    torch.manual_seed(0)
    model = lora.wrap(loading.load_model(ctx, device, dtype), {})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    bare_loop(model, batch, optimizer, 2, device)  # warm-up: first-call allocations and kernel choice

    bare, probed = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        bare_loop(model, batch, optimizer, args.steps, device)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = overfit(model, batch, optimizer, args.steps, device, contextlib_null, inspect=gradients.collect)
        probed.append(time.perf_counter() - start)
        if result.oom:
            print(f"out of memory: {result.oom}", file=sys.stderr)
            return 1

    target = ctx.target()
    tokens = int(batch["input_ids"].numel())
    print(f"target: {target.name} ({target.model_type}), device {device}, dtype {dtype}, batch {args.samples} x "
          f"{tokens // args.samples} tokens, {args.steps} steps per round, {args.rounds} rounds")
    print(f"bare forward+backward+step: median {statistics.median(bare):.4f} s per round  (min {min(bare):.4f})")
    print(f"step-probe loop:            median {statistics.median(probed):.4f} s per round  (min {min(probed):.4f})")
    # The fastest round of each is the least disturbed by other work on the machine.
    print(f"ratio probe / bare: {min(probed) / min(bare):.3f}x on the fastest rounds, "
          f"{statistics.median(probed) / statistics.median(bare):.3f}x on the medians (goal <= 1.15x)")

    # For scale: the whole probe, loading and both measured sizes included.
    start = time.perf_counter()
    spec = next(s for s in PROBES if s.name == "step")
    whole = run_probe(spec, ProbeContext(options))
    print(f"whole step probe: {time.perf_counter() - start:.2f} s, status {whole.status.value} "
          f"({', '.join(f.code + '=' + f.status.value for f in whole.findings)})")
    return 0


def contextlib_null():
    import contextlib

    return contextlib.nullcontext()


if __name__ == "__main__":
    sys.exit(main())
