"""Read one module of a checkpoint's own Python code as text: what it imports and what it would do.

Nothing here imports or executes the scanned code; every answer comes from ``ast`` over the
file's bytes. :func:`scan_source` finds the imports and the risky calls of one module (the calls
that are risky are :mod:`dsocr_probe.knowledge.hazards`); which modules would run is
:mod:`dsocr_probe.codescan.collect`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..knowledge.hazards import (
    CALL_RULES, CUDA, DECODERS, FILE_CHANGERS, FILE_WRITE, HOME_CALLS, OBFUSCATED, OPENERS, PATH_WRAPPERS,
    PATH_WRITERS, PICKLE, SENSITIVE_MODULES, TORCH_LOAD,
)
from ..messages import M, N_
from .callgraph import Reach
from .syntax import (
    aliases, catches_import_error, count_chr, docstring_ids, is_availability_check, is_literal, is_main_guard,
    is_write_mode, keyword, matches, mixed,
)

_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]{100,}={0,2}")
_HEX_RE = re.compile(r"(?:0x)?[0-9a-fA-F]{128,}")
_ABSOLUTE_RE = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")

# What a hazard's note says (msgids); the remote-code probe tells a torch.load without the argument apart.
NO_WEIGHTS_ONLY = N_("no weights_only argument")
_HIDDEN_TEXT = N_("decodes a literal into hidden text")
_FROM_CHARACTER_CODES = N_("builds a string from character codes")
_ENCODED_BLOB = N_("a long encoded blob in the code (%(chars)d characters)")


@dataclass(frozen=True)
class ImportRef:
    """One import statement's module as written, and whether its failure would stop the import."""

    file: str  # path of the importing file, relative to the model folder
    line: int
    module: str  # dotted name as written, without the leading dots
    level: int  # leading dots of a relative import; 0 for an absolute one
    names: tuple[str, ...]  # the names of `from m import a, b`; () for `import m`
    guarded: bool  # inside try/except ImportError or `if is_x_available():` - optional
    in_function: bool  # runs only when the function is called, not when the module is imported

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Hazard:
    kind: str  # one of knowledge.hazards.HAZARD_KINDS
    file: str
    line: int
    call: str  # what matched, as code: "subprocess.run", "base64.b64decode(<literal>)", "<hex literal>"
    code: str  # the source line, shortened
    in_function: bool  # False: runs as soon as the module is imported
    note: str = ""  # a msgid: why the call counts, worded with note_args
    note_args: tuple[tuple[str, Any], ...] = ()
    column: int = 0
    reach: Reach | None = None  # when it runs (import, loading, forward, inference only); None: not placed

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def note_message(self) -> dict | str:
        """The note as a message of the report (empty when there is none)."""
        return M(self.note, **dict(self.note_args)) if self.note else ""

    @property
    def on_training_path(self) -> bool:
        """Runs on import, in from_pretrained or in a training step (unplaced code counts as running)."""
        return self.reach is None or self.reach.on_training_path


@dataclass
class ModuleScan:
    file: str
    imports: list[ImportRef] = field(default_factory=list)
    hazards: list[Hazard] = field(default_factory=list)
    error: str | None = None  # why the file could not be decoded or parsed


def scan_source(text: str, file: str) -> ModuleScan:
    """Imports and hazards of one module's source; a syntax error is returned, not raised."""
    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as exc:
        return ModuleScan(file, error=f"SyntaxError: {exc.msg} (line {exc.lineno})")
    scanner = _Scanner(file, text.splitlines(), tree)
    scanner.visit(tree)
    # A nested expression can match twice at the same spot (chr chains); report each spot once.
    unique = {(h.kind, h.line, h.column, h.call): h for h in scanner.hazards}
    return ModuleScan(file, scanner.imports, sorted(unique.values(), key=lambda h: (h.line, h.column)))


def scan_file(path: Path, root: Path) -> ModuleScan:
    rel = path.relative_to(root).as_posix()
    try:
        # decode_source honours PEP 263 coding cookies the way the import system does.
        text = importlib.util.decode_source(path.read_bytes())
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        return ModuleScan(rel, error=f"{type(exc).__name__}: {exc}")
    return scan_source(text, rel)


class _Scanner(ast.NodeVisitor):
    """One pass over a module: imports with their guard and scope, and calls that are hazards."""

    def __init__(self, file: str, lines: list[str], tree: ast.Module):
        self.file = file
        self.lines = lines
        self.imports: list[ImportRef] = []
        self.hazards: list[Hazard] = []
        self.function_depth = 0
        self.guard_depth = 0
        self.aliases = aliases(tree)
        self.docstrings = docstring_ids(tree)

    # -- scope and guards

    def _in(self, nodes: Iterable[ast.AST], *, function: int = 0, guard: int = 0) -> None:
        self.function_depth += function
        self.guard_depth += guard
        for node in nodes:
            self.visit(node)
        self.function_depth -= function
        self.guard_depth -= guard

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Decorators and defaults run when the module is imported; the body only when called.
        self._in([*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)])
        self._in(node.body, function=1)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._in([*node.args.defaults, *(d for d in node.args.kw_defaults if d)])
        self._in([node.body], function=1)

    def visit_Try(self, node: ast.Try) -> None:
        catches = any(catches_import_error(h) for h in node.handlers)
        self._in(node.body, guard=int(catches))
        self._in([*node.handlers, *node.orelse, *node.finalbody])

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        if is_main_guard(node.test):  # runs as a script only, never on import
            self._in(node.body, function=1)
        else:
            self._in(node.body, guard=int(is_availability_check(node.test)))
        self._in(node.orelse)

    # -- imports

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import(node, alias.name, 0, ())

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._import(node, node.module or "", node.level, tuple(a.name for a in node.names))

    def _import(self, node: ast.stmt, module: str, level: int, names: tuple[str, ...]) -> None:
        self.imports.append(
            ImportRef(self.file, node.lineno, module, level, names, self.guard_depth > 0, self.function_depth > 0)
        )

    # -- hazards

    def _flag(self, kind: str, node: ast.AST, call: str, note: str = "", **note_args: Any) -> None:
        line = getattr(node, "lineno", 0)
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        if len(code) > 120:
            code = code[:117] + "..."
        column = getattr(node, "col_offset", 0)
        self.hazards.append(Hazard(kind, self.file, line, call, code, self.function_depth > 0, note,
                                   tuple(note_args.items()), column))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name:
            self._check_named_call(node, name)
        if isinstance(node.func, ast.Attribute):
            self._check_method_call(node, node.func)
        self._check_obfuscation(node, name)
        self._check_device(node)
        self.generic_visit(node)

    def _check_named_call(self, node: ast.Call, name: str) -> None:
        for pattern, kind in CALL_RULES:
            if matches(name, pattern):
                self._flag(kind, node, name)
                break
        if name == "torch.load":
            weights_only = keyword(node, "weights_only")
            if weights_only is None:
                self._flag(TORCH_LOAD, node, name, NO_WEIGHTS_ONLY)
            elif not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                self._flag(TORCH_LOAD, node, name, N_("weights_only=%(value)s, not True"), value=ast.unparse(weights_only))
        if name in ("numpy.load", "np.load"):
            allow = keyword(node, "allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                self._flag(PICKLE, node, name, N_("loads with allow_pickle=True"))
        if name in OPENERS:
            mode = node.args[1] if len(node.args) > 1 else keyword(node, "mode")
            path = node.args[0] if node.args else keyword(node, "file")
            if is_write_mode(mode) and path is not None and self._outside_cache(path):
                self._flag(FILE_WRITE, node, name, N_("writes %(path)s"), path=ast.unparse(path))
        if name in FILE_CHANGERS and any(self._outside_cache(a) for a in node.args):
            self._flag(FILE_WRITE, node, name, N_("changes %(path)s"), path=ast.unparse(node.args[0]))

    def _check_method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        # pathlib: Path("/abs").write_text(...), (Path.home() / "x").unlink(), p.open("w")
        receiver = func.value
        if func.attr in PATH_WRITERS and self._outside_cache(receiver):
            self._flag(FILE_WRITE, node, f".{func.attr}()", N_("changes %(path)s"), path=ast.unparse(receiver))
        if func.attr == "open" and self._outside_cache(receiver):
            mode = node.args[0] if node.args else keyword(node, "mode")
            if is_write_mode(mode):
                self._flag(FILE_WRITE, node, ".open()", N_("writes %(path)s"), path=ast.unparse(receiver))

    def _check_obfuscation(self, node: ast.Call, name: str | None) -> None:
        first = node.args[0] if node.args else None
        if name and any(matches(name, p) for p in DECODERS) and is_literal(first):
            self._flag(OBFUSCATED, node, f"{name}(<literal>)", _HIDDEN_TEXT)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "decode" and is_literal(node.func.value):
            encoding = node.args[0] if node.args else None
            if isinstance(encoding, ast.Constant) and str(encoding.value).lower() in ("rot13", "rot_13", "hex", "base64", "zlib"):
                self._flag(OBFUSCATED, node, f"<literal>.decode({encoding.value!r})", _HIDDEN_TEXT)
        if name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
            owner = self._dotted(node.args[0])
            if owner in SENSITIVE_MODULES:
                self._flag(OBFUSCATED, node, f"getattr({owner}, <computed>)", N_("calls a function chosen at run time"))
        if name in ("__import__", "importlib.import_module") and first is not None and not is_literal(first):
            self._flag(OBFUSCATED, node, f"{name}(<computed>)", N_("imports a module chosen at run time"))
        if name == "map" and node.args and self._dotted(node.args[0]) == "chr":
            self._flag(OBFUSCATED, node, "map(chr, ...)", _FROM_CHARACTER_CODES)

    def _check_device(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "cuda" and not node.keywords and len(node.args) <= 1:
            if self._dotted(func.value) != "torch":
                self._flag(CUDA, node, ".cuda()")
        if isinstance(func, ast.Attribute) and func.attr == "to" and node.args:
            device, shown = node.args[0], ".to({!r})"
        else:
            device, shown = keyword(node, "device"), "device={!r}"
        if isinstance(device, ast.Constant) and isinstance(device.value, str) and device.value.startswith("cuda"):
            self._flag(CUDA, node, shown.format(device.value))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add) and count_chr(node) >= 3:
            self._flag(OBFUSCATED, node, "chr(...) + chr(...) + ...", _FROM_CHARACTER_CODES)
        self.generic_visit(node)

    def _comprehension(self, node: ast.GeneratorExp | ast.ListComp) -> None:
        elt = node.elt
        if isinstance(elt, ast.Call) and self._dotted(elt.func) == "chr":
            self._flag(OBFUSCATED, node, "chr(...) for ...", _FROM_CHARACTER_CODES)
        self.generic_visit(node)

    visit_GeneratorExp = visit_ListComp = _comprehension

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "__builtins__" and not isinstance(node.slice, ast.Constant):
            self._flag(OBFUSCATED, node, "__builtins__[<computed>]", N_("calls a builtin chosen at run time"))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self.docstrings or not isinstance(node.value, (str, bytes)):
            return
        text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
        if _HEX_RE.fullmatch(text):
            self._flag(OBFUSCATED, node, "<hex literal>", _ENCODED_BLOB, chars=len(text))
        elif _BASE64_RE.fullmatch(text) and mixed(text):
            self._flag(OBFUSCATED, node, "<base64 literal>", _ENCODED_BLOB, chars=len(text))

    # -- names

    def _dotted(self, node: ast.AST) -> str | None:
        """The dotted name a call target resolves to through the module's imports, if static."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            func = self._dotted(node.func)
            args = node.args
            if func == "getattr" and len(args) >= 2 and isinstance(args[1], ast.Constant):
                base = self._dotted(args[0])
                return f"{base}.{args[1].value}" if base else None
            if func in ("__import__", "importlib.import_module") and args and isinstance(args[0], ast.Constant):
                return str(args[0].value)
        return None

    def _outside_cache(self, node: ast.AST | None) -> bool:
        """True when a path expression is absolute or rooted in the user's home, temp folder or environment.

        Only the root of the expression counts: ``f"{output_dir}/result.md"`` is wherever the
        caller points it, ``"/etc/x"`` and ``Path.home() / "x"`` are not the model cache.
        """
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and bool(_ABSOLUTE_RE.match(node.value))
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            return self._outside_cache(first.value if isinstance(first, ast.FormattedValue) else first)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            return self._outside_cache(node.left)
        if isinstance(node, ast.Subscript):
            return self._dotted(node.value) == "os.environ"
        if isinstance(node, ast.Call):
            name = self._dotted(node.func) or ""
            if name in HOME_CALLS:
                return True
            if name == "os.path.join":
                return any(self._outside_cache(a) for a in node.args)
            if name in PATH_WRAPPERS:
                return bool(node.args) and self._outside_cache(node.args[0])
            if isinstance(node.func, ast.Attribute):
                if node.func.attr in ("home", "expanduser"):
                    return True
                return self._outside_cache(node.func.value)  # Path(...).joinpath(...), .with_suffix(...)
        return False
