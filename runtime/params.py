"""Pipeline params at run time: parse ``--param k=v`` text by the declared type, apply defaults,
check required / enum / min / max. Used by the local target's module and the executor.

Rules (dsl.md): ``str`` takes the text verbatim (``007`` stays ``"007"``); ``int``/``float`` parse
as numbers; ``bool`` takes ``true``/``false``; ``list``/``dict`` take JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flowc.runtime.plan import Plan


class ParamError(ValueError):
    """A bad param value, an unknown param or a missing required one."""


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def parse_value(name: str, ptype: str, text: str) -> Any:
    """``text`` (from a command line) as a value of ``ptype``."""
    try:
        if ptype == "str":
            return text
        if ptype == "int":
            return int(text)
        if ptype == "float":
            return float(text)
        if ptype == "bool":
            low = text.strip().lower()
            if low in ("true", "false"):
                return low == "true"
            raise ValueError("expected true or false")
        if ptype in ("list", "dict"):
            value = json.loads(text)
            if not isinstance(value, list if ptype == "list" else dict):
                raise ValueError(f"expected a JSON {ptype}")
            return value
    except ValueError as e:
        raise ParamError(f"param '{name}': {text!r} is not a valid {ptype} ({e})") from None
    raise ParamError(f"param '{name}': unknown type {ptype!r}")


def parse_cli(plan: Plan, pairs: Iterable[str]) -> dict[str, Any]:
    """``["epochs=3", "path=x.csv"]`` -> typed values (unknown names are errors)."""
    declared = plan.get("params") or {}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {pair!r}: expected NAME=VALUE")
        if name not in declared:
            raise ParamError(_unknown(name, declared))
        out[name] = parse_value(name, declared[name].get("type", "str"), text)
    return out


def resolve(plan: Plan, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Declared defaults overlaid with ``given`` (typed values), checked. Keys in declared
    order."""
    declared = plan.get("params") or {}
    given = dict(given or {})
    for name in given:
        if name not in declared:
            raise ParamError(_unknown(name, declared))
    out: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        elif spec.get("required"):
            raise ParamError(f"param '{name}' is required: pass --param {name}=VALUE")
        else:
            value = None
        if value is not None:
            _check(name, spec, value)
        out[name] = value
    return out


def _check(name: str, spec: Mapping[str, Any], value: Any) -> None:
    ptype = spec.get("type", "str")
    ok = _TYPES.get(ptype, (object,))
    if not isinstance(value, ok) or (ptype in ("int", "float") and isinstance(value, bool)):
        raise ParamError(f"param '{name}': expected {ptype}, got {type(value).__name__} {value!r}")
    if spec.get("enum") is not None and value not in spec["enum"]:
        raise ParamError(f"param '{name}': {value!r} is not one of {spec['enum']}")
    if spec.get("min") is not None and value < spec["min"]:
        raise ParamError(f"param '{name}': {value!r} is below the minimum {spec['min']}")
    if spec.get("max") is not None and value > spec["max"]:
        raise ParamError(f"param '{name}': {value!r} is above the maximum {spec['max']}")


def _unknown(name: str, declared: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    known = ", ".join(declared) or "none"
    return f"unknown param '{name}'{hint}; declared: {known}"
