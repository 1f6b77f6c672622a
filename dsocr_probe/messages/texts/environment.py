"""The environment probe: installed packages, known-bad version combinations, compiled extensions."""

from ..catalog import N_, Text, define

define("environment.versions", Text(N_("Python %(python)s on %(os)s")))

define("environment.missing", Text(
    N_("%(dist)s is not installed (%(why)s)"),
    fix=N_("`pip install %(dist)s` (for torch, the build matching your CUDA driver)."),
))

# The version rules of :mod:`dsocr_probe.knowledge.rules`, by their codes.
define("environment.peft-needs-modeling-layers", Text(
    N_("peft %(peft)s cannot be imported with transformers %(transformers)s"),
    detail=N_("peft 0.18.0 imports `transformers.modeling_layers` at import time; that module first ships in "
              "transformers 4.52.1, so `import peft` fails with `No module named 'transformers.modeling_layers'`."),
    fix=N_("For DeepSeek-OCR v1 (needs transformers <= 4.47.1): `pip install 'peft==0.17.1'`. Otherwise "
           "`pip install 'transformers>=4.52.1'`."),
))

define("environment.peft-torch-distributed-tensor", Text(
    N_("peft %(peft)s + transformers %(transformers)s + torch %(torch)s: get_peft_model fails"),
    detail=N_("With this combination `get_peft_model` raises `AttributeError: module 'torch.distributed' has no "
              "attribute 'tensor'`; peft <= 0.17.1 works with these transformers releases."),
    fix=N_("`pip install 'peft==0.17.1'` (DeepSeek-OCR v1 stack: transformers 4.46.3 + peft 0.17.1)."),
))

define("environment.peft-too-old-for-transformers-5", Text(
    N_("transformers %(transformers)s refuses peft %(peft)s"),
    detail=N_("transformers 5.x enforces a minimum peft version (MIN_PEFT_VERSION 0.18.0); LoRA loading and the "
              "Trainer's peft integration raise on older peft."),
    fix=N_("`pip install 'peft>=0.18.0'`, or stay on the v1 stack (transformers 4.46.3 + peft 0.17.1)."),
))

define("environment.peft-too-old-for-transformers-5.23", Text(
    N_("transformers %(transformers)s refuses peft %(peft)s"),
    detail=N_("transformers 5.23 raised its minimum peft version (MIN_PEFT_VERSION) to 0.20.0."),
    fix=N_("`pip install 'peft>=0.20.0'`."),
))

define("environment.torch-too-old-for-transformers", Text(
    N_("transformers %(transformers)s treats torch %(torch)s as absent"),
    detail=N_("transformers 5.23 requires torch >= 2.6; with an older torch every model class is a dummy that raises "
              "on use."),
    fix=N_("Install torch >= 2.6 (with the CUDA build your GPU needs), or pin `transformers<5.23`."),
))

define("environment.torchvision-mismatch", Text(
    N_("torchvision %(torchvision)s is built for torch %(built_for)s, but torch %(torch)s is installed"),
    detail=N_("torchvision's compiled operators load only against the torch release they were built for; the "
              "DeepSeek-OCR remote code imports torchvision."),
    fix=N_("`pip install torchvision==%(use)s` from the same index as your torch build."),
))

_TV_DETAIL = N_("In a fresh interpreter `import torchvision` raises `%(error)s`. The DeepSeek-OCR remote code imports "
                "torchvision, so the model cannot load.")
_TV_FIX = N_("`pip install 'torchvision==%(use)s'` from the index your torch %(torch)s came from, so both are built "
             "for %(torch_build)s.")
_TV_FIX_ANY = N_("Install the torchvision built for your torch, from the same index.")
_TV_BUILDS = N_("torchvision %(torchvision)s is built for %(tv_build)s, but torch %(torch)s for %(torch_build)s: "
                "`import torchvision` fails")
_TV_FAILS = N_("`import torchvision` fails beside torch %(torch)s: %(error)s")
define("environment.torchvision-import", {
    "builds": Text(_TV_BUILDS, detail=_TV_DETAIL, fix=_TV_FIX),
    "builds-any": Text(_TV_BUILDS, detail=_TV_DETAIL, fix=_TV_FIX_ANY),
    "fails": Text(_TV_FAILS, detail=_TV_DETAIL, fix=_TV_FIX),
    "fails-any": Text(_TV_FAILS, detail=_TV_DETAIL, fix=_TV_FIX_ANY),
})

_FA_DETAIL = N_("In a fresh interpreter `import flash_attn` raises `%(error)s`. transformers treats an installed "
                "flash-attn as usable on a CUDA machine, and the DeepSeek-OCR remote code imports it then, so loading "
                "fails.")
_FA_FIX = N_("Rebuild it against the installed torch: `pip install --no-build-isolation --force-reinstall "
             "'flash-attn==%(flash_attn)s'` (or a prebuilt wheel made for torch %(torch_minor)s; the official v1 "
             "environment pairs flash-attn 2.7.3 with torch 2.6.0), or `pip uninstall flash-attn` and use "
             "`attn_implementation: sdpa`.")
define("environment.flash-attn-import", {
    "symbol": Text(N_("flash-attn %(flash_attn)s does not load with torch %(torch)s: it was compiled against another "
                      "torch (undefined symbol)"), detail=_FA_DETAIL, fix=_FA_FIX),
    "fails": Text(N_("flash-attn %(flash_attn)s does not load with torch %(torch)s"), detail=_FA_DETAIL, fix=_FA_FIX),
})

define("environment.requirement-conflict", Text(
    N_("%(dist)s %(version)s requires %(name)s%(specifier)s, but %(name)s %(have)s is installed"),
    fix=N_("`pip install '%(name)s%(specifier)s'` (or a %(dist)s release that accepts %(name)s %(have)s)."),
))

define("environment.processor-needs", Text(
    N_("The %(family)s processor needs %(dist)s, which is not installed"),
    detail=N_("On transformers %(transformers)s the %(family)s processor builds a video processor next to the image "
              "processor, and that requires %(dist)s: AutoProcessor cannot load without it."),
    fix=N_("`pip install '%(use)s'` built for your torch %(torch)s (from the index your torch came from)."),
))
