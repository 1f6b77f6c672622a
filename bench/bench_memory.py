"""The memory probe's weightless forecast against the step probe's real training run, case by case.

    python bench/bench_memory.py [--quick]

For the built-in demo model of this stack (the tiny DeepSeek-OCR-2 on transformers >= 5.10.1, the
v1 remote-code stand-in on transformers <= 4.47.1; run the script on both stacks for both), at
3 batch sizes x 2 target lengths x pages with and without crops x gradient checkpointing off and
on, it runs:

* the real step: the run ``dsocr_probe.model.trainrun.build`` makes from the training config (as the step
  probe and ``scripts/train_lora.py`` make it), two optimizer steps of the Trainer's own ``train()``
  on the batch, in float32 on the CPU (or CUDA, when one is here);
* the forecast: :mod:`dsocr_probe.model.memory_forecast` on the meta-device model, same settings, same batch.

Measured peak on the CPU: the torch profiler's allocation events (``profile_memory=True``), summed in
time order, above the bytes the model's tensors held when training began: the CPU allocator's own
reports, not the forecast's storage ledger. On CUDA: ``torch.cuda.max_memory_allocated``. The last
line is the largest error over all cases: ``forecast error: max N.N %``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
from pathlib import Path

import yaml

BATCHES = (1, 2, 3)
WORDS = (12, 160)  # target lengths: a line, a paragraph
# Portrait pages below and above the tile size: the OCR-2 demo's views are 8x smaller than the real model's
# (96 px tiles), the v1 stand-in's are the real ones (640 px tiles in gundam mode, one 512 px view in tiny).
PAGES = {"ocr2": {"no crops": (72, 96), "crops": (150, 200)}, "v1": {"no crops": (600, 800), "crops": (1400, 1900)}}
STEPS = 2  # the second step runs with the optimizer's state allocated, as every later step does


def write_pages(folder: Path, size: tuple[int, int], words: int, n: int) -> list:
    from dsocr_probe.inputs.dataset import Row
    from dsocr_probe.demo.pages import render_page

    rng = random.Random(0)
    vocab = "the quick brown fox jumps over lazy dogs while seven wizards quietly box".split()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(vocab) for _ in range(words))
        path = folder / f"page-{size[0]}x{size[1]}-{words}-{i}.png"
        if not path.exists():
            render_page(text, size, rng).save(path)
        rows.append(Row("train", i, path, text))
    return rows


def context(root: Path, mode: str | None, checkpointing: bool):
    from dsocr_probe.demo import target as demo
    from dsocr_probe.probes.context import Options, ProbeContext

    target = demo.demo_target()
    config = demo.demo_train_config(target.path, demo.demo_family())
    config["training"]["gradient_checkpointing"] = checkpointing
    config["data"]["max_length"] = 2048  # the longest case: a page of crops and a paragraph
    if mode:
        config["data"]["mode"] = mode
    path = root / f"config-{mode}-{checkpointing}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return ProbeContext(Options(train_config=path, trust_remote_code=True, allow_unpinned=True))


def measured_step(ctx, rows: list, batch: int, device: str, output_dir: str) -> tuple[int, str]:
    import torch

    from dsocr_probe.model import loading, trainrun
    from dsocr_probe.model.training import dataset_for

    dtype = torch.float32
    why = "bench"
    overrides = {"max_steps": (STEPS, why), "output_dir": (output_dir, why), "per_device_train_batch_size": (batch, why),
                 "save_strategy": ("no", why), "report_to": ("none", why), "logging_steps": (1, why),
                 "disable_tqdm": (True, why)}
    torch.manual_seed(0)
    model = loading.load_model(ctx, device, dtype)
    run = trainrun.build(ctx, device, dtype, overrides, rows=rows, model=model, by="bench")
    trainer = run.trainer(train_dataset=dataset_for(run.trainer_class, rows))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        trainer.train()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    held = _held_bytes(run.model)
    from torch.profiler import ProfilerActivity, profile

    trainer.add_callback(StepWindow())
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer.train()
    return held + _allocation_peak(prof), ("torch profiler allocation events (profile_memory=True) inside the "
                                           "Trainer's steps (the batch builder's CPU work before each step left out, "
                                           "as on CUDA)")


def _step_window_class():
    import torch
    from transformers import TrainerCallback

    class StepWindow(TrainerCallback):
        """Marks each optimizer step (forward, backward, update) in the profile; loading the batch is outside."""

        def on_step_begin(self, args, state, control, **kwargs):
            self.marker = torch.profiler.record_function(WINDOW)
            self.marker.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            self.marker.__exit__(None, None, None)

    return StepWindow


def StepWindow():  # noqa: N802 - a class made lazily, so the bench imports transformers only when it runs
    return _step_window_class()()


WINDOW = "dsocr_bench_step"


def _held_bytes(model) -> int:
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def _allocation_peak(prof) -> int:
    """The most bytes allocated above the start of the profile while a step ran (allocation events summed in
    time order; the steps' windows from their markers)."""
    from torch._C._profiler import _EventType

    events, windows, stack = [], [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.typed[0] == _EventType.Allocation:
            events.append((node.start_time_ns, node.typed[1].alloc_size))
        elif node.name == WINDOW:
            windows.append((node.start_time_ns, node.end_time_ns))
        stack.extend(node.children)
    now = peak = 0
    for when, size in sorted(events):
        now += size
        if any(start <= when <= end for start, end in windows):
            peak = max(peak, now)
    return peak


def forecast_step(ctx, rows: list, batch: int, checkpointing: bool) -> int:
    import torch

    from dsocr_probe.model import loading, memory_forecast as mf

    cfg = ctx.train_config()
    plan = mf.RunPlan(dtype=torch.float32, checkpointing=checkpointing, optim=cfg.training.get("optim", "adamw_torch"))
    model = mf.prepare(ctx.skeleton().model, cfg.lora, plan)
    builder = loading.builder_for(ctx, None, torch.float32)
    chosen = (rows * batch)[:batch]
    return mf.forecast(model, builder([r.example() for r in chosen]), plan).peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch sizes 1 and 3 only, no checkpointing cases")
    args = parser.parse_args()
    import torch

    from dsocr_probe.demo import target as demo

    device = "cuda" if torch.cuda.is_available() else "cpu"
    family = demo.demo_family()
    modes = {"no crops": "tiny", "crops": "gundam"} if family == demo.V1 else {"no crops": None, "crops": None}
    print(f"model: the {'v1 remote-code stand-in' if family == demo.V1 else 'DeepSeek-OCR-2'} demo "
          f"(other stack for the other one); device {device}; float32; {STEPS} optimizer steps per case, after one "
          "warm-up step")
    worst = 0.0
    batches = (1, 3) if args.quick else BATCHES
    with tempfile.TemporaryDirectory(prefix="dsocr-bench-memory-") as tmp:
        root = Path(tmp)
        method = "?"
        # One step first, not counted: the process's first training step allocates one-time state (kernels'
        # workspaces, lazily made globals) that every later step finds in place.
        warm = context(root, modes["no crops"], False)
        measured_step(warm, write_pages(root / "pages", PAGES[family]["no crops"], WORDS[0], 1), 1, device,
                      str(root / "out"))
        for crops, size in PAGES[family].items():
            for checkpointing in ((False,) if args.quick else (False, True)):
                ctx = context(root, modes[crops], checkpointing)
                for words in WORDS:
                    rows = write_pages(root / "pages", size, words, max(batches))
                    for batch in batches:
                        chosen = rows[:batch]
                        measured, method = measured_step(ctx, chosen, batch, device, str(root / "out"))
                        predicted = forecast_step(ctx, chosen, batch, checkpointing)
                        error = abs(predicted - measured) / measured * 100
                        worst = max(worst, error)
                        print(f"{crops:8s} checkpointing={'on ' if checkpointing else 'off'} words={words:3d} "
                              f"batch={batch}: forecast {predicted / 2**20:8.2f} MiB  measured {measured / 2**20:8.2f} "
                              f"MiB  error {error:5.1f} %", flush=True)
                        gc.collect()
        print(f"measured with: {method}")
    print(f"forecast error: max {worst:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
