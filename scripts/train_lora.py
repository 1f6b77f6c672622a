#!/usr/bin/env python
"""Train a LoRA adapter from the same YAML the probes check: ``dsocr-train`` run from a clone.

    python scripts/train_lora.py --config configs/training_config.yaml [--model DIR_OR_ID] [--data DIR] ...

The training itself is ``dsocr_probe.train_lora``; ``--help`` lists every option.
"""

import sys

from dsocr_probe.train_lora import build, main, overrides, parse_args, train

if __name__ == "__main__":
    sys.exit(main())
