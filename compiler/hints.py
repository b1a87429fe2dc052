"""Field-specific hints for values the passes reject: which cron field is out of range (and its
range), and the like. Pure functions of the offending text; the passes attach what they return
as the diagnostic's hint."""

from __future__ import annotations

import re

#: (name, low, high, names accepted in place of numbers) per cron field, in order.
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)

CRON_SHAPE = "use 5 fields: minute hour day-of-month month day-of-week"
_PART = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def _value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    if text in names:
        return names.index(text) + (low if low == 1 else 0)
    return None


def cron_hint(expr: str) -> str:
    """A hint naming the first wrong field of a 5-field cron expression and its range, or the
    shape hint when the field count is wrong."""
    fields = str(expr).split()
    if len(fields) != 5:
        return f"{CRON_SHAPE} (got {len(fields)} field{'s' if len(fields) != 1 else ''})"
    for i, (text, (name, low, high, names)) in enumerate(
        zip(fields, CRON_FIELDS, strict=True), start=1
    ):
        where = f"field {i} ({name}) is '{text}'"
        allowed = f"{name} must be {low}-{high}"
        if names:
            allowed += f" or {names[0].upper()}-{names[-1].upper()}"
        for part in text.lower().split(","):
            m = _PART.match(part)
            if m is None:
                return (
                    f"{where}: write a number, a range a-b, a list a,b, * or a step */n; {allowed}"
                )
            if m.group(2) is not None and int(m.group(2)) == 0:
                return f"{where}: a step /0 never fires"
            if m.group(1) == "*":
                continue
            for bound in m.group(1).split("-"):
                v = _value(bound, low, names)
                if v is None:
                    return f"{where}: '{bound}' is not a {name}; {allowed}"
                if not low <= v <= high:
                    return f"{where}: {v} is out of range; {allowed}"
    return f"{CRON_SHAPE}; each field a number, range a-b, list a,b, * or step */n"
