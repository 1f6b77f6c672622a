"""What a Trainer's own ``train()`` did, read from its callbacks: loss, time and learning rate of each
optimizer step, and every parameter's gradient at the first one.

The loss is taken from ``training_step``'s return value (the loss the Trainer accumulates, after a
custom ``compute_loss`` and the gradient-accumulation scaling), summed per optimizer step; the
Trainer's own log rounds it to four digits, too coarse to see a small model learn. The gradients
are read in ``on_pre_optimizer_step``: after the backward passes and clipping, before the update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from transformers import TrainerCallback


@dataclass
class StepRecord:
    losses: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # wall time of each optimizer step
    learning_rates: list[float | None] = field(default_factory=list)  # the rate each update used (None: relative)
    micro_batches: list[int] = field(default_factory=list)  # forward/backward passes in each step
    grads: Any = None  # gradients.GradientReport at the first step, when asked for
    adapters_changed: bool | None = None  # did the adapter weights move between the first and last step?

    @property
    def step_s(self) -> float:
        steady = self.times[1:] or self.times  # the first step pays for warm-up
        return min(steady) if steady else 0.0  # the least disturbed by other work on the machine


class StepWatch(TrainerCallback):
    """``watch.attach(trainer)`` before ``trainer.train()``; then ``watch.record``."""

    def __init__(self, device: str, inspect: Callable[[Any], Any] | None = None):
        self.device = str(device)
        self.inspect = inspect
        self.record = StepRecord()
        self._pending: list[Any] = []
        self._started = 0.0
        self._before: list[Any] | None = None

    def attach(self, trainer: Any) -> "StepWatch":
        step = trainer.training_step

        def training_step(*args: Any, **kwargs: Any):
            loss = step(*args, **kwargs)
            self._pending.append(loss.detach() if hasattr(loss, "detach") else loss)
            return loss

        trainer.training_step = training_step  # on the instance: the class and its overrides stay as they are
        trainer.add_callback(self)
        return self

    def detach(self, trainer: Any) -> None:
        """Undo :meth:`attach`: the wrapper on the instance refers back to the trainer, a cycle that would keep
        the run (its optimizer state) alive until the next garbage collection."""
        trainer.__dict__.pop("training_step", None)
        trainer.remove_callback(self)

    # ------------------------------------------------------------ callback events

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._before = _adapter_weights(model)
        self._started = self._now()

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step == 0 and self.inspect is not None and self.record.grads is None:
            self.record.grads = self.inspect(model)
        rate = optimizer.param_groups[0].get("lr") if optimizer is not None and optimizer.param_groups else None
        self.record.learning_rates.append(float(rate) if isinstance(rate, (int, float)) else None)  # None: no set rate

    def on_step_end(self, args, state, control, **kwargs):
        now = self._now()
        self.record.times.append(now - self._started)
        self._started = now
        total = sum(float(v) for v in self._pending) if self._pending else float("nan")
        self.record.losses.append(total)
        self.record.micro_batches.append(len(self._pending))
        self._pending = []

    def on_train_end(self, args, state, control, model=None, **kwargs):
        after = _adapter_weights(model)
        if self._before is not None and after is not None and len(after) == len(self._before):
            import torch

            self.record.adapters_changed = any(not torch.equal(a, b) for a, b in zip(self._before, after))

    def _now(self) -> float:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()


def _adapter_weights(model: Any) -> list[Any] | None:
    """Copies of the trainable LoRA weights (small: r x width each)."""
    if model is None:
        return None
    return [p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n]
