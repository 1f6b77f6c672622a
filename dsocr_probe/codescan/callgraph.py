"""Which remote code runs when: a static call graph of the checkpoint's modules, built with ``ast``.

A training run executes the remote code in four ways, from the most to the least exposed:

- ``import``: module level and class bodies run when from_pretrained imports the file;
- ``load``: from_pretrained builds the config and the model: the auto_map classes' ``__init__``,
  ``post_init``, ``_init_weights`` and everything they call or instantiate;
- ``forward``: the training step runs ``forward`` (and a few hooks Trainer and PEFT call, such as
  ``get_input_embeddings``) of the model and of every module class built while loading;
- ``inference``: everything else on those classes (``infer``, ``generate`` hooks, drawing and saving
  results) runs only when a script calls it; a training run never does.

Code nothing reaches (a helper no one calls, an ``if __name__ == "__main__":`` block) is
``unreached``. A call site is resolved through the module's own definitions, its imports of the
checkpoint's other files, ``self``/``cls``/``super()`` and the classes' bases.

When a call cannot be resolved statically (``obj.method()`` on an object of unknown type, or
``getattr(obj, "name")()``), it is linked to every function of that name defined anywhere in the
remote code: an unresolved call can only run code that exists, so it counts as reaching a
dangerous function exactly when a function of the called name is dangerous. ``getattr(obj, <computed
name>)()`` matches any name, so it is linked to every function of the code.

A hazard under ``if <param> is not None:`` (or ``if <param>:``), where the parameter defaults to
None, is reached on a path only if some call site on that path may set it: a call that leaves it
out or passes ``None`` does not, a caller's own defaulted parameter passed along is followed up its
callers, anything else (or a function the framework calls with unknown arguments) may.

Nothing here imports the code.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .definitions import Definitions, Function
from .syntax import body_of, module_level, reassigned, tested_param, walk_all

IMPORT, LOAD, FORWARD, INFERENCE, UNREACHED = "import", "load", "forward", "inference", "unreached"
PHASES = (IMPORT, LOAD, FORWARD, INFERENCE, UNREACHED)  # most exposed first
ON_TRAINING_PATH = (IMPORT, LOAD, FORWARD)

# Methods from_pretrained calls while it builds a model (transformers' PreTrainedModel machinery).
LOAD_HOOKS = ("__new__", "__init__", "__post_init__", "post_init", "_init_weights", "init_weights",
              "_initialize_weights", "tie_weights", "_tie_weights", "_from_config", "from_pretrained",
              "_set_gradient_checkpointing", "_backward_compatibility_gradient_checkpointing")
# Methods a training step calls on the model and its modules (Trainer, PEFT, autograd, saving).
TRAIN_HOOKS = ("forward", "__call__", "get_input_embeddings", "set_input_embeddings", "get_output_embeddings",
               "set_output_embeddings", "get_decoder", "set_decoder", "gradient_checkpointing_enable",
               "gradient_checkpointing_disable", "enable_input_require_grads", "resize_token_embeddings",
               "loss_function", "save_pretrained", "state_dict", "load_state_dict", "_load_from_state_dict",
               "train", "_apply", "to", "extra_repr", "num_parameters", "floating_point_ops")


@dataclass(frozen=True)
class Reach:
    """How far from a training run one hazard sits."""

    phase: str  # one of PHASES
    path: tuple[str, ...] = ()  # from the root that reaches it to the function holding it
    guard: str = ""  # `if checkpoint is not None:` when a guard no caller on the training path sets kept it off

    @property
    def on_training_path(self) -> bool:
        return self.phase in ON_TRAINING_PATH and not self.guard

    def describe(self, call: str) -> str:
        """``DeepseekOCRForCausalLM.infer → eval`` (the call path down to the risky call)."""
        return " → ".join((*self.path, call)) if self.path else call


@dataclass(frozen=True)
class _Edge:
    target: tuple  # a function key, or ("class", file, name)
    call: ast.Call | None  # the call whose arguments bind the callee's parameters; None: a reference
    shift: int  # positional arguments the call does not spell out (self of a bound method)
    later: bool = False  # only named at import, called later: counts from the forward phase on


class CallGraph(Definitions):
    """The remote code's functions and who calls whom; :meth:`reach` places a line of code."""

    def __init__(self, root: Path, files: Iterable[str], entries: Iterable[tuple[str, str, str]]):
        """files: the remote-code files (relative to root); entries: (auto_class, file, class name) of auto_map."""
        super().__init__(root, files)
        self.edges: dict[tuple, list[_Edge]] = defaultdict(list)
        self.callers: dict[tuple, list[tuple[tuple, _Edge]]] = defaultdict(list)
        self.import_refs: dict[str, list[_Edge]] = defaultdict(list)
        for fn in self.functions.values():
            for edge in self._references(fn.key[0], fn.cls, body_of(fn.node), self_name=_first_param(fn)):
                self._link(fn.key, edge)
        for rel, tree in self.trees.items():
            for edge in self._references(rel, None, module_level(tree), self_name=None, import_time=True):
                self.import_refs[rel].append(edge)
                self.callers[edge.target].append((("import", rel), edge))
        self.phase: dict[tuple, tuple[str, tuple[str, ...]]] = {}
        self.roots: dict[tuple, str] = {}  # functions the framework calls with arguments we cannot see
        self._walk(list(entries))

    # ---------------------------------------------------------------- placing code

    def reach(self, file: str, line: int, in_function: bool) -> Reach:
        """Where the code at file:line runs; ``in_function`` as the scanner found it."""
        if not in_function:
            return Reach(IMPORT)
        if any(start <= line <= end for start, end in self.main_blocks.get(file, ())):
            return Reach(UNREACHED, ("if __name__ == '__main__'",))
        fn = self._enclosing(file, line)
        if fn is None:
            # Code the graph does not place (a lambda outside any def): assume loading runs it.
            return Reach(LOAD, (f"<unplaced code at {file}:{line}>",))
        phase, path = self.phase.get(fn.key, (UNREACHED, (fn.key[1],)))
        guard = self._guard(fn, line) if phase in ON_TRAINING_PATH else None
        if guard is None:
            return Reach(phase, path)
        param, text = guard
        for candidate in PHASES[PHASES.index(phase):PHASES.index(INFERENCE)]:
            if self._may_set(fn.key, param, candidate, set()):
                return Reach(candidate, path)
        return Reach(phase, path, guard=text)

    def _enclosing(self, file: str, line: int) -> Function | None:
        best = None
        for fn in self.functions.values():
            if fn.key[0] == file and fn.node.lineno <= line <= (fn.node.end_lineno or fn.node.lineno):
                if best is None or fn.node.lineno >= best.node.lineno:
                    best = fn
        return best

    # ---------------------------------------------------------------- references

    def _link(self, source, edge: _Edge) -> None:
        self.edges[source].append(edge)
        self.callers[edge.target].append((source, edge))

    def _references(self, rel, cls, nodes, *, self_name, import_time=False) -> Iterator[_Edge]:
        """Every function or class a body refers to: calls, and functions passed along as values."""
        calls = {}
        for node in walk_all(nodes):
            if isinstance(node, ast.Call):
                calls[id(node.func)] = node
        for node in walk_all(nodes):
            if not isinstance(node, (ast.Name, ast.Attribute, ast.Call)) or isinstance(getattr(node, "ctx", None), ast.Store):
                continue
            call = calls.get(id(node))
            if isinstance(node, ast.Call):
                yield from self._dynamic(node, rel, cls, self_name)
                continue
            for target, shift in self._resolve(node, rel, cls, self_name):
                if target[0] == "class":
                    if call is None:
                        continue  # a class named (a base, isinstance, config_class) is not built
                    yield _Edge(target, call, 1)
                elif import_time and call is None:
                    # Named at import (a table of activations, a callback): may be called by anything later.
                    yield _Edge(target, None, shift, later=True)
                else:
                    yield _Edge(target, call, shift)

    def _dynamic(self, node: ast.Call, rel, cls, self_name) -> Iterator[_Edge]:
        """``getattr(obj, name)(...)``: a literal name is an attribute call, a computed one may be anything."""
        func = node.func
        if not (isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr"
                and len(func.args) >= 2):
            return
        name = func.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            fake = ast.Attribute(value=func.args[0], attr=name.value, ctx=ast.Load())
            for target, shift in self._resolve(fake, rel, cls, self_name):
                yield _Edge(target, node, shift)
        else:
            for key in self.functions:
                yield _Edge(key, node, 1)

    # ---------------------------------------------------------------- the walk

    def _walk(self, entries: list[tuple[str, str, str]]) -> None:
        queues: dict[str, deque] = {p: deque() for p in PHASES[:-1]}
        for rel, edges in self.import_refs.items():
            for edge in edges:
                queues[FORWARD if edge.later else IMPORT].append((edge.target, (f"<module {rel}>",)))
                if edge.later:
                    self.roots.setdefault(edge.target, FORWARD)
        for auto_class, rel, name in entries:
            if (rel, name) not in self.classes:
                continue
            methods = self._mro_methods(rel, name)
            model = auto_class.startswith("AutoModel")
            for method, key in methods.items():
                phase = LOAD if method in LOAD_HOOKS else _hook_phase(method) if model else FORWARD
                queues[phase].append((key, ()))
                self.roots.setdefault(key, phase)
        for phase in PHASES[:-1]:
            queue = queues[phase]
            while queue:
                node, path = queue.popleft()
                if node in self.phase:
                    continue
                if node[0] == "class":
                    self.phase[node] = (phase, path)
                    methods = self._mro_methods(node[1], node[2])
                    for method, key in methods.items():
                        if method in LOAD_HOOKS:
                            queue.append((key, path))  # its arguments come from the instantiating call
                            continue
                        # Called by the framework or a parent module, with arguments we cannot see.
                        later = max(phase, _hook_phase(method), key=PHASES.index)
                        queues[later].append((key, ()))
                        self.roots.setdefault(key, later)
                    continue
                here = (*path, node[1])
                self.phase[node] = (phase, here)
                for edge in self.edges.get(node, ()):
                    if edge.target not in self.phase:
                        queue.append((edge.target, here))

    # ---------------------------------------------------------------- guards

    def _guard(self, fn: Function, line: int) -> tuple[str, str] | None:
        """The defaulted parameter an enclosing `if` of this function tests before the line runs, if any."""
        if not isinstance(fn.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None
        for node in walk_all(fn.node.body, into_functions=False):
            if not isinstance(node, ast.If):
                continue
            inside = any(s.lineno <= line <= (s.end_lineno or s.lineno) for s in node.body)
            param = tested_param(node.test)
            if inside and param in fn.none_defaults and not reassigned(fn.node, param):
                return param, f"if {ast.unparse(node.test)}:"
        return None

    def _may_set(self, key, param: str, phase: str, seen: set) -> bool:
        """Whether some caller reached by ``phase`` may pass a value for ``param`` of function ``key``."""
        if (key, param) in seen:
            return False
        seen.add((key, param))
        limit = PHASES.index(phase)
        if key in self.roots and PHASES.index(self.roots[key]) <= limit:
            return True  # the framework calls it, with arguments we cannot see
        fn = self.functions[key]
        sources = list(self.callers.get(key, ()))
        if fn.cls is not None and fn.key[1].endswith(".__init__"):
            sources += self.callers.get(("class", fn.key[0], fn.cls), [])
        for source, edge in sources:
            source_phase = self.phase.get(source, (IMPORT, ()))[0] if source[0] != "import" else IMPORT
            if PHASES.index(source_phase) > limit:
                continue
            if edge.call is None:
                return True  # passed along as a value: called with unknown arguments
            value = _bound_argument(edge.call, fn, param, edge.shift)
            if value is _UNKNOWN:
                return True
            if value is None or isinstance(value, ast.Constant) and not value.value:
                continue
            caller = self.functions.get(source)
            if isinstance(value, ast.Name) and caller and value.id in caller.none_defaults and not reassigned(caller.node, value.id):
                if self._may_set(source, value.id, phase, seen):
                    return True
                continue
            return True
        return False


_UNKNOWN = object()


def _hook_phase(method: str) -> str:
    """When the framework may call a method of a model or module class: a training step for the hooks above
    and for anything that overrides a name of torch's ``nn.Module`` or transformers' ``PreTrainedModel``
    (which the framework may call while loading or training); inference for generation's own methods and
    for names the framework does not know (``infer``, ``chat``, drawing helpers)."""
    if method in TRAIN_HOOKS:
        return FORWARD
    known = _framework_names()
    if known is None:
        return INFERENCE
    framework, generation = known
    if method in generation:
        return INFERENCE
    return FORWARD if method in framework else INFERENCE


@functools.lru_cache(maxsize=1)
def _framework_names() -> tuple[frozenset, frozenset] | None:
    try:
        import torch
        import transformers
        from transformers.generation import GenerationMixin
    except Exception:  # no torch or transformers to ask: the hook lists above decide alone
        return None
    generation = frozenset(dir(GenerationMixin)) - frozenset(dir(torch.nn.Module)) - frozenset(dir(object))
    framework = frozenset(dir(transformers.PreTrainedModel)) | frozenset(dir(torch.nn.Module))
    return framework - frozenset(dir(object)) - generation, generation


def _bound_argument(call: ast.Call, fn: Function, param: str, shift: int):
    """The expression a call passes for ``param``; None when it passes nothing; _UNKNOWN with *args/**kwargs."""
    for kw in call.keywords:
        if kw.arg == param:
            return kw.value
    if any(kw.arg is None for kw in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
        return _UNKNOWN
    params = fn.params[shift:] if fn.cls is not None and not fn.static else fn.params
    if param in params:
        index = params.index(param)
        if index < len(call.args):
            return call.args[index]
    return None


def _first_param(fn: Function) -> str | None:
    return fn.params[0] if fn.cls is not None and fn.params else None
