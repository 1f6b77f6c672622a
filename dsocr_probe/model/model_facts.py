"""What the checkpoint's files and classes say, read without training: the Auto classes that load it, its
forward() parameters (from the class, or from the remote code's source without importing it), the auto_map
entries of all its JSON files.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from ..findings import ProbeStop
from ..messages import M, N_

# The Auto classes a fine-tuning script for an OCR model is likely to reach for.
AUTO_CLASSES = (
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "AutoModelForSeq2SeqLM",
)
# Which accepted class to recommend: one with a language-model head before the bare AutoModel
# (for native models AutoModel builds the backbone without lm_head; for remote code it is the
# only entry and maps to the causal-LM class).
PREFERENCE = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModel")


@dataclass
class AutoVerdict:
    auto_class: str
    accepts: bool
    detail: Any  # the class it builds, or why it refuses: transformers' own error, or a message (M)

    def row(self) -> dict:
        return {N_("Auto class"): self.auto_class,
                N_("loads this checkpoint"): M(N_("yes")) if self.accepts else M(N_("no")),
                N_("builds / refusal"): self.detail}


def auto_class_verdicts(target, config=None) -> list[AutoVerdict]:
    """Which Auto classes accept the checkpoint. Remote code: only those in auto_map. Native: the
    installed mapping, with the refusal message transformers itself gives."""
    import transformers

    out = []
    for name in AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        gone = M(N_("not in transformers %(version)s"), version=transformers.__version__)
        if target.needs_remote_code:
            # The checkpoint's auto_map decides, on any transformers release.
            ref = target.auto_map.get(name)
            if ref and auto is not None:
                out.append(AutoVerdict(name, True, M(N_("remote code %(ref)s"), ref=ref)))
            elif ref:
                out.append(AutoVerdict(name, False, gone))
            else:
                mapped = ", ".join(sorted(target.auto_map))
                if auto is not None:
                    why = M(N_("`Unrecognized configuration class`: auto_map maps only %(mapped)s"), mapped=mapped)
                else:
                    why = M(N_("`Unrecognized configuration class`: auto_map maps only %(mapped)s (and not "
                               "in transformers %(version)s)"), mapped=mapped, version=transformers.__version__)
                out.append(AutoVerdict(name, False, why))
            continue
        if auto is None:
            out.append(AutoVerdict(name, False, gone))
            continue
        if config is None:
            continue
        if type(config) in auto._model_mapping:
            out.append(AutoVerdict(name, True, auto._model_mapping[type(config)].__name__))
            continue
        try:
            auto.from_config(config)
            out.append(AutoVerdict(name, True, M(N_("builds"))))  # not reached for unmapped configs
        except Exception as exc:
            # transformers' own refusal, quoted as it prints it
            out.append(AutoVerdict(name, False, "`" + str(exc).split(". ")[0].split("\n")[0].replace("`", "'") + "`"))
    return out


def forward_params(target, sk) -> tuple[list[str] | None, Any]:
    """forward()'s parameter names (None: not read) and where they were read, or why not (a message)."""
    if sk is not None:
        sig = sk.forward_signature
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            names.append(("**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else "") + p.name)
        return names, f"{sk.cls.__module__}.{sk.cls.__qualname__} ({sk.how})"
    ref = target.auto_map.get("AutoModel")
    if not ref:
        return None, M(N_("no AutoModel entry in auto_map"))
    module, _, cls_name = ref.rpartition(".")
    module = module.split("--")[-1]
    path = target.path / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return None, M(N_("%(file)s is not in the checkpoint"), file=path.name)
    params = forward_params_from_source(path.read_text(encoding="utf-8"), cls_name)
    if params is None:
        return None, M(N_("no %(cls)s.forward in %(file)s"), cls=cls_name, file=path.name)
    return params, M(N_("%(file)s: %(cls)s.forward (source, not imported)"), file=path.name, cls=cls_name)


def forward_params_from_source(source: str, cls_name: str) -> list[str] | None:
    """The parameter names of ``cls_name.forward`` in a module's source, without importing it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "forward":
                    a = item.args
                    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs) if x.arg != "self"]
                    if a.vararg:
                        names.append("*" + a.vararg.arg)
                    if a.kwarg:
                        names.append("**" + a.kwarg.arg)
                    return names
    return None


def all_auto_maps(target) -> dict:
    """Every auto_map entry of the checkpoint: config.json's and those of its tokenizer and processor files."""
    out = dict(target.auto_map)
    for name in ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        data = json_of(target, name)
        out.update(data.get("auto_map") or {})
    return out


def json_of(target, name: str) -> dict:
    """A JSON file of the checkpoint, or {} when it is absent or does not parse (its own probe says so)."""
    try:
        return target.read_json(name) or {}
    except ValueError:
        return {}


def own_collator_possible(ctx) -> bool:
    """Whether the run may use a collator of the team's own (which may call AutoProcessor): no training
    config, one that names a collator, or one that does not load."""
    try:
        cfg = ctx.train_config()
    except ProbeStop:  # a broken config is the training-config probe's finding
        return True
    return cfg is None or bool(cfg.data.get("collator"))
