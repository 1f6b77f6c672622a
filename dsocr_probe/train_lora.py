"""Train a LoRA adapter from the same YAML the probes check, with the batch builder they verified.

    dsocr-train --config configs/training_config.yaml [--model DIR_OR_ID] [--data DIR]
                [--output-dir DIR] [--max-steps N] [--device cpu|cuda]

Run `pytest --dsocr-probe --dsocr-train-config <the same YAML> ...` first: this script builds
its run with the function the step probe trained with (`dsocr_probe.model.trainrun.build`): the
Trainer class (top-level `trainer:`), its arguments (`training`), the collator (`data.collator` or
the verified batch builder), the model and its LoRA wrapping. The adapter is saved to the output directory (adapter_config.json,
adapter_model.safetensors) with the Trainer's state (trainer_state.json: the loss log).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="training YAML (model, lora, training, data sections)")
    parser.add_argument("--model", help="model folder or cached hub id; overrides model.name")
    parser.add_argument("--data", type=Path, help="dataset folder (train/, val/); overrides the data section's folders, "
                        "as --dsocr-data does for the probes")
    parser.add_argument("--output-dir", type=Path, help="where the adapter goes; overrides training.output_dir")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps; overrides training.max_steps")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--allow-unpinned", action="store_true",
                        help="run trusted remote code from a revision that is not a pinned commit (model.allow_unpinned)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .findings import InputError, ProbeStop
    from .probes.context import finding_of

    try:
        output = train(args)
    except (ProbeStop, InputError) as stop:
        finding = stop.finding if isinstance(stop, ProbeStop) else finding_of(stop)
        print(f"error: {finding.title}", file=sys.stderr)
        if finding.detail:
            print(finding.detail, file=sys.stderr)
        if finding.fix:
            print(f"fix: {finding.fix}", file=sys.stderr)
        return 2
    print(f"adapter saved to {output}")
    return 0


def overrides(args: argparse.Namespace) -> dict:
    """What the command line changes in the training section (name -> (value, why))."""
    out = {}
    if args.output_dir is not None:
        out["output_dir"] = (str(args.output_dir), "--output-dir")
    if args.max_steps is not None:
        out["max_steps"] = (int(args.max_steps), "--max-steps")
    return out


def build(args: argparse.Namespace):
    """The run, built by the function the step probe trains with (dsocr_probe.model.trainrun.build)."""
    from .inputs import trainconfig
    from .messages import N_
    from .model import loading, trainrun
    from .probes.context import Options, ProbeContext
    from .findings import InputError

    cfg = trainconfig.load(args.config)
    name = args.model or cfg.model.get("name")
    if not name:
        raise InputError("train.no-model", config=str(args.config))
    ctx = ProbeContext(Options(model=str(name), revision=cfg.model.get("revision"),
                               trust_remote_code=bool(cfg.model.get("trust_remote_code")),
                               allow_unpinned=args.allow_unpinned or bool(cfg.model.get("allow_unpinned")),
                               train_config=args.config, device=args.device, data=args.data))
    device = loading.default_device(ctx)
    dtype = loading.model_dtype(ctx, device)
    try:
        return trainrun.build(ctx, device, dtype, overrides(args), by=N_("command line"))
    except trainrun.BuildError as exc:
        raise InputError("train.build", exc.stage, name=exc.name,
                         error=loading.error_line(exc.__cause__ or exc)) from exc


def train(args: argparse.Namespace) -> Path:
    run = build(args)
    run.model.print_trainable_parameters()
    trainer = run.trainer()
    trainer.train()
    output = Path(run.arguments.output_dir)
    trainer.save_state()
    run.model.save_pretrained(str(output))
    return output

