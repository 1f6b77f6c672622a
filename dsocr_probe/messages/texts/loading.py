"""Loading what a training run loads: tokenizer, processor, model, and the remote code they may import."""

from ..catalog import N_, Text, define

define("loading.tokenizer", Text(
    N_("%(auto_class)s cannot load %(path)s: %(error)s"),
    fix=N_("Copy the checkpoint's tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) "
           "into the model folder."),
))

define("loading.processor", Text(
    N_("%(auto_class)s cannot load %(path)s: %(error)s"),
    fix=N_("Copy the checkpoint's processor and tokenizer files into the model folder."),
))

define("loading.processor-needs-torchvision", Text(
    N_("The processor needs torchvision, which is not installed: %(error)s"),
    detail=N_("This family's processor builds a video processor next to the image processor, and that requires "
              "torchvision; AutoProcessor cannot load without it."),
    fix=N_("`pip install '%(use)s'` built for your torch %(torch)s (from the index your torch came from)."),
))

define("loading.dtype", Text(
    N_("%(where)s: %(value)r is not a dtype"),
    fix=N_("Use one of bfloat16, float16, float32 (or auto) for %(where)s."),
))

define("loading.no-auto-class", Text(
    N_("config.json auto_map names no model class (%(mapped)s)"),
    fix=N_("Restore config.json from the checkpoint: auto_map must name AutoModel (or a task-head Auto class)."),
))

define("loading.no-weights", Text(
    N_("%(path)s has no weight files (*.safetensors or *.bin)"),
    fix=N_("Download the full checkpoint (`huggingface-cli download <id> --revision <commit>`) and pass its folder."),
))

define("loading.remote-import", Text(
    N_("Loading the model imports code that fails: %(error)s"),
    fix=N_("Install the transformers release the remote code was written for (see the remote-code probe)."),
))

define("loading.model", Text(
    N_("%(cls)s.from_pretrained fails: %(error)s"),
    detail="%(message)s",  # data, not words
    fix=N_("See the model API probe for the class that loads this checkpoint; check the weight files are complete."),
))

define("loading.device", Text(
    N_("Moving the model to %(device)s fails: %(error)s"),
    detail=N_("`no kernel image is available` means this torch build has no kernels for the GPU (see the CUDA "
              "probe); `Torch not compiled with CUDA enabled` means a CPU-only torch."),
    fix=N_("Install the torch build the CUDA probe names, or run the step on the CPU with --dsocr-device cpu."),
))

_TRUST_FIX = N_("Read the remote-code findings, then re-run with --dsocr-trust-remote-code --dsocr-revision <commit>.")
define("loading.untrusted", {
    "tokenizer": Text(N_("The tokenizer is remote code (%(parts)s): not imported without --dsocr-trust-remote-code"),
                      fix=_TRUST_FIX),
    "processor": Text(N_("The processor is remote code (%(parts)s): not imported without --dsocr-trust-remote-code"),
                      fix=_TRUST_FIX),
    "model": Text(N_("The model is remote code (%(parts)s): not imported without --dsocr-trust-remote-code"),
                  fix=_TRUST_FIX),
})

_PIN_FIX = N_("Pin the reviewed files: --dsocr-revision %(digest)s (`model.revision` in the training config; a hub "
              "snapshot's or a clean git checkout's commit also pins), or accept the risk with --dsocr-allow-unpinned "
              "(`--allow-unpinned` for dsocr-train).")
define("loading.unpinned", {
    "tokenizer": Text(N_("The tokenizer is remote code (%(parts)s): not imported, the revision is not a pinned commit "
                         "or content digest verified against its files"), fix=_PIN_FIX),
    "processor": Text(N_("The processor is remote code (%(parts)s): not imported, the revision is not a pinned commit "
                         "or content digest verified against its files"), fix=_PIN_FIX),
    "model": Text(N_("The model is remote code (%(parts)s): not imported, the revision is not a pinned commit "
                     "or content digest verified against its files"), fix=_PIN_FIX),
})
