"""``${...}`` expressions: splitting strings into text and expressions, parsing them with the lark
grammar in ``grammar/expr.lark`` (LALR, built once) into the IR nodes of :mod:`flowc.compiler.ir`,
and checking the shape of every reference.

- A string that is exactly one ``${...}`` becomes that expression (a ``Ref`` keeps its type);
  text around interpolations makes a ``Format``; a string with none is a ``Lit``.
- ``$${`` is a literal ``${``; ``$HOME``, ``{{ ds }}`` and ``%s`` are plain text.
- ``when:`` conditions are whole expressions in which ``${...}`` wraps any operand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from flowc.compiler.errors import FlowcError, Loc, did_you_mean
from flowc.compiler.ir import BinOp, DictOf, Expr, Format, ListOf, Lit, Not, Ref

Locate = Callable[[int], Loc]

MAX_EXPR_DEPTH = 64  # nesting of operators/lists inside one ${...}

ROOTS = ("params", "steps", "secrets", "env", "item", "run", "flow")


@cache
def parser() -> Any:
    """The LALR parser for ``grammar/expr.lark``, built once per process. The built tables are
    cached by lark in a private per-user folder (``$XDG_CACHE_HOME/flowc``, mode 0700; never a
    shared temp dir, since the cache is a pickle), keyed by the grammar's hash; set
    ``FLOWC_NO_PARSER_CACHE=1`` to build from scratch."""
    from importlib.resources import files

    from lark import Lark

    grammar = files("flowc.grammar").joinpath("expr.lark").read_text(encoding="utf-8")
    opts: dict[str, Any] = {"parser": "lalr", "maybe_placeholders": False}
    cache_file = _cache_file(grammar)
    if cache_file:
        opts["cache"] = cache_file
    return Lark(grammar, **opts)


def _cache_file(grammar: str) -> str | None:
    import hashlib
    import os
    import sys

    if os.environ.get("FLOWC_NO_PARSER_CACHE"):
        return None
    try:
        import lark

        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "flowc")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
            return None  # not ours or writable by others: do not load pickles from it
        key = hashlib.sha256(
            f"{grammar}|{lark.__version__}|{sys.version_info[:2]}".encode()
        ).hexdigest()[:24]
        return os.path.join(folder, f"expr-{key}.lark-cache")
    except OSError:
        return None


# A lone reference (the common case) is recognised without running the LALR parser; the result
# is identical to what the grammar's ``ref`` rule builds (tests/test_expr.py checks both ways).
_SIMPLE = re.compile(
    r"[ \t\r\n]*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)(:-[^}]*)?[ \t\r\n]*\Z"
)
_TRICKY = re.compile(r"['\"{]")
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})


@lru_cache(maxsize=4096)
def _tree(src: str) -> Any:
    return parser().parse(src)


def _no_loc(_: int) -> Loc | None:
    return None


def parse_template(text: str, locate: Locate | None = None) -> Expr:
    """Parse a string that may hold ``${...}`` interpolations. ``locate(i)`` gives the Loc of
    character ``i`` of ``text`` (for errors and reference locations)."""
    locate = locate or _no_loc  # type: ignore[assignment]
    if "$" not in text:
        return Lit(text)
    parts: list[str | Expr] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            buf.append(text[i:])
            break
        buf.append(text[i:j])
        if text.startswith("$${", j):
            buf.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = _closing(text, j + 2)
            if end < 0:
                raise FlowcError.at(
                    locate(j),
                    f"unterminated '${{' in {_show(text)}",
                    "close it with '}', or write '$${' for a literal '${'",
                )
            if "".join(buf):
                parts.append("".join(buf))
            buf = []
            parts.append(_parse(text[j + 2 : end], text, j, j + 2, locate))
            i = end + 1
        else:
            buf.append("$")
            i = j + 1
    if buf and "".join(buf):
        parts.append("".join(buf))
    if len(parts) == 1 and isinstance(parts[0], Expr):
        return parts[0]
    if all(isinstance(p, str) for p in parts):
        return Lit("".join(parts))  # type: ignore[arg-type]
    return Format(tuple(parts))


def parse_condition(text: str, locate: Locate | None = None) -> Expr:
    """Parse a whole ``when:`` condition such as ``${steps.t.outputs.auc} >= 0.8 and not
    ${params.full}`` (``${...}`` optional around operands)."""
    locate = locate or _no_loc  # type: ignore[assignment]
    start = text.find("${")
    if start >= 0 and _closing(text, start + 2) < 0:
        raise FlowcError.at(
            locate(start), f"unterminated '${{' in {_show(text)}", "close it with '}'"
        )
    if not text.strip():
        raise FlowcError.at(locate(0), "empty condition")
    return _parse(text, text, 0, 0, locate)


def _closing(text: str, i: int) -> int:
    """Index of the '}' closing an expression starting at ``i`` (quotes and braces aware)."""
    end = text.find("}", i)
    if end < 0:
        return -1
    if not _TRICKY.search(text, i, end):
        return end
    depth = 0
    quote = ""
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _parse(src: str, whole: str, at: int, base: int, locate: Locate) -> Expr:
    """Parse ``src`` (which starts at offset ``base`` of ``whole``); errors point at ``at``."""
    m = _SIMPLE.match(src)
    if m is not None and not _KEYWORDS.intersection(m.group(1).split(".")):
        names = m.group(1).split(".")
        default = m.group(2)[2:] if m.group(2) is not None else None
        return _Build(whole, base, locate).make_ref(names, default, m.start(1))
    from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    try:
        tree = _tree(src)
    except UnexpectedEOF:
        raise FlowcError.at(
            locate(at), f"invalid expression {_show(whole)}: unexpected end"
        ) from None
    except UnexpectedToken as e:
        tok = "end of expression" if e.token.type == "$END" else f"'{e.token}'"
        raise FlowcError.at(
            locate(at), f"invalid expression {_show(whole)}: unexpected {tok}"
        ) from None
    except UnexpectedCharacters as e:
        ch = src[e.pos_in_stream] if e.pos_in_stream is not None else "?"
        raise FlowcError.at(
            locate(at), f"invalid expression {_show(whole)}: unexpected character {ch!r}"
        ) from None
    except LarkError as e:  # pragma: no cover - defensive
        raise FlowcError.at(locate(at), f"invalid expression {_show(whole)}: {e}") from None
    except RecursionError:
        raise FlowcError.at(locate(at), f"expression {_show(whole)} is nested too deeply") from None
    try:
        return _Build(whole, base, locate).build(tree)
    except _TooDeep:
        raise FlowcError.at(
            locate(at),
            f"expression {_show(whole)} is nested more than {MAX_EXPR_DEPTH} levels deep",
            "split it into simpler expressions",
        ) from None


class _TooDeep(Exception):
    pass


class _Build:
    def __init__(self, whole: str, base: int, locate: Locate) -> None:
        self.whole = whole
        self.base = base
        self.locate = locate

    def build(self, t: Any, depth: int = 0) -> Expr:
        if depth > MAX_EXPR_DEPTH:
            raise _TooDeep
        depth += 1
        data = t.data
        ch = t.children
        if data == "ref":
            return self.ref(ch)
        if data == "number":
            s = str(ch[0])
            return Lit(float(s) if any(c in s for c in ".eE") else int(s))
        if data == "string":
            s = str(ch[0])
            body = s[1:-1]
            if s[0] == '"':
                import json

                try:
                    body = json.loads(s)
                except ValueError:
                    body = s[1:-1]
            return Lit(body)
        if data == "true":
            return Lit(True)
        if data == "false":
            return Lit(False)
        if data == "null":
            return Lit(None)
        if data == "list":
            return _list_expr([self.build(c, depth) for c in ch if c is not None])
        if data == "not_":
            return Not(self.build(ch[0], depth))
        if data == "and_":
            return BinOp("and", self.build(ch[0], depth), self.build(ch[1], depth))
        if data == "or_":
            return BinOp("or", self.build(ch[0], depth), self.build(ch[1], depth))
        if data == "compare":
            return BinOp(str(ch[1]), self.build(ch[0], depth), self.build(ch[2], depth))
        if data == "in_":
            return BinOp("in", self.build(ch[0], depth), self.build(ch[1], depth))
        if data == "not_in":
            return BinOp("not in", self.build(ch[0], depth), self.build(ch[1], depth))
        raise AssertionError(f"unexpected tree node {data}")  # pragma: no cover

    def ref(self, ch: list[Any]) -> Ref:
        default = None
        if ch and ch[-1].type == "ENV_DEFAULT":
            default = str(ch[-1])[2:]
            ch = ch[:-1]
        names: list[str | int] = [int(c) if c.type == "INDEX" else str(c) for c in ch]
        return self.make_ref(names, default, ch[0].start_pos or 0)

    def make_ref(self, names: list[Any], default: str | None, start: int) -> Ref:
        pos = self.base + start
        if self.whole[max(0, pos - 2) : pos] == "${":
            pos -= 2
        loc = self.locate(pos)
        ref = Ref(str(names[0]), qualify_step_path(names[0], tuple(names[1:])), default, loc)
        problem = ref_problem(ref)
        if problem:
            raise FlowcError.at(loc, problem[0], problem[1])
        return ref


def qualify_step_path(root: Any, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """``steps.g.prep.outputs.rows`` -> ``("g.prep", "outputs", "rows")``: the dotted names
    before the first ``outputs`` are one (qualified) step or group name."""
    if root != "steps" or "outputs" not in path[1:]:
        return path
    k = path.index("outputs", 1)
    head = path[:k]
    if not all(isinstance(p, str) for p in head):
        return path
    return (".".join(head), *path[k:])


RUN_VALUES = ("id", "date", "ds", "ds_nodash", "status", "failed_steps")
"""``${run.X}`` names; ``status`` and ``failed_steps`` only in finally steps."""

_SHAPES = {
    "params": "${params.NAME}",
    "secrets": "${secrets.NAME}",
    "env": "${env.NAME} or ${env.NAME:-default}",
    "steps": "${steps.STEP.outputs.NAME} (then .key or [0] to index into it)",
    "run": "${run.id}, ${run.date}, ${run.ds}, ${run.ds_nodash} (finally steps: "
    "${run.status}, ${run.failed_steps})",
    "flow": "${flow.name}",
    "item": "${item} or ${item.key}",
}


def ref_problem(ref: Ref) -> tuple[str, str | None] | None:
    """A (message, hint) when a reference has the wrong shape, else None."""
    r, p = ref.root, ref.path
    if r in ("params", "secrets", "env"):
        ok = len(p) == 1 and isinstance(p[0], str)
    elif r == "steps":
        ok = len(p) >= 3 and p[1] == "outputs" and isinstance(p[0], str) and isinstance(p[2], str)
    elif r == "item":
        ok = True
    elif r == "run":
        ok = len(p) == 1 and p[0] in RUN_VALUES
    elif r == "flow":
        ok = p == ("name",)
    else:
        hint = did_you_mean(r, ROOTS) or "references start with " + ", ".join(ROOTS)
        return f"unknown reference root '{r}' in ${{{ref.dotted}}}", hint
    if ref.default is not None and r != "env":
        return f"':-default' is only allowed for ${{env.X}}, not in ${{{ref.dotted}}}", None
    if not ok:
        return f"malformed reference ${{{ref.dotted}}}", f"write {_SHAPES[r]}"
    return None


def value_expr(
    value: Any,
    locate_path: Callable[[tuple[Any, ...]], Locate] | None = None,
    path: tuple[Any, ...] = (),
) -> Expr:
    """Turn a YAML value into an expression: strings are templates, lists/dicts holding an
    expression become ``ListOf``/``DictOf``, anything else is a ``Lit``.
    ``locate_path(path)`` gives the locate function for the string at ``path``."""
    if isinstance(value, str):
        return parse_template(value, locate_path(path) if locate_path else None)
    if isinstance(value, list):
        return _list_expr([value_expr(v, locate_path, (*path, i)) for i, v in enumerate(value)])
    if isinstance(value, dict):
        return _dict_expr([(k, value_expr(v, locate_path, (*path, k))) for k, v in value.items()])
    return Lit(value)


def _list_expr(items: list[Expr]) -> Expr:
    """A ``Lit`` list when every item is a literal, else a ``ListOf``."""
    if all(isinstance(i, Lit) for i in items):
        return Lit([i.value for i in items])  # type: ignore[attr-defined]
    return ListOf(tuple(items))


def _dict_expr(pairs: list[tuple[str, Expr]]) -> Expr:
    """A ``Lit`` mapping when every value is a literal, else a ``DictOf``."""
    if all(isinstance(v, Lit) for _, v in pairs):
        return Lit({k: v.value for k, v in pairs})  # type: ignore[attr-defined]
    return DictOf(tuple(pairs))


def substitute_env(e: Expr, lookup: Callable[[Ref], str]) -> Expr:
    """Replace every ``${env.X}`` by its value (``lookup`` raises FlowcError when unset);
    a ``Format`` whose parts all become text collapses to a ``Lit`` string."""
    if isinstance(e, Ref):
        return Lit(lookup(e)) if e.root == "env" else e
    if isinstance(e, Format):
        parts: list[str | Expr] = []
        for p in e.parts:
            q = p if isinstance(p, str) else substitute_env(p, lookup)
            if isinstance(q, Lit) and isinstance(q.value, str):
                q = q.value
            if isinstance(q, str) and parts and isinstance(parts[-1], str):
                parts[-1] = parts[-1] + q
            else:
                parts.append(q)
        if all(isinstance(p, str) for p in parts):
            return Lit("".join(parts))  # type: ignore[arg-type]
        return Format(tuple(parts))
    if isinstance(e, ListOf):
        return _list_expr([substitute_env(i, lookup) for i in e.items])
    if isinstance(e, DictOf):
        return _dict_expr([(k, substitute_env(v, lookup)) for k, v in e.items])
    if isinstance(e, BinOp):
        return BinOp(e.op, substitute_env(e.left, lookup), substitute_env(e.right, lookup))
    if isinstance(e, Not):
        return Not(substitute_env(e.operand, lookup))
    return e
