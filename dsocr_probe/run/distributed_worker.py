"""One rank of the distributed probe's run, started by torch's launcher:

    python -m torch.distributed.run --nproc_per_node N ... -m dsocr_probe.run.distributed_worker SPEC.json

The rank rebuilds the run from the same inputs as the probe (target, training config, data, the
probe's overrides) with :func:`dsocr_probe.model.trainrun.build`, and calls the configured Trainer's own
``train()``: under the launcher's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``) the Trainer
starts the process group and wraps the model in DistributedDataParallel as in a multi-GPU launch.
What the rank saw is written to ``rank<R>.json`` in the spec's folder, after every step, so a rank
that dies later still leaves what it reached; an error is written there too and raised again, so
the launcher's own failure report (``errors.record``) names it.

``DSOCR_PROBE_FAULT=<rank>:<kind>`` makes one rank fail on purpose after its first optimizer step
(``exit``: killed by SIGKILL, ``hang``: sleeps, ``raise``: an exception), to test that a broken rank
becomes a finding and leaves nothing running.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

FAULT_ENV = "DSOCR_PROBE_FAULT"


class RankLog:
    """The rank's JSON result, rewritten whole (through a temporary file) each time it grows."""

    def __init__(self, folder: Path, rank: int):
        self.path = folder / f"rank{rank}.json"
        self.data: dict[str, Any] = {"rank": rank, "pid": os.getpid(), "started": time.time(), "finished": False}
        self.write()

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def _die_with_parent() -> None:
    """On Linux the rank gets SIGKILL when the launcher goes, however the launcher ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _fault(rank: int) -> str | None:
    wanted = os.environ.get(FAULT_ENV, "")
    where, _, kind = wanted.partition(":")
    return kind if where.strip() == str(rank) else None


def _inject(kind: str | None) -> None:
    if kind == "exit":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "raise":
        raise RuntimeError(f"{FAULT_ENV}: this rank was told to fail")


def _checksums(model: Any, grads: bool) -> dict[str, list[float] | None]:
    """Per LoRA parameter: sum and norm of its gradient (or weight), in float64; None: no gradient."""
    out: dict[str, list[float] | None] = {}
    for name, p in model.named_parameters():
        if not (p.requires_grad and ".lora_" in name):
            continue
        t = p.grad if grads else p.detach()
        out[name] = None if t is None else [float(t.double().sum()), float(t.double().norm())]
    return out


def _plan(dataloader: Any, rows: list) -> list[list[int]] | None:
    """The batches of one epoch this rank's sampler gives, as dataset row indices (None: not readable)."""
    sampler = getattr(dataloader, "batch_sampler", None)
    if sampler is None:
        return None
    try:
        return [[rows[int(i)].index for i in batch] for batch in sampler]
    except Exception:
        return None


def make_watch(log: RankLog, rows: list, fault: str | None):
    from transformers import TrainerCallback

    class DistributedWatch(TrainerCallback):
        """What only a rank can see: which adapters its own backward reached, the gradients after DDP's
        sync, the sampler's share of the rows, and the updated weights."""

        def __init__(self):
            self.trainer: Any = None  # set once the Trainer exists: DDP's wrapper is read from it
            self.steps: Any = None  # the StepWatch's record: loss and time of each step
            self.reached: set[str] = set()
            self.handles: list[Any] = []

        def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
            import torch.distributed as dist

            for name, p in model.named_parameters():
                if p.requires_grad and ".lora_" in name:
                    # A tensor hook fires when this rank's own backward computes the gradient, before the sync.
                    self.handles.append(p.register_hook(lambda g, n=name: self.reached.add(n) or g))
            log.update(
                world=dist.get_world_size() if dist.is_initialized() else 1,
                backend=dist.get_backend() if dist.is_initialized() else None,
                plan=_plan(train_dataloader, rows),
                sampler=type(getattr(train_dataloader, "batch_sampler", None)).__name__,
                adapters=sorted(n for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n),
            )

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                for handle in self.handles:
                    handle.remove()
                log.update(reached=sorted(self.reached), grads=_checksums(model, grads=True))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            steps = self.steps
            log.update(steps_done=state.global_step, losses=list(steps.losses), times=list(steps.times),
                       micro_batches=list(steps.micro_batches))
            if state.global_step == 1:
                wrapped = getattr(self.trainer, "model_wrapped", None)
                log.update(wrapper=type(wrapped).__name__, find_unused=getattr(wrapped, "find_unused_parameters", None))
                _inject(fault)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            log.update(weights=_checksums(model, grads=False))

    return DistributedWatch()


def build_failure(exc: Any, ctx: Any) -> dict[str, Any]:
    """What a rank reports when building the run failed (a :class:`~dsocr_probe.model.trainrun.BuildError`): the
    message code, variant and params of that cause, which the probe words in the report's language."""
    from ..messages import ref
    from ..model import loading

    error = loading.error_line(exc.__cause__ or exc)
    if exc.stage != "collator":
        return ref("distributed.build-failed", "call", {"what": exc.name, "error": error}, "fail")
    cfg = ctx.unless_broken(ctx.train_config)
    spec = cfg.data.get("collator") if cfg is not None else None
    if not spec:
        return ref("distributed.build-failed", "builder", {"error": error}, "fail")
    return ref("distributed.build-failed", "collator", {"spec": spec, "error": error}, "fail")


@record
def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    _die_with_parent()
    if hasattr(signal, "SIGUSR1"):  # the launcher asks a rank that overruns where it is
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    log = RankLog(Path(spec["folder"]), rank)
    try:
        _train(spec, log, local_rank)
    except BaseException as exc:
        log.update(error=f"{type(exc).__name__}: {exc}", exception=type(exc).__name__,
                   traceback="".join(traceback.format_exception(exc))[-4000:], ended=time.time())
        raise
    log.update(finished=True, ended=time.time())


def _train(spec: dict[str, Any], log: RankLog, local_rank: int) -> None:
    import torch

    from ..findings import InputError, ProbeStop
    from ..model import loading, trainrun
    from ..probes.context import Options, ProbeContext, finding_of
    from ..model.trainer_watch import StepWatch

    options = {k: (Path(v) if k in ("data", "train_config") and v else v) for k, v in spec["options"].items()}
    ctx = ProbeContext(Options(**options))
    device = "cpu"
    if spec["device"].startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    overrides = {k: tuple(v) for k, v in spec["overrides"].items()}
    try:
        dtype = loading.model_dtype(ctx, device)
        data = ctx.dataset()
        rows = ctx.usable_rows(data.train.rows) if data is not None and data.train is not None else []
        torch.manual_seed(0)
        built = trainrun.build(ctx, device, dtype, overrides, rows=rows, by="probe")
    except (ProbeStop, InputError) as stop:  # what the step probe reports too: the probe turns it into a prerequisite
        finding = stop.finding if isinstance(stop, ProbeStop) else finding_of(stop)
        log.update(stop=finding.ref())
        raise RuntimeError(f"building the run: {finding.title}") from None
    except trainrun.BuildError as exc:
        log.update(stop=build_failure(exc, ctx))
        raise RuntimeError(f"building the run: {exc.stage} ({exc.name}) fails: {exc.__cause__}") from exc
    trainer = built.trainer()
    for callback in ("PrinterCallback", "ProgressCallback"):
        from transformers import trainer_callback

        trainer.remove_callback(getattr(trainer_callback, callback))
    watch = StepWatch(device).attach(trainer)
    ddp_watch = make_watch(log, rows, _fault(int(os.environ["RANK"])))
    ddp_watch.trainer, ddp_watch.steps = trainer, watch.record
    trainer.add_callback(ddp_watch)
    log.update(rows=len(rows), train_started=time.time())
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1:])
