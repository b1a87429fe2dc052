"""Errors as values with a location, rendered as ``FILE:LINE:COL: error: message``.

Every user-facing problem is a :class:`Diagnostic`. Code that finds one raises
:class:`FlowcError` (carrying one or more diagnostics); only the CLI renders and exits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Loc:
    """A 1-based position in a source file (the path as the user gave it, or relative)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: where, what, and optionally how to fix it."""

    loc: Loc | None
    message: str
    hint: str | None = None
    severity: str = "error"

    def render(self) -> str:
        where = f"{self.loc}: " if self.loc else "flowc: "
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class FlowcError(Exception):
    """A user error (exit 1). Holds every diagnostic found, in source order."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    @classmethod
    def at(cls, loc: Loc | None, message: str, hint: str | None = None) -> FlowcError:
        return cls(Diagnostic(loc, message, hint))

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class Collector:
    """Gathers diagnostics so a pass can report every problem, not only the first."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, loc: Loc | None, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(loc, message, hint))

    def extend(self, err: FlowcError) -> None:
        self.diagnostics.extend(err.diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise FlowcError(sorted_unique(self.diagnostics))


def sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in source order (unlocated ones last), each distinct one once (a problem
    found twice, e.g. a bad ``defaults:`` value cascaded into two steps, is reported once)."""
    key = lambda d: (d.loc is None, d.loc or Loc("", 0, 0))  # noqa: E731
    return sorted(dict.fromkeys(diagnostics), key=key)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for a misspelled name, or None."""
    import difflib  # only needed once something is wrong: kept off the start-up path

    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
