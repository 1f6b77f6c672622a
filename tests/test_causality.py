"""The causality check on toy language models whose attention is known: causal, or open to the whole sequence."""

from __future__ import annotations

import pytest
import torch

from dsocr_probe.model import causality


class _Toy(torch.nn.Module):
    """Embeddings, one attention layer (causal or not) and a head; returns logits like a HF model."""

    def __init__(self, causal: bool, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.causal = causal
        self.embed = torch.nn.Embedding(32, 16, dtype=dtype)
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True, dtype=dtype)
        self.head = torch.nn.Linear(16, 32, dtype=dtype)

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, labels=None, attention_mask=None):
        x = self.embed(input_ids)
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1) if self.causal else None
        y, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        return {"logits": self.head(x + y)}


def _batch():
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 10, 2], [1, 5, 6, 11, 12, 2, 0, 0]])
    labels = ids.clone()
    labels[:, :3] = -100
    labels[1, 6:] = -100
    return {"input_ids": ids, "labels": labels}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_causal_model_passes_and_one_that_sees_ahead_does_not(dtype):
    ok = causality.check(_Toy(causal=True, dtype=dtype), _batch())
    assert not ok.leaks and ok.largest_change == 0.0 and ok.checked == 5  # logits at 2..6 predict 3..7
    leak = causality.check(_Toy(causal=False, dtype=dtype), _batch())
    assert leak.leaks and leak.changed_at is not None and leak.changed_at < leak.perturbed_at == 7


def test_the_model_is_left_in_training_mode():
    model = _Toy(causal=True).train()
    causality.check(model, _batch())
    assert model.training


def test_a_batch_without_enough_target_is_not_checked():
    batch = _batch()
    batch["labels"][0, :-1] = -100
    with pytest.raises(causality.NotChecked, match="fewer than two"):
        causality.check(_Toy(causal=True), batch)
