"""The step probe's learning verdicts: the LoRA wrapping and its task type, the first step's loss and
gradients, whether a target token sees later ones, and whether a repeated batch moves the adapters and
the loss."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from ..findings import Finding, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_
from ..model import gradients, loading, lora

MIN_DROP = 0.005  # a fall of 0.5 % counts even when the losses zigzag (dropout, bf16)


def targets_fix(names: list[str]) -> dict:
    """Adapters on the language model's projections, in the config's words (and the installed peft's fields)."""
    params = targets_params(names)
    if params["exclude"]:
        return M(N_("Target the language model: `target_modules: %(targets)s` with `exclude_modules: '%(exclude)s'`."),
                 **params)
    return M(N_("Target the language model: `target_modules: %(targets)s`."), targets=params["targets"])


def targets_params(names: list[str]) -> dict[str, Any]:
    """The values of :func:`targets_fix`: ``target_modules`` as YAML writes it, and ``exclude_modules``."""
    settings = lora.default_settings(names)
    targets = settings["target_modules"]
    return {"targets": f"'{targets}'" if isinstance(targets, str) else "[" + ", ".join(targets) + "]",
            "exclude": settings.get("exclude_modules") or None}


def wrap_failed(cause: BaseException, names: list[str]) -> ProbeStop:
    """peft refused the LoRA section: the targets, when they are what it names; else the value it names."""
    about_targets = "target module" in str(cause).lower() or "not found in the base model" in str(cause)
    params = {"error": loading.first_line(cause), "exception": type(cause).__name__}
    if about_targets:
        return ProbeStop(fail("step.lora-wrap", "targets", params={**params, "targets_fix": targets_fix(names)}))
    return ProbeStop(fail("step.lora-wrap", "value", params=params))


def task_type(model, lora_kwargs: dict, batch: dict, amp: Callable[[], Any]) -> Iterable[Finding]:
    """A task type that does not fit the architecture: show what it does, then go on with the right one."""
    want = lora.task_type_for(model.config)
    given = lora.normalise_task_type(lora_kwargs.get("task_type"))
    if given is None or given == want:
        return
    outcome = M(N_("the forward runs, but peft feeds it decoder inputs the model does not have"))
    forward_error = wrap_error = None
    try:
        trial = lora.wrap(model, lora_kwargs)
        try:
            import torch

            with torch.no_grad(), amp():
                trial(**batch)
        except Exception as exc:
            forward_error = loading.error_line(exc)
            outcome = M(N_("the first forward fails: %(error)s"), error=forward_error)
        finally:
            base = trial.unload()  # take the adapters out again; the model goes on with the right task type
            if hasattr(base, "peft_config"):  # left behind by unload(); would make the next wrap a second adapter
                del base.peft_config
    except Exception as exc:
        wrap_error = loading.error_line(exc)
        outcome = M(N_("get_peft_model fails: %(error)s"), error=wrap_error)
    yield fail(
        "step.task-type",
        "decoder-only" if want == "CAUSAL_LM" else "encoder-decoder",
        params={"given": given, "want": want, "outcome": outcome, "forward_error": forward_error,
                "wrap_error": wrap_error},
    )
    lora_kwargs["task_type"] = want


def causality_findings(training_run, chosen: list, device: str, amp: Callable[[], Any]) -> Iterable[Finding]:
    """A later target token must not change the logits of the earlier ones (prefix-LM leakage)."""
    from accelerate.utils import send_to_device

    from ..knowledge import families
    from ..model import causality

    fam = families.family_for(training_run.model.config)
    try:
        batch = send_to_device(training_run.collator([s.row.example() for s in chosen]), device)
        with amp():
            result = causality.check(training_run.model, batch, encoder_decoder=fam.encoder_decoder)
    except causality.NotChecked as exc:
        yield skip("step.causality-unchecked", params={"why": M(exc.why, **exc.params)})
        return
    except Exception as exc:  # the training run itself reports a forward that fails
        why = M(N_("the forward fails: %(error)s"), error=loading.error_words(exc))
        yield skip("step.causality-unchecked", params={"why": why})
        return
    evidence = {N_("collator"): training_run.collator_source, **result.describe()}
    if not result.leaks:
        yield passed("step.causality", evidence=evidence)
        return
    types = fam.token_type_ids
    yield fail("step.prefix-leak", "token-types" if types else "causal-mask", evidence=evidence,
               params={"at": result.changed_at, "later": result.perturbed_at, "types": types})


def loss_finding(record) -> Finding:
    loss = record.losses[0] if record.losses else None
    if loss is None or not math.isfinite(loss):
        return fail("step.loss-not-finite", params={"loss": str(loss)})
    return passed("step.loss", params={"loss": round(loss, 4)})


def gradient_findings(grads: gradients.GradientReport | None, no_grad: set[str], names: list[str],
                      reentrant: bool = False, trainer_error: str | None = None) -> Iterable[Finding]:
    if grads is None:
        return
    rows = gradients.grouped_rows(grads.adapters, no_grad)
    learning, silent = grads.learning, grads.not_learning
    fix = {"targets_fix": targets_fix(names)}
    evidence = {N_("adapters"): len(grads.adapters), N_("with gradient"): len(learning), N_("without"): len(silent)}
    if trainer_error:
        evidence[N_("Trainer.train() stopped with")] = trainer_error
    if grads.non_finite:
        yield fail("step.gradients-not-finite", table=rows, evidence=evidence,
                   params={"count": len(grads.non_finite), "modules": _first(a.module for a in grads.non_finite)})
    if grads.adapters and not learning:
        if all(a.module in no_grad or lora.is_vision_module(a.module) for a in silent):
            yield fail("step.adapters-vision-only", table=rows, evidence=evidence,
                       params=fix)
        else:
            yield fail("step.no-gradients", "reentrant" if reentrant else "targets", table=rows, evidence=evidence,
                       params={"count": len(silent), **fix})
        return
    if grads.frozen_with_grad:
        yield fail("step.frozen-with-gradients",
                   params={"count": len(grads.frozen_with_grad), "names": _first(grads.frozen_with_grad)})
    unexplained = [a for a in silent if a.module not in no_grad and ".experts." not in a.module]
    on_vision = [a for a in silent if a.module in no_grad]
    if grads.trainable_without_grad:
        yield warn("step.trainable-without-gradients",
                   params={"count": len(grads.trainable_without_grad), "names": _first(grads.trainable_without_grad)})
    if on_vision or unexplained:
        listed = on_vision + unexplained
        yield warn(
            "step.adapters-without-gradients", "on-vision" if on_vision else "elsewhere", table=rows, evidence=evidence,
            params={"count": len(listed), "total": len(grads.adapters), "on_vision": len(on_vision) or None,
                    "modules": _first(a.module for a in listed), **fix},
        )
    else:
        experts = len(silent)
        yield passed("step.gradients", "experts" if experts else "", table=rows, evidence=evidence,
                     params={"learning": len(learning), "experts": experts})


def _first(names: Iterable[str], count: int = 8) -> str:
    return ", ".join(list(names)[:count])


def learning_finding(record, training: dict) -> Finding:
    """The same batch, repeated: the adapters must move, and the loss should fall.

    Unchanged adapters after the Trainer's steps mean the updates are lost (an optimizer without
    them, a zero learning rate): NO-GO. A loss that does not fall while they move is a warning, not
    a verdict: in its first few steps the configured schedule may still be warming up, and a low
    rate moves a loss slowly.
    """
    losses, rates = record.losses, [r for r in record.learning_rates if r is not None]
    table = [{N_("step"): i + 1, N_("loss"): f"{v:.5f}", N_("learning rate"): f"{r:.3g}" if r is not None else "?",
              N_("time"): f"{t:.3f} s"}
             for i, (v, r, t) in enumerate(zip(losses, record.learning_rates + [None] * len(losses), record.times))]
    evidence = {N_("optimizer steps"): len(losses), N_("learning rates"): ", ".join(f"{r:.3g}" for r in rates) or "?"}
    if record.adapters_changed is False:
        return fail("step.no-update", table=table, evidence=evidence, params={"steps": len(losses)})
    if loss_falls(losses):
        return passed("step.loss-falls", table=table, evidence=evidence,
                      params={"first": losses[0], "last": losses[-1], "steps": len(losses)})
    return warn(
        "step.loss-flat", table=table, evidence=evidence,
        params={"losses": [round(v, 4) for v in losses], "trace": " → ".join(f"{v:.5f}" for v in losses),
                "steps": len(losses), "lr": max(rates, default=0.0)},
    )


def loss_falls(losses: list[float]) -> bool:
    """Did the loss fall while one batch was repeated?

    Yes when the best later loss is MIN_DROP below the first, or when every step lowered it: a
    random-weight model near the uniform loss moves little per step, but it moves every step,
    and noise alone gives a strictly falling run of 5 only once in 5! = 120 tries.
    """
    if len(losses) < 2 or not all(map(math.isfinite, losses)):
        return False
    if min(losses[1:]) < losses[0] * (1 - MIN_DROP):
        return True
    return all(b < a for a, b in zip(losses, losses[1:]))
