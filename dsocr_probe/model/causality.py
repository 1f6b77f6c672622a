"""Does a target position see the target tokens after it? Checked on the real model and batch.

One supervised token late in the first sample is replaced by another id and the model is run
again: every logit that predicts an earlier target token must stay as it was. A prefix-LM
forward that takes the target for part of its bidirectional prefix (PaliGemma with
``token_type_ids`` 0 on the target) moves them, and so would any mask that lets a position look
ahead: the model then learns to copy instead of to read, and the loss still falls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..messages import M, N_

IGNORE_INDEX = -100
# Relative to the logits' scale. A causal forward computes the earlier positions from the very same
# numbers (masked keys add exact zeros), so they come out equal to the bit in float32; half precision
# gets room for kernels that reorder sums. A leak moves them by far more on a trained model.
TOLERANCE = {"float32": 1e-5, "float64": 1e-9}
HALF_TOLERANCE = 1e-3
# In half precision a kernel may regroup rows when one token changes (a mixture-of-experts layer sends it
# to another expert); a position that really sees the replaced token moves about as much as the position
# that holds it, so a change far below that is numerical.
SIGNAL_SHARE = 0.05


class NotChecked(Exception):
    """The check could not run on this batch or model: why, as a msgid and its params."""

    def __init__(self, why: str, **params: Any):
        super().__init__(why % params)
        self.why = why
        self.params = params


@dataclass(frozen=True)
class Causality:
    leaks: bool
    changed_at: int | None  # the first earlier target position whose logits moved
    perturbed_at: int  # position (in the sequence the logits cover) of the replaced token
    checked: int  # how many earlier target positions were compared
    largest_change: float
    scale: float

    def describe(self) -> dict[str, Any]:
        return {
            N_("replaced token at"): self.perturbed_at,
            N_("earlier target positions compared"): self.checked,
            N_("largest logit change"): M(N_("%(change).3g (logits up to %(scale).3g)"), change=self.largest_change,
                                          scale=self.scale),
        }


def check(model: Any, batch: Mapping[str, Any], encoder_decoder: bool = False) -> Causality:
    """Run ``model`` on the first sample of ``batch`` twice, the second time with its last supervised
    token replaced (in ``input_ids`` for decoder-only models, in ``labels`` — the decoder's input
    once shifted — for encoder-decoders), and compare the logits at the earlier target positions."""
    import torch

    one = {k: v[:1] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == batch["labels"].shape[0] else v
           for k, v in batch.items()}
    labels = one.get("labels")
    if not isinstance(labels, torch.Tensor):
        raise NotChecked(N_("the batch has no labels tensor"))
    supervised = (labels[0] != IGNORE_INDEX).nonzero().flatten().tolist()
    if len(supervised) < 2:
        raise NotChecked(N_("the first sample has fewer than two supervised tokens"))
    last = supervised[-1]
    changed = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in one.items()}
    key = "labels" if encoder_decoder else "input_ids"
    old = int(changed[key][0, last])
    vocab = int(getattr(model.get_output_embeddings(), "out_features", 0) or 0) or old + 2
    changed[key][0, last] = _other_id(old, vocab, {int(t) for t in labels[0, supervised]})
    if encoder_decoder:  # the decoder reads labels[t] at t+1; earlier logits are those up to t
        earlier = [p for p in supervised if p <= last]
    else:  # logits at p-1 predict the target token at p
        earlier = [p - 1 for p in supervised if p - 1 < last and p >= 1]
    if not earlier:
        raise NotChecked(N_("no earlier target position to compare"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            before = _logits(model, one)
            after = _logits(model, changed)
    finally:
        model.train(was_training)
    a, b = before[0, earlier].float(), after[0, earlier].float()
    diff = (a - b).abs().amax(dim=-1)
    scale = float(a.abs().max()) or 1.0
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), before.dtype)
    exact = str(weights).removeprefix("torch.") in TOLERANCE
    bound = TOLERANCE.get(str(weights).removeprefix("torch."), HALF_TOLERANCE) * (1.0 + scale)
    if not exact and not encoder_decoder:  # the logits at the replaced token itself see it directly
        signal = float((before[0, last].float() - after[0, last].float()).abs().max())
        bound = max(bound, SIGNAL_SHARE * signal)
    moved = (diff > bound).nonzero().flatten().tolist()
    return Causality(bool(moved), earlier[moved[0]] if moved else None, last, len(earlier), float(diff.max()), scale)


def _logits(model: Any, batch: Mapping[str, Any]):
    out = model(**batch)
    logits = out["logits"] if isinstance(out, Mapping) else getattr(out, "logits", None)
    if logits is None:
        raise NotChecked(N_("%(model)s.forward returned no logits"), model=type(model).__name__)
    return logits


def _other_id(old: int, vocab: int, present: set[int]) -> int:
    """Another id than the replaced one, preferring another target token of the sample (a text token,
    never an image slot, which would change the image layout instead)."""
    for candidate in sorted(present):
        if candidate != old and 0 <= candidate < vocab:
            return candidate
    return (old + 1) % max(vocab, 2)
