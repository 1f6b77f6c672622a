"""Run a model's vision path on its weightless (meta-device) instance and count the visual features.

A meta-device instance (see :mod:`dsocr_probe.model.skeleton`) has every parameter's shape but no
data, so a module run on it gives the shapes of its outputs without reading or allocating a
single weight. Model code also computes on its inputs' values: which tiles are padding, how
many tiles each page has, a ``.tolist()`` of a count. On meta inputs those steps fail, so the
inputs stay real: :class:`MetaSpill` runs an operation on real tensors for real, and an
operation that meets a meta tensor (a weight, or anything computed from one) on the meta
device, moving its real operands there. A step that needs the values of something computed
from the weights still fails; :func:`count_image_features` then raises :class:`NotCounted`
with the reason, and the caller says which other check it used instead.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..messages import M, N_
from .loading import first_line

# Index operations whose boolean (mask) indices need the mask's values: a real mask is turned
# into integer positions before the operation moves to the meta device.
INDEX_OPS = ("index.Tensor", "index_put.default", "index_put_.default", "_index_put_impl_.default",
              "_unsafe_index_put.default")


class NotCounted(Exception):
    """The vision path could not be run on the meta device; ``message`` says why (a catalog message,
    worded in the report's language), ``str()`` in English."""

    def __init__(self, msgid: str, **params: Any):
        self.message = M(msgid, **params)
        super().__init__(msgid % params if params else msgid)


@dataclass
class FeatureCount:
    """Visual feature vectors the vision path yields for a batch."""

    total: int
    per_image: list[int] | None  # one count per image, when the output keeps images apart
    method: str  # the function that was run, e.g. "DeepseekOcr2ForConditionalGeneration.get_image_features"
    output: Any  # what it returned, for the report (a message)

    def per_sample(self, samples: int) -> list[int] | None:
        """Counts per sample, where the output has one entry per sample (one image per example)."""
        if self.per_image is not None and len(self.per_image) == samples:
            return list(self.per_image)
        return None


def _spill_mode():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    aten = torch.ops.aten
    index_ops = set()
    for spec in INDEX_OPS:
        packet, overload = spec.split(".")
        op = getattr(getattr(aten, packet, None), overload, None) if hasattr(aten, packet) else None
        if op is not None:
            index_ops.add(op)

    def real(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and not t.is_meta

    def meta(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.is_meta

    class MetaSpill(TorchDispatchMode):
        """Real operands stay real until they meet a meta tensor; then the operation runs on meta."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is aten._to_copy.default and real(args[0]) and str(kwargs.get("device", "")) == "meta":
                # `.to(weight.device)` of an input: keep its values, so later steps can still read them.
                return func(args[0], **{k: v for k, v in kwargs.items() if k != "device"})
            flat, _ = tree_flatten((args, kwargs))
            if any(meta(t) for t in flat) and any(real(t) for t in flat):
                return spill(func, args, kwargs, index_ops)
            return func(*args, **kwargs)

    return MetaSpill()


def image_feature_function(model: Any):
    """The model's ``get_image_features``, or None when its class has none."""
    fn = getattr(model, "get_image_features", None)
    return fn if callable(fn) else None


def count_image_features(model: Any, batch: Mapping[str, Any]) -> FeatureCount:
    """Run ``model.get_image_features`` on a meta-device ``model`` with the batch's image inputs.

    Arguments are taken from the batch by name; a required one the batch lacks is read from the
    model's config (e.g. ``vision_feature_layer`` on transformers 4.x). Raises NotCounted when
    the function is missing, needs an input the batch does not have, fails on the meta device,
    or returns something without a feature dimension.
    """
    import torch

    fn = image_feature_function(model)
    name = f"{type(model).__name__}.get_image_features"
    if fn is None:
        raise NotCounted(N_("%(model)s has no get_image_features"), model=type(model).__name__)
    kwargs = _arguments(fn, model, batch, name)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    try:
        with torch.no_grad(), _spill_mode():
            out = fn(**{k: _prepared(v, dtype) for k, v in kwargs.items()})
    except Exception as exc:  # an operation without a meta implementation, a data-dependent step, ...
        raise NotCounted(N_("%(function)s did not run on the meta device: %(error)s"), function=name,
                         error=f"{type(exc).__name__}: {first_line(exc)[:300]}") from exc
    return _count(out, name)


def _arguments(fn, model: Any, batch: Mapping[str, Any], name: str) -> dict[str, Any]:
    import torch

    config = getattr(model, "config", None)
    kwargs: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if batch.get(p.name) is not None:
            kwargs[p.name] = batch[p.name]
        elif p.default is p.empty:
            if config is not None and getattr(config, p.name, None) is not None:
                kwargs[p.name] = getattr(config, p.name)
            else:
                raise NotCounted(N_("%(function)s needs `%(name)s`, which neither the batch nor the config holds"),
                                 function=name, name=p.name)
    if not any(isinstance(v, torch.Tensor) and v.is_floating_point() for v in kwargs.values()):
        raise NotCounted(N_("the batch holds no pixel tensor that %(function)s takes"), function=name)
    if _returns_model_output_on_request(fn):
        kwargs["return_dict"] = True  # the forward asks for the same; a tuple would hide which part is merged
    return kwargs


def _returns_model_output_on_request(fn) -> bool:
    """transformers 5.x image-feature functions take ``return_dict`` (named or through **kwargs)."""
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__).major < 5:
        return False
    params = inspect.signature(fn).parameters.values()
    return any(p.name == "return_dict" or p.kind is p.VAR_KEYWORD for p in params)


def _prepared(value: Any, dtype: Any) -> Any:
    """A copy (the model may change its inputs in place); pixels in the weights' dtype, since the
    count does not depend on it and the dtype is checked on its own."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and dtype is not None:
            return value.detach().to(dtype=dtype, copy=True)
        return value.detach().clone()
    return value


def _count(out: Any, name: str) -> FeatureCount:
    import torch

    kind = type(out).__name__
    features = out
    if not isinstance(out, (torch.Tensor, list, tuple)) or _is_model_output(out):
        # transformers 5.x: a ModelOutput whose pooler_output holds the features the forward merges.
        features = getattr(out, "pooler_output", None)
        field = "pooler_output"
        if features is None:
            features, field = getattr(out, "last_hidden_state", None), "last_hidden_state"
        if features is None:
            raise NotCounted(N_("%(function)s returned %(kind)s without pooler_output or last_hidden_state"),
                             function=name, kind=kind)
        kind = f"{kind}.{field}"
    if isinstance(features, torch.Tensor):
        if features.dim() < 2:
            raise NotCounted(N_("%(function)s returned a tensor of shape %(shape)s: no feature dimension"),
                             function=name, shape=str(list(features.shape)))
        total = math.prod(features.shape[:-1])
        per_image = [math.prod(features.shape[1:-1])] * features.shape[0] if features.dim() >= 3 else None
        return FeatureCount(total, per_image, name, M(N_("%(kind)s: tensor %(shape)s"), kind=kind,
                                                      shape=str(list(features.shape))))
    if isinstance(features, (list, tuple)) and features and all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in features):
        per_image = [math.prod(t.shape[:-1]) for t in features]
        shapes = ", ".join(str(list(t.shape)) for t in features)
        return FeatureCount(sum(per_image), per_image, name, M(N_("%(kind)s: %(count)d tensors %(shapes)s"), kind=kind,
                                                               count=len(features), shapes=shapes))
    raise NotCounted(N_("%(function)s returned %(kind)s, not tensors of visual features"), function=name, kind=kind)


def _is_model_output(value: Any) -> bool:
    try:
        from transformers.utils import ModelOutput
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(value, ModelOutput)


def spill(func: Any, args: tuple, kwargs: dict, index_ops: set) -> Any:
    """Run an operation whose operands mix meta and real tensors on meta. The real boolean indices of an
    index operation become positions first: their values say which elements, which meta cannot know."""
    import torch
    from torch.utils._pytree import tree_map

    def real(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and not t.is_meta

    if func in index_ops and len(args) > 1:
        positions = []
        for index in args[1]:
            if real(index) and index.dtype in (torch.bool, torch.uint8):
                positions.extend(index.nonzero().unbind(1))
            else:
                positions.append(index)
        args = (args[0], positions, *args[2:])
    args, kwargs = tree_map(lambda t: t.to("meta") if real(t) else t, (args, kwargs))
    return func(*args, **kwargs)
