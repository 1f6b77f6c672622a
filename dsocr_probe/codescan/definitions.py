"""The names the remote code defines and binds, read with ``ast``: its functions and classes, each module's
namespace (its own definitions and what it imports from the checkpoint's other files), and how a name
or ``obj.attr`` resolves through them, ``self``/``cls``/``super()`` and the classes' bases. The call
graph (:mod:`dsocr_probe.codescan.callgraph`) is built on top. Nothing here imports the code.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .syntax import is_main_guard


@dataclass
class Function:
    key: tuple[str, str]  # (file, "Class.method" or "function")
    node: ast.AST
    cls: str | None  # the class it is a method of
    params: list[str] = field(default_factory=list)
    none_defaults: set[str] = field(default_factory=set)  # parameters whose default is None/False/""
    static: bool = False


@dataclass
class Class:
    file: str
    name: str
    bases: list[ast.expr]
    methods: dict[str, tuple[str, str]] = field(default_factory=dict)


class Definitions:
    """The remote code's functions, classes and module namespaces."""

    def __init__(self, root: Path, files: Iterable[str]):
        """files: the remote-code files, relative to root."""
        self.root = Path(root)
        self.trees: dict[str, ast.Module] = {}
        for rel in files:
            try:
                text = importlib.util.decode_source((self.root / rel).read_bytes())
                self.trees[rel] = ast.parse(text, filename=rel)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue  # the scanner reports unreadable files; nothing of theirs is placed
        self.functions: dict[tuple[str, str], Function] = {}
        self.classes: dict[tuple[str, str], Class] = {}
        self.by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.namespaces: dict[str, dict[str, tuple]] = {}
        self.main_blocks: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for rel, tree in self.trees.items():
            self._define(rel, tree)
        for rel, tree in self.trees.items():
            self._bind_imports(rel, tree)

    def _define(self, rel: str, tree: ast.Module) -> None:
        space: dict[str, tuple] = {}
        self.namespaces[rel] = space
        self._define_in(rel, tree.body, space)

    def _define_in(self, rel: str, statements: list[ast.stmt], space: dict[str, tuple]) -> None:
        """Top-level definitions, also those under a module-level `if` or `try` (optional kernels, fallbacks)."""
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                space[node.name] = self._add_function(rel, node.name, node, None)
            elif isinstance(node, ast.ClassDef):
                space[node.name] = self._add_class(rel, node)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        space[t.id] = self._add_function(rel, t.id, node.value, None)
            elif isinstance(node, ast.If) and is_main_guard(node.test):
                self.main_blocks[rel].append((node.lineno, node.end_lineno or node.lineno))
            elif isinstance(node, ast.If):
                self._define_in(rel, [*node.body, *node.orelse], space)
            elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                handlers = [s for h in node.handlers for s in h.body]
                self._define_in(rel, [*node.body, *handlers, *node.orelse, *node.finalbody], space)

    def _add_function(self, rel: str, qual: str, node, cls: str | None) -> tuple[str, str]:
        key = (rel, qual)
        args = node.args
        positional = [a.arg for a in (*args.posonlyargs, *args.args)]
        fn = Function(key, node, cls, params=positional + [a.arg for a in args.kwonlyargs])
        decorators = {d.id for d in getattr(node, "decorator_list", ()) if isinstance(d, ast.Name)}
        fn.static = "staticmethod" in decorators
        defaults = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        defaults += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        fn.none_defaults = {name for name, d in defaults if isinstance(d, ast.Constant) and not d.value}
        self.functions[key] = fn
        self.by_name[qual.rsplit(".", 1)[-1]].append(key)
        return key

    def _add_class(self, rel: str, node: ast.ClassDef) -> tuple:
        cls = Class(rel, node.name, list(node.bases))
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls.methods[item.name] = self._add_function(rel, f"{node.name}.{item.name}", item, node.name)
            elif isinstance(item, ast.Assign) and isinstance(item.value, ast.Lambda):
                for t in item.targets:
                    if isinstance(t, ast.Name):
                        cls.methods[t.id] = self._add_function(rel, f"{node.name}.{t.id}", item.value, node.name)
        self.classes[(rel, node.name)] = cls
        return ("class", rel, node.name)

    def _bind_imports(self, rel: str, tree: ast.Module) -> None:
        """``from .deepencoder import build_sam_vit_b`` binds a name to the other file's definition."""
        space = self.namespaces[rel]
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            module_file = self._module_file(rel, node.module or "", node.level)
            for alias in node.names:
                name = alias.asname or alias.name
                if name in space and space[name][0] != "module":
                    continue  # a definition of this file wins over an import of the same name
                target = self.namespaces.get(module_file, {}).get(alias.name) if module_file else None
                if target is not None:
                    space[name] = target
                    continue
                sub = self._module_file(rel, ".".join(p for p in (node.module, alias.name) if p), node.level)
                if sub in self.trees:
                    space[name] = ("module", sub)

    def _module_file(self, rel: str, module: str, level: int) -> str | None:
        here = Path(rel).parent
        if level:
            for _ in range(level - 1):
                here = here.parent
        parts = [p for p in module.split(".") if p]
        if not parts:
            candidate = (here / "__init__.py").as_posix()
            return candidate if candidate in self.trees else None
        for candidate in (here.joinpath(*parts).with_suffix(".py"), here.joinpath(*parts, "__init__.py")):
            if candidate.as_posix() in self.trees:
                return candidate.as_posix()
        return None

    def _resolve(self, node, rel, cls, self_name) -> list[tuple[tuple, int]]:
        space = self.namespaces.get(rel, {})
        if isinstance(node, ast.Name):
            target = space.get(node.id)
            return [(target, 0)] if target and target[0] != "module" else []
        if not isinstance(node, ast.Attribute):
            return []
        owner, attr = node.value, node.attr
        if isinstance(owner, ast.Name) and owner.id == self_name and cls is not None:
            found = self._method(rel, cls, attr)
            return [(found, 1)] if found else self._by_name(attr)
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super" and cls:
            found = self._method(rel, cls, attr, skip_self=True)
            return [(found, 1)] if found else []
        if isinstance(owner, ast.Name) and owner.id in space:
            bound = space[owner.id]
            if bound[0] == "module":
                target = self.namespaces.get(bound[1], {}).get(attr)
                return [(target, 0)] if target and target[0] != "module" else []
            if bound[0] == "class":
                found = self._method(bound[1], bound[2], attr)
                return [(found, 0)] if found else []
            return []
        return self._by_name(attr)

    def _by_name(self, attr: str) -> list[tuple[tuple, int]]:
        return [(key, 1) for key in self.by_name.get(attr, ())]

    def _method(self, rel: str, cls: str, name: str, *, skip_self: bool = False, seen=None) -> tuple | None:
        """``name`` looked up along the class's bases that are defined in the remote code."""
        seen = seen or set()
        if (rel, cls) in seen or (rel, cls) not in self.classes:
            return None
        seen.add((rel, cls))
        info = self.classes[(rel, cls)]
        if not skip_self and name in info.methods:
            return info.methods[name]
        for base in self._bases(info):
            found = self._method(base[1], base[2], name, seen=seen)
            if found:
                return found
        return None

    def _bases(self, info: Class) -> list[tuple]:
        out = []
        for base in info.bases:
            resolved = self._resolve(base, info.file, None, None) if isinstance(base, ast.Attribute) else \
                [(self.namespaces[info.file].get(base.id), 0)] if isinstance(base, ast.Name) else []
            out += [t for t, _ in resolved if t and t[0] == "class"]
        return out

    def _mro_methods(self, rel: str, cls: str, seen=None) -> dict[str, tuple[str, str]]:
        seen = seen or set()
        if (rel, cls) in seen or (rel, cls) not in self.classes:
            return {}
        seen.add((rel, cls))
        info = self.classes[(rel, cls)]
        out: dict[str, tuple[str, str]] = {}
        for base in reversed(self._bases(info)):
            out.update(self._mro_methods(base[1], base[2], seen))
        out.update(info.methods)
        return out
