"""The training run a config describes, built by one function for ``scripts/train_lora.py`` and the step probe.

    run = build(ctx, device, dtype, overrides={"max_steps": (5, "why"), ...})
    trainer = run.trainer()
    trainer.train()

From the same YAML both get the same objects: the model from the class the checkpoint maps,
LoRA from the ``lora`` section, the arguments class the Trainer takes (``TrainingArguments``, or
TRL's ``SFTConfig`` for ``SFTTrainer``) from the ``training`` section, the collator from
``data.collator`` or the verified batch builder, the training rows, and the Trainer class from
the top-level ``trainer`` key. What a caller overrides is kept beside what the config said, so
the report can show both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import pkgutil
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..findings import InputError, ProbeStop
from ..messages import M, N_

DEFAULT_OUTPUT_DIR = "outputs/lora"


@dataclass
class Setting:
    """One argument the run uses: the config's value (``UNSET`` when it gave none), who changed it and why
    (msgids: the report words them)."""

    name: str
    configured: Any
    used: Any
    by: str = ""  # empty: as configured
    why: str = ""


UNSET = N_("(not set)")  # a msgid: the report words it


class BuildError(Exception):
    """Building the run failed at ``stage`` (arguments, collator, lora) of ``name`` (the arguments class, the
    collator's spec, get_peft_model); the cause is ``__cause__``."""

    def __init__(self, stage: str, name: str):
        super().__init__(f"{stage}: {name}")
        self.stage = stage
        self.name = name


@dataclass
class TrainingRun:
    """Everything ``Trainer(...)`` is called with, and where each part came from."""

    trainer_class: type
    trainer_source: Any  # a message, or `trainer: <spec>`
    arguments: Any  # TrainingArguments (or the Trainer's own subclass of it)
    settings: list[Setting]
    model: Any
    processing: Any
    collator: Any
    collator_source: Any  # a message
    train_dataset: Any
    lora_settings: dict[str, Any] = field(default_factory=dict)
    eval_rows: list = field(default_factory=list)  # the val split's rows, evaluated when the arguments say so
    training: dict[str, Any] = field(default_factory=dict)  # the config's training section
    requested: dict[str, tuple[Any, str]] = field(default_factory=dict)  # the caller's overrides
    requested_by: str = N_("caller")
    use_cpu: bool = False

    def arguments_with(self, extra: Mapping[str, tuple[Any, str]], keep_requested: bool = True):
        """The run's arguments with further overrides (a second batch size, fewer steps); with
        ``keep_requested=False`` only ``extra`` replaces what the config says."""
        requested = {**self.requested, **extra} if keep_requested else dict(extra)
        arguments, _ = build_arguments(type(self.arguments), self.training, requested, self.use_cpu, self.requested_by)
        return arguments

    def evaluation_for(self, arguments: Any):
        """The eval dataset the Trainer gets with these arguments: the val rows when they evaluate."""
        from .training import dataset_for

        strategy = getattr(arguments, "eval_strategy", None) or getattr(arguments, "evaluation_strategy", "no")
        evaluating = getattr(strategy, "value", strategy) != "no" or getattr(arguments, "eval_on_start", False)
        return dataset_for(self.trainer_class, self.eval_rows) if evaluating and self.eval_rows else None

    def trainer(self, train_dataset: Any = None, arguments: Any = None):
        """The configured Trainer class on these objects (``train_dataset``/``arguments`` replace the run's;
        the eval dataset follows the arguments)."""
        from .training import trainer_processing_kwargs

        arguments = arguments if arguments is not None else self.arguments
        return self.trainer_class(
            model=self.model,
            args=arguments,
            train_dataset=train_dataset if train_dataset is not None else self.train_dataset,
            eval_dataset=self.evaluation_for(arguments),
            data_collator=self.collator,
            **trainer_processing_kwargs(self.processing),
        )

    def overrides(self, by: str | None = None) -> list[Setting]:
        """The arguments changed from the config's values (by whom: ``by``, or anyone)."""
        return [s for s in self.settings if s.by and (by is None or s.by == by)]

    def describe(self) -> dict[str, Any]:
        """The facts the report names: which Trainer, collator and arguments ran."""
        return {
            N_("trainer"): f"{self.trainer_class.__module__}.{self.trainer_class.__qualname__}",
            N_("trainer from"): self.trainer_source,
            N_("arguments class"): type(self.arguments).__name__,
            N_("collator"): _qualname(self.collator),
            N_("collator from"): self.collator_source,
            N_("model"): type(self.model).__name__,
            N_("training rows"): len(self.train_dataset),
        }


# ---------------------------------------------------------------- resolving names from the config


def resolve_object(spec: str, cfg: Any = None) -> Any:
    """``package.module:attr.path`` (or ``package.module.attr``), importable from the working directory
    or, failing that, from the config's folder or the folder above it (the project's root)."""
    bases = [str(Path.cwd())]
    if cfg is not None:
        bases += [str(cfg.path.parent), str(cfg.path.parent.parent)]
    with _import_path(bases):
        return pkgutil.resolve_name(str(spec).strip())


@contextlib.contextmanager
def _import_path(bases: list[str]) -> Iterator[None]:
    """The folders a training script started there would import from, for one lookup: what is imported
    stays in ``sys.modules``, ``sys.path`` is left as it was."""
    saved = list(sys.path)
    sys.path.extend(b for b in dict.fromkeys(bases) if b not in sys.path)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved


def trainer_class(cfg: Any) -> tuple[type, Any]:
    """The Trainer class the config names (top-level ``trainer:``), else ``transformers.Trainer``; and where
    it came from."""
    import transformers

    from . import loading

    spec = getattr(cfg, "trainer", None) if cfg is not None else None
    if not spec:
        return transformers.Trainer, M(N_("default"))
    try:
        cls = resolve_object(spec, cfg)
    except Exception as exc:
        raise InputError("train_run.trainer-import", spec=spec, error=loading.error_line(exc)) from exc
    if not (isinstance(cls, type) and issubclass(cls, transformers.Trainer)):
        raise InputError("train_run.trainer-type", spec=spec, found=_qualname(cls))
    return cls, f"trainer: {spec}"


def arguments_class(trainer_cls: type) -> type:
    """The arguments class a Trainer takes: the most derived TrainingArguments subclass its ``args``
    parameter is annotated with (TRL's SFTTrainer: SFTConfig), else TrainingArguments."""
    from transformers import TrainingArguments

    from ..inputs.training_values import union_members

    for klass in trainer_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hint = typing.get_type_hints(init).get("args")
        except Exception:  # forward references to names the module does not import
            hint = None
        candidates = [c for c in union_members(hint) if isinstance(c, type) and issubclass(c, TrainingArguments)]
        if candidates:
            return max(candidates, key=lambda c: len(c.__mro__))
    return TrainingArguments


def arguments_fields(args_cls: type) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(args_cls.__init__).parameters.items() if n != "self"}


# ---------------------------------------------------------------- arguments


@contextlib.contextmanager
def environment_kept():
    """TrainingArguments writes settings into os.environ (ACCELERATE_USE_FSDP, the mixed precision, the
    DeepSpeed flag) and the Trainer reads them back: a probe's constructions and runs leave the process's
    environment as they found it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


SCRIPT = N_("training script")  # changes the construction itself makes, for the probe and the script alike


def build_arguments(args_cls: type, training: Mapping[str, Any], overrides: Mapping[str, tuple[Any, str]] = (),
                    use_cpu: bool = False, by: str = N_("caller")) -> tuple[Any, list[Setting]]:
    """The arguments object from the training section, with ``overrides`` (name -> (value, why)).

    Besides the caller's overrides the construction itself sets what a custom batch builder needs:
    ``remove_unused_columns: false`` (otherwise the Trainer drops ``image`` and ``text`` before the
    builder sees the examples) and non-reentrant checkpointing when checkpointing is on and no
    arguments for it were given. Every change of a value is returned as a :class:`Setting` naming
    who made it (``by`` for ``overrides``, "training script" for the construction's own) and why.
    """
    from .training import CHECKPOINTING_KWARGS, checkpointing_enabled, checkpointing_kwargs

    fields = arguments_fields(args_cls)
    kwargs = dict(training)
    changes: dict[str, tuple[Any, str, str]] = {}  # name -> (value, who, why)
    if "output_dir" not in kwargs:
        changes["output_dir"] = (DEFAULT_OUTPUT_DIR, SCRIPT, N_("its default"))
    if kwargs.get("remove_unused_columns", True) is not False:
        changes["remove_unused_columns"] = (False, SCRIPT, N_("the batch builder needs the rows' image and text"))
    if checkpointing_enabled(kwargs) and not any(kwargs.get(n) for n in CHECKPOINTING_KWARGS):
        name = next((n for n in reversed(CHECKPOINTING_KWARGS) if n in fields), CHECKPOINTING_KWARGS[0])
        changes[name] = (checkpointing_kwargs(kwargs), SCRIPT,
                         N_("non-reentrant checkpointing reaches LoRA inside checkpointed blocks"))
    if use_cpu and "use_cpu" in fields and not kwargs.get("use_cpu"):
        changes["use_cpu"] = (True, SCRIPT, N_("the run is on the CPU"))
    for name, (value, why) in dict(overrides).items():
        if name in fields:
            changes[name] = (value, by, why)
    defaults = {f.name: f.default for f in dataclasses.fields(args_cls)}
    # A change only where the value differs from what the run would use: the config's value, else the default.
    changes = {k: v for k, v in changes.items()
               if not _same(training[k] if k in training else defaults.get(k, dataclasses.MISSING), v[0])}
    for name, (value, _, _) in changes.items():
        kwargs[name] = value
    settings = [Setting(k, training.get(k, UNSET), kwargs[k], *(changes[k][1:] if k in changes else ()))
                for k in dict.fromkeys([*training, *changes])]
    return args_cls(**kwargs), settings


def _same(current: Any, value: Any) -> bool:
    """``value`` is what the field already holds (an enum default and its string value are the same)."""
    if current is dataclasses.MISSING:
        return False
    if isinstance(value, bool) or isinstance(current, bool):
        return current is value
    return str(getattr(current, "value", current)) == str(value)


# ---------------------------------------------------------------- collator


def collator(ctx, cfg: Any, processing: Any, dtype: Any) -> tuple[Any, Any]:
    """``data.collator`` when the config names one, else the verified batch builder for this family.

    A named class is instantiated with the tokenizer or processor when its constructor takes one
    argument, else with none; a named object or function is used as it is.
    """
    from . import loading

    spec = cfg.data.get("collator") if cfg is not None else None
    if not spec:
        builder = loading.builder_for(ctx, processing, dtype)
        return builder, M(N_("dsocr_probe's verified batch builder"))
    try:
        obj = resolve_object(spec, cfg)
    except Exception as exc:
        raise InputError("train_run.collator-import", spec=spec, error=loading.error_line(exc)) from exc
    if isinstance(obj, type):
        required = [p for p in inspect.signature(obj).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(required) > 1:
            raise InputError("train_run.collator-class", spec=spec, count=len(required),
                             names=", ".join(p.name for p in required))
        obj = obj(processing) if required else obj()
        made_with = (N_("data.collator: %(spec)s, made with the tokenizer/processor") if required
                     else N_("data.collator: %(spec)s, made with no arguments"))
        return obj, M(made_with, spec=spec)
    return obj, M(N_("data.collator: %(spec)s"), spec=spec)


def processing(ctx) -> Any:
    """What the Trainer gets as processing_class: the tokenizer for DeepSeek-OCR v1 (its processor is only
    that), the processor otherwise."""
    from . import loading

    return ctx.tokenizer() if loading.family(ctx.target()) == "deepseek-ocr-v1" else loading.load_processor(ctx)


# ---------------------------------------------------------------- the whole run


def build(ctx, device: str, dtype: Any, overrides: Mapping[str, tuple[Any, str]] = (), rows: Any = None,
          model: Any = None, lora_settings: Mapping[str, Any] | None = None, by: str = N_("caller")) -> TrainingRun:
    """The run the config describes, on ``device`` in ``dtype``.

    ``rows``: the training rows (default: every row of the train split); ``model``: an already
    loaded base model (default: load it); ``lora_settings``: instead of the config's lora section.
    The model is wrapped with LoRA here; gradient checkpointing is left to the Trainer, which
    enables it after wrapping, as in a real run. A failure of the arguments, the collator or the
    LoRA wrapping raises :class:`BuildError`; an input it cannot use raises :class:`InputError` (a loader's
    ProbeStop passes through).
    """
    from ..findings import InputError
    from . import loading, lora
    from .training import dataset_for

    cfg = ctx.train_config()
    training = dict(cfg.training) if cfg is not None else {}
    cls, source = trainer_class(cfg)
    args_cls = arguments_class(cls)
    use_cpu = str(device) == "cpu"
    try:
        arguments, settings = build_arguments(args_cls, training, overrides, use_cpu=use_cpu, by=by)
    except Exception as exc:
        raise BuildError("arguments", args_cls.__name__) from exc
    data = ctx.dataset()
    if rows is None:
        if data is None or data.train is None or not data.train.rows:
            raise InputError("train_run.no-data")
        rows = data.train.rows
    processing_obj = processing(ctx)
    try:
        made, made_by = collator(ctx, cfg, processing_obj, dtype)
    except (ProbeStop, InputError):
        raise
    except Exception as exc:
        raise BuildError("collator", str(cfg.data.get("collator"))) from exc
    if lora_settings is None:
        lora_settings = dict(cfg.lora) if cfg is not None and cfg.lora else {}
    base = model if model is not None else loading.load_model(ctx, device, dtype)
    try:
        wrapped = lora.wrap(base, dict(lora_settings))
    except Exception as exc:
        raise BuildError("lora", "get_peft_model") from exc
    val = data.splits.get("val") if data is not None else None
    eval_rows = ctx.usable_rows(val.rows) if val is not None else []
    return TrainingRun(
        trainer_class=cls,
        trainer_source=source,
        arguments=arguments,
        settings=settings,
        model=wrapped,
        processing=processing_obj,
        collator=made,
        collator_source=made_by,
        train_dataset=dataset_for(cls, rows),
        lora_settings=dict(lora_settings),
        eval_rows=eval_rows,
        training=training,
        requested=dict(overrides),
        requested_by=by,
        use_cpu=use_cpu,
    )


def _qualname(obj: Any) -> str:
    owner = obj if isinstance(obj, type) or inspect.isfunction(obj) else type(obj)
    return f"{getattr(owner, '__module__', '?')}.{getattr(owner, '__qualname__', type(owner).__name__)}"


