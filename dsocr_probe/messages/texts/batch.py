"""The batch probe, and the batch problems the builders' validators find (their titles are the problems)."""

from ..catalog import N_, Text, define

define("batch.no-rows", Text(N_("No usable training rows to build a batch from"), fix=N_("See the dataset probe.")))

define("batch.no-signature", Text(N_("forward() signature unknown: %(how)s"), fix=N_("See the model API probe.")))

define("batch.builder-raised", {
    "tokenizer-processor": Text(
        N_("The collator raised on the first %(count)d training rows: %(error)s"),
        fix=N_("The processor is the bare tokenizer and takes no images: use `dsocr_probe.DeepseekOCRCollator("
               "tokenizer, mode=...)` as the data collator."),
    ),
    "row": Text(
        N_("The collator raised on the first %(count)d training rows: %(error)s"),
        fix=N_("Fix the row or the collator named in the message; the builder names the example by index and path."),
    ),
})

define("batch.built", Text(N_("%(origin)s built a batch of %(count)d")))

_UNKNOWN_REJECTED = N_("Every step fails with `forward() got an unexpected keyword argument '%(key)s'`.")
_UNKNOWN_IGNORED = N_("forward() swallows it in **kwargs and ignores it.")
_UNKNOWN_NEAR = N_("The batch has `%(key)s`, which forward() does not take; this model takes `%(near)s`")
_UNKNOWN = N_("The batch has `%(key)s`, which forward() does not take")
_EMIT_NEAR = N_("Emit `%(near)s` instead of `%(key)s` (see the reference batch layout).")
_DROP = N_("Drop `%(key)s` from the collator's output.")
define("batch.unknown-key", {
    "rejected-near": Text(_UNKNOWN_NEAR, detail=_UNKNOWN_REJECTED, fix=_EMIT_NEAR),
    "rejected": Text(_UNKNOWN, detail=_UNKNOWN_REJECTED, fix=_DROP),
    "ignored-near": Text(_UNKNOWN_NEAR, detail=_UNKNOWN_IGNORED, fix=_EMIT_NEAR),
    "ignored": Text(_UNKNOWN, detail=_UNKNOWN_IGNORED, fix=_DROP),
})

_MISSING_FIX = N_("Use the dsocr_probe builder for this family, or add the missing keys.")
define("batch.missing-key", {
    "forward": Text(
        N_("The batch lacks %(keys)s"),
        detail=N_("Without the image inputs the forward fails (or trains a text-only model); without labels there is "
                  "no loss."),
        fix=N_("Use the dsocr_probe builder for this family, or add the missing keys to the collator's output."),
    ),
    "layout": Text(N_("missing %(missing)s: forward() needs input_ids, images, images_seq_mask and "
                      "images_spatial_crop"), fix=_MISSING_FIX),
    "token-type-ids": Text(N_("missing token_type_ids: the forward takes the whole sequence for a bidirectional "
                              "prefix"), fix=_MISSING_FIX),
})

define("batch.keys", Text(N_("Batch keys %(keys)s all match forward()")))

_PIXEL_FIX = N_("Build pixels in the model's dtype, or train with autocast (bf16: true).")
define("batch.pixel-dtype", {
    "": Text(
        N_("%(key)s is %(dtype)s but the model runs in %(model_dtype)s"),
        detail=N_("Without autocast the first convolution fails: Input type (%(dtype)s) and bias type "
                  "(%(model_dtype)s) should be the same."),
        fix=N_("Build pixels in the model's dtype (dsocr_probe builders take `dtype=%(model_dtype)s`), or train with "
               "autocast (bf16: true)."),
    ),
    "validator": Text(N_("pixels are %(dtype)s but the model runs in %(model_dtype)s: without autocast the first "
                         "convolution fails"), fix=_PIXEL_FIX),
})

_MASK_FIX = N_("Build images_seq_mask with dtype=torch.bool.")
define("batch.mask-dtype", {
    "": Text(N_("images_seq_mask is %(dtype)s, not bool"),
             detail=N_("masked_scatter_ only supports boolean masks: the forward fails."), fix=_MASK_FIX),
    "validator": Text(N_("images_seq_mask is %(dtype)s: masked_scatter_ only supports boolean masks, the forward "
                         "fails"), fix=_MASK_FIX),
})

# ---------------------------------------------------------------- image slots against the vision path

_FEATURES_DETAIL = N_("The model writes one visual feature into each image slot, in order: with these counts its "
                      "forward stops with `Image features and image tokens do not match` (a model that does not "
                      "check puts the features in the wrong places). Features counted by running %(method)s on the "
                      "weightless model.")
_FEATURES_TITLE = N_("The batch has %(slots)s image slots %(scope)s but the model's vision path yields %(features)s "
                     "visual features")
define("batch.image-features", {
    "match": Text(N_("Image slots match the visual features the model's vision path yields: %(slots)s %(scope)s")),
    "processor": Text(_FEATURES_TITLE, detail=_FEATURES_DETAIL, fix=N_(
        "%(processor)s makes %(slots)s image slots %(scope)s but the model's vision path yields %(features)s: build "
        "batches with the processor settings the checkpoint was trained with (`AutoProcessor.from_pretrained` on the "
        "model folder with the processor files that came with the weights, without overriding image size, tiling, "
        "patch_size or downsample_ratio); the dsocr_probe builder on that processor then emits one slot per feature.")),
    "own": Text(_FEATURES_TITLE, detail=_FEATURES_DETAIL, fix=N_(
        "Emit one image token per visual feature (%(features)s %(scope)s): let the checkpoint's processor expand the "
        "image token (`AutoProcessor.from_pretrained` on the model folder), or use the dsocr_probe builder for this "
        "model family.")),
})

define("batch.slots-not-compared", Text(
    N_("Labels and masks follow the model's layout; the image slots were not compared with the model's visual "
       "features"),
    detail=N_("Why they were not compared: %(why)s"),
    fix=N_("Nothing to change in the batch; a mismatch would show in the training step (`Image features and image "
           "tokens do not match`). See the evidence for why it was not compared."),
))

# ---------------------------------------------------------------- problems the validators find

_LAYOUT_FIX = N_("Build batches with the dsocr_probe builder for this model family, which follows the official layout.")


def _layout(title: str) -> Text:
    return Text(title, fix=_LAYOUT_FIX)


define("batch.layout", {
    "checked": Text(N_("Image slots, labels and masks follow the model's layout")),
    "slots-blocked": Text(N_("Labels and masks follow the model's layout (the image slots do not: see above)")),
    "no-labels": _layout(N_("no 'labels': the model computes no loss")),
    "labels-not-tensor": _layout(N_("'labels' must be a tensor, got %(type)s")),
    "no-input-ids": _layout(N_("no 'input_ids'")),
    "ids-shape": _layout(N_("input_ids must be a [batch, length] tensor")),
    "mask-shape": _layout(N_("images_seq_mask must be a tensor shaped like input_ids %(shape)s")),
    "crop-shape": _layout(N_("images_spatial_crop must be an integer tensor [%(batch)d, 2] of (width_crops, "
                             "height_crops)")),
    "images-list": _layout(N_("images must be a list of %(batch)d (patches, global_view) pairs, one per sample")),
    "not-a-pair": _layout(N_("images[%(index)d] is not a (patches [n,3,s,s], global_view [1,3,S,S]) pair: the model "
                             "indexes images[i][1] (IndexError)")),
    "view-shape": _layout(N_("images[%(index)d][1] is %(shape)s: the global view must be one square image "
                             "[1, 3, S, S]")),
    "view-size": _layout(N_("images[%(index)d] global view is %(side)dpx but mode %(mode)s uses %(size)dpx")),
    "crop-count": _layout(N_("images[%(index)d][0] has %(crops)d crops but images_spatial_crop[%(index)d] says "
                             "%(width)dx%(height)d")),
    "slot-ids": _layout(N_("%(count)d image slot(s) do not hold the image token id %(token_id)d")),
    "stray-image-tokens": _layout(N_("%(count)d image token(s) (id %(token_id)d) outside images_seq_mask: the model "
                                     "reads them as text")),
    "mixed-pixel-dtypes": _layout(N_("pixel tensors mix dtypes %(dtypes)s")),
    "pixel-dtype-setting": _layout(N_("'%(key)s' is %(dtype)s but the builder was set to %(builder_dtype)s")),
    "no-tile-counts": _layout(N_("no 'num_local_patches': the model cannot split the local tiles per page")),
    "tile-counts": _layout(N_("'num_local_patches' has %(count)d entries for %(samples)d samples")),
    "tile-slots": _layout(N_("sample %(sample)d has %(slots)d image slots; a page with %(tiles)d tile(s) needs "
                             "%(want)d (%(per_view)d global + %(per_tile)d x %(tiles)d + 1)")),
    "global-views": _layout(N_("'pixel_values' holds %(views)d global views for %(samples)d samples")),
    "local-tiles": _layout(N_("'pixel_values_local' holds %(tiles)d tiles but 'num_local_patches' counts "
                              "%(counted)d")),
    "labels-on-prefix": _layout(N_("%(count)d label(s) on token_type_ids 0 (the bidirectional prefix): a target "
                                   "there sees the tokens after it")),
    "no-image-slot": _layout(N_("sample %(sample)d has no image slot: the model never sees its image")),
    "no-placeholder-slot": _layout(N_("sample %(sample)d has no %(token)s slot: the model never sees its image")),
})

_SLOTS_FIX = N_("Emit one image slot per visual feature: the global view's nb*(nb+1)+1 and the crops' nq*h*(nq*w+1) "
                "(`dsocr_probe.collators.deepseek_ocr_v1.image_token_count(width, height, mode)` gives the count).")
define("batch.image-slots", {
    "too-few": Text(N_("sample %(sample)d has %(slots)d image slots but the model writes %(expected)d visual features "
                       "(%(how)s): the real forward accepts this silently and leaves the last %(unused)d unused (a row "
                       "without its newline slot or a missing view separator)"), fix=_SLOTS_FIX),
    "too-many": Text(N_("sample %(sample)d has %(slots)d image slots but the model writes only %(expected)d visual "
                        "features (%(how)s): the forward fails with `Number of elements of source < number of ones in "
                        "mask`"), fix=_SLOTS_FIX),
})

_PLACEHOLDER_FIX = N_("Set labels to -100 on every image placeholder token.")
define("batch.labels-on-images", {
    "mask": Text(N_("%(count)d label(s) on image slots: they must be -100; the model trains on them silently"),
                 fix=N_("Set labels to -100 wherever images_seq_mask is True.")),
    "slots": Text(N_("%(count)d label(s) on image slots (must be -100)"), fix=_PLACEHOLDER_FIX),
    "token": Text(N_("%(count)d label(s) on image token positions (id %(token_id)d); they must be -100"),
                  fix=_PLACEHOLDER_FIX),
})

define("batch.labels-on-prompt", Text(
    N_("sample %(sample)d: %(count)d label(s) on the prompt, before the end of its image slots; they must be -100"),
    fix=N_("Set labels to -100 on the whole prompt (bos, image slots and instruction): only the target and the "
           "end-of-turn/eos are supervised. `dsocr_probe.builder_for(model_path)` builds such batches."),
))

define("batch.no-bos", Text(
    N_("sample(s) %(samples)s do not start with bos (id %(bos)d); the model trains on it silently"),
    fix=N_("Start every sample with the tokenizer's bos token; the dsocr_probe builders prepend it."),
))

define("batch.first-sample-text-only", Text(
    N_("the first sample has no image: the model then skips the vision path for the whole batch"),
    fix=N_("Put a sample with an image first in every batch, or give text-only samples batches of their own."),
))

define("batch.no-target", Text(
    N_("sample %(sample)d has no supervised token (all labels are -100)"),
    fix=N_("Every sample needs its target text and eos in labels (not -100)."),
))

_PADDING_FIX = N_("Set labels to -100 and keep image slots off padding positions (attention_mask 0).")
define("batch.padding", {
    "labels": Text(N_("%(count)d label(s) on padding positions"), fix=_PADDING_FIX),
    "slots": Text(N_("%(count)d image slot(s) on padding positions (attention_mask 0)"), fix=_PADDING_FIX),
})

# ---------------------------------------------------------------- the builder for a family

define("loading.builder", Text(
    N_("The batch builder for %(family)s refuses these settings: %(error)s"),
    fix=N_("Correct the data section of the training config (mode, max_length, prompt) as the message says."),
))
