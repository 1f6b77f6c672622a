"""Load what a training run loads — tokenizer, processor, model, batch builder — the way it must be loaded.

Shared by the probes and ``scripts/train_lora.py``, so the script trains with exactly the
objects the probes verified. Everything is read from local files (never the network), and
remote code is imported only when the user trusted it. What cannot be loaded raises
:class:`~dsocr_probe.findings.InputError` with its message code.
"""

from __future__ import annotations

from typing import Any

from ..knowledge import families
from ..inputs import trust
from ..findings import InputError, ProbeStop, Status
from ..messages import M, N_, ref
from ..messages.catalog import is_message

# Model types whose batches dsocr_probe builds itself; anything else goes through its processor.
V1_MODEL_TYPES = families.family_of("DeepseekOCR").model_types
OCR2_MODEL_TYPES = families.family_of("deepseek_ocr2").model_types
# Task heads a training run wants, most specific first, for native models without `architectures`.
NATIVE_AUTO_CLASSES = (
    "AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM",
)
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
               "float16": "float16", "fp16": "float16", "half": "float16"}


# ---------------------------------------------------------------- tokenizer and processor


def load_tokenizer(ctx):
    """``AutoTokenizer`` from the target's folder (offline); remote tokenizer code only when trusted."""
    return _load_auto(ctx, "AutoTokenizer", ("AutoTokenizer",), "tokenizer")


def load_processor(ctx):
    """``AutoProcessor`` from the target's folder (offline). For DeepSeek-OCR v1 this is the bare tokenizer.

    Loaded once per run: a processor that cannot load is reported by the first probe that asks
    (the processor probe) and is a SKIP for the others, not a second blocker."""
    cache = ctx.__dict__.setdefault("_processor", [])
    if cache:
        value, error = cache[0]
        if error is None:
            return value
        raise _reported(error)
    try:
        value = _load_auto(ctx, "AutoProcessor", ("AutoProcessor", "AutoImageProcessor", "AutoTokenizer"), "processor")
    except InputError as error:
        error = _missing_package(error)
        cache.append((None, error))
        if error.code == "loading.processor-needs-torchvision" and "torchvision" in ctx.__dict__.get(
                "_environment_reported", ()):
            raise _reported(error) from None  # the environment probe named it already
        raise error from None
    cache.append((value, None))
    return value


def _reported(error: InputError) -> InputError:
    """A processor failure already reported: a SKIP that names it as the cause."""
    if error.status is Status.SKIP:
        return error
    return InputError("processor.prerequisite", status=Status.SKIP,
                      cause=ref(error.code, error.variant, error.params, error.status.value))


def _missing_package(error: InputError) -> InputError:
    """A processor that fails for want of torchvision (the Qwen-VL video processors need it): name
    the package and the build that fits the installed torch, not the processor files."""
    message = str(error.params.get("error") or "")
    if "torchvision" not in message.lower() and "VIDEO_PROCESSOR_MAPPING" not in message:
        return error
    return InputError("loading.processor-needs-torchvision",
                      **{**error.params, "use": torchvision_for_torch(), "torch": torch_build()})


def torch_build() -> str:
    """``2.13.0 (cpu)``: the installed torch and the build its local version names."""
    import torch

    version, _, build = torch.__version__.partition("+")
    return f"{version} ({build or 'default build'})"


def torchvision_for_torch(torch_version: str | None = None) -> str:
    """The torchvision release built for torch 2.minor (default: the installed one): 0.(minor+15)."""
    from packaging.version import Version

    if torch_version is None:
        import torch

        torch_version = torch.__version__
    v = Version(torch_version.split("+")[0])
    return f"torchvision==0.{v.minor + 15}.*" if v.major == 2 else "torchvision"


def _load_auto(ctx, auto_class: str, remote_keys: tuple[str, ...], what: str):
    """``transformers.<auto_class>.from_pretrained`` on the target, offline; remote code for any of
    ``remote_keys`` only when trusted. A failure raises ``loading.<what>``."""
    import transformers

    target = ctx.target()
    parts = _remote_parts(target, remote_keys)
    _refuse_untrusted(ctx, parts, what)
    try:
        return getattr(transformers, auto_class).from_pretrained(str(target.path), **_offline(parts))
    except Exception as exc:
        raise InputError(f"loading.{what}", path=str(target.path), auto_class=auto_class,
                         error=error_line(exc)) from exc


# ---------------------------------------------------------------- model


def default_device(ctx) -> str:
    """--dsocr-device, else ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    if ctx.options.device:
        return ctx.options.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_dtype(ctx, device: str | None = None):
    """The dtype the training run holds the weights in, which the pixels must match.

    ``model.torch_dtype`` (or ``model.dtype``) from the training config when given ("auto" means
    the checkpoint's own); else bfloat16 on a GPU that supports it, as the official code runs,
    and float32 elsewhere.
    """
    import torch

    named = None
    cfg = _train_config(ctx)
    if cfg is not None:
        named = cfg.model.get("torch_dtype", cfg.model.get("dtype"))
    if named == "auto":
        named = ctx.target().config.get("torch_dtype", ctx.target().config.get("dtype")) or "float32"
    if named:
        return parse_dtype(named, "model.torch_dtype")
    device = device or default_device(ctx)
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def parse_dtype(name: Any, where: str = "dtype"):
    """``"bf16"``, ``"bfloat16"``, ``"torch.bfloat16"`` or a torch.dtype -> torch.dtype."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    key = str(name).replace("torch.", "").strip().lower()
    if key not in DTYPE_NAMES:
        raise InputError("loading.dtype", where=where, value=str(name))
    return getattr(torch, DTYPE_NAMES[key])


def model_class(ctx) -> tuple[Any, str]:
    """The class ``from_pretrained`` is called on, and how it was chosen (for the report).

    Remote code: the Auto class the checkpoint's auto_map names (v1 maps only AutoModel).
    Native: the class in ``config.architectures``, else the first task-head Auto class that maps
    the config (AutoModelForImageTextToText for DeepSeek-OCR-2 and other VLMs). How it was chosen is
    a string, or a message (:func:`~dsocr_probe.messages.M`) where it is said in words.
    """
    import transformers

    target = ctx.target()
    if target.needs_remote_code:
        _refuse_untrusted(ctx, ["config.json auto_map: " + ", ".join(sorted(target.auto_map))], "model")
        for name in ("AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModel"):
            if name in target.auto_map and hasattr(transformers, name):
                return getattr(transformers, name), f"{name} (auto_map → {target.auto_map[name]})"
        raise InputError("loading.no-auto-class", mapped=", ".join(sorted(target.auto_map)))
    for arch in target.config.get("architectures") or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls, f"{arch} (config.architectures)"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(target.path), local_files_only=True)
    for name in NATIVE_AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        if auto is not None and type(config) in auto._model_mapping:
            return auto, f"{name} ({auto._model_mapping[type(config)].__name__})"
    return transformers.AutoModel, M(N_("%(cls)s (no task head maps this config)"), cls="AutoModel")


def load_model(ctx, device: str, dtype: Any):
    """The model's weights in ``dtype`` on ``device``, loaded with the class :func:`model_class` picks.

    Failures raise :class:`InputError`: untrusted remote code (SKIP), no weight files, an import error
    in remote code, any other loading error (FAIL). Out-of-memory errors are left to the caller,
    which knows what it was trying to fit.
    """
    import transformers
    from packaging.version import Version

    target = ctx.target()
    cls, _ = model_class(ctx)
    dtype_kw = "dtype" if Version(transformers.__version__) >= Version("4.56.0") else "torch_dtype"
    kwargs: dict[str, Any] = {dtype_kw: parse_dtype(dtype), "local_files_only": True}
    if target.needs_remote_code:
        kwargs["trust_remote_code"] = True
    if not has_weights(target.path):
        raise InputError("loading.no-weights", path=str(target.path))
    try:
        model = cls.from_pretrained(str(target.path), **kwargs)
    except ImportError as exc:
        raise InputError("loading.remote-import", error=first_line(exc)) from exc
    except (MemoryError, RuntimeError) as exc:
        if is_oom(exc):
            raise
        raise _load_failed(target, cls, exc) from exc
    except Exception as exc:
        raise _load_failed(target, cls, exc) from exc
    try:
        return model.to(device)
    except (RuntimeError, AssertionError) as exc:
        if is_oom(exc):
            raise
        raise InputError("loading.device", device=device, error=error_line(exc)) from exc


def _load_failed(target, cls: Any, exc: BaseException) -> InputError:
    return InputError("loading.model", path=str(target.path), cls=getattr(cls, "__name__", str(cls)),
                      error=error_line(exc), message=str(exc)[:2000])


def is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or the CPU allocator giving up."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if isinstance(exc, (MemoryError, oom_type)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def has_weights(folder) -> bool:
    """The folder holds weight files (safetensors, a sharded index, or PyTorch .bin)."""
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or any(folder.glob("*.safetensors.index.json"))


# ---------------------------------------------------------------- batch builder


def family(target) -> str:
    """The target's family name in the registry (:mod:`dsocr_probe.knowledge.families`); ``generic`` for a
    model type no record lists."""
    return families.family_for(target.config).name


def builder_for(ctx, tokenizer_or_processor: Any = None, dtype: Any = None):
    """The batch builder for the target's family, set up from the training config's data section.

    The family record names the builder: v1 gets :class:`DeepseekOCRCollator` on the tokenizer
    (its processor is only the tokenizer), DeepSeek-OCR-2 :class:`DeepseekOCR2Collator`, PaliGemma
    :class:`SuffixCollator`, encoder-decoders :class:`Seq2SeqCollator` and the others
    :class:`ProcessorCollator`, all on the processor. Pixels come in ``dtype`` (default
    :func:`model_dtype`). The same call in the training script gives the object the probes verified.
    """
    target = ctx.target()
    dtype = parse_dtype(dtype) if dtype is not None else model_dtype(ctx)
    cfg = _train_config(ctx)
    data = cfg.data if cfg is not None else {}
    kwargs: dict[str, Any] = {"dtype": dtype}
    if data.get("max_length"):
        kwargs["max_length"] = int(data["max_length"])
    if data.get("prompt"):
        kwargs["prompt"] = data["prompt"]
    if data.get("mode"):
        kwargs["mode"] = str(data["mode"]).lower()
    processor = None if families.family_for(target.config).builder == families.V1_BUILDER else (
        tokenizer_or_processor if tokenizer_or_processor is not None else load_processor(ctx))
    if processor is None:
        tokenizer = tokenizer_or_processor if tokenizer_or_processor is not None else ctx.tokenizer()
        processor = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wrapping it is fine too
    from ..collators.builders import make_builder

    return make_builder(target.config, processor, **kwargs)


# ---------------------------------------------------------------- helpers


def _train_config(ctx):
    """The training config, or None when there is none or it is broken (its own probe reports that)."""
    try:
        return ctx.train_config()
    except ProbeStop:
        return None


def _remote_parts(target, auto_names: tuple[str, ...]) -> list[str]:
    """Which files name remote code for these Auto classes (config.json, tokenizer/processor configs)."""
    found = []
    for file in ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        try:
            data = target.read_json(file) or {}
        except ValueError:
            continue
        auto_map = data.get("auto_map") or {}
        if isinstance(auto_map, dict) and any(name in auto_map for name in auto_names):
            found.append(f"{file} auto_map")
    return found


def _offline(remote_parts: list[str]) -> dict[str, Any]:
    # Trust only a tokenizer/processor of the checkpoint's own: otherwise transformers would import
    # the model's remote config just to find the tokenizer (and fail where that code cannot load).
    return {"trust_remote_code": bool(remote_parts), "local_files_only": True}


def _refuse_untrusted(ctx, parts: list[str], what: str) -> None:
    """Stop before importing remote code that is not trusted, or trusted but not pinned to a commit
    (the remote-code probe reports the NO-GO; here the import is only withheld)."""
    if not parts:
        return
    why = trust.refusal(ctx.options, ctx.target())
    if why is None:
        return
    if why.reason == "untrusted":
        raise InputError("loading.untrusted", what, status=Status.SKIP, what=what, parts=", ".join(parts))
    raise InputError("loading.unpinned", what, status=Status.SKIP, what=what, parts=", ".join(parts),
                     digest=why.digest)


def first_line(exc: BaseException) -> str:
    """The exception's message up to its first line break (tracebacks stay in the detail)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``, as findings quote an error."""
    return f"{type(exc).__name__}: {first_line(exc)}"


def error_words(exc: BaseException, *, whole: bool = False) -> Any:
    """The error as a finding quotes it: ``error_line(exc)``, except that a batch builder's
    :class:`~dsocr_probe.collators.base.BadExample` is a catalog message (``Type: its message``), worded in
    the report's language. ``whole``: the complete message, not its first line."""
    message = message_words(exc, whole=whole)
    if isinstance(message, str):
        return f"{type(exc).__name__}: {message}"
    return M(N_("%(type)s: %(message)s"), type=type(exc).__name__, message=message)


def message_words(exc: BaseException, *, whole: bool = False) -> Any:
    """The error's message without its type: ``first_line(exc)`` (``str(exc)`` when ``whole``), or for a
    BadExample its catalog message, the values it quotes cut to their first line unless ``whole``."""
    from ..collators.base import BadExample

    if isinstance(exc, BadExample):
        return exc.message if whole else _first_lines(exc.message)
    return str(exc) if whole else first_line(exc)


def _first_lines(value: Any) -> Any:
    if is_message(value):
        return M(value["msgid"], **{name: _first_lines(v) for name, v in value["params"].items()})
    if isinstance(value, str) and "\n" in value.strip():
        return value.strip().splitlines()[0]
    return value
