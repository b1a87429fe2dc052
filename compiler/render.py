"""Diagnostics rendered for people and for tools: ``text`` (``FILE:LINE:COL: error: message`` +
hint; on a terminal with a code frame and a caret, coloured by rich), ``json`` (a list of
objects, schema in :data:`JSON_SCHEMA`), ``github`` (workflow commands ``::error file=...``
that annotate a pull request) and ``sarif`` (SARIF 2.1.0, for code-scanning uploads).

Every format is deterministic: same diagnostics, same bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from flowc.compiler.errors import Diagnostic

FORMATS = ("text", "json", "github", "sarif")

#: The JSON Schema of ``--output-format json``: a list of diagnostics.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://flowc.dev/schema/diagnostics-1.json",
    "title": "flowc diagnostics (--output-format json)",
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["file", "line", "column", "severity", "message", "hint"],
        "properties": {
            "file": {"type": ["string", "null"], "description": "the flow file, as given"},
            "line": {"type": ["integer", "null"], "minimum": 1},
            "column": {"type": ["integer", "null"], "minimum": 1},
            "severity": {"enum": ["error", "warning"]},
            "message": {"type": "string", "minLength": 1},
            "hint": {"type": ["string", "null"]},
        },
    },
}


def to_json_data(diagnostics: Iterable[Diagnostic]) -> list[dict[str, Any]]:
    """Diagnostics as plain data (the ``json`` format's items)."""
    return [
        {
            "file": d.loc.file if d.loc else None,
            "line": d.loc.line if d.loc else None,
            "column": d.loc.col if d.loc else None,
            "severity": d.severity,
            "message": d.message,
            "hint": d.hint,
        }
        for d in diagnostics
    ]


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github(diagnostics: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands, one line per diagnostic."""
    lines = []
    for d in diagnostics:
        props = []
        if d.loc is not None:
            props = [
                f"file={_gh_escape(d.loc.file, True)}",
                f"line={d.loc.line}",
                f"col={d.loc.col}",
            ]
        props.append("title=flowc")
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        level = "warning" if d.severity == "warning" else "error"
        lines.append(f"::{level} {','.join(props)}::{_gh_escape(message)}")
    return "".join(line + "\n" for line in lines)


def sarif(diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run of the ``flowc`` tool."""
    from flowc import __version__

    results = []
    for d in diagnostics:
        result: dict[str, Any] = {
            "ruleId": "flowc",
            "level": "warning" if d.severity == "warning" else "error",
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        }
        if d.loc is not None:
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": d.loc.file.replace("\\", "/")},
                        "region": {"startLine": d.loc.line, "startColumn": d.loc.col},
                    }
                }
            ]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "flowc",
                        "version": __version__,
                        "informationUri": "https://github.com/flowc/flowc",
                        "rules": [
                            {
                                "id": "flowc",
                                "shortDescription": {"text": "invalid flow"},
                            }
                        ],
                    }
                },
                "results": results,
            }
        ],
    }


def _source_line(file: str, line: int, cache: dict[str, list[str] | None]) -> str | None:
    if file not in cache:
        try:
            with open(file, encoding="utf-8") as f:
                cache[file] = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            cache[file] = None
    lines = cache[file]
    if lines is None or not 1 <= line <= len(lines):
        return None
    return lines[line - 1]


def frame(d: Diagnostic, source_line: str | None) -> str:
    """The code frame under a diagnostic: the line, numbered, and a caret at the column."""
    if d.loc is None or source_line is None:
        return ""
    num = str(d.loc.line)
    pad = " " * len(num)
    text = source_line.expandtabs(1)
    caret = " " * (max(d.loc.col, 1) - 1) + "^"
    return f" {num} | {text}\n {pad} | {caret}\n"


def text(diagnostics: Iterable[Diagnostic], frames: bool = False) -> str:
    """The ``text`` format; ``frames=True`` adds a code frame below each located diagnostic."""
    cache: dict[str, list[str] | None] = {}
    out = []
    for d in diagnostics:
        where = f"{d.loc}: " if d.loc else "flowc: "
        block = f"{where}{d.severity}: {d.message}\n"
        if frames and d.loc is not None:
            block += frame(d, _source_line(d.loc.file, d.loc.line, cache))
        if d.hint:
            block += f"  hint: {d.hint}\n"
        out.append(block)
    return "".join(out)


def print_text(diagnostics: Sequence[Diagnostic], stream: TextIO | None = None) -> None:
    """Print the ``text`` format to ``stream`` (stderr): plain lines when it is not a
    terminal, code frames and colour through rich when it is."""
    stream = stream or sys.stderr
    if not _isatty(stream):
        stream.write(text(diagnostics))
        stream.flush()
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream, highlight=False, soft_wrap=True)
    cache: dict[str, list[str] | None] = {}
    for d in diagnostics:
        where = f"{d.loc}: " if d.loc else "flowc: "
        style = "bold yellow" if d.severity == "warning" else "bold red"
        console.print(
            f"[bold]{escape(where)}[/bold][{style}]{d.severity}[/{style}]: {escape(d.message)}"
        )
        if d.loc is not None:
            fr = frame(d, _source_line(d.loc.file, d.loc.line, cache))
            if fr:
                body, caret = fr.rstrip("\n").split("\n")
                console.print(escape(body), style="dim")
                console.print(escape(caret), style=style)
        if d.hint:
            console.print(f"  [cyan]hint[/cyan]: {escape(d.hint)}")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def emit(diagnostics: Sequence[Diagnostic], fmt: str = "text") -> None:
    """Print ``diagnostics`` in ``fmt``: ``text`` to stderr, machine formats to stdout."""
    if fmt == "text":
        print_text(diagnostics)
    elif fmt == "json":
        sys.stdout.write(json.dumps(to_json_data(diagnostics), indent=2) + "\n")
    elif fmt == "github":
        sys.stdout.write(github(diagnostics))
    elif fmt == "sarif":
        sys.stdout.write(json.dumps(sarif(diagnostics), indent=2) + "\n")
    else:  # pragma: no cover - click's Choice keeps other values out
        raise ValueError(fmt)
    sys.stdout.flush()
