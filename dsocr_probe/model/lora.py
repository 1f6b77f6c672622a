"""LoRA settings for these models: task type, target modules, and where adapters cannot learn.

Everything here works on module *names* (from a meta-device skeleton or a loaded model), so the
training-config probe can check a config without weights and the step probe can check it with
them. Matching goes through peft's own rule, so what we report is what ``get_peft_model`` does.

    names = [n for n, _ in model.named_modules()]
    settings = default_settings(names)          # {"target_modules": [...], "exclude_modules": ...}
    model = wrap(model, {"r": 8, "lora_alpha": 16, **settings, "task_type": task_type_for(model.config)})
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any, Iterable, Mapping

from ..messages import M, N_

# The language model's linear projections (attention and MLP) in the DeepSeek families and most
# decoder-only LMs; `lm_head` is left out on purpose (it is the 129k-wide vocabulary projection).
LM_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Name parts that mark the image side of a vision-language model: encoders and the projector
# into the language model. v1: sam_model, vision_model, projector; OCR-2: vision_tower,
# multi_modal_projector; other families: visual, connector, image_projection, mm_projector.
VISION_PARTS = (
    "sam_model",
    "vision_model",
    "vision_tower",
    "vision_encoder",
    "visual",
    "projector",
    "multi_modal_projector",
    "mm_projector",
    "connector",
    "image_projection",
    "image_encoder",
)

# LoraConfig fields that older peft releases lack, and the first release that has each (checked in
# the published wheels 0.13.2 to 0.17.0). A field not listed here is in every peft we support.
FIELD_SINCE = {
    "exclude_modules": "0.14.0",
    "lora_bias": "0.14.0",
    "eva_config": "0.14.0",
    "trainable_token_indices": "0.15.0",
    "corda_config": "0.15.0",
    "use_qalora": "0.16.0",
    "qalora_group_size": "0.16.0",
    "target_parameters": "0.17.0",
}

TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION")


def task_type_for(config: Any) -> str:
    """The peft task type a model needs: SEQ_2_SEQ_LM only for encoder-decoder models.

    Both DeepSeek-OCR families are decoder-only (CAUSAL_LM). ``config`` is a PretrainedConfig or
    the config.json mapping.
    """
    from ..knowledge import families

    if isinstance(config, Mapping):
        encoder_decoder = bool(config.get("is_encoder_decoder", False))
    else:
        encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    model_type = config.get("model_type") if isinstance(config, Mapping) else getattr(config, "model_type", None)
    encoder_decoder = encoder_decoder or families.family_of(model_type).encoder_decoder
    return "SEQ_2_SEQ_LM" if encoder_decoder else "CAUSAL_LM"


def normalise_task_type(value: Any) -> str | None:
    """``TaskType.CAUSAL_LM``, ``"causal_lm"`` or the enum itself -> ``"CAUSAL_LM"``; None when unset."""
    if value is None or value == "":
        return None
    text = str(getattr(value, "value", value)).split(".")[-1].strip().upper()
    return text or None


def is_vision_module(name: str) -> bool:
    """True when a dotted module name lies in an image encoder or the projector."""
    return any(part in VISION_PARTS or part.startswith("vision") for part in name.split("."))


def vision_modules(module_names: Iterable[str]) -> list[str]:
    """The names (in order) that belong to the image side; see :data:`VISION_PARTS`."""
    return [n for n in module_names if is_vision_module(n)]


def no_grad_parts(model_type: str | None) -> tuple[str, ...]:
    """Name parts whose modules run under ``torch.no_grad()`` in this model type's forward."""
    from ..knowledge import families

    return families.family_of(model_type).no_grad_parts


def no_grad_modules(target: Any, module_names: Iterable[str]) -> list[str]:
    """Of ``module_names``, those that never get a gradient by the facts for this model type.

    ``target`` is a :class:`~dsocr_probe.inputs.target.Target`, a config (object or mapping) or a model_type.
    Empty for families whose vision path does take gradients (e.g. DeepSeek-OCR-2).
    """
    parts = set(no_grad_parts(_model_type(target)))
    if not parts:
        return []
    return [n for n in module_names if parts.intersection(n.split("."))]


def language_model_targets(module_names: Iterable[str]) -> list[str]:
    """The default LoRA ``target_modules``: the projection names the language model has.

    These are short names, as configs write them. When the vision side uses the same names
    (DeepSeek-OCR-2's vision encoder has q_proj ... down_proj too), pair them with
    :func:`vision_exclude_pattern`, or take both from :func:`default_settings`.
    """
    names = list(module_names)
    found = {_last(n) for n in names if not is_vision_module(n)}
    return [p for p in LM_PROJECTIONS if p in found]


def vision_exclude_pattern(module_names: Iterable[str], targets: Iterable[str] | None = None) -> str | None:
    """A regex for peft's ``exclude_modules`` that keeps ``targets`` off the vision side.

    None when no vision module carries one of the target names (then the short names alone
    already stay on the language model).
    """
    names = list(module_names)
    roots = _vision_roots(names, targets if targets is not None else language_model_targets(names))
    if not roots:
        return None
    return r"(.*\.)?(" + "|".join(re.escape(r) for r in roots) + r")\..*"


def config_fields() -> frozenset[str]:
    """The keyword arguments the installed peft's ``LoraConfig`` accepts.

    Every LoraConfig we build goes through this: a keyword the installed release lacks makes
    ``LoraConfig(...)`` raise, so it is either reported (a config's key) or left out (our defaults).
    """
    from peft import LoraConfig

    return frozenset(n for n in inspect.signature(LoraConfig.__init__).parameters if n != "self")


def unsupported_fields(keys: Iterable[str]) -> list[tuple[str, str | None]]:
    """Of ``keys``, those the installed LoraConfig lacks, each with the first peft release that has
    it (None when no release we know of has it: a typo or a field of another tuner)."""
    fields = config_fields()
    return [(k, FIELD_SINCE.get(k)) for k in keys if k not in fields]


def peft_version() -> str:
    import peft

    return str(peft.__version__)


def default_settings(module_names: Iterable[str]) -> dict[str, Any]:
    """``target_modules`` (and ``exclude_modules`` when needed) for adapters on the language model only.

    A peft without ``exclude_modules`` (before 0.14.0) gets one regex ``target_modules`` instead,
    which leaves the vision side out by itself.
    """
    names = list(module_names)
    targets = language_model_targets(names)
    settings: dict[str, Any] = {"target_modules": targets}
    pattern = vision_exclude_pattern(names, targets)
    if pattern and "exclude_modules" in config_fields():
        settings["exclude_modules"] = pattern
    elif pattern:
        settings["target_modules"] = _targets_outside(names, targets)
    return settings


def settings_text(settings: Mapping[str, Any]) -> str | dict[str, Any]:
    """:func:`default_settings` as a config says it, for a fix (a message when it needs words)."""
    targets = settings["target_modules"]
    if isinstance(targets, str):
        return f"`target_modules: '{targets}'`"
    text = f"`target_modules: [{', '.join(targets)}]`"
    if settings.get("exclude_modules"):
        return M(N_("%(targets)s with %(exclude)s"), targets=text,
                 exclude=f"`exclude_modules: '{settings['exclude_modules']}'`")
    return text


def match_targets(module_names: Iterable[str], target_modules: Any, exclude_modules: Any = None) -> list[str]:
    """The module names peft would put adapters on, by peft's own matching rule.

    ``target_modules`` is a list of names/suffixes or a regex string, as in LoraConfig. Only
    names are compared: :func:`unadaptable_types` checks the matched modules' types. A peft
    without ``exclude_modules`` cannot take one (see :func:`unsupported_fields`); it is ignored there.
    """
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    kwargs = {"target_modules": _as_targets(target_modules)}
    if exclude_modules is not None and "exclude_modules" in config_fields():
        kwargs["exclude_modules"] = _as_targets(exclude_modules)
    config = LoraConfig(**kwargs)
    return [n for n in module_names if n and check_target_module_exists(config, n)]


def unadaptable_types(model: Any, module_names: Iterable[str]) -> dict[str, tuple[list[str], str]]:
    """Module types among ``module_names`` that the installed peft cannot put a LoRA layer on.

    {type name: (the module names of that type, peft's own error)}. One module of each type is
    copied (a meta-device module copies for free) and handed to peft alone, so the answer is
    peft's dispatch rule, not a list of ours; the model itself is left untouched.
    """
    from peft import LoraConfig, inject_adapter_in_model
    import torch

    by_type: dict[type, list[str]] = {}
    modules = dict(model.named_modules())
    for name in module_names:
        if name in modules:
            by_type.setdefault(type(modules[name]), []).append(name)
    refused: dict[str, tuple[list[str], str]] = {}
    for cls, names in by_type.items():
        holder = torch.nn.Module()
        holder.add_module("target", copy.deepcopy(modules[names[0]]))
        try:
            inject_adapter_in_model(LoraConfig(r=1, target_modules=["target"]), holder)
        except (ValueError, TypeError, NotImplementedError) as exc:
            refused[cls.__name__] = (names, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return refused


def lora_config(lora_kwargs: Mapping[str, Any] | None, module_names: Iterable[str] | None = None, model_config: Any = None):
    """A ``peft.LoraConfig`` from a config's ``lora`` section, with our defaults filled in.

    Missing ``target_modules`` -> :func:`default_settings` (needs ``module_names``); missing
    ``task_type`` -> :func:`task_type_for` (needs ``model_config``). A given task_type is kept
    as written (the probes report a wrong one instead of silently fixing it).
    """
    from peft import LoraConfig

    kwargs = dict(lora_kwargs or {})
    for key, since in unsupported_fields(kwargs):
        raise ValueError(
            f"lora.{key} is not a LoraConfig field in peft {peft_version()}"
            + (f": it needs peft >= {since}" if since else "")
        )
    kwargs.setdefault("r", 8)
    kwargs.setdefault("lora_alpha", 16)
    kwargs.setdefault("lora_dropout", 0.0)
    if not kwargs.get("target_modules"):
        if module_names is None:
            raise ValueError("lora.target_modules is not set and no module names were given to choose defaults from")
        settings = default_settings(module_names)
        kwargs["target_modules"] = settings["target_modules"]
        if "exclude_modules" in settings:  # only where the installed peft has the field
            kwargs.setdefault("exclude_modules", settings["exclude_modules"])
    task = normalise_task_type(kwargs.get("task_type"))
    if task is None and model_config is not None:
        task = task_type_for(model_config)
    if task is not None:
        if task not in TASK_TYPES:
            raise ValueError(
                f"lora.task_type {kwargs.get('task_type')!r} is not a peft TaskType; use one of {', '.join(TASK_TYPES)}"
            )
        kwargs["task_type"] = task
    return LoraConfig(**kwargs)


def wrap(model: Any, lora_kwargs: Mapping[str, Any] | None = None):
    """``peft.get_peft_model`` with :func:`lora_config` built from the model's own names and config."""
    from peft import get_peft_model

    names = [n for n, _ in model.named_modules()]
    return get_peft_model(model, lora_config(lora_kwargs, names, getattr(model, "config", None)))


def adapter_modules(model: Any) -> list[str]:
    """Names (in the wrapped model) of the modules that carry LoRA weights."""
    return sorted({n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if ".lora_" in n})


def _as_targets(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return list(value)


def _targets_outside(module_names: list[str], targets: list[str]) -> str:
    """One regex ``target_modules`` for ``targets`` outside the vision roots: peft fullmatches it
    against each module name, so it needs no ``exclude_modules``."""
    outside = "|".join(re.escape(r) for r in _vision_roots(module_names, targets))
    return rf"(?!(.*\.)?({outside})\.)(.*\.)?({'|'.join(re.escape(t) for t in targets)})"


def _vision_roots(module_names: Iterable[str], targets: Iterable[str]) -> list[str]:
    """The vision parts (first name part that marks one) holding a module named like a target."""
    wanted = set(targets)
    roots: list[str] = []
    for n in module_names:
        if _last(n) in wanted and is_vision_module(n):
            root = next(p for p in n.split(".") if p in VISION_PARTS or p.startswith("vision"))
            if root not in roots:
                roots.append(root)
    return roots


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _model_type(target: Any) -> str | None:
    if target is None or isinstance(target, str):
        return target
    if isinstance(target, Mapping):
        return target.get("model_type")
    return getattr(target, "model_type", None)


def trial_wrap(model: Any, lora_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """The modules ``get_peft_model`` puts adapters on, found by wrapping a copy of ``model``.

    Run on the weightless meta-device instance, this is peft's own reading of the config
    (``all-linear``, a regex string, suffixes, ``exclude_modules``) and peft's own refusals (a rank
    of 0, a module type it cannot adapt), before any weights exist. The model itself is untouched.
    """
    import copy

    trial = wrap(copy.deepcopy(model), lora_kwargs)
    return [n[len("base_model.model."):] if n.startswith("base_model.model.") else n for n in adapter_modules(trial)]
