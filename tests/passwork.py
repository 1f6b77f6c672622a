"""Work for the worker processes of test_dataset_pass.py: top-level functions a spawned process imports by name."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dsocr_probe.inputs.images import inspect_image as _inspect

PID_DIR = "DSOCR_TEST_PID_DIR"  # each process that inspects a file leaves its pid there
SLEEP = "DSOCR_TEST_SLEEP"


def noted_inspect(path):
    folder = os.environ.get(PID_DIR)
    if folder:
        Path(folder, str(os.getpid())).touch()
    time.sleep(float(os.environ.get(SLEEP, "0")))
    return _inspect(path)


def crash_on_marked(path):
    """Ends its process on a file named *crash*, the way a decoder crash or the OOM killer does."""
    if "crash" in Path(path).name:
        os._exit(70)
    return _inspect(path)


def refuse_to_start(*args):
    raise RuntimeError("this worker cannot start")
