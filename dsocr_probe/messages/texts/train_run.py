"""The training run a config describes (model/trainrun.py), and the dsocr-train command that trains it."""

from ..catalog import N_, Text, define

define("train_run.trainer-import", Text(
    N_("trainer `%(spec)s` cannot be imported: %(error)s"),
    fix=N_("Give the Trainer class as `package.module:Class`, importable from the directory training starts in "
           "(e.g. `transformers:Trainer`, `trl:SFTTrainer`); install the package that provides it."),
))

define("train_run.trainer-type", Text(
    N_("trainer `%(spec)s` is %(found)s, not a subclass of transformers.Trainer"),
    fix=N_("Name a Trainer class: `transformers:Trainer`, your subclass of it, or `trl:SFTTrainer`."),
))

define("train_run.collator-import", Text(
    N_("data.collator `%(spec)s` cannot be imported: %(error)s"),
    fix=N_("Give it as `package.module:name`, importable from the directory training starts in."),
))

define("train_run.collator-class", Text(
    N_("data.collator `%(spec)s` is a class whose constructor needs %(count)d arguments (%(names)s)"),
    fix=N_("Name an object made at module level (`module:collator`), or a class that takes the tokenizer or "
           "processor alone."),
))

define("train_run.no-data", Text(
    N_("No training rows"),
    fix=N_("Set data.train_dir to a folder with metadata.json (or pass --dsocr-data)."),
))

# A part of the run that cannot be made, by stage (trainrun.BuildError): what the probes report ...
_ARGUMENTS = N_("%(name)s(...) fails: %(error)s")
_COLLATOR = N_("the collator `%(name)s` fails: %(error)s")
_LORA = N_("get_peft_model fails: %(error)s")
_SEE_PROBE = N_("See the training-config probe, which names the value and the fix.")
define("train_run.build", {
    "arguments": Text(_ARGUMENTS, fix=_SEE_PROBE),
    "collator": Text(_COLLATOR, fix=_SEE_PROBE),
    "lora": Text(_LORA, fix=_SEE_PROBE),
})

# ... and what the dsocr-train command prints.
_RUN_PROBES = N_("Run the probes on this config: the training-config probe names the value and the fix.")
define("train.build", {
    "arguments": Text(_ARGUMENTS, fix=_RUN_PROBES),
    "collator": Text(_COLLATOR, fix=_RUN_PROBES),
    "lora": Text(_LORA, fix=_RUN_PROBES),
})

define("train.no-model", Text(
    N_("%(config)s: no `model.name`"),
    fix=N_("Add `model: {name: <folder or hub id>}` or pass --model."),
))
