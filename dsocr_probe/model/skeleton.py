"""The model without its weights: config, class, and an instance on the meta device.

A meta-device instance has every module and parameter shape but allocates no memory and
reads no weights, so module names and the forward signature come from the real class in
about the time it takes to build the Python objects. A config that cannot be loaded raises
:class:`~dsocr_probe.findings.InputError`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from ..findings import InputError
from ..inputs.trust import import_refusal

# Native model types and the transformers release that introduced them (reference version table).
NATIVE_SINCE = {"deepseek_ocr2": "5.10.1"}


@dataclass
class Skeleton:
    config: Any  # a PretrainedConfig
    cls: type  # the class from_pretrained would build
    how: str  # how the class was chosen, as code: "auto_map → modeling_x.X", "config.architectures → X"
    model: Any = None  # the meta-device instance, when it could be built
    build_error: str | None = None

    @property
    def module_names(self) -> list[str]:
        return [name for name, _ in self.model.named_modules()] if self.model is not None else []

    @property
    def linear_names(self) -> list[str]:
        import torch

        if self.model is None:
            return []
        return [n for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)]

    @property
    def forward_signature(self) -> inspect.Signature:
        return inspect.signature(self.cls.forward)


def load_config(target, options):
    """The PretrainedConfig; remote-code configs only when trusted (loading one imports that code)."""
    import transformers
    from transformers import AutoConfig

    if target.native:
        return AutoConfig.from_pretrained(str(target.path))
    if not target.needs_remote_code:
        since = NATIVE_SINCE.get(target.model_type or "")
        variant = "since" if since else ""  # the fix names the release that brought the model, when known
        raise InputError("model_api.unknown-model-type", variant, model_type=target.model_type, since=since,
                         transformers=transformers.__version__)
    refusal = import_refusal(options, target)
    if refusal is not None:
        raise refusal
    try:
        return AutoConfig.from_pretrained(str(target.path), trust_remote_code=True)
    except Exception as exc:
        raise InputError("model_api.config-import", error=f"{type(exc).__name__}: {exc}") from exc


def model_class(target, config) -> tuple[type, str]:
    import transformers

    if target.needs_remote_code:
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        ref = target.auto_map.get("AutoModel") or next(
            (v for k, v in target.auto_map.items() if k.startswith("AutoModel")), None
        )
        return get_class_from_dynamic_module(ref, str(target.path)), f"auto_map → {ref}"
    for arch in config.architectures or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls, f"config.architectures → {arch}"
    from transformers import AutoModel

    return AutoModel._model_mapping[type(config)], "AutoModel._model_mapping"


def build(target, options) -> Skeleton:
    import torch

    config = load_config(target, options)
    cls, how = model_class(target, config)
    sk = Skeleton(config, cls, how)
    try:
        with torch.device("meta"):
            sk.model = cls(config)
    except Exception as exc:  # the signature and class facts are still worth reporting
        sk.build_error = f"{type(exc).__name__}: {exc}"
    return sk
