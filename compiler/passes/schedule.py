"""Pass 25: ``schedule:``: exactly one of cron (5 fields, checked with croniter) / every
(duration) / at (ISO instant); IANA timezone; start/end dates."""

from __future__ import annotations

from datetime import date, datetime

from flowc.compiler.hints import cron_hint
from flowc.compiler.ir import Schedule
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import DURATION_HINT, parse_duration

ORDER = 25


def _iso(text: str) -> bool:
    t = text.replace("Z", "+00:00")
    for parse in (datetime.fromisoformat, date.fromisoformat):
        try:
            parse(t)
            return True
        except ValueError:
            pass
    return False


def _naive(text: str) -> datetime:
    """``start``/``end`` as a naive datetime (they are read in the schedule's timezone)."""
    t = text.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(t).replace(tzinfo=None)
    except ValueError:
        d = date.fromisoformat(t)
        return datetime(d.year, d.month, d.day)


def run(ctx: PassContext) -> None:
    s = ctx.model.schedule
    base = ("schedule",)
    if ctx.env_model is not None and ctx.env_model.schedule is not None:
        s = ctx.env_model.schedule
        base = ("environments", ctx.environment, "schedule")
    if s is None:
        return
    loc = ctx.key_loc(*base)
    given = [k for k in ("cron", "every", "at") if getattr(s, k) is not None]
    if len(given) != 1:
        ctx.errors.error(
            loc,
            "schedule needs exactly one of 'cron', 'every', 'at'"
            + (f" (got {', '.join(given)})" if given else ""),
        )
        return
    kind = given[0]
    every = None
    if kind == "cron":
        assert s.cron is not None
        fields = s.cron.split()
        ok = len(fields) == 5
        if ok:
            from croniter import croniter

            ok = bool(croniter.is_valid(s.cron))
        if not ok:
            ctx.errors.error(
                ctx.loc(*base, "cron"),
                f"invalid cron expression {s.cron!r}",
                cron_hint(s.cron),
            )
    elif kind == "every":
        every = parse_duration(s.every)
        if not every:
            ctx.errors.error(
                ctx.loc(*base, "every"), f"invalid duration {s.every!r}", DURATION_HINT
            )
    elif kind == "at" and not _iso(str(s.at)):
        ctx.errors.error(
            ctx.loc(*base, "at"),
            f"invalid date-time {s.at!r}",
            "write an ISO 8601 instant such as 2027-01-01T00:00:00Z",
        )
    try:
        from zoneinfo import ZoneInfo

        if not s.timezone or s.timezone.startswith(("/", ".")) or ".." in s.timezone:
            raise ValueError(s.timezone)
        ZoneInfo(s.timezone)
    except Exception:
        ctx.errors.error(
            ctx.loc(*base, "timezone"),
            f"unknown timezone {s.timezone!r}",
            "use an IANA name such as UTC or Europe/Berlin",
        )
    for k in ("start", "end"):
        v = getattr(s, k)
        if v is not None and not _iso(v):
            ctx.errors.error(ctx.loc(*base, k), f"invalid {k} date {v!r}", "write 2026-01-01")
    if s.start and s.end and _iso(s.start) and _iso(s.end) and _naive(s.end) <= _naive(s.start):
        ctx.errors.error(
            ctx.loc(*base, "end"), f"schedule end {s.end} is not after start {s.start}"
        )
    ctx.schedule = Schedule(
        kind=kind,
        cron=s.cron,
        every_seconds=every,
        at=s.at,
        timezone=s.timezone,
        start=s.start,
        end=s.end,
        catchup=s.catchup,
        loc=loc,
    )
