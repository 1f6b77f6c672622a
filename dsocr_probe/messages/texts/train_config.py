"""The training-config probe: the YAML itself, its arguments against the installed transformers and peft, the
Trainer class, the batch arithmetic, the collator and DataLoader workers, LoRA and 4/8-bit loading."""

from ..catalog import NP_, N_, Text, define

# ---------------------------------------------------------------- reading the YAML

define("train_config.missing", Text(
    N_("Training config %(path)s does not exist"),
    fix=N_("Pass the YAML your training script reads, e.g. --dsocr-train-config configs/training_config.yaml."),
))

define("train_config.encoding", Text(N_("%(path)s is not UTF-8 text (byte %(byte)d)"),
                                     fix=N_("Save the file as UTF-8.")))

define("train_config.yaml", Text(
    N_("%(where)s: not valid YAML"),
    detail="%(error)s",  # the parser's own message
    fix=N_("Fix the YAML syntax at that line (indentation, a missing colon, tabs)."),
))

define("train_config.not-mapping", Text(
    N_("%(path)s holds a %(type)s, not a mapping"),
    fix=N_("The config is a mapping: sections model/lora/training/data, or TrainingArguments keyword arguments."),
))

define("train_config.section", Text(
    N_("%(path)s: section `%(section)s` must be a mapping, got %(type)s"),
    fix=N_("Write `%(section)s:` followed by indented `key: value` lines."),
))

define("train_config.trainer-key", Text(
    N_("%(path)s: `trainer` must be `package.module:Class`, got %(type)s"),
    fix=N_("Write e.g. `trainer: transformers:Trainer` or `trainer: trl:SFTTrainer` at the top level."),
))

define("train_config.nproc-key", Text(
    N_("%(path)s: `nproc_per_node` must be a whole number of processes, got %(value)s"),
    fix=N_("Write e.g. `nproc_per_node: 2` at the top level (the processes torchrun starts per machine)."),
))

define("train_config.unknown-section", Text(
    N_("`%(key)s:` is not a section the training script reads: did you mean `%(near)s:`?"),
    detail=N_("Everything under `%(key)s:` is ignored, and the defaults of `%(near)s` are used (and judged) instead."),
    fix=N_("Rename `%(key)s:` to `%(near)s:`."),
))

define("train_config.unknown-key", {
    "near": Text(N_("`%(key)s` (%(where)s) is not read by the training script: did you mean `%(near)s`?"),
                 fix=N_("Rename it to `%(near)s`.")),
    "": Text(N_("`%(key)s` (%(where)s) is not read by the training script"),
             fix=N_("Remove `%(key)s`, or read it in your own code.")),
})

# ---------------------------------------------------------------- arguments against the installed transformers

define("train_config.arguments", Text(NP_("The %(count)d training argument exists in transformers %(installed)s",
                                          "All %(count)d training arguments exist in transformers %(installed)s",
                                          "count")))

_DEPRECATED = N_("`%(key)s` is deprecated since transformers %(introduced)s: use `%(use)s`")
define("train_config.deprecated-argument", {
    "removed-later": Text(_DEPRECATED, fix=N_("Rename `%(key)s:` to `%(use)s:` before upgrading to %(removed)s, "
                                               "which removes it.")),
    "": Text(_DEPRECATED, fix=N_("Rename `%(key)s:` to `%(use)s:`.")),
})

_REMOVED = N_("%(where)s got an unexpected keyword argument `%(key)s` (removed in transformers %(removed)s)")
_NEVER = N_("%(where)s got an unexpected keyword argument `%(key)s` (it never was one)")
_USE = N_("Use `%(use)s` instead of `%(key)s`.")
_USE_NOTE = N_("Use `%(use)s` instead of `%(key)s` (%(note)s).")
define("train_config.renamed-argument", {
    "removed": Text(_REMOVED, fix=_USE),
    "removed-note": Text(_REMOVED, fix=_USE_NOTE),
    "never": Text(_NEVER, fix=_USE),
    "never-note": Text(_NEVER, fix=_USE_NOTE),
})

_UNEXPECTED = N_("%(where)s got an unexpected keyword argument `%(key)s`")
define("train_config.unknown-argument", {
    "near": Text(_UNEXPECTED, fix=N_("Did you mean `%(suggestion)s`?")),
    "": Text(_UNEXPECTED, fix=N_("Remove `%(key)s`; %(where)s of transformers %(installed)s has no such argument.")),
})

_TRAINER_ARGUMENT = N_("`%(key)s` is not a TrainingArguments argument: it belongs to %(use)s")
_TRAINER_ARGUMENT_FIX = N_("Remove `%(key)s` from the training section and pass it as %(pass_as)s.")
define("train_config.trainer-argument", {
    "replaced": Text(_TRAINER_ARGUMENT,
                     detail=N_("Trainer(tokenizer=...) was replaced by processing_class in 4.46.0 and removed in "
                               "5.0.0."),
                     fix=_TRAINER_ARGUMENT_FIX),
    "": Text(_TRAINER_ARGUMENT, fix=_TRAINER_ARGUMENT_FIX),
})

define("train_config.invalid-value", Text(
    N_("%(where)s rejects these values on this machine: %(error)s"),
    detail="%(message)s",  # the arguments class's own message
    fix=N_("Correct the value named in the message."),
))

# ---------------------------------------------------------------- values the run cannot use as written

define("train_config.number-as-string", Text(
    N_("`%(key)s: %(raw)s` is read as the string %(value)s, not a number"),
    detail=N_("YAML 1.1 (PyYAML) reads a number without a dot, or with an exponent without a sign, as text. "
              "TrainingArguments stores it as given, and training fails in the optimizer or scheduler with "
              "`'<=' not supported between instances of 'float' and 'str'`."),
    fix=N_("Write `%(write)s`."),
))

define("train_config.bool-as-string", Text(
    N_("`%(key)s` is the string %(value)s, not true or false: any non-empty text counts as true"),
    fix=N_("Write `%(write)s` without quotes."),
))

_CHOICE = N_("`%(key)s: %(raw)s` is not one of the values the installed transformers accepts")
_ACCEPTED = N_("Accepted: %(expected)s.")
define("train_config.bad-choice", {
    "near": Text(_CHOICE, detail=_ACCEPTED, fix=N_("Use `%(key)s: %(near)s`.")),
    "": Text(_CHOICE, detail=_ACCEPTED, fix=N_("Use one of: %(expected)s.")),
})

define("train_config.fp16-and-bf16", Text(
    N_("`fp16` and `bf16` are both true: TrainingArguments allows at most one of them"),
    fix=N_("Keep `bf16: true` on GPUs with compute capability 8.0 or higher, else `fp16: true`; not both."),
))

define("train_config.out-of-range", Text(
    N_("`%(key)s: %(raw)s` is out of range: it must be %(expected)s"),
    detail=N_("TrainingArguments stores it; the run fails or learns nothing once it gets there."),
    fix=N_("Set `%(key)s` to a value %(expected)s."),
))

define("train_config.null-value", Text(
    N_("`%(key)s` is empty (null): it needs %(expected)s"),
    fix=N_("Remove the `%(key)s:` line to use the default, or give it %(expected)s."),
))

_WRONG_TYPE = N_("`%(key)s: %(raw)s` has the wrong type: it needs %(expected)s")
define("train_config.wrong-type", {
    "write": Text(_WRONG_TYPE, fix=N_("Write `%(write)s`.")),
    "": Text(_WRONG_TYPE, fix=N_("Give `%(key)s` %(expected)s.")),
})

# ---------------------------------------------------------------- the Trainer class and the model class

define("train_config.trainer", Text(N_("Trainer: %(cls)s with %(args)s")))

define("train_config.trainer-num-items", Text(
    N_("%(cls)s.%(method)s does not take `num_items_in_batch`: transformers %(installed)s passes it"),
    detail=N_("`%(signature_now)s`. Since transformers 4.46.0 the Trainer calls `compute_loss(model, inputs, "
              "num_items_in_batch=...)` and `training_step(model, inputs, num_items_in_batch)`; the first step fails "
              "with `unexpected keyword argument 'num_items_in_batch'` (or too many positional arguments)."),
    fix=N_("Add the parameter: `def %(method)s(self, model, inputs, %(signature)s):` and pass it on to `super()`."),
))

_AUTO_CLASS = N_("model.auto_class %(auto_class)s refuses this checkpoint: %(reason)s")
define("train_config.auto-class", {
    "use": Text(_AUTO_CLASS, fix=N_("Set `model.auto_class: %(use)s` (and load with `%(use)s.from_pretrained`).")),
    "none": Text(_AUTO_CLASS, fix=N_("See the model API probe.")),
})

# ---------------------------------------------------------------- the batch arithmetic

define("train_config.batch-math", {
    "no-rows": Text(N_("Batch size not checked against the data: no training rows"),
                    fix=N_("Pass --dsocr-data or set data.train_dir.")),
    "": Text(NP_("Effective batch %(effective)d, %(total)d optimizer step",
                 "Effective batch %(effective)d, %(total)d optimizer steps", "total")),
})

define("train_config.batch-larger-than-data", Text(
    N_("per_device_train_batch_size %(bs)d is larger than the %(n)d training samples"),
    detail=N_("Every batch is the whole dataset of %(n)d; the memory planned for %(bs)d samples is never used."),
    fix=N_("Set `per_device_train_batch_size: %(n)d` or fewer, or add data."),
))

define("train_config.effective-batch", Text(
    N_("Effective batch %(effective)d (%(bs)d x %(ga)d accumulation x %(devices)d device) exceeds the %(n)d "
       "samples: %(updates)d optimizer step per epoch, %(total)d in all"),
    fix=N_("With %(n)d samples use `per_device_train_batch_size: 1` and `gradient_accumulation_steps: 1`, then grow "
           "the data before the batch."),
))

define("train_config.epochs", Text(
    N_("%(epochs)g epochs over %(n)d samples will memorise them"),
    detail=N_("The training loss will reach zero while the model learns nothing it can use on new pages."),
    fix=N_("Train 3-5 epochs and add data; watch the validation loss with eval_strategy: epoch."),
))

# ---------------------------------------------------------------- the collator and DataLoader workers

define("train_config.remove-unused-columns", Text(
    N_("remove_unused_columns is not False: scripts/train_lora.py sets it to false, a training script of your own "
       "must too"),
    detail=N_("With the default True, the Trainer keeps only columns named in forward(); the collator then gets "
              "examples without 'image' and 'text'."),
    fix=N_("Set `remove_unused_columns: false` in the training section."),
))

define("train_config.collator-import", Text(
    N_("data.collator `%(spec)s` cannot be imported: %(error)s"),
    fix=N_("Give it as `package.module:name`, importable from the directory training starts in."),
))

define("train_config.collator-pickles", Text(N_("The collator `%(spec)s` pickles")))

define("train_config.collator-pickle", {
    "spawn": Text(
        N_("%(workers)d DataLoader workers on %(os)s (spawn) need a picklable collator: %(problem)s"),
        detail=N_("Spawned workers receive the collator and the dataset by pickling. Functions defined inside other "
                  "functions and classes from trust_remote_code modules (transformers_modules.*) do not pickle."),
        fix=N_("Use a top-level collator object such as `dsocr_probe.DeepseekOCRCollator`, keep model and processor "
               "objects out of it, or set `dataloader_num_workers: 0`."),
    ),
    "fork": Text(
        N_("The collator does not pickle (%(problem)s); fine with %(workers)d workers here, fatal with workers on "
           "Windows/macOS"),
        fix=N_("Use a top-level collator object such as `dsocr_probe.DeepseekOCRCollator`."),
    ),
})

define("train_config.workers", {
    "not-checked": Text(N_("%(workers)d DataLoader workers: pickling not checked, the batch builder cannot be made "
                           "(%(cause)s)"), fix="%(cause_fix)s"),
    "": Text(N_("%(workers)d DataLoader workers; the verified batch builder and the dataset pickle")),
})

define("train_config.workers-pickle", Text(
    N_("%(workers)d DataLoader workers need the batch builder and the dataset to pickle: %(problem)s"),
    fix=N_("Set `dataloader_num_workers: 0`, and keep model and processor objects with open handles out of the data "
           "section."),
))

# ---------------------------------------------------------------- LoRA

_TASK_FIX = N_("Set `lora.task_type: %(want)s` (TaskType.%(want)s).")
_ON_DECODER = N_("LoRA task_type %(task)s on a decoder-only model")
define("train_config.task-type", {
    "seq2seq-on-decoder": Text(
        _ON_DECODER,
        detail=N_("PEFT's seq2seq wrapper passes decoder_input_ids, so every step fails with "
                  "`forward() got an unexpected keyword argument 'decoder_input_ids'`."),
        fix=_TASK_FIX,
    ),
    "on-decoder": Text(_ON_DECODER, fix=_TASK_FIX),
    "on-encoder-decoder": Text(N_("LoRA task_type %(task)s on an encoder-decoder model"), fix=_TASK_FIX),
    "fits": Text(N_("LoRA task_type %(task)s fits the architecture")),
})

_NEEDS_PEFT = N_("`lora.%(key)s` is not a LoraConfig field in peft %(peft)s: it needs peft >= %(since)s")
_UNEXPECTED_FIELD = N_("`LoraConfig(**lora)` fails with `LoraConfig.__init__() got an unexpected keyword argument "
                       "'%(key)s'`.")
define("train_config.lora-field-unsupported", {
    "newer-peft": Text(_NEEDS_PEFT, detail=_UNEXPECTED_FIELD,
                       fix=N_("`pip install 'peft>=%(since)s'` (with transformers 4.46.x–4.47.1 for DeepSeek-OCR v1: "
                              "peft 0.17.1), or remove `%(key)s:`.")),
    "unknown": Text(N_("`lora.%(key)s` is not a LoraConfig field in peft %(peft)s"), detail=_UNEXPECTED_FIELD,
                    fix=N_("Remove `%(key)s:` (or correct its spelling).")),
})

define("train_config.lora-targets", {
    "cause": Text(N_("LoRA target_modules not matched: %(cause)s"), fix="%(cause_fix)s"),
    "no-modules": Text(N_("LoRA target_modules not matched: the model could not be built without weights"),
                       fix=N_("See the model API probe.")),
    "matched": Text(NP_("LoRA target_modules %(targets)s match %(count)d module",
                 "LoRA target_modules %(targets)s match %(count)d modules", "count")),
})

define("train_config.lora-refused", Text(
    N_("get_peft_model refuses this LoRA section: %(error)s"),
    fix=N_("Correct the `lora` value the message names."),
))

define("train_config.lora-module-type", Text(
    N_("peft %(peft)s cannot put LoRA on %(type)s modules (%(count)d matched by target_modules, e.g. %(example)s)"),
    detail=N_("get_peft_model fails with: %(error)s"),
    fix=N_("Target linear layers instead: %(suggestion)s."),
))

define("train_config.lora-targets-missing", Text(
    N_("LoRA target_modules %(targets)s match no module of the model"),
    fix=N_("Use the language-model projections: %(suggestion)s."),
))

define("train_config.lora-vision-only", Text(
    N_("Every LoRA adapter sits on the vision path, which runs under torch.no_grad(): nothing will learn"),
    fix=N_("Target the language model: %(suggestion)s."),
))

define("train_config.lora-vision-some", Text(
    NP_("%(frozen)d of %(matched)d LoRA adapters sits on the vision path (no gradients there)",
        "%(frozen)d of %(matched)d LoRA adapters sit on the vision path (no gradients there)", "frozen"),
    detail=N_("Those adapters add memory and parameters but never change: %(modules)s"),
    fix=N_("Restrict target_modules to the language model."),
))

# ---------------------------------------------------------------- 4/8-bit loading

define("train_config.quantization-no-bitsandbytes", Text(
    N_("The model section loads in %(bits)d bits, but bitsandbytes is not installed"),
    detail=N_("`from_pretrained` with a bitsandbytes config raises an ImportError before any weight loads."),
    fix=N_("`pip install bitsandbytes` (a CUDA machine), or drop the 4/8-bit settings."),
))

define("train_config.quantized-vision", Text(
    NP_("%(bits)d-bit loading would quantize %(count)d linear layer of the vision side (%(roots)s)",
        "%(bits)d-bit loading would quantize %(count)d linear layers of the vision side (%(roots)s)", "count"),
    detail=N_("bitsandbytes replaces every nn.Linear that `llm_int8_skip_modules` does not name; the image encoders "
              "and the projector would then read pages through %(bits)d-bit weights, which costs OCR accuracy that "
              "LoRA on the language model cannot win back."),
    fix=N_("Keep the vision side in full precision: `quantization_config.llm_int8_skip_modules: [%(keep)s]`."),
))
