"""The training section's values against the fields of the installed arguments class, before anything runs.

TrainingArguments accepts much that training then trips on: ``learning_rate: 2e-4`` is the string
``'2e-4'`` to PyYAML (YAML 1.1 wants a dot and a signed exponent), and the optimizer fails on it
many minutes later; ``bf16: "false"`` is a non-empty string, so it is true; a batch size of 0 is
stored and the DataLoader refuses it. Each value is checked here against the field's declared type
(read from the installed class, so renamed or retyped fields follow the version), its choices
(enum fields) and the bounds below.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from ..messages import M, N_

# Bounds training needs, beyond what the arguments class checks itself: (lowest, lowest allowed?,
# highest, highest allowed?). Each was seen to fail later in the run (DataLoader, optimizer,
# scheduler, the Trainer's step arithmetic) or to make the run learn nothing.
Bound = tuple[float | None, bool, float | None, bool]
AT_LEAST_ONE: Bound = (1, True, None, False)
POSITIVE: Bound = (0, False, None, False)
NOT_NEGATIVE: Bound = (0, True, None, False)
BOUNDS: dict[str, Bound] = {
    **dict.fromkeys(("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"),
                    AT_LEAST_ONE),
    **dict.fromkeys(("num_train_epochs", "learning_rate", "logging_steps", "save_steps", "eval_steps"), POSITIVE),
    **dict.fromkeys(("weight_decay", "warmup_steps", "max_grad_norm", "dataloader_num_workers", "adam_epsilon"),
                    NOT_NEGATIVE),
    "warmup_ratio": (0, True, 1, True),
    "adam_beta1": (0, True, 1, False),
    "adam_beta2": (0, True, 1, False),
    "seed": (0, True, 2**32 - 1, True),
}
# The LoRA section: a rank of 0 or an alpha of 0 gives adapters that never change the output.
LORA_BOUNDS: dict[str, Bound] = {"r": AT_LEAST_ONE, "lora_alpha": POSITIVE, "lora_dropout": (0, True, 1, False)}
LORA_NUMBERS = ("lora_alpha",)  # typed int by peft, but any positive number scales the adapters
# With max_steps > 0 the epoch count is not used.
UNUSED_WITH_MAX_STEPS = ("num_train_epochs",)
FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_TRUE_OR_FALSE = M(N_("true or false"))
# What a field of each type takes, in words.
_WORDS: dict[Any, Any] = {bool: _TRUE_OR_FALSE, int: M(N_("a whole number")), float: M(N_("a number")),
                          str: M(N_("text")), dict: M(N_("a mapping")), list: M(N_("a list"))}


@dataclass
class ValueProblem:
    """A training value the run cannot use as written."""

    key: str
    value: Any
    kind: str  # number-as-string, bool-as-string, wrong-type, null, choice, range, conflict
    expected: Any  # what the field takes: the choices joined with ", " (kind choice), else a message
    write: str | None = None  # the YAML line that fixes it, when there is one

    @property
    def shown(self) -> str:
        return repr(self.value) if isinstance(self.value, str) else str(self.value)


def yaml_float(text: str) -> str:
    """``text`` (a number PyYAML read as a string) rewritten so that it reads back as a float: a dot
    in the mantissa and a signed exponent (``2e-4`` -> ``2.0e-4``, ``1E5`` -> ``1.0e+5``)."""
    mantissa, e, exponent = text.strip().lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    elif mantissa.endswith("."):
        mantissa += "0"
    if not e:
        return mantissa
    return f"{mantissa}e{exponent if exponent.startswith(('-', '+')) else '+' + exponent}"


def field_types(args_cls: type) -> dict[str, Any]:
    """Declared type of each field of the arguments dataclass (on every transformers version)."""
    try:
        hints = typing.get_type_hints(args_cls)
    except Exception:
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(args_cls)}


def check(training: Mapping[str, Any], args_cls: type, bounds: Mapping[str, tuple] = BOUNDS,
          numbers: tuple[str, ...] = ()) -> list[ValueProblem]:
    """Every problem with the section's values (unknown keys are the names check's business).

    ``bounds``: the ranges to hold the values to; ``numbers``: int-typed fields that take any number.
    """
    types = field_types(args_cls)
    problems = []
    max_steps = training.get("max_steps")
    for key, value in training.items():
        if key not in types:
            continue
        hint = float if key in numbers else types[key]
        problem = _type_problem(key, value, hint)
        if problem is None and not (key in UNUSED_WITH_MAX_STEPS and isinstance(max_steps, int) and max_steps > 0):
            problem = _range_problem(key, value, bounds)
        if problem is not None:
            problems.append(problem)
    if training.get("fp16") is True and training.get("bf16") is True:
        problems.append(ValueProblem("fp16", True, "conflict", M(N_("at most one of fp16 and bf16")), "bf16: true"))
    return problems


def union_members(hint: Any) -> list[Any]:
    """The members of a (possibly nested) Union / ``X | Y`` annotation; the annotation itself otherwise."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        return [m for a in args for m in union_members(a)]
    return [hint]


def _is_literal(value: Any, literals: list[Any]) -> bool:
    """A literal choice, or one of peft's patterned ones (``pissa_niter_[number of iters]`` -> ``pissa_niter_16``)."""
    if value in literals:
        return True
    return isinstance(value, str) and any(isinstance(v, str) and "[" in v and value.startswith(v.split("[")[0])
                                          for v in literals)


def _type_problem(key: str, value: Any, hint: Any) -> ValueProblem | None:
    members = union_members(hint)
    plain = {typing.get_origin(m) or m for m in members}
    optional = type(None) in plain
    enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
    literals = [v for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m)]
    if value is None:
        if optional:
            return None
        return ValueProblem(key, value, "null", _describe(plain, enums), None)
    if literals and _is_literal(value, literals):
        return None
    if literals and (isinstance(value, str) or not (plain - {typing.Literal, type(None)})):
        return ValueProblem(key, value, "choice", ", ".join(map(str, literals)), None)
    if enums:
        choices = [str(e.value) for cls in enums for e in cls]
        if isinstance(value, enum.Enum) or str(value) in choices:
            return None
        return ValueProblem(key, value, "choice", ", ".join(choices), None)
    if isinstance(value, str) and str not in plain:
        if plain & {int, float} and FLOAT_TEXT.match(value.strip()):
            number = float(value)
            write = f"{key}: {int(number)}" if float not in plain and number.is_integer() else f"{key}: {yaml_float(value)}"
            return ValueProblem(key, value, "number-as-string", _describe(plain, enums), write)
        if bool in plain and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            truth = value.strip().lower() in ("true", "yes", "on")
            return ValueProblem(key, value, "bool-as-string", _TRUE_OR_FALSE, f"{key}: {str(truth).lower()}")
        return ValueProblem(key, value, "wrong-type", _describe(plain, enums), None)
    if isinstance(value, float) and not math.isfinite(value) and plain & {int, float}:
        return ValueProblem(key, value, "wrong-type", M(N_("a finite number")), None)
    if plain == {int} or plain == {int, type(None)}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ValueProblem(key, value, "wrong-type", _WORDS[int], None)
        if isinstance(value, float) and not value.is_integer():
            return ValueProblem(key, value, "wrong-type", _WORDS[int], f"{key}: {math.floor(value) or 1}")
    if plain <= {float, int, type(None)} and float in plain:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ValueProblem(key, value, "wrong-type", _WORDS[float], None)
    if plain <= {bool, type(None)} and not isinstance(value, bool) and value not in (0, 1):  # 0/1 read as flags
        return ValueProblem(key, value, "wrong-type", _TRUE_OR_FALSE, None)
    if plain <= {bool, int, float, type(None)}:
        return None  # numbers and flags are judged above, as the arguments class reads them
    concrete = tuple(t for t in plain if isinstance(t, type) and t is not type(None))
    if concrete and str not in concrete and not literals and not isinstance(value, concrete):
        return ValueProblem(key, value, "wrong-type", _describe(plain, enums), None)  # e.g. a number for a list
    return None


def lora_check(lora: Mapping[str, Any]) -> list[ValueProblem]:
    """The LoRA section's values against the installed ``peft.LoraConfig`` (keys named ``lora.<key>``)."""
    from peft import LoraConfig

    # task_type is peft's TaskType in any spelling the training script reads (causal_lm, TaskType.CAUSAL_LM):
    # the training-config probe's own task-type check judges it.
    problems = check({k: v for k, v in lora.items() if k != "task_type"}, LoraConfig, LORA_BOUNDS, LORA_NUMBERS)
    for p in problems:
        p.key = f"lora.{p.key}"
    return problems


def _range_problem(key: str, value: Any, bounds: Mapping[str, tuple] = BOUNDS) -> ValueProblem | None:
    if key not in bounds or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, low_ok, high, high_ok = bounds[key]
    too_low = low is not None and (value < low or (value == low and not low_ok))
    too_high = high is not None and (value > high or (value == high and not high_ok))
    if not (too_low or too_high):
        return None
    parts = []
    if low is not None:
        parts.append(f"{'≥' if low_ok else '>'} {_number(low)}")
    if high is not None:
        parts.append(f"{'≤' if high_ok else '<'} {_number(high)}")
    expected = M(N_("%(low)s and %(high)s"), low=parts[0], high=parts[1]) if len(parts) == 2 else parts[0]
    return ValueProblem(key, value, "range", expected, None)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _describe(plain: set, enums: list) -> Any:
    """What a field of these types takes, as a message ("a whole number or a number")."""
    words = [_WORDS.get(t, getattr(t, "__name__", str(t))) for t in plain if t not in (type(None), typing.Literal)]
    words += [M(N_("one of %(name)s"), name=cls.__name__) for cls in enums]
    unique = [w for i, w in enumerate(words) if w not in words[:i]]
    if not unique:
        return M(N_("a value"))
    described = unique[0]
    for word in unique[1:]:
        described = M(N_("%(first)s or %(second)s"), first=described, second=word)
    return described
