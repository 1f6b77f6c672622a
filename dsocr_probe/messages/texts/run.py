"""Texts every probe shares: a probe that raised, ran out of time or died, and inputs it could not use."""

from ..catalog import N_, Text, define

define("*.probe-error", Text(
    N_("The %(probe)s probe raised %(exception)s: %(error)s"),
    detail="%(traceback)s",  # data, not words
    fix=N_("This is a bug in the probe or an input it does not understand; the other probes still ran. Re-run "
           "with `-x --tb=long -k %(probe)s` for the full traceback."),
))

define("*.timeout", Text(
    N_("The %(title)s probe did not finish within %(limit)g s"),
    detail=N_("Reading the dataset, config or model files, importing the checkpoint's code, loading the weights "
              "or the training step hangs or is far slower than expected (a network mount, a named pipe, "
              "swapping, a dead GPU, a lock held by another process)."),
    fix=N_("Raise --dsocr-timeout above %(limit)g if the machine is just slow; otherwise run with "
           "`-k %(probe)s -s` and watch where it stops."),
))

define("*.process-died", Text(
    N_("The %(title)s probe's process ended without a result (%(how)s)"),
    detail=N_("Under --dsocr-timeout the probe runs in a process of its own; it ended before it reported: "
              "killed for memory (SIGKILL from the kernel's OOM killer), a crash in native code (SIGSEGV, "
              "SIGABRT), or code that called exit()."),
    fix=N_("Run `-k %(probe)s -s` without --dsocr-timeout to see the crash in this process; check `dmesg` for "
           "the OOM killer."),
))

define("*.prerequisite", Text(N_("Not checked: %(cause)s"), detail="%(cause_detail)s", fix="%(cause_fix)s"))

define("input.no-dataset", Text(
    N_("No dataset to check"),
    fix=N_("Pass --dsocr-data DIR (train/ and val/ with metadata.json), or set data.train_dir in the training "
           "config."),
))

define("input.no-training config", Text(
    N_("No training config to check"),
    fix=N_("Pass the YAML your training script reads: --dsocr-train-config configs/training_config.yaml."),
))

# A finding still worded in English only, carried as the cause of another one.
define("input.legacy", Text("%(title)s", detail="%(detail)s", fix="%(fix)s"))
