"""Read a checkpoint's own Python code as text: what it imports and what it would do.

Nothing here imports or executes the scanned code; every answer comes from ``ast`` over the
file's bytes. :func:`collect` follows the modules ``trust_remote_code`` would load, starting
from the ``auto_map`` entries of the checkpoint's JSON files, and :func:`scan_source` finds
the imports and the risky calls of one module.
"""

from __future__ import annotations

import ast
import hashlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .callgraph import CallGraph, Reach, is_main_guard

# The JSON files whose auto_map makes transformers import code from the checkpoint.
AUTO_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")

# Import names whose pip distribution is spelled differently.
PIP_NAMES = {
    "PIL": "pillow",
    "cv2": "opencv-python",
    "flash_attn": "flash-attn",
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "attr": "attrs",
    "google.protobuf": "protobuf",
    "fitz": "PyMuPDF",
    "Crypto": "pycryptodome",
}

# Hazard kinds, in the order the report lists them.
NETWORK, PROCESS, EVAL, PICKLE, TORCH_LOAD, FILE_WRITE, OBFUSCATED, CUDA = (
    "network", "process", "eval", "pickle", "torch-load", "file-write", "obfuscated", "cuda",
)
HAZARD_KINDS = (NETWORK, PROCESS, EVAL, PICKLE, TORCH_LOAD, FILE_WRITE, OBFUSCATED, CUDA)

# Calls (by resolved dotted name) and the hazard they are. A key ending in "." matches every
# call under that module; "*" matches any suffix of a function name (os.exec*, os.spawn*).
_CALL_RULES: tuple[tuple[str, str], ...] = (
    ("requests.", NETWORK), ("urllib.request.", NETWORK), ("urllib3.", NETWORK), ("http.client.", NETWORK),
    ("socket.", NETWORK), ("httpx.", NETWORK), ("aiohttp.", NETWORK), ("ftplib.", NETWORK),
    ("smtplib.", NETWORK), ("telnetlib.", NETWORK), ("huggingface_hub.", NETWORK), ("torch.hub.", NETWORK),
    ("wget.", NETWORK), ("gdown.", NETWORK), ("paramiko.", NETWORK),
    ("subprocess.", PROCESS), ("os.system", PROCESS), ("os.popen", PROCESS), ("os.exec*", PROCESS),
    ("os.spawn*", PROCESS), ("os.posix_spawn*", PROCESS), ("os.fork", PROCESS), ("os.forkpty", PROCESS),
    ("os.startfile", PROCESS), ("pty.spawn", PROCESS), ("asyncio.create_subprocess_*", PROCESS),
    ("eval", EVAL), ("exec", EVAL), ("compile", EVAL),
    ("builtins.eval", EVAL), ("builtins.exec", EVAL), ("builtins.compile", EVAL),
    ("pickle.load", PICKLE), ("pickle.loads", PICKLE), ("pickle.Unpickler", PICKLE),
    ("_pickle.load", PICKLE), ("_pickle.loads", PICKLE), ("cPickle.load", PICKLE), ("cPickle.loads", PICKLE),
    ("dill.load", PICKLE), ("dill.loads", PICKLE), ("cloudpickle.load", PICKLE), ("cloudpickle.loads", PICKLE),
    ("joblib.load", PICKLE), ("marshal.load", PICKLE), ("marshal.loads", PICKLE), ("shelve.open", PICKLE),
    ("shutil.rmtree", FILE_WRITE),
)
# Calls that decode a literal into something else: fine on data, a disguise on a literal.
_DECODERS = (
    "base64.*decode*", "codecs.decode", "binascii.unhexlify", "binascii.a2b_*", "bytes.fromhex",
    "zlib.decompress", "lzma.decompress", "bz2.decompress", "gzip.decompress",
)
# Modules whose attributes fetched by a computed name hide which function is called.
_SENSITIVE_MODULES = {"builtins", "__builtins__", "os", "posix", "nt", "subprocess", "sys", "importlib", "socket", "pickle", "shutil"}
_OPENERS = {"open", "io.open", "builtins.open", "codecs.open"}
_PATH_WRITERS = {"write_text", "write_bytes", "touch", "unlink", "rmdir", "rename", "symlink_to", "mkdir"}
_FILE_CHANGERS = {"os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.replace", "os.makedirs",
                  "os.mkdir", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move"}
_HOME_CALLS = {"os.path.expanduser", "pathlib.Path.home", "Path.home", "os.getenv", "os.environ.get",
               "tempfile.gettempdir"}
# Calls whose result is a path rooted where their first argument is.
_PATH_WRAPPERS = {"pathlib.Path", "Path", "pathlib.PurePath", "os.path.abspath", "os.path.normpath", "os.fspath", "str"}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]{100,}={0,2}")
_HEX_RE = re.compile(r"(?:0x)?[0-9a-fA-F]{128,}")
_ABSOLUTE_RE = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")


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
    kind: str  # one of HAZARD_KINDS
    file: str
    line: int
    call: str  # what matched, e.g. "subprocess.run" or "base64.b64decode(<literal>)"
    code: str  # the source line, shortened
    in_function: bool  # False: runs as soon as the module is imported
    note: str = ""
    column: int = 0
    reach: Reach | None = None  # when it runs (import, loading, forward, inference only); None: not placed

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

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


# ---------------------------------------------------------------- which modules would run


@dataclass(frozen=True)
class AutoMapEntry:
    """One `auto_map` reference, e.g. config.json: AutoModel -> modeling_x.XForCausalLM."""

    source: str  # the JSON file it is in
    auto_class: str
    reference: str  # "module.Class" or "owner/repo--module.Class"

    @property
    def repo(self) -> str | None:
        """The other repository the code comes from (``owner/repo--module.Class``), if any."""
        return self.reference.split("--", 1)[0] if "--" in self.reference else None

    @property
    def module(self) -> str:
        return self.reference.split("--", 1)[-1].rsplit(".", 1)[0]

    @property
    def file(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def __str__(self) -> str:
        return f"{self.source}: {self.auto_class} → {self.reference}"


@dataclass
class RemoteModule:
    file: str  # relative to the model folder
    sha256: str
    size: int
    reached_from: str  # the auto_map entry or import that loads it
    scan: ModuleScan


@dataclass(frozen=True)
class MissingModule:
    file: str
    referenced_from: str


@dataclass
class RemoteCode:
    """The code trusting this checkpoint would execute, as far as it can be read statically."""

    root: Path
    entries: list[AutoMapEntry] = field(default_factory=list)
    modules: list[RemoteModule] = field(default_factory=list)
    missing: list[MissingModule] = field(default_factory=list)
    external: list[AutoMapEntry] = field(default_factory=list)  # code from another repository
    config_errors: list[str] = field(default_factory=list)

    def imports(self) -> Iterator[ImportRef]:
        for m in self.modules:
            yield from m.scan.imports

    def hazards(self) -> Iterator[Hazard]:
        for m in self.modules:
            yield from m.scan.hazards

    def external_imports(self) -> Iterator[ImportRef]:
        """Absolute imports that do not resolve to a file of the checkpoint."""
        for ref in self.imports():
            if ref.level == 0 and _local_files(ref, self.root) is None:
                yield ref


def auto_map_entries(folder: Path) -> tuple[list[AutoMapEntry], list[str]]:
    """Every auto_map reference in the checkpoint's JSON files, and the files that could not be read."""
    entries: list[AutoMapEntry] = []
    errors: list[str] = []
    for name in AUTO_MAP_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            errors.append(f"{name}: {exc}")
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not auto_map:
            continue
        if isinstance(auto_map, list):  # older tokenizer_config.json: [slow, fast]
            auto_map = {"AutoTokenizer": auto_map}
        if not isinstance(auto_map, dict):
            errors.append(f"{name}: auto_map is a {type(auto_map).__name__}, not a mapping")
            continue
        for auto_class, value in auto_map.items():
            refs = value if isinstance(value, (list, tuple)) else [value]
            for ref in refs:
                if ref is None:
                    continue  # e.g. no slow tokenizer
                if not isinstance(ref, str) or "." not in ref:
                    errors.append(f"{name}: auto_map[{auto_class!r}] = {ref!r} is not 'module.Class'")
                    continue
                entries.append(AutoMapEntry(name, auto_class, ref))
    return entries, errors


def collect(folder: Path) -> RemoteCode:
    """Follow auto_map entries and the imports between the checkpoint's files, transitively."""
    folder = Path(folder)
    entries, errors = auto_map_entries(folder)
    code = RemoteCode(folder, entries=entries, config_errors=errors)
    queue: list[tuple[str, str]] = []
    for entry in entries:
        if entry.repo is not None:
            code.external.append(entry)
        else:
            queue.append((entry.file, str(entry)))
    seen: set[str] = set()
    missing: dict[str, MissingModule] = {}
    while queue:
        rel, why = queue.pop(0)
        if rel in seen:
            continue
        path = folder / rel
        if rel.startswith("../") or not path.is_file():
            # transformers copies only the model folder's own files; anything else is not there.
            missing.setdefault(rel, MissingModule(rel, why))
            continue
        seen.add(rel)
        data = path.read_bytes()
        scan = scan_file(path, folder)
        code.modules.append(RemoteModule(rel, hashlib.sha256(data).hexdigest(), len(data), why, scan))
        for ref in scan.imports:
            for target in _local_files(ref, folder) or ():
                queue.append((target, f"import at {ref.where}"))
    code.missing = list(missing.values())
    _place_hazards(code)
    return code


def _place_hazards(code: RemoteCode) -> None:
    """Attach to every hazard when it runs, from the call graph of the collected files."""
    files = [m.file for m in code.modules if m.scan.error is None]
    roots = [(e.auto_class, e.file, e.reference.rsplit(".", 1)[-1]) for e in code.entries if e.repo is None]
    graph = CallGraph(code.root, files, roots)
    for m in code.modules:
        m.scan.hazards = [replace(h, reach=graph.reach(h.file, h.line, h.in_function)) for h in m.scan.hazards]


def _local_files(ref: ImportRef, root: Path) -> list[str] | None:
    """The checkpoint files an import loads; None when it is not an import of the checkpoint's own code.

    Relative imports always point into the checkpoint (a file that is not there is returned
    anyway, so it is reported missing); an absolute import is local when a file of that name
    sits beside the importing one.
    """
    here = (root / ref.file).parent
    if ref.level == 0:
        if not _module_path(here, ref.top):
            return None
        base, parts = here, ref.module.split(".")
    else:
        base = here
        for _ in range(ref.level - 1):
            base = base.parent
        parts = ref.module.split(".") if ref.module else []
    files: list[str] = []
    if parts:
        found = _module_path(base, *parts)
        files.append(_rel(found, root) if found else _rel(base.joinpath(*parts).with_suffix(".py"), root))
        package = base.joinpath(*parts)
    else:
        package = base
    for name in ref.names:  # `from .pkg import submodule` loads the submodule's file too
        sub = _module_path(package, name)
        if sub:
            files.append(_rel(sub, root))
        elif not parts and not (package / "__init__.py").is_file():
            files.append(_rel(package / f"{name}.py", root))  # `from . import x` with no x.py
    return files


def _module_path(base: Path, *parts: str) -> Path | None:
    stem = base.joinpath(*parts)
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _rel(path: Path, root: Path) -> str:
    # Lexical, not resolve(): files in a hub cache snapshot are symlinks into a blob store.
    return Path(os.path.relpath(os.path.normpath(path), os.path.normpath(root))).as_posix()


# ---------------------------------------------------------------- packages


def pip_name(import_name: str) -> str:
    """The distribution to pip-install for an import name (``cv2`` -> ``opencv-python``): the installed one
    that provides it, else the known name of the one that would."""
    for prefix in (import_name, import_name.split(".")[0]):
        if prefix in PIP_NAMES:
            return PIP_NAMES[prefix]
    provided = set(_installed_distributions().get(import_name.split(".")[0], ()))
    if len(provided) == 1:  # a namespace package (``google``) is shared by several
        return provided.pop()
    return import_name.split(".")[0].replace("_", "-")


@functools.lru_cache(maxsize=1)
def _installed_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def is_stdlib(import_name: str) -> bool:
    return import_name.split(".")[0] in sys.stdlib_module_names


def is_installed(import_name: str) -> bool:
    """Whether the top-level package can be found; finding it does not import it."""
    top = import_name.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------- the scanner


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith("."):
        return name.startswith(pattern) or name == pattern[:-1]
    if "*" in pattern:
        return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name) is not None
    return name == pattern


class _Scanner(ast.NodeVisitor):
    """One pass over a module: imports with their guard and scope, and calls that are hazards."""

    def __init__(self, file: str, lines: list[str], tree: ast.Module):
        self.file = file
        self.lines = lines
        self.imports: list[ImportRef] = []
        self.hazards: list[Hazard] = []
        self.function_depth = 0
        self.guard_depth = 0
        self.aliases = _aliases(tree)
        self.docstrings = _docstring_ids(tree)

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
        catches = any(_catches_import_error(h) for h in node.handlers)
        self._in(node.body, guard=int(catches))
        self._in([*node.handlers, *node.orelse, *node.finalbody])

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        if is_main_guard(node.test):  # runs as a script only, never on import
            self._in(node.body, function=1)
        else:
            self._in(node.body, guard=int(_is_availability_check(node.test)))
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

    def _flag(self, kind: str, node: ast.AST, call: str, note: str = "") -> None:
        line = getattr(node, "lineno", 0)
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        if len(code) > 120:
            code = code[:117] + "..."
        column = getattr(node, "col_offset", 0)
        self.hazards.append(Hazard(kind, self.file, line, call, code, self.function_depth > 0, note, column))

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
        for pattern, kind in _CALL_RULES:
            if _matches(name, pattern):
                self._flag(kind, node, name)
                break
        if name == "torch.load":
            weights_only = _keyword(node, "weights_only")
            if weights_only is None:
                self._flag(TORCH_LOAD, node, name, "no weights_only argument")
            elif not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                self._flag(TORCH_LOAD, node, name, f"weights_only={ast.unparse(weights_only)}")
        if name in ("numpy.load", "np.load"):
            allow = _keyword(node, "allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                self._flag(PICKLE, node, name, "allow_pickle=True")
        if name in _OPENERS:
            mode = node.args[1] if len(node.args) > 1 else _keyword(node, "mode")
            path = node.args[0] if node.args else _keyword(node, "file")
            if _is_write_mode(mode) and path is not None and self._outside_cache(path):
                self._flag(FILE_WRITE, node, name, f"writes {ast.unparse(path)}")
        if name in _FILE_CHANGERS and any(self._outside_cache(a) for a in node.args):
            self._flag(FILE_WRITE, node, name, f"changes {ast.unparse(node.args[0])}")

    def _check_method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        # pathlib: Path("/abs").write_text(...), (Path.home() / "x").unlink(), p.open("w")
        receiver = func.value
        if func.attr in _PATH_WRITERS and self._outside_cache(receiver):
            self._flag(FILE_WRITE, node, f".{func.attr}()", f"changes {ast.unparse(receiver)}")
        if func.attr == "open" and self._outside_cache(receiver):
            mode = node.args[0] if node.args else _keyword(node, "mode")
            if _is_write_mode(mode):
                self._flag(FILE_WRITE, node, ".open()", f"writes {ast.unparse(receiver)}")

    def _check_obfuscation(self, node: ast.Call, name: str | None) -> None:
        first = node.args[0] if node.args else None
        if name and any(_matches(name, p) for p in _DECODERS) and _is_literal(first):
            self._flag(OBFUSCATED, node, f"{name}(<literal>)", "decodes a literal into hidden text")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "decode" and _is_literal(node.func.value):
            encoding = node.args[0] if node.args else None
            if isinstance(encoding, ast.Constant) and str(encoding.value).lower() in ("rot13", "rot_13", "hex", "base64", "zlib"):
                self._flag(OBFUSCATED, node, f"<literal>.decode({encoding.value!r})", "decodes a literal into hidden text")
        if name == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
            owner = self._dotted(node.args[0])
            if owner in _SENSITIVE_MODULES:
                self._flag(OBFUSCATED, node, f"getattr({owner}, <computed>)", "calls a function chosen at run time")
        if name in ("__import__", "importlib.import_module") and first is not None and not _is_literal(first):
            self._flag(OBFUSCATED, node, f"{name}(<computed>)", "imports a module chosen at run time")
        if name == "map" and node.args and self._dotted(node.args[0]) == "chr":
            self._flag(OBFUSCATED, node, "map(chr, ...)", "builds a string from character codes")

    def _check_device(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "cuda" and not node.keywords and len(node.args) <= 1:
            if self._dotted(func.value) != "torch":
                self._flag(CUDA, node, ".cuda()")
        device = node.args[0] if isinstance(func, ast.Attribute) and func.attr == "to" and node.args else _keyword(node, "device")
        if isinstance(device, ast.Constant) and isinstance(device.value, str) and device.value.startswith("cuda"):
            self._flag(CUDA, node, f"device {device.value!r}")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add) and _count_chr(node) >= 3:
            self._flag(OBFUSCATED, node, "chr(...) + chr(...) + ...", "builds a string from character codes")
        self.generic_visit(node)

    def _comprehension(self, node: ast.GeneratorExp | ast.ListComp) -> None:
        elt = node.elt
        if isinstance(elt, ast.Call) and self._dotted(elt.func) == "chr":
            self._flag(OBFUSCATED, node, "chr(...) for ...", "builds a string from character codes")
        self.generic_visit(node)

    visit_GeneratorExp = visit_ListComp = _comprehension

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "__builtins__" and not isinstance(node.slice, ast.Constant):
            self._flag(OBFUSCATED, node, "__builtins__[<computed>]", "calls a builtin chosen at run time")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self.docstrings or not isinstance(node.value, (str, bytes)):
            return
        text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
        if _HEX_RE.fullmatch(text):
            self._flag(OBFUSCATED, node, f"hex literal ({len(text)} chars)", "a long encoded blob in the code")
        elif _BASE64_RE.fullmatch(text) and _mixed(text):
            self._flag(OBFUSCATED, node, f"base64 literal ({len(text)} chars)", "a long encoded blob in the code")

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
            if name in _HOME_CALLS:
                return True
            if name == "os.path.join":
                return any(self._outside_cache(a) for a in node.args)
            if name in _PATH_WRAPPERS:
                return bool(node.args) and self._outside_cache(node.args[0])
            if isinstance(node.func, ast.Attribute):
                if node.func.attr in ("home", "expanduser"):
                    return True
                return self._outside_cache(node.func.value)  # Path(...).joinpath(...), .with_suffix(...)
        return False


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin for every import in the module (any scope)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _docstring_ids(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else "") in _IMPORT_ERRORS
        for n in names
    )


def _is_availability_check(test: ast.AST) -> bool:
    """`if is_flash_attn_2_available():` and friends: the body is skipped when the package is absent."""
    for node in ast.walk(test):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name.startswith("is_") and name.endswith("_available"):
                return True
    return False


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _is_write_mode(mode: ast.AST | None) -> bool:
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _is_literal(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    if isinstance(node, ast.BinOp):  # "abc" + "def"
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "encode":
        return _is_literal(node.func.value)  # "....".encode()
    return False


def _count_chr(node: ast.AST) -> int:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _count_chr(node.left) + _count_chr(node.right)
    return int(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "chr")


def _mixed(text: str) -> bool:
    return any(c.isdigit() for c in text) and any(c.isupper() for c in text) and any(c.islower() for c in text)
