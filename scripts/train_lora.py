#!/usr/bin/env python
"""Train a LoRA adapter from the same YAML the probes check, with the batch builder they verified.

    python scripts/train_lora.py --config configs/training_config.yaml [--model DIR_OR_ID]
                                 [--output-dir DIR] [--max-steps N] [--device cpu|cuda]

Run `pytest --dsocr-probe --dsocr-train-config <the same YAML> ...` first: every object this
script builds (tokenizer or processor, model, batch builder, LoRA wrapping) comes from the same
functions the probes ran. The adapter is saved to the output directory (adapter_config.json,
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
    parser.add_argument("--output-dir", type=Path, help="where the adapter goes; overrides training.output_dir")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps; overrides training.max_steps")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--allow-unpinned", action="store_true",
                        help="run trusted remote code from a revision that is not a pinned commit (model.allow_unpinned)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dsocr_probe.findings import ProbeStop

    try:
        output = train(args)
    except ProbeStop as stop:
        finding = stop.finding
        print(f"error: {finding.title}", file=sys.stderr)
        if finding.detail:
            print(finding.detail, file=sys.stderr)
        if finding.fix:
            print(f"fix: {finding.fix}", file=sys.stderr)
        return 2
    print(f"adapter saved to {output}")
    return 0


def train(args: argparse.Namespace) -> Path:
    from transformers import Trainer

    from dsocr_probe import loading, lora, trainconfig
    from dsocr_probe.context import Options, ProbeContext
    from dsocr_probe.findings import ProbeStop, fail
    from dsocr_probe.training import ExampleDataset, prepare_for_training, trainer_processing_kwargs, training_arguments

    cfg = trainconfig.load(args.config)
    name = args.model or cfg.model.get("name")
    if not name:
        raise ProbeStop(fail("train.no-model", f"{args.config}: no `model.name`",
                             fix="Add `model: {name: <folder or hub id>}` or pass --model."))
    ctx = ProbeContext(Options(model=str(name), revision=cfg.model.get("revision"),
                               trust_remote_code=bool(cfg.model.get("trust_remote_code")),
                               allow_unpinned=args.allow_unpinned or bool(cfg.model.get("allow_unpinned")),
                               train_config=args.config, device=args.device))
    device = loading.default_device(ctx)
    dtype = loading.model_dtype(ctx, device)
    data = ctx.dataset()
    if data is None or data.train is None or not data.train.rows:
        raise ProbeStop(fail("train.no-data", "No training rows", fix="Set data.train_dir to a folder with metadata.json."))

    processing = ctx.tokenizer() if loading.family(ctx.target()) == "deepseek-ocr-v1" else loading.load_processor(ctx)
    builder = loading.builder_for(ctx, processing, dtype)
    # Checkpointing after wrapping, as the probe did (the Trainer enables it again, the same way).
    model = prepare_for_training(lora.wrap(loading.load_model(ctx, device, dtype), cfg.lora), cfg.training)
    model.print_trainable_parameters()

    arguments = training_arguments(cfg.training, args.output_dir, args.max_steps, use_cpu=device == "cpu")
    val = data.splits.get("val")
    strategy = getattr(arguments, "eval_strategy", None) or getattr(arguments, "evaluation_strategy", "no")
    evaluating = getattr(strategy, "value", strategy) != "no"
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=ExampleDataset(data.train.rows),
        eval_dataset=ExampleDataset(val.rows) if evaluating and val is not None and val.rows else None,
        data_collator=builder,
        **trainer_processing_kwargs(processing),
    )
    trainer.train()
    output = Path(arguments.output_dir)
    trainer.save_state()
    model.save_pretrained(str(output))
    return output


if __name__ == "__main__":
    sys.exit(main())
