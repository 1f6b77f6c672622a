"""Reading Python source as a syntax tree: small questions about ``ast`` nodes that the scanner and the call
graph share. Nothing here imports the code."""

from __future__ import annotations

import ast
import re

_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def matches(name: str, pattern: str) -> bool:
    """A dotted name against a rule of :mod:`dsocr_probe.knowledge.hazards` ("module.", "os.exec*", "eval")."""
    if pattern.endswith("."):
        return name.startswith(pattern) or name == pattern[:-1]
    if "*" in pattern:
        return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name) is not None
    return name == pattern


def aliases(tree: ast.Module) -> dict[str, str]:
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


def docstring_ids(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else "") in _IMPORT_ERRORS
        for n in names
    )


def is_availability_check(test: ast.AST) -> bool:
    """`if is_flash_attn_2_available():` and friends: the body is skipped when the package is absent."""
    for node in ast.walk(test):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name.startswith("is_") and name.endswith("_available"):
                return True
    return False


def keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def is_write_mode(mode: ast.AST | None) -> bool:
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def is_literal(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    if isinstance(node, ast.BinOp):  # "abc" + "def"
        return is_literal(node.left) and is_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "encode":
        return is_literal(node.func.value)  # "....".encode()
    return False


def count_chr(node: ast.AST) -> int:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return count_chr(node.left) + count_chr(node.right)
    return int(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "chr")


def mixed(text: str) -> bool:
    """Digits and letters of both cases: an encoded blob rather than a word or an identifier."""
    return any(c.isdigit() for c in text) and any(c.isupper() for c in text) and any(c.islower() for c in text)


def tested_param(test: ast.AST) -> str | None:
    """`p is not None`, `p`, `p is not None and ...`: the parameter whose value the branch needs."""
    if isinstance(test, ast.Name):
        return test.id
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.IsNot) and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None):
        return test.left.id
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for value in test.values:
            found = tested_param(value)
            if found:
                return found
    return None


def reassigned(fn_node: ast.AST, name: str) -> bool:
    for node in ast.walk(fn_node):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
    return False


def body_of(node) -> list[ast.AST]:
    if isinstance(node, ast.Lambda):
        return [node.body]
    return list(node.body)


def module_level(tree: ast.Module) -> list[ast.AST]:
    """What runs on import: module statements, class bodies, decorators and defaults — not function bodies."""
    out: list[ast.AST] = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.extend(node.decorator_list)
                out.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None)
            elif isinstance(node, ast.ClassDef):
                out.extend(node.decorator_list)
                out.extend(node.bases)
                out.extend(k.value for k in node.keywords)
                visit(node.body)
            elif isinstance(node, ast.If) and is_main_guard(node.test):
                continue
            elif isinstance(node, ast.If):
                out.append(node.test)
                visit([*node.body, *node.orelse])
            elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                out.extend(h.type for h in node.handlers if h.type is not None)
                visit([*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody])
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                continue
            else:
                out.append(node)

    visit(tree.body)
    return out


def walk_all(nodes, *, into_functions: bool = True):
    """ast.walk over several roots; nested defs and lambdas belong to the function around them."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        if not into_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def is_main_guard(test: ast.AST) -> bool:
    """``if __name__ == "__main__":`` — a block that never runs when the module is imported."""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )
