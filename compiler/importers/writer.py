"""The importers' one YAML writer: an ordered, commented flow file that reads like a hand-written one.

An importer builds a :class:`Map` (keys in the order a person writes them, each entry with
comment lines above it and an optional trailing comment) and :func:`render` spells it: block
mappings, small scalar-only mappings and lists inline (``{type: int, default: 3}``,
``[a, b]``), strings spelled by :func:`flowc.targets.yaml_writer.scalar` (plain where YAML reads
them back unchanged, else double-quoted), multi-line strings as ``|`` blocks. The rendered text
is read back with ``yaml.safe_load`` and compared with :meth:`Map.plain` before it is returned,
so a writer bug can never produce a flow that means something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from flowc.targets.yaml_writer import scalar

#: Inline (flow-style) collections are used only when the line stays this short.
INLINE_WIDTH = 88
_FLOW_UNSAFE = set(",[]{}#")


@dataclass
class Entry:
    key: str
    value: Any
    above: list[str] = field(default_factory=list)
    comment: str | None = None


@dataclass
class Map:
    """An ordered mapping whose entries carry comments; ``notes`` are comment lines written
    after the last entry (what was dropped at this place)."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    block: bool = False  # never inline, even when small
    spaced: bool = False  # a blank line between entries (the steps of a flow)

    def set(
        self, key: str, value: Any, *, comment: str | None = None, above: list[str] | None = None
    ) -> Map:
        for e in self.entries:
            if e.key == key:
                e.value = value
                if comment:
                    e.comment = comment
                if above:
                    e.above.extend(above)
                return self
        self.entries.append(Entry(key, value, list(above or []), comment))
        return self

    def get(self, key: str, default: Any = None) -> Any:
        for e in self.entries:
            if e.key == key:
                return e.value
        return default

    def entry(self, key: str) -> Entry | None:
        for e in self.entries:
            if e.key == key:
                return e
        return None

    def pop(self, key: str) -> Any:
        for i, e in enumerate(self.entries):
            if e.key == key:
                return self.entries.pop(i).value
        return None

    def __contains__(self, key: str) -> bool:
        return any(e.key == key for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    def plain(self) -> dict[str, Any]:
        return {e.key: plain(e.value) for e in self.entries}


def plain(v: Any) -> Any:
    """``v`` with every :class:`Map` turned into a dict (what the YAML reads back as)."""
    if isinstance(v, Map):
        return v.plain()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def _atom(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else json.dumps(str(v))
    if isinstance(v, str):
        return scalar(v)
    raise TypeError(f"cannot write {type(v).__name__}")


def _is_atom(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _inline(v: Any) -> str | None:
    """The flow-style spelling of a small collection of one-line scalars, or None."""
    if isinstance(v, Map):
        if v.block or any(e.above or e.comment for e in v.entries) or v.notes:
            return None
        items = [(e.key, e.value) for e in v.entries]
    elif isinstance(v, dict):
        items = list(v.items())
    elif isinstance(v, (list, tuple)):
        parts = []
        for x in v:
            if not _is_atom(x) or (isinstance(x, str) and "\n" in x):
                return None
            s = _atom(x)
            if not s.startswith('"') and _FLOW_UNSAFE & set(s):
                s = json.dumps(x)
            parts.append(s)
        return "[" + ", ".join(parts) + "]"
    else:
        return None
    parts = []
    for k, x in items:
        if not _is_atom(x) and not (isinstance(x, (list, tuple)) and _inline(x) is not None):
            return None
        if isinstance(x, str) and "\n" in x:
            return None
        ks = scalar(str(k))
        if not ks.startswith('"') and _FLOW_UNSAFE & set(ks):
            ks = json.dumps(str(k))
        xs = _inline(x) if isinstance(x, (list, tuple)) else _atom(x)
        if not xs.startswith(("[", '"')) and _FLOW_UNSAFE & set(xs):
            xs = json.dumps(x)
        parts.append(f"{ks}: {xs}")
    return "{" + ", ".join(parts) + "}"


def _comment_lines(lines: list[str], pad: str, out: list[str]) -> None:
    for line in lines:
        for part in line.split("\n"):
            out.append(f"{pad}# {part}".rstrip() + "\n")


def _literal_ok(s: str) -> bool:
    return (
        "\n" in s
        and not s.startswith((" ", "\n"))
        and "\r" not in s
        and "\t" not in s
        and all(line.isprintable() and line == line.rstrip() for line in s.split("\n"))
        and not s.endswith("\n\n")
    )


def _value(v: Any, indent: int, head: str, comment: str | None, out: list[str]) -> None:
    """Append ``head`` (``key:`` or ``-``) followed by the value ``v`` at ``indent``."""
    pad = " " * indent
    tail = f"  # {comment}" if comment else ""
    if isinstance(v, str) and "\n" in v and _literal_ok(v):
        body = v[:-1] if v.endswith("\n") else v
        out.append(f"{head} {'|' if v.endswith(chr(10)) else '|-'}{tail}\n")
        out.extend((pad + "  " + line if line else "") + "\n" for line in body.split("\n"))
        return
    if _is_atom(v):
        out.append(f"{head} {_atom(v)}{tail}\n")
        return
    if isinstance(v, (Map, dict, list, tuple)) and not (v.entries if isinstance(v, Map) else v):
        if isinstance(v, Map) and v.notes:
            out.append(f"{head} {{}}{tail}\n")
            _comment_lines(v.notes, pad + "  ", out)
            return
        out.append(f"{head} {'[]' if isinstance(v, (list, tuple)) else '{}'}{tail}\n")
        return
    flow = _inline(v)
    if flow is not None and len(pad) + len(head) + 1 + len(flow) + len(tail) <= INLINE_WIDTH:
        out.append(f"{head} {flow}{tail}\n")
        return
    out.append(f"{head}{tail}\n")
    if isinstance(v, (list, tuple)):
        _seq(v, indent + 2, out)
    else:
        _map(
            v if isinstance(v, Map) else Map([Entry(str(k), x) for k, x in v.items()]),
            indent + 2,
            out,
        )


def _map(m: Map, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for i, e in enumerate(m.entries):
        if i and m.spaced:
            out.append("\n")
        _comment_lines(e.above, pad, out)
        _value(e.value, indent, f"{pad}{scalar(e.key)}:", e.comment, out)
    _comment_lines(m.notes, pad, out)


def _seq(items: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for x in items:
        if isinstance(x, (Map, dict)) and (x.entries if isinstance(x, Map) else x):
            sub: list[str] = []
            m = x if isinstance(x, Map) else Map([Entry(str(k), y) for k, y in x.items()])
            _map(m, indent + 2, sub)
            first = sub[0]
            out.append(f"{pad}- {first[indent + 2:]}")
            out.extend(sub[1:])
        else:
            _value(x, indent, f"{pad}-", None, out)


def render(doc: Map, header: list[str] | None = None) -> str:
    """The YAML text of ``doc`` (comment ``header`` lines first); checked to read back as
    ``doc.plain()``."""
    out: list[str] = []
    _comment_lines(header or [], "", out)
    blank_before = {"params", "defaults", "schedule", "secrets", "steps", "finally", "outputs"}
    for i, e in enumerate(doc.entries):
        if i and e.key in blank_before:
            out.append("\n")
        _comment_lines(e.above, "", out)
        _value(e.value, 0, f"{scalar(e.key)}:", e.comment, out)
    _comment_lines(doc.notes, "", out)
    text = "".join(out)
    back = yaml.safe_load(text)
    if back != doc.plain():  # pragma: no cover - a writer bug, never user input
        raise AssertionError(f"import writer: YAML does not read back\n{text}")
    return text
