"""The FSDP and DeepSpeed settings of the training section, as the distributed probe judges them before a launch."""

from ..catalog import NP_, N_, Text, define

define("distributed.engine-unreadable", Text(
    N_("`%(name)s` cannot be read: %(path)s (%(error)s)"),
    fix=N_("Give `%(name)s` as a mapping in the training section or the path of a JSON file (relative to the folder "
           "training starts in, or to the config's folder)."),
))

define("distributed.fsdp-option", Text(
    N_("`fsdp: %(option)s` is not an FSDP option of this transformers"),
    detail=N_("Known: %(known)s."),
    fix=N_("Use the known options, e.g. `fsdp: full_shard auto_wrap`."),
))

_FSDP_KEY = N_("`fsdp_config.%(key)s` is a key neither TrainingArguments nor accelerate reads on the installed "
               "versions: it is ignored")
_RENAME = N_("Rename it to `%(near)s`.")
define("distributed.fsdp-key", {
    "near": Text(_FSDP_KEY, fix=_RENAME),
    "": Text(_FSDP_KEY, fix=N_("Remove it, or check the name in the accelerate FSDP documentation for the installed "
                               "version.")),
})

_DEEPSPEED_KEY = N_("DeepSpeed config key `%(key)s` is not one DeepSpeed reads")
_DEEPSPEED_KEY_DETAIL = N_("DeepSpeed ignores or refuses unknown keys, depending on its version.")
define("distributed.deepspeed-key", {
    "near": Text(_DEEPSPEED_KEY, detail=_DEEPSPEED_KEY_DETAIL, fix=_RENAME),
    "": Text(_DEEPSPEED_KEY, detail=_DEEPSPEED_KEY_DETAIL, fix=N_("Remove it.")),
})

define("distributed.deepspeed-precision", Text(
    N_("DeepSpeed `%(name)s.enabled: %(deepspeed)s` disagrees with TrainingArguments `%(name)s: %(arguments)s`"),
    detail=N_("The Trainer refuses a DeepSpeed config whose values mismatch the arguments."),
    fix=N_('Write `"%(name)s": {"enabled": "auto"}` in the DeepSpeed config, so it follows the training section.'),
))

_ZERO3 = N_("ZeRO stage 3 partitions every weight, the frozen ones included, across the ranks")
_ZERO3_VISION = N_("ZeRO stage 3 partitions every weight, the frozen ones included, across the ranks, the frozen "
                   "vision tower too")
_ZERO3_DETAIL = N_("With LoRA only the adapters train, yet stage 3 gathers each frozen weight for every forward; model "
                   "code that reads a weight outside its module's forward sees an empty tensor.")
_ZERO3_VISION_DETAIL = N_("With LoRA only the adapters train, yet stage 3 gathers each frozen weight for every "
                          "forward; model code that reads a weight outside its module's forward sees an empty tensor. "
                          "DeepSeek-OCR's vision encoders run under torch.no_grad(): their weights are gathered every "
                          "step for nothing.")
_ZERO2 = N_("Use ZeRO stage 2 (the frozen base fits on each card with LoRA).")
_ZERO2_OR_GATHER = N_("Use ZeRO stage 2 (the frozen base fits on each card with LoRA); with stage 3, set "
                      "`stage3_gather_16bit_weights_on_model_save: true` or the saved adapter is empty.")
define("distributed.zero3", {
    "gather": Text(_ZERO3, detail=_ZERO3_DETAIL, fix=_ZERO2),
    "no-gather": Text(_ZERO3, detail=_ZERO3_DETAIL, fix=_ZERO2_OR_GATHER),
    "vision-gather": Text(_ZERO3_VISION, detail=_ZERO3_VISION_DETAIL, fix=_ZERO2),
    "vision-no-gather": Text(_ZERO3_VISION, detail=_ZERO3_VISION_DETAIL, fix=_ZERO2_OR_GATHER),
})

define("distributed.fsdp-and-deepspeed", Text(
    N_("Both `fsdp` and `deepspeed` are set"),
    fix=N_("Choose one engine: remove `fsdp` or `deepspeed` from the training section."),
))

define("distributed.fsdp-config", Text(NP_(
    "FSDP `%(fsdp)s` with %(keys)d fsdp_config key known to the installed transformers and accelerate",
    "FSDP `%(fsdp)s` with %(keys)d fsdp_config keys known to the installed transformers and accelerate", "keys")))

define("distributed.deepspeed-config", {
    "file-stage": Text(N_("DeepSpeed config (%(path)s): known keys, precision agrees with the arguments, ZeRO stage "
                          "%(stage)d")),
    "file": Text(N_("DeepSpeed config (%(path)s): known keys, precision agrees with the arguments")),
    "inline-stage": Text(N_("DeepSpeed config (the training section): known keys, precision agrees with the "
                            "arguments, ZeRO stage %(stage)d")),
    "inline": Text(N_("DeepSpeed config (the training section): known keys, precision agrees with the arguments")),
})
