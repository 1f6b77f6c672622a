"""The dataset probe, and the dataset reader's verdicts on folders it cannot read at all."""

from ..catalog import N_, Text, define

_DATA_FIX = N_("Pass the folder that holds train/ and val/ (each with metadata.json) to --dsocr-data.")

define("dataset.missing", Text(N_("Dataset folder %(folder)s does not exist"), fix=_DATA_FIX))

define("dataset.not-a-folder", {
    "metadata-file": Text(N_("--dsocr-data %(folder)s is %(what)s, not a folder"),
                          fix=N_("Pass the folder that holds it: --dsocr-data %(parent)s")),
    "other": Text(N_("--dsocr-data %(folder)s is %(what)s, not a folder"), fix=_DATA_FIX),
})

define("dataset.no-metadata", Text(
    N_("No metadata.json in %(folder)s or its train/ and val/ folders"),
    fix=N_('Write train/metadata.json as a list of {"image_path": "images/00001.jpg", "text": "..."} rows.'),
))

define("dataset.splits", Text(N_("Dataset splits read")))

define("dataset.no-train-rows", {
    "no-split": Text(
        N_("No train split in %(folder)s: nothing to train on"),
        detail=N_("Splits found: %(splits)s."),
        fix=N_("Put the training rows in train/metadata.json (or name train_dir in the config's data section)."),
    ),
    "no-rows": Text(
        N_("The train split has no usable rows (%(metadata)s)"),
        detail=N_("A run with zero training rows stops before its first step, or trains on nothing."),
        fix=N_("Add rows to the train split's metadata file, or fix the ones listed as unusable."),
    ),
})

define("dataset.bad-rows", Text(
    N_("%(n)d row(s) cannot be used: training would stop at the first one"),
    fix=N_("Fix or remove each listed row in its metadata file; the batch builder refuses them rather than skip them."),
))

define("dataset.odd-images", Text(
    N_("%(n)d image(s) will train poorly"),
    fix=N_("Re-scan or crop these pages, or drop them from the metadata file."),
))

define("dataset.ambiguous", Text(
    N_("%(n)d choice(s) made between candidates: the ones not read are listed"),
    fix=N_("Keep one metadata file per folder, one folder per split, one list of rows and each key once per row, so "
           "every reader of the dataset sees the same rows."),
))

define("dataset.windows-paths", Text(
    N_("%(n)d image path(s) written with Windows separators (\\) read with /"),
    fix=N_("Write / in metadata files: it works on every OS, while a training script that opens these paths as "
           "written fails on Linux and macOS."),
))

define("dataset.outside-folder", Text(
    N_("%(n)d image path(s) leave the dataset folder through '..'"),
    fix=N_("Keep the images under the dataset folder (or write absolute paths on purpose): a copied or mounted dataset "
           "loses them."),
))

define("dataset.split-overlap", Text(
    N_("%(n)d item(s) appear in more than one split"),
    detail=N_("Validation loss on samples the model trains on measures memory, not reading."),
    fix=N_("Keep each page (and each target text) in one split only."),
))

define("dataset.duplicates", Text(
    N_("%(n)d duplicated item(s) within a split"),
    fix=N_("Remove the repeated rows, or keep them on purpose as oversampling."),
))

_TOO_LONG = N_("%(n)d sample(s) exceed max_length %(max_length)s")
_TOO_LONG_DETAIL = N_("Truncating a target teaches the model to stop mid-page; the batch builder refuses such rows.")
define("dataset.too-long", {
    "samples": Text(_TOO_LONG, detail=_TOO_LONG_DETAIL, fix=N_(
        "Raise data.max_length to at least %(longest)d, use a mode with fewer image slots, or split these pages.")),
    "targets": Text(_TOO_LONG, detail=_TOO_LONG_DETAIL, fix=N_(
        "Raise data.max_length to at least %(longest)d plus the prompt and image tokens, or split these pages.")),
})

define("dataset.lengths", {
    "not-measured": Text(N_("Target lengths not measured: %(cause)s"), fix="%(cause_fix)s"),
    "samples": Text(N_("Samples fit max_length")),
    "targets": Text(N_("Target lengths fit")),
})
