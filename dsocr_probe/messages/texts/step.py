"""The step probe: the team's own training run, for a few optimizer steps."""

from ..catalog import NP_, N_, Text, define

# ---------------------------------------------------------------- before the run

define("step.no-data", Text(
    N_("No training rows to build a batch from"),
    fix=N_("Pass --dsocr-data DIR (train/metadata.json with image_path and text rows)."),
))

define("step.no-usable-rows", Text(
    N_("No training row has an image that opens"),
    fix=N_("See the dataset probe: it names each row and why its image cannot be read."),
))

define("step.no-weights", Text(
    N_("Not run: %(path)s holds no weights (config and tokenizer only)"),
    detail=N_("The static probes and the memory forecast work from config.json alone; a real step needs the weights."),
    fix=N_("Download the checkpoint's weight files into the folder to run the real step."),
))

define("step.model-loaded", Text(N_("Loaded %(cls)s in %(dtype)s on %(device)s")))

_TASK_DETAIL = N_("With %(given)s, %(outcome)s. The rest of this probe ran with %(want)s.")
_TASK_FIX = N_("Set `lora.task_type: %(want)s` (peft `TaskType.%(want)s`).")
define("step.task-type", {
    "decoder-only": Text(N_("LoRA task_type %(given)s on a decoder-only model: it must be %(want)s"),
                         detail=_TASK_DETAIL, fix=_TASK_FIX),
    "encoder-decoder": Text(N_("LoRA task_type %(given)s on an encoder-decoder model: it must be %(want)s"),
                            detail=_TASK_DETAIL, fix=_TASK_FIX),
})

_WRAP_TITLE = N_("get_peft_model fails with this LoRA config: %(exception)s: %(error)s")
define("step.lora-wrap", {
    "targets": Text(_WRAP_TITLE, fix="%(targets_fix)s"),
    "value": Text(_WRAP_TITLE, fix=N_("Correct the `lora` value the message names (see the training-config probe).")),
})

# ---------------------------------------------------------------- the run that was checked

define("step.run", Text(
    NP_("Ran %(trainer)s.train() with %(collator)s on the largest batch of the split (%(rows)d row)",
        "Ran %(trainer)s.train() with %(collator)s on the largest batch of the split (%(rows)d rows)", "rows"),
    detail=N_("Overridden for the probe: %(overrides)s. The training script builds the rest the same way (its own "
              "changes are marked in the table)."),
))

define("step.rows", Text(N_("Batches measured: the %(largest)d largest rows and the first %(first)d")))

define("step.lora", Text(
    N_("LoRA (%(task_type)s) on %(modules)d modules: %(trainable)s trainable of %(total)s parameters")))

define("step.trainer-init", {
    "refused": Text(
        N_("%(trainer)s(...) refuses the configured run: %(error)s"),
        detail=N_("Made as scripts/train_lora.py makes it, with your evaluation, saving and reporting settings."),
        fix=N_("Correct the training setting the message names (an eval strategy needs the val split; a "
               "`report_to` integration must be installed)."),
    ),
    "accepted": Text(N_("%(trainer)s(...) accepts the configured run")),
    "evaluates": Text(N_("%(trainer)s(...) accepts the configured run, with %(rows)d val rows to evaluate")),
})

_FAILS = N_("The training run fails: %(exception)s: %(error)s")
_FAILS_DETAIL = N_("Raised while %(trainer)s (%(trainer_from)s) trained with the collator %(collator)s "
                   "(%(collator_from)s).")
define("step.forward-fails", {
    "in-place": Text(_FAILS, detail=_FAILS_DETAIL, fix=N_(
        "The embeddings were made to require grad (gradient checkpointing enabled before get_peft_model, or "
        "enable_input_require_grads), and this model writes the image features into them in place: let the Trainer "
        "enable checkpointing after wrapping, with `gradient_checkpointing_kwargs: {use_reentrant: false}`.")),
    "num-items": Text(_FAILS, detail=_FAILS_DETAIL, fix=N_(
        "Add `num_items_in_batch=None` to the Trainer subclass's compute_loss (see the training-config probe).")),
    "no-labels": Text(_FAILS, detail=_FAILS_DETAIL, fix=N_(
        "The model computes the loss from `labels`: the collator must put them in every batch (see the batch probe).")),
    "other": Text(_FAILS, detail=_FAILS_DETAIL, fix=N_(
        "Compare with the batch and model API probes; with gradient_checkpointing on, try it off.")),
})

define("step.gradient-checkpointing", Text(
    N_("gradient_checkpointing is set, but the model refuses it: %(error)s"),
    fix=N_("Set `gradient_checkpointing: false` and lower the batch size or max length instead."),
))

# ---------------------------------------------------------------- causality

define("step.causality", Text(N_("A target token sees no later target token (the logits before it do not move)")))

define("step.causality-unchecked", Text(N_("Causality not checked: %(why)s")))

_LEAK = N_("Target position %(at)s sees the later target token at %(later)s: the model can copy the answer instead "
           "of reading the page")
_LEAK_DETAIL = N_("Replacing one later target token changed the logits that predict earlier target tokens. The loss "
                  "falls, but generation has no later tokens to look at, so what the model learns does not carry "
                  "over.")
define("step.prefix-leak", {
    "token-types": Text(
        _LEAK,
        detail=N_("Replacing one later target token changed the logits that predict earlier target tokens. The loss "
                  "falls, but generation has no later tokens to look at, so what the model learns does not carry "
                  "over. This family's forward is a prefix-LM: token_type_ids must be %(types)s."),
        fix=N_("Pass the target to the processor as `suffix` (token_type_ids 1 on the target and eos): "
               "`dsocr_probe.builder_for(model_path)` builds it so."),
    ),
    "causal-mask": Text(_LEAK, detail=_LEAK_DETAIL, fix=N_(
        "Use a causal attention mask over the target (the dsocr_probe builder for this family does).")),
})

# ---------------------------------------------------------------- loss and gradients

define("step.loss", Text(N_("First step: loss %(loss).4f is finite")))

define("step.loss-not-finite", Text(
    N_("The first step's loss is %(loss)s"),
    detail=N_("A NaN or infinite loss at step one comes from fp16 overflow, a batch whose labels are all -100, or "
              "broken weights."),
    fix=N_("Train in bf16 or fp32 (not fp16) and check the batch probe's label findings."),
))

define("step.gradients-not-finite", Text(
    NP_("%(count)d adapter got NaN or infinite gradients at the first step",
        "%(count)d adapters got NaN or infinite gradients at the first step", "count"),
    detail="%(modules)s",  # data: module names
    fix=N_("Train in bf16 or fp32 instead of fp16, and lower the learning rate."),
))

define("step.adapters-vision-only", Text(
    N_("Adapters only on vision modules: none of them gets a gradient, so nothing will learn"),
    detail=N_("The vision encoders and the projector run under torch.no_grad() inside the model's forward (or lie "
              "off the loss's path): the adapters there keep their initial values."),
    fix="%(targets_fix)s",
))

_NO_GRADIENTS = N_("None of the %(count)d adapters gets a gradient")
define("step.no-gradients", {
    "reentrant": Text(
        _NO_GRADIENTS,
        detail=N_("Reentrant gradient checkpointing passes no gradient into a checkpointed block whose input does "
                  "not require one, and the frozen embeddings' output does not."),
        fix=N_("Set `gradient_checkpointing_kwargs: {use_reentrant: false}`."),
    ),
    "targets": Text(_NO_GRADIENTS, fix="%(targets_fix)s"),
})

define("step.frozen-with-gradients", Text(
    NP_("%(count)d frozen weight received gradients", "%(count)d frozen weights received gradients", "count"),
    detail="%(names)s",  # data: parameter names
    fix=N_("Something unfroze base weights after wrapping: wrap with peft last and do not set requires_grad by hand."),
))

define("step.trainable-without-gradients", Text(
    NP_("%(count)d trainable parameter besides the adapters got no gradient",
        "%(count)d trainable parameters besides the adapters got no gradient", "count"),
    detail="%(names)s",  # data: parameter names
    fix=N_("Remove them from `modules_to_save` (they never change) or check they are used in forward()."),
))

_SILENT_DETAIL = N_("They add memory and parameters but never change: %(modules)s")
define("step.adapters-without-gradients", {
    "on-vision": Text(
        N_("%(count)d of %(total)d adapters get no gradient (%(on_vision)d on the vision path under torch.no_grad())"),
        detail=_SILENT_DETAIL, fix="%(targets_fix)s"),
    "elsewhere": Text(N_("%(count)d of %(total)d adapters get no gradient"), detail=_SILENT_DETAIL,
                      fix="%(targets_fix)s"),
})

define("step.gradients", {
    "": Text(N_("%(learning)d adapters got finite, non-zero gradients; frozen weights got none")),
    "experts": Text(N_("%(learning)d adapters got finite, non-zero gradients; frozen weights got none; %(experts)d "
                       "expert adapters were not routed to in this batch")),
})

# ---------------------------------------------------------------- learning on a repeated batch

define("step.no-update", Text(
    N_("The adapters did not change in %(steps)d optimizer steps"),
    detail=N_("The gradients reached them (see above), but no update was applied: the optimizer does not hold the "
              "adapters' parameters, or the learning rate is 0."),
    fix=N_("Give `learning_rate` a positive value; a Trainer subclass that overrides `create_optimizer` must pass the "
           "parameters with `requires_grad=True`."),
))

define("step.loss-falls", Text(N_("The loss falls on a repeated batch: %(first).5f → %(last).5f in %(steps)d steps")))

define("step.loss-flat", Text(
    N_("The loss does not fall on a repeated batch (%(trace)s)"),
    detail=N_("%(steps)d optimizer steps of the configured run on the same batch, at learning rates up to %(lr).3g: "
              "the adapters moved, but the loss did not follow. Early in a warm-up, or at a low rate, that can be "
              "normal; otherwise the labels do not supervise the target."),
    fix=N_("Check the batch probe's label findings; if the schedule warms up over many steps, this is expected."),
))

define("step.accumulation", Text(
    N_("Gradient accumulation: one optimizer step over %(micro)s batches of %(batch)d (configured %(accumulation)d)")))

define("step.accumulation-oom", Text(
    N_("Out of memory while accumulating %(accumulation)d batches: %(message)s"),
    fix=N_("Lower `per_device_train_batch_size` (see the memory findings)."),
))

# ---------------------------------------------------------------- memory and time

_OOM = N_("Out of memory on %(device)s with %(what)s")
define("step.out-of-memory", {
    "fitted": Text(
        _OOM,
        detail=N_("%(message)s\nThe largest setting that fitted: batch %(fit_batch)d x %(fit_length)d tokens "
                  "(%(fit_peak)s peak)."),
        fix=N_("Set `per_device_train_batch_size: %(fit_batch)d` and `gradient_accumulation_steps: "
               "%(accumulation)d`, or %(memory_fix)s."),
    ),
    "nothing-fitted": Text(_OOM, detail=N_("%(message)s\nNothing fitted."), fix=N_("Load in bf16, %(memory_fix)s.")),
})

define("step.forecast-oom", Text(
    N_("Forecast for %(what)s: %(need)s, more than the GPU's %(have)s"),
    detail=N_("Linear in tokens and image slots through the measured sizes."),
    fix=N_("Use `per_device_train_batch_size: %(fit_batch)d` with more gradient accumulation, or %(memory_fix)s."),
))

define("step.forecast-tight", Text(
    N_("Forecast for %(what)s: %(need)s of %(have)s (%(share)s)"),
    fix=N_("Leave headroom: %(memory_fix)s."),
))

define("step.cost", Text(N_("One step of %(what)s: about %(peak)s peak and %(seconds).2f s")))
