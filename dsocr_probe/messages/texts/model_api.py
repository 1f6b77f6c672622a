"""The model API probe: how the model must be loaded and called (Auto classes, forward, its config)."""

from __future__ import annotations

from ..catalog import N_, Text, define

define("model_api.target", Text(N_("Model `%(name)s` found")))

define("model_api.auto-classes", {
    "all": Text(N_("Load with %(accepted_names)s")),
    "some-refuse": Text(
        N_("Load with %(accepted_names)s; %(refused_names)s refuse this checkpoint"),
        fix=N_("Use `%(use)s.from_pretrained(...)`: a script that calls %(refused_first)s stops with 'Unrecognized "
               "configuration class'."),
    ),
})

define("model_api.no-auto-class", Text(
    N_("No Auto class accepts this checkpoint"),
    fix=N_("Load the class named in config.json `architectures` directly, or fix the checkpoint's auto_map."),
))

define("model_api.signature", {
    "read": Text(N_("forward() takes %(params)s")),
    "not-read": Text(N_("forward() signature not read: %(how)s"), fix=N_("Re-run with --dsocr-trust-remote-code.")),
})

define("model_api.no-image-input", Text(
    N_("forward() takes no image argument"),
    fix=N_("Check that this is the vision-language checkpoint, not its text-only language model."),
))

define("model_api.no-labels", Text(
    N_("forward() takes no labels: the loss must be computed outside"),
    fix=N_("Subclass Trainer.compute_loss, or use the checkpoint's causal-LM class."),
))

define("model_api.meta-build", {
    "built": Text(N_("%(cls)s builds without weights: %(millions)s M parameters, %(linear)d Linear modules")),
    "failed": Text(
        N_("A weightless instance could not be built: %(error)s"),
        fix=N_("The step probe loads the real weights and will show whether from_pretrained hits the same error."),
    ),
})

_TYPE_CLASS = N_("%(file)s names processor_class %(cls)s, a `%(other)s` processor, but config.json says model_type "
                 "`%(model_type)s`")
_TYPE_CLASS_DETAIL = N_(
    "The checkpoint's files disagree about the model: AutoProcessor cannot build %(cls)s and returns only the part "
    "it can load (for DeepSeek-OCR v1 the bare tokenizer), not this model's processor. Loading can also print `You "
    "are using a model of type %(other)s to instantiate a model of type %(model_type)s` (DeepSeek-OCR v1 does); it "
    "comes from these files, the weights are not affected.")
_TYPE = N_("%(file)s says model_type `%(other)s` but config.json says `%(model_type)s`")
_TYPE_DETAIL = N_(
    "The checkpoint's files disagree about the model: what AutoProcessor builds from %(file)s belongs to "
    "`%(other)s`, not to this model. Loading can also print `You are using a model of type %(other)s to instantiate "
    "a model of type %(model_type)s` (DeepSeek-OCR v1 does); it comes from these files, the weights are not "
    "affected.")
_USE_BUILDER = N_("Do not build batches with AutoProcessor: use `%(builder)s`, which lays out the images for "
                  "%(model_type)s itself; the warning about type %(other)s then does not matter.")
_RESTORE = N_("Restore %(file)s from the checkpoint these weights come from (same repository and revision), so that "
              "AutoProcessor builds this model's processor; or build batches with the dsocr_probe builder for this "
              "model.")
define("model_api.model-type-mismatch", {
    "class-builder": Text(_TYPE_CLASS, detail=_TYPE_CLASS_DETAIL, fix=_USE_BUILDER),
    "class-restore": Text(_TYPE_CLASS, detail=_TYPE_CLASS_DETAIL, fix=_RESTORE),
    "model-type-builder": Text(_TYPE, detail=_TYPE_DETAIL, fix=_USE_BUILDER),
    "model-type-restore": Text(_TYPE, detail=_TYPE_DETAIL, fix=_RESTORE),
})

# Raised by model.skeleton when the config cannot be loaded.
define("model_api.unknown-model-type", {
    variant: Text(N_("transformers %(transformers)s does not know model_type `%(model_type)s` and the checkpoint "
                     "maps no remote code"), fix=fix)
    for variant, fix in (("since", N_("`pip install 'transformers>=%(since)s'`")),
                         ("", N_("Upgrade transformers to a release with this model.")))
})

define("model_api.config-import", Text(
    N_("Loading the remote config fails: %(error)s"),
    detail=N_("Loading a remote-code config imports the checkpoint's modules; see the remote-code findings for the "
              "symbol or package that is missing."),
    fix=N_("Install the transformers release the remote code was written for (see the remote-code probe)."),
))
