"""Evaluate plan-encoded expressions (docs/plan.md) against a scope. Stdlib only.

The encoding: scalars are themselves; other nodes are one-key dicts whose key starts with ``$``:
``$lit`` (a literal list/dict), ``$ref`` (a path; optional sibling ``default`` for env refs),
``$fmt`` (string interpolation), ``$list``, ``$dict``, ``$op`` (``[op, a, b]`` or ``["not", a]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Lookup = Callable[[list[str], Any], Any]


class ExprError(Exception):
    """An expression could not be evaluated (unknown reference, bad comparison)."""


def refs(enc: Any) -> list[list[str]]:
    """Every reference path inside an encoded expression, in order."""
    out: list[list[str]] = []
    _walk_refs(enc, out)
    return out


def _walk_refs(enc: Any, out: list[list[str]]) -> None:
    if isinstance(enc, dict):
        if "$ref" in enc:
            out.append(list(enc["$ref"]))
        elif "$fmt" in enc or "$list" in enc:
            for p in enc["$fmt"] if "$fmt" in enc else enc["$list"]:
                _walk_refs(p, out)
        elif "$dict" in enc:
            for v in enc["$dict"].values():
                _walk_refs(v, out)
        elif "$op" in enc:
            for a in enc["$op"][1:]:
                _walk_refs(a, out)


def to_text(value: Any) -> str:
    """How a value is spelled inside a larger string: JSON for non-strings."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=False, separators=(",", ":"), ensure_ascii=False)


def evaluate(enc: Any, lookup: Lookup) -> Any:
    """Evaluate ``enc``. ``lookup(path, default)`` resolves a reference path such as
    ``["params", "epochs"]`` (``default`` is the env ``:-default`` or None)."""
    if not isinstance(enc, dict):
        return enc
    if "$lit" in enc:
        return enc["$lit"]
    if "$ref" in enc:
        return lookup(list(enc["$ref"]), enc.get("default"))
    if "$fmt" in enc:
        return "".join(
            p if isinstance(p, str) else to_text(evaluate(p, lookup)) for p in enc["$fmt"]
        )
    if "$list" in enc:
        return [evaluate(i, lookup) for i in enc["$list"]]
    if "$dict" in enc:
        return {k: evaluate(v, lookup) for k, v in enc["$dict"].items()}
    if "$op" in enc:
        op, *args = enc["$op"]
        if op == "not":
            return not _truthy(evaluate(args[0], lookup))
        if op == "and":
            return _truthy(evaluate(args[0], lookup)) and _truthy(evaluate(args[1], lookup))
        if op == "or":
            return _truthy(evaluate(args[0], lookup)) or _truthy(evaluate(args[1], lookup))
        a, b = evaluate(args[0], lookup), evaluate(args[1], lookup)
        return _compare(op, a, b)
    raise ExprError(f"unknown expression node {sorted(enc)}")


def _truthy(v: Any) -> bool:
    return bool(v)


def _compare(op: str, a: Any, b: Any) -> bool:
    try:
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "in":
            return a in b
        if op == "not in":
            return a not in b
    except TypeError as e:
        raise ExprError(f"cannot compare {a!r} {op} {b!r}: {e}") from None
    raise ExprError(f"unknown operator {op!r}")


def scope_lookup(scope: Mapping[str, Any]) -> Lookup:
    """A lookup over nested mappings: ``scope["params"]["epochs"]``; ``steps`` paths are
    ``[step, "outputs", name, *index]`` where an index element is a key (str) or a list
    position (int). A missing key raises :class:`ExprError`."""

    def lookup(path: list[Any], default: Any) -> Any:
        cur: Any = scope
        for i, key in enumerate(path):
            if isinstance(cur, Mapping) and isinstance(key, str) and key in cur:
                cur = cur[key]
            elif isinstance(cur, list) and _position(key, len(cur)) is not None:
                cur = cur[_position(key, len(cur))]  # type: ignore[index]
            else:
                if default is not None and path[0] == "env":
                    return default
                shown = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path[: i + 1])
                raise ExprError(f"unknown reference ${{{shown[1:]}}}")
        return cur

    return lookup


def _position(key: Any, n: int) -> int | None:
    """A list position from an int (or a digit string) index, None when out of range."""
    if isinstance(key, bool):
        return None
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    return key if isinstance(key, int) and 0 <= key < n else None
