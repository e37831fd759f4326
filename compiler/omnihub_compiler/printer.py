"""Render the compiler's ``ast`` nodes exactly as black formats them, without running black.

black takes ~5 ms per generated function; this printer takes microseconds. It supports only
the node shapes :mod:`omnihub_compiler.emit` produces (imports, ``TYPE_CHECKING`` guards,
``__all__``, one-call functions, classes of static methods, docstrings) and reproduces
black's choices for them: blank lines (``.py`` and ``.pyi`` modes), the right-hand bracket
split (``head(`` / body / ``)tail``) and the one-item-per-line explosion with a magic
trailing comma, and docstring layout. Tests compare it with ``black.format_str`` on samples
and on hypothesis-generated hostile specs; any node outside the subset raises ``TypeError``.

Docstrings are written so that ``inspect.getdoc`` gives back the exact text: backslashes and
double quotes are escaped, every non-printable character (tabs, NUL, line and paragraph
separators, non-ASCII spaces...) becomes a lower-case ``\\x``/``\\u``/``\\U`` escape, and
continuation lines carry the body indentation black would add.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

__all__ = ["LINE_LENGTH", "docstring_literal", "render_module"]

#: black's default line length (the generated tree is formatted with black's defaults).
LINE_LENGTH = 88

_SAFE_COMMENT = re.compile(r"[ -~]*\Z")
_SAFE_STRING = re.compile(r"[A-Za-z0-9_. :/()'-]*\Z")


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char == '"':
        return '\\"'
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


_PLAIN = re.compile(r"[ -!#-\[\]-~\n]*\Z")  # printable ASCII except backslash and quote


def _escape(line: str) -> str:
    return "".join(_escape_char(c) for c in line)


def docstring_literal(text: str, indent: str) -> str:
    """The ``\"\"\"...\"\"\"`` source of a docstring at ``indent`` (text is pre-normalised)."""
    lines = text.split("\n")
    escaped = lines if _PLAIN.match(text) else [_escape(line) for line in lines]
    if len(lines) == 1:
        body = escaped[0]
        if body.endswith('\\"'):  # black pads a final quote with a space: use \x22
            body = body[:-2] + "\\x22"
        return f'"""{body}"""'
    rest = [f"{indent}{line}" if line else "" for line in escaped[1:]]
    return '"""' + "\n".join([escaped[0], *rest]) + f'\n{indent}"""'


def _string(value: str) -> str:
    if not _SAFE_STRING.match(value):
        raise TypeError(f"printer only renders plain strings, not {value!r}")
    return f'"{value}"'


def _expr(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_expr(node.value)}.{node.attr}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return _string(node.value)
        if node.value is None or isinstance(node.value, (bool, int)) or node.value is Ellipsis:
            return "..." if node.value is Ellipsis else repr(node.value)
    if isinstance(node, ast.Call):
        return f"{_expr(node.func)}({', '.join(_call_items(node))})"
    if isinstance(node, ast.List):
        return f"[{', '.join(_expr(e) for e in node.elts)}]"
    raise TypeError(f"printer cannot render {ast.dump(node)}")


def _call_items(node: ast.Call) -> list[str]:
    items = [_expr(a) for a in node.args]
    items += [f"{k.arg}={_expr(k.value)}" for k in node.keywords]
    return items


def _bracketed(
    out: list[str],
    indent: str,
    head: str,
    items: list[str],
    tail: str,
    *,
    hug: bool,
) -> None:
    """``head`` + items + ``tail`` on one line, else black's right-hand split.

    ``hug``: the items may share one body line (calls, parameters); collections and
    imports always explode one item per line once split.
    """
    one_line = f"{indent}{head}{', '.join(items)}{tail}"
    if len(one_line) <= LINE_LENGTH or not items:
        out.append(one_line)
        return
    inner = indent + "    "
    out.append(f"{indent}{head}")
    body = f"{inner}{', '.join(items)}"
    if hug and len(body) <= LINE_LENGTH:
        out.append(body)
    else:
        out.extend(f"{inner}{item}," for item in items)
    out.append(f"{indent}{tail}")


_ARGUMENTS_CACHE: dict[int, tuple[ast.arguments, list[str]]] = {}


def _arguments(args: ast.arguments) -> list[str]:
    cached = _ARGUMENTS_CACHE.get(id(args))
    if cached is not None and cached[0] is args:
        return cached[1]
    items = _render_arguments(args)
    _ARGUMENTS_CACHE[id(args)] = (args, items)
    return items


def _render_arguments(args: ast.arguments) -> list[str]:
    items: list[str] = []
    for arg in args.args:
        items.append(_annotated(arg))
    if args.kwonlyargs:
        items.append("*")
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            text = _annotated(arg)
            if default is not None:
                text += f" = {_expr(default)}" if arg.annotation else f"={_expr(default)}"
            items.append(text)
    return items


def _annotated(arg: ast.arg) -> str:
    return f"{arg.arg}: {_expr(arg.annotation)}" if arg.annotation else arg.arg


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_stub_body(body: list[ast.stmt]) -> bool:
    return (
        len(body) == 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and body[0].value.value is Ellipsis
    )


class _Printer:
    def __init__(self, pyi: bool) -> None:
        self.pyi = pyi
        self.out: list[str] = []

    def block(self, body: list[ast.stmt], depth: int, container: str) -> None:
        previous: ast.stmt | None = None
        for index, node in enumerate(body):
            if previous is not None:
                self.out.extend([""] * self.blank_lines(previous, node, depth, container))
            if index == 0 and _is_docstring(node):
                assert isinstance(node, ast.Expr)
                assert isinstance(node.value, ast.Constant)
                assert isinstance(node.value.value, str)
                indent = "    " * depth
                self.out.append(indent + docstring_literal(node.value.value, indent))
            else:
                self.statement(node, depth)
            previous = node

    def blank_lines(self, previous: ast.stmt, node: ast.stmt, depth: int, container: str) -> int:
        defs = (ast.FunctionDef, ast.ClassDef)
        imports = (ast.ImportFrom, ast.Import)
        if _is_docstring(previous) and container != "if":
            return 0 if container == "function" else 1
        if isinstance(previous, imports) and not isinstance(node, imports):
            return 1
        if self.pyi:
            if depth == 0 and isinstance(node, ast.ClassDef):
                return 1
            if depth == 0 and isinstance(previous, ast.ClassDef):
                return 1
            if isinstance(node, ast.FunctionDef) and not isinstance(previous, ast.FunctionDef):
                return 1 if depth == 0 else 0
            return 0
        if isinstance(node, defs) or isinstance(previous, defs):
            return 2 if depth == 0 else 1
        if isinstance(previous, (ast.If, ast.Expr)):
            return 1
        return 0

    def statement(self, node: ast.stmt, depth: int) -> None:
        indent = "    " * depth
        handler: Callable[[Any, str, int], None] | None = getattr(
            self, f"visit_{type(node).__name__}", None
        )
        if handler is None:
            raise TypeError(f"printer cannot render {ast.dump(node)}")
        handler(node, indent, depth)

    def visit_ImportFrom(self, node: ast.ImportFrom, indent: str, depth: int) -> None:
        names = [f"{a.name} as {a.asname}" if a.asname else a.name for a in node.names]
        head = f"from {'.' * node.level}{node.module or ''} import "
        if len(f"{indent}{head}{', '.join(names)}") <= LINE_LENGTH:
            self.out.append(f"{indent}{head}{', '.join(names)}")
        else:
            _bracketed(self.out, indent, head + "(", names, ")", hug=False)

    def visit_Assign(self, node: ast.Assign, indent: str, depth: int) -> None:
        (target,) = node.targets
        head = f"{_expr(target)} = "
        value = node.value
        if isinstance(value, ast.List):
            _bracketed(self.out, indent, head + "[", [_expr(e) for e in value.elts], "]", hug=False)
        elif isinstance(value, ast.Call):
            _bracketed(
                self.out, indent, f"{head}{_expr(value.func)}(", _call_items(value), ")", hug=True
            )
        else:
            self.out.append(f"{indent}{head}{_expr(value)}")

    def visit_Return(self, node: ast.Return, indent: str, depth: int) -> None:
        value = node.value
        if isinstance(value, ast.Call):
            _bracketed(
                self.out, indent, f"return {_expr(value.func)}(", _call_items(value), ")", hug=True
            )
        else:
            self.out.append(f"{indent}return" + (f" {_expr(value)}" if value else ""))

    def visit_Expr(self, node: ast.Expr, indent: str, depth: int) -> None:
        self.out.append(f"{indent}{_expr(node.value)}")

    def visit_If(self, node: ast.If, indent: str, depth: int) -> None:
        if node.orelse:
            raise TypeError("printer cannot render else branches")
        self.out.append(f"{indent}if {_expr(node.test)}:")
        self.block(node.body, depth + 1, "if")

    def visit_FunctionDef(self, node: ast.FunctionDef, indent: str, depth: int) -> None:
        for decorator in node.decorator_list:
            self.out.append(f"{indent}@{_expr(decorator)}")
        returns = f" -> {_expr(node.returns)}" if node.returns else ""
        stub = self.pyi and _is_stub_body(node.body)
        tail = f"){returns}:" + (" ..." if stub else "")
        _bracketed(self.out, indent, f"def {node.name}(", _arguments(node.args), tail, hug=True)
        if not stub:
            self.block(node.body, depth + 1, "function")

    def visit_ClassDef(self, node: ast.ClassDef, indent: str, depth: int) -> None:
        if node.bases or node.keywords or node.decorator_list:
            raise TypeError("printer renders only plain classes")
        if self.pyi and _is_stub_body(node.body):
            self.out.append(f"{indent}class {node.name}: ...")
            return
        self.out.append(f"{indent}class {node.name}:")
        self.block(node.body, depth + 1, "class")


def render_module(
    module: ast.Module, *, header: str, pyi: bool = False, comments: tuple[str, ...] = ()
) -> str:
    """Render ``module`` (after the ``header`` and ``comments`` lines) as black would."""
    for line in (header, *comments):
        if not _SAFE_COMMENT.match(line):
            raise TypeError(f"comment lines must be plain one-line text, not {line!r}")
    printer = _Printer(pyi)
    printer.out.extend(f"# {line}" for line in (header, *comments))
    printer.block(module.body, 0, "module")
    return "\n".join(printer.out) + "\n"
