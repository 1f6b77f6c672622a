"""The processor probe: what AutoProcessor returns, whether it takes images, and the image token."""

from __future__ import annotations

from ..catalog import N_, Text, define

define("processor.takes-images", Text(N_("AutoProcessor returns %(kind)s, which takes images and text")))

_TOKENIZER_ONLY = N_("AutoProcessor returns only the tokenizer (%(kind)s): it takes no images")
_USE_COLLATOR = N_(
    "Do not pass images to the processor. Use the batch builder this probe verifies: `from dsocr_probe import "
    "DeepseekOCRCollator; collator = DeepseekOCRCollator(tokenizer, mode='gundam')` and `Trainer(..., "
    "data_collator=collator)`; it does the image preprocessing and the image-token layout.")
define("processor.tokenizer-only", {
    "refuses": Text(_TOKENIZER_ONLY, detail="processor(images=..., text=...) → %(error)s",  # code and its error
                    fix=_USE_COLLATOR),
    "ignores": Text(_TOKENIZER_ONLY, detail=N_("processor(images=..., text=...) ignores the images without an error: "
                                               "a collator built on it trains on text alone."), fix=_USE_COLLATOR),
})

define("processor.class-not-shipped", Text(
    N_("%(file)s names processor_class %(declared)s, which neither transformers nor the checkpoint ships"),
    detail=N_("AutoProcessor falls back to the tokenizer alone; loading may also warn about a different model type."),
    fix=N_("Build image inputs with the batch builder for this model family instead of the processor."),
))

define("processor.no-image-token", Text(
    N_("The tokenizer has no %(token)r token"),
    fix=N_("Use the checkpoint's own tokenizer files; %(token)r must be a single added special token."),
))

define("processor.image-token-mismatch", Text(
    N_("config.json image_token_id %(config_id)s but the tokenizer maps %(token)r to %(token_id)s"),
    fix=N_("The tokenizer and the weights come from different checkpoints: load both from the same folder."),
))

define("processor.no-pad", Text(
    N_("The tokenizer has no pad token"),
    fix=N_("Set `tokenizer.pad_token = tokenizer.eos_token` before building batches of more than one sample."),
))

define("processor.image-token", Text(N_("Image token %(token)r = id %(token_id)s")))

define("processor.model-mismatch", Text(
    N_("The processor's %(setting)s is %(processor_value)s but the model's %(config_path)s is %(model_value)s "
       "(%(what)s)"),
    detail=N_("The processor lays out image slots by its own setting and the model's vision path by its config; with "
              "different values the image features and the image slots never match, and the training step fails (or "
              "fills the slots with the wrong features)."),
    fix=N_("Set `%(setting)s=%(model_value)s` on the processor (pass it to `AutoProcessor.from_pretrained` or fix "
           "%(file)s), or use the processor files that came with the weights."),
))
