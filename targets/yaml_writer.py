"""The one YAML writer of the targets that emit YAML (kfp, vertex's KFP spec, k8s).

It writes JSON-like data (dicts with string keys, lists, strings, numbers, booleans, None) as
deterministic block YAML that ``yaml.safe_load`` reads back to the same data, for every string
of Unicode. One rule spells every string, key or value (:func:`scalar`):

- plain when it is printable ASCII that YAML reads back as this very string, in YAML 1.1
  (PyYAML's resolver: no ``yes``/``off``/``null``, number, date, ``<<``...) and in 1.2 (no
  ``1e3``, ``0o17``), with no indicator where the scanner would see one (a leading
  ``-?:,[]{}#&*!|>'"%@```, ``: ``, `` #``, a trailing ``:`` or space, ``---``/``...``), as
  kubectl and kfp's own compiler write it (``image: python:3.11-slim``, ``- --plan``);
- else double-quoted, with JSON's escapes plus ``\\uXXXX`` for every character YAML would read
  as a line break (U+0085, U+2028, U+2029), refuses in a stream (C1 controls, DEL, U+FFFE,
  U+FFFF, lone surrogates) or may drop (U+FEFF). A quoted scalar is therefore always one line.

A multi-line value is a ``|`` literal block when that reads back exactly (no leading space or
newline, no trailing spaces, no CR or character the rule above escapes), else a quoted scalar.
A :class:`Block` (large text such as a ConfigMap's JSON) is written as a literal block directly,
without looking at its characters again.

Fast by design (PyYAML's pure-Python emitter dominated compile time on large flows): one pass
over the data, and a per-document cache of the spelling of every one-line string seen (a
PipelineSpec or a manifest repeats its vocabulary).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
"""Identifier- and path-like strings: plain unless a YAML word (the fast path)."""
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
_PLAIN = re.compile(
    r"(?![?:,\[\]{}#&*!|>'\"%@` ]|---|\.\.\.|-(?: |$))(?:[^: ]|:(?! )| (?![ #]|$))+(?<!:)"
)
"""Printable ASCII without the indicators a plain scalar cannot hold (see :func:`scalar`)."""
_NUMBER_1_2 = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+"
)
"""YAML 1.2 core numbers that YAML 1.1 (PyYAML) reads as strings (e.g. ``1e3``)."""
_STR_TAG = "tag:yaml.org,2002:str"
_resolver = yaml.resolver.Resolver()
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
"""What json.dumps(ensure_ascii=False) leaves raw but YAML reads otherwise (or refuses)."""
_NOT_IN_BLOCK = re.compile(
    "[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
"""Characters that keep a multi-line string out of a literal block (it is quoted instead)."""
_MAX_SIMPLE_KEY = 1000
"""Longer keys are written as explicit ``? key`` entries (YAML limits implicit keys to 1024)."""


def scalar(text: str) -> str:
    """The YAML spelling of the string ``text`` as a key or a one-line value."""
    if _SIMPLE.fullmatch(text):
        if text.lower() not in _YAML_WORDS:
            return text
    elif (
        text.isascii()
        and text.isprintable()
        and _PLAIN.fullmatch(text)
        and _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG
        and not _NUMBER_1_2.fullmatch(text)
        and text.lower() not in _YAML_WORDS
    ):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    if _ESCAPE.search(quoted):
        quoted = _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
    return quoted


def _number(v: int | float) -> str:
    if isinstance(v, int):
        return str(v)
    if v != v:
        return ".nan"
    if v in (float("inf"), float("-inf")):
        return ".inf" if v > 0 else "-.inf"
    text = repr(v)
    if "e" in text and "." not in text.split("e")[0]:
        mant, exp = text.split("e")
        text = f"{mant}.0e{exp}"
    return text


class Block(str):
    """Multi-line ASCII text (a ConfigMap's JSON) written as a YAML literal block directly,
    without the character analysis of other strings. A part of a split file may start with
    spaces (written ``|2``: explicit indentation) and end without a newline (``|-``: strip
    chomping)."""

    def __new__(cls, text: str) -> Block:
        if not text.isascii() or text.endswith("\n\n"):
            raise ValueError("a Block is ASCII text ending with at most one newline")
        if text[:1] in ("", "\n") or "\t" in text or "\r" in text:
            raise ValueError("a Block is not empty, does not start with a newline, has no tab/CR")
        return super().__new__(cls, text)

    def header(self) -> str:
        """The literal block's header: ``|``, indentation indicator, chomping indicator."""
        return "|" + ("2" if self.startswith(" ") else "") + ("" if self.endswith("\n") else "-")


def _literal_ok(v: str) -> bool:
    return (
        "\n" in v
        and not v.endswith("\n\n")
        and not v.startswith((" ", "\n"))
        and "\r" not in v
        and not _NOT_IN_BLOCK.search(v)
        and not any(line != line.rstrip() for line in v.split("\n"))
    )


def _literal(header: str, text: str, indent: int) -> str:
    """`` <header>`` and the lines of ``text`` indented by ``indent`` (empty lines stay empty)."""
    pad = " " * indent
    body = text[:-1] if text.endswith("\n") else text
    lines = "\n".join(pad + line if line else "" for line in body.split("\n"))
    return f" {header}\n{lines}"


def _inline(x: Any, indent: int, spelled: dict[str, str]) -> str:
    """`` <value>`` of a scalar, an empty collection or a literal block (content at
    ``indent``)."""
    if isinstance(x, str):
        if isinstance(x, Block):
            return _literal(x.header(), x, indent)
        if "\n" not in x:
            text = spelled.get(x)
            if text is None:
                text = spelled[x] = scalar(x)
            return " " + text
        if _literal_ok(x):
            return _literal("|" if x.endswith("\n") else "|-", x, indent)
        return " " + scalar(x)
    if x is None:
        return " null"
    if x is True:
        return " true"
    if x is False:
        return " false"
    if isinstance(x, (int, float)):
        return " " + _number(x)
    if isinstance(x, dict):
        if x:
            raise TypeError("a non-empty mapping is not inline")
        return " {}"
    if isinstance(x, (list, tuple)):
        if x:
            raise TypeError("a non-empty list is not inline")
        return " []"
    raise TypeError(f"cannot write {type(x).__name__} as YAML")


def _emit(v: Any, indent: int, out: list[str], spelled: dict[str, str], sort: bool) -> None:
    """Append the block YAML of the mapping or list ``v`` (at ``indent``) to ``out``."""
    pad = " " * indent
    if isinstance(v, dict):
        for k in sorted(v) if sort else v:
            x = v[k]
            name = str(k)
            key = spelled.get(name)
            if key is None:
                key = spelled[name] = scalar(name)
            if len(key) > _MAX_SIMPLE_KEY:
                out.append(f"{pad}? {key}\n")
                key = ""
            if isinstance(x, dict) and x:
                out.append(f"{pad}{key}:\n")
                _emit(x, indent + 2, out, spelled, sort)
            elif isinstance(x, (list, tuple)) and x:
                out.append(f"{pad}{key}:\n")
                _emit(x, indent, out, spelled, sort)
            else:
                out.append(f"{pad}{key}:{_inline(x, indent + 2, spelled)}\n")
    else:
        for x in v:
            if isinstance(x, (dict, list, tuple)) and x:
                sub: list[str] = []
                _emit(x, indent + 2, sub, spelled, sort)
                out.append(f"{pad}- {sub[0][indent + 2 :]}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}-{_inline(x, indent + 2, spelled)}\n")


def dump(doc: dict[str, Any], *, sort_keys: bool = True) -> str:
    """One YAML document (no ``---``) of the mapping ``doc``: keys sorted, or in insertion order
    when ``sort_keys`` is false."""
    out: list[str] = []
    _emit(doc, 0, out, {}, sort_keys)
    return "".join(out)


def dump_documents(
    docs: list[dict[str, Any]], header: list[str], *, sort_keys: bool = False
) -> str:
    """A multi-document stream: ``# <line>`` comments of ``header``, then every document after a
    ``---`` line."""
    out = [f"# {line}\n" for line in header]
    for doc in docs:
        out.append("---\n")
        out.append(dump(doc, sort_keys=sort_keys))
    return "".join(out)
