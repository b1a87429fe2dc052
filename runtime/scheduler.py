"""The local scheduler (FlowerPower's APScheduler part): schedules, one-off jobs and the worker.

``flowc schedule FLOW`` stores the compiled plan and its ``schedule`` (cron / every / at,
timezone, start/end, catchup) plus per-schedule options (``max_instances``,
``misfire_grace_time``, ``coalesce``) in the metadata store (``<root>/metadata.db``, tables
``schedules``, ``schedule_fires``, ``jobs``); ``flowc jobs add`` queues a one-off run whose
result is fetched later; ``flowc worker`` runs what is due in a thread pool (``max_workers``).

The time arithmetic is APScheduler 3's triggers (``CronTrigger``, ``IntervalTrigger``,
``DateTrigger``, ``OrTrigger``), imported lazily; this module adds the crontab spelling flowc
shares with its other engines and the daylight-saving rule of cron. Rules (docs/scheduler.md):

* the *next fire time* of every schedule is persisted; a worker never recomputes it from "now",
  so a restart neither loses nor repeats a slot;
* due slots are *claimed* in one transaction (compare-and-swap on the persisted next fire time,
  plus unique ``(schedule, slot)`` rows) before they run: two workers, or a worker restarted
  while a run was going, never fire a slot twice (at-most-once; an interrupted run is marked
  ``interrupted``, not re-run);
* the slots of one schedule found due together run in order as one batch (one instance);
  ``coalesce`` (default: ``not catchup``) runs only the latest of them; a slot started more than
  ``misfire_grace_time`` late is ``missed``; a slot due while ``max_instances`` batches of its
  schedule are running is ``skipped`` -- APScheduler's meanings;
* registering, changing, pausing or removing a schedule, or adding a job, wakes every worker on
  the same store at once (a FIFO per worker in ``<root>/wake/``; in-process listeners directly),
  so nothing waits for a poll.

Time comes from an injectable :class:`Clock`: :class:`ManualClock` (runs take no time) and
:class:`VirtualClock` (runs take simulated time, concurrently) drive days of schedule in tests
without sleeping.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import json
import operator
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "Clock",
    "Entry",
    "Fire",
    "Job",
    "ManualClock",
    "Options",
    "ScheduleError",
    "ScheduleStore",
    "SystemClock",
    "VirtualClock",
    "Worker",
    "cron_trigger",
    "first_slot",
    "next_slot",
]

DEFAULT_MAX_WORKERS = 10  # APScheduler's ThreadPoolExecutor default


class ScheduleError(Exception):
    """A schedule cannot be registered or computed (bad timezone, bad cron, ...)."""


# --------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    def sleep(self, seconds: float, event: threading.Event | None = None) -> None:
        """Wait up to ``seconds``, returning early when ``event`` is set."""
        ...


class SystemClock:
    """Wall-clock time; sleeping waits on the event (so a wake-up or SIGTERM ends it at once)."""

    settle = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, event: threading.Event | None = None) -> None:
        (event or threading.Event()).wait(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told (tests, simulations): ``sleep`` advances it. Runs take
    no time: a worker on this clock lets its runs finish before it sleeps (``settle``)."""

    settle = True

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, delta: timedelta | float) -> datetime:
        with self._lock:
            self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
            return self._now

    def sleep(self, seconds: float, event: threading.Event | None = None) -> None:
        if event is None or not event.is_set():
            self.advance(max(0.0, seconds))


@dataclass(eq=False)
class _Sleeper:
    deadline: datetime
    event: threading.Event | None  # a wait on someone's event (a worker's loop), or a plain sleep
    release: threading.Event = field(default_factory=threading.Event)


class VirtualClock:
    """Simulated time shared by threads, for concurrent tests: ``sleep`` blocks until the driver
    (:meth:`run_until`) releases it.

    The driver acts only when the system is idle: as many threads are blocked in ``sleep`` as
    ``participants()`` says are alive. Then, in this order: it releases the plain sleeps whose
    deadline has come (runs ending now); else the waits whose event was set meanwhile (a
    worker's loop woken by a finished run or a changed store); else it moves time to the next
    deadline. So everything that ends at an instant has ended before a worker looks at what is
    due at that instant, and nothing depends on thread timing.
    """

    settle = False

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime")
        self._now = start
        self._cond = threading.Condition()
        self._sleepers: list[_Sleeper] = []

    def now(self) -> datetime:
        with self._cond:
            return self._now

    def sleep(self, seconds: float, event: threading.Event | None = None) -> None:
        with self._cond:
            if (event is not None and event.is_set()) or seconds <= 0:
                return
            me = _Sleeper(self._now + timedelta(seconds=seconds), event)
            self._sleepers.append(me)
            self._cond.notify_all()
        try:
            me.release.wait()
        finally:
            with self._cond:
                self._sleepers.remove(me)
                self._cond.notify_all()

    def _idle(self, participants: Callable[[], int]) -> bool:
        return sum(1 for s in self._sleepers if not s.release.is_set()) >= participants()

    def run_until(
        self, end: datetime, participants: Callable[[], int], *, timeout: float = 60.0
    ) -> None:
        """Advance to ``end`` (see the class), waiting up to ``timeout`` real seconds each time
        for the system to be idle. Raises ``TimeoutError`` when it never gets idle."""
        while True:
            with self._cond:
                # participants() can drop without a notification (a thread leaving the pool):
                # look again every 20 ms of real time
                give_up = time.monotonic() + timeout
                while not self._cond.wait_for(lambda: self._idle(participants), 0.02):
                    if time.monotonic() >= give_up:
                        raise TimeoutError(
                            f"not idle at {self._now.isoformat()}: {participants()} "
                            f"participant(s), {len(self._sleepers)} sleeping"
                        )
                pending = [s for s in self._sleepers if not s.release.is_set()]
                ending = [s for s in pending if s.event is None and s.deadline <= self._now]
                woken = [s for s in pending if s.event is not None and s.event.is_set()]
                woken += [s for s in pending if s.event is not None and s.deadline <= self._now]
                chosen = ending or woken
                if not chosen:
                    nxt = min((s.deadline for s in pending), default=end)
                    if nxt > end or not pending:
                        self._now = max(self._now, end)
                        return
                    self._now = max(self._now, nxt)
                    continue
                for s in chosen:
                    s.release.set()
                self._cond.notify_all()


# --------------------------------------------------------------------------------------------
# Slot arithmetic: APScheduler 3 triggers
# --------------------------------------------------------------------------------------------


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"unknown timezone {name!r}") from e


def _local(text: str | None, tz: tzinfo) -> datetime | None:
    """An ISO date/datetime; naive values are local times in ``tz``. Returned in UTC."""
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as e:
        raise ScheduleError(f"not an ISO date/time: {text!r}") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# crontab day-of-week numbers: 0 and 7 are Sunday
_CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# APScheduler's order (its day_of_week 0 is Monday)
_APS_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _day(token: str, expr: str) -> int:
    """A crontab day-of-week token (number 0-7 or name) as 0..6 with 0 = Sunday."""
    t = token.lower()
    if t in _CRON_DAYS:
        return _CRON_DAYS.index(t)
    if t.isdigit() and 0 <= int(t) <= 7:
        return int(t) % 7
    raise ScheduleError(f"invalid cron expression {expr!r}: bad day of week {token!r}")


def _days_of_week(text: str, expr: str) -> str:
    """The crontab day-of-week field in APScheduler's spelling: the set of named days.

    Crontab numbers Sunday 0 (and 7); APScheduler 3 numbers Monday 0 (a documented historical
    mistake of its ``from_crontab``), so numbers are turned into names here and every engine
    reads ``1`` as Monday."""
    days: set[int] = set()
    for item in text.split(","):
        rng, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"invalid cron expression {expr!r}: bad step in {item!r}")
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _day(a, expr), _day(b, expr)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise ScheduleError(f"invalid cron expression {expr!r}: bad range {rng!r}")
        else:
            lo = hi = _day(rng, expr)
            if step is not None:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step or 1))
    return ",".join(d for d in _APS_DAYS if _CRON_DAYS.index(d) in days)


def _aps(module: str, name: str) -> Any:
    """A trigger class of APScheduler 3 (the ``scheduler`` extra), imported when first used."""
    import importlib

    try:
        return getattr(importlib.import_module(f"apscheduler.triggers.{module}"), name)
    except ImportError as e:
        raise ScheduleError(
            "the local scheduler needs APScheduler 3: pip install 'flowc[scheduler]'"
        ) from e


def cron_trigger(expr: str, tz: tzinfo) -> Any:
    """An APScheduler trigger for a crontab expression in ``tz``.

    Five fields (``minute hour day month day-of-week``) or six with seconds first
    (``second minute hour day month day-of-week``); names for months (``jan``) and days
    (``mon-fri``) as in APScheduler; ``L`` (or ``last``) as the day of month is the month's last
    day; ``@daily`` and friends. As in cron, a restricted day of month *and* day of week match
    either (APScheduler would require both), built with APScheduler's ``OrTrigger``."""
    OrTrigger = _aps("combining", "OrTrigger")
    CronTrigger = _aps("cron", "CronTrigger")

    text = _CRON_ALIASES.get(expr.strip().lower(), expr)
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ScheduleError(
            f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month "
            f"day-of-week) or 6 with seconds first, got {len(fields)}"
        )
    second, minute, hour, day, month, dow = fields
    day = {"L": "last", "?": "*"}.get(day.upper(), day.lower())
    dow = "*" if dow == "?" else dow
    if any(c in dow for c in "#L") or "W" in day.upper().replace("WED", ""):
        raise ScheduleError(
            f"invalid cron expression {expr!r}: 'L', 'W' and '#' in the day of week are not "
            "supported by the local scheduler"
        )
    common = {"second": second, "minute": minute, "hour": hour, "month": month.lower()}
    try:
        if day.startswith("*") or dow.startswith("*"):
            trig = CronTrigger(day=day, day_of_week=_days_of_week(dow, expr), timezone=tz, **common)
        else:
            trig = OrTrigger(
                [
                    CronTrigger(day=day, timezone=tz, **common),
                    CronTrigger(day_of_week=_days_of_week(dow, expr), timezone=tz, **common),
                ]
            )
    except ValueError as e:
        raise ScheduleError(f"invalid cron expression {expr!r}: {e}") from None
    return trig


def _is_repeated_wall_time(dt: datetime, tz: tzinfo) -> bool:
    """True for the second occurrence of an ambiguous local time (the hour repeated when DST
    ends)."""
    local = dt.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _gap_end(instant: datetime, tz: tzinfo) -> datetime:
    """The first instant with ``instant``'s UTC offset, going back at most a day: when clocks
    went forward, the end of the skipped local hour."""
    offset = instant.astimezone(tz).utcoffset()
    lo, hi = instant - timedelta(days=1), instant  # offset(lo) differs, offset(hi) matches
    if lo.astimezone(tz).utcoffset() == offset:
        return instant
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def _cron_next(trigger: Any, fixed_hour: bool, after: datetime, tz: tzinfo) -> datetime | None:
    """The first cron slot strictly after ``after``: APScheduler's next fire time, with cron's
    (Vixie) daylight-saving rule on top. A fixed-hour time skipped when clocks go forward fires
    at the first valid time after it; a fixed-hour time that occurs twice when clocks go back
    fires once; a wildcard-hour job (``*/30 * * * *``) follows real time."""
    t = after
    for _ in range(10_000):
        cand = trigger.get_next_fire_time(None, t + timedelta(microseconds=1))
        if cand is None:
            return None
        real = cand.astimezone(UTC)
        if real.astimezone(tz).replace(tzinfo=None) != cand.replace(tzinfo=None):
            slot = _gap_end(real, tz) if fixed_hour else real  # a wall time that does not exist
        elif fixed_hour and _is_repeated_wall_time(real, tz):
            t = real
            continue
        else:
            slot = real
        if slot > after:
            return slot
        t = max(real, t + timedelta(seconds=1))
    raise ScheduleError(f"cron produced no slot after {after.isoformat()}")


_TRIGGERS: dict[str, tuple[str, Any, bool]] = {}
_TRIGGERS_LOCK = threading.Lock()


def _trigger(schedule: Mapping[str, Any], origin: datetime, tz: tzinfo) -> tuple[str, Any, bool]:
    """``(kind, APScheduler trigger, fixed hour)`` for a schedule (cached: catch-ups walk many
    slots)."""
    kind = str(schedule.get("kind"))
    key = json.dumps([schedule, origin.isoformat()], sort_keys=True, default=str)
    with _TRIGGERS_LOCK:
        hit = _TRIGGERS.get(key)
    if hit is not None:
        return hit
    if kind == "cron":
        expr = str(schedule["cron"])
        fields = _CRON_ALIASES.get(expr.strip().lower(), expr).split()
        hour = fields[1] if len(fields) == 5 else fields[2] if len(fields) == 6 else "*"
        made = (kind, cron_trigger(expr, tz), not hour.startswith("*"))
    elif kind == "every":
        IntervalTrigger = _aps("interval", "IntervalTrigger")
        step = float(schedule["every_seconds"])
        if step <= 0:
            raise ScheduleError("'every' must be a positive duration")
        made = (kind, IntervalTrigger(seconds=step, start_date=origin, timezone=UTC), False)
    elif kind == "at":
        DateTrigger = _aps("date", "DateTrigger")
        at = _local(schedule.get("at"), tz)
        made = (kind, None if at is None else DateTrigger(run_date=at, timezone=UTC), False)
    else:
        raise ScheduleError(f"unknown schedule kind {kind!r}")
    with _TRIGGERS_LOCK:
        _TRIGGERS[key] = made
        while len(_TRIGGERS) > 128:
            _TRIGGERS.pop(next(iter(_TRIGGERS)))
    return made


def next_slot(schedule: Mapping[str, Any], anchor: datetime, after: datetime) -> datetime | None:
    """The first slot strictly after ``after`` that lies within ``start``..``end`` (None when
    there is none). ``anchor`` is the origin of ``every`` intervals when there is no ``start``."""
    tz = _zone(str(schedule.get("timezone") or "UTC"))
    start = _local(schedule.get("start"), tz)
    end = _local(schedule.get("end"), tz)
    if start is not None and after < start:
        after = start - timedelta(microseconds=1)  # start itself is a valid slot
    kind, trig, fixed_hour = _trigger(schedule, start or anchor, tz)
    if kind == "cron":
        slot = _cron_next(trig, fixed_hour, after, tz)
    elif kind == "every":
        slot = trig.get_next_fire_time(None, after + timedelta(microseconds=1))
        step = timedelta(seconds=float(schedule["every_seconds"]))
        while slot is not None and slot <= after:  # float rounding of the timestamps
            slot += step
        slot = None if slot is None else slot.astimezone(UTC)
    else:
        at = None if trig is None else trig.get_next_fire_time(None, after)
        slot = at if at is not None and at > after else None
    if slot is not None and end is not None and slot > end:
        return None
    return slot


def first_slot(schedule: Mapping[str, Any], now: datetime) -> datetime | None:
    """The first slot to fire for a schedule registered at ``now``.

    With ``catchup`` and a ``start`` in the past, that is the first slot at/after ``start`` (the
    worker then catches up); otherwise the first slot at/after ``now``. A one-off ``at`` in the
    past fires (once, at once) only with ``catchup``.
    """
    just_before = now - timedelta(microseconds=1)
    if schedule.get("catchup"):
        tz = _zone(str(schedule.get("timezone") or "UTC"))
        if schedule.get("kind") == "at":
            at = _local(schedule.get("at"), tz)
            end = _local(schedule.get("end"), tz)
            return at if at is not None and (end is None or at <= end) else None
        if schedule.get("start") is not None:
            return next_slot(schedule, now, datetime.min.replace(tzinfo=UTC) + timedelta(days=1))
    return next_slot(schedule, now, just_before)


@dataclass(frozen=True)
class Options:
    """Per-schedule run options, with APScheduler's meanings and defaults.

    ``max_instances``: batches of this schedule running at once; a slot due while that many run
    is skipped. ``misfire_grace_time``: seconds a slot may start late and still run (None: no
    limit); later it is ``missed``. ``coalesce``: of several slots due together, run only the
    latest (None: ``not catchup``)."""

    max_instances: int = 1
    misfire_grace_time: float | None = None
    coalesce: bool | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Options:
        d = dict(data or {})
        grace = d.get("misfire_grace_time")
        coalesce = d.get("coalesce")
        opts = cls(
            max_instances=int(d.get("max_instances") or 1),
            misfire_grace_time=None if grace is None else float(grace),
            coalesce=None if coalesce is None else bool(coalesce),
        )
        if opts.max_instances < 1:
            raise ScheduleError("max_instances must be at least 1")
        if opts.misfire_grace_time is not None and opts.misfire_grace_time < 0:
            raise ScheduleError("misfire_grace_time must not be negative")
        return opts

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"max_instances": self.max_instances}
        if self.misfire_grace_time is not None:
            d["misfire_grace_time"] = self.misfire_grace_time
        if self.coalesce is not None:
            d["coalesce"] = self.coalesce
        return d

    def coalescing(self, schedule: Mapping[str, Any]) -> bool:
        return (not schedule.get("catchup")) if self.coalesce is None else self.coalesce


# --------------------------------------------------------------------------------------------
# Wake-ups: a FIFO per worker process, in-process listeners directly
# --------------------------------------------------------------------------------------------

_LISTENERS: dict[str, set[threading.Event]] = {}
_LISTENERS_LOCK = threading.Lock()


def notify_workers(folder: str | Path) -> None:
    """Wake every worker listening on ``folder`` (``<root>/wake``): the events of this process,
    then one byte into each other worker's FIFO. A FIFO nobody reads any more (its worker died)
    is removed."""
    folder = Path(folder)
    with _LISTENERS_LOCK:
        events = list(_LISTENERS.get(str(folder.resolve()), ()))
    for ev in events:
        ev.set()
    if not folder.is_dir():
        return
    mine = f"{os.getpid()}-"
    for fifo in sorted(folder.glob("*.fifo")):
        if fifo.name.startswith(mine):
            continue
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                with contextlib.suppress(OSError):
                    fifo.unlink()  # no reader: a worker that is gone
            continue
        try:
            os.write(fd, b"w")
        except BlockingIOError:
            pass  # its pipe is full: a wake-up is already pending
        finally:
            os.close(fd)


class _Listener:
    """Sets ``event`` whenever :func:`notify_workers` is called for ``folder``, from this
    process (directly) or another one (through a FIFO read by a daemon thread). Where FIFOs
    cannot be made (Windows, some network file systems), only in-process wake-ups work and
    ``fifo`` is None (the worker then looks at the store every second)."""

    def __init__(self, folder: Path, event: threading.Event) -> None:
        self.event = event
        self.fifo: Path | None = None
        self._fd: int | None = None
        self._closed = False
        folder.mkdir(parents=True, exist_ok=True)
        self.key = str(folder.resolve())
        with _LISTENERS_LOCK:
            _LISTENERS.setdefault(self.key, set()).add(event)
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.fifo"
        try:
            os.mkfifo(path, 0o600)
            # read-write: opening never blocks, and reads block (a writer always exists)
            self._fd = os.open(path, os.O_RDWR)
        except (AttributeError, OSError):  # no FIFOs here (Windows, some network file systems)
            with contextlib.suppress(OSError):
                path.unlink()
            return
        self.fifo = path
        threading.Thread(target=self._read, name="flowc-wake", daemon=True).start()

    def _read(self) -> None:
        fd = self._fd
        assert fd is not None
        while True:
            try:
                os.read(fd, 512)
            except OSError:
                return
            if self._closed:
                os.close(fd)
                return
            self.event.set()

    def close(self) -> None:
        with _LISTENERS_LOCK:
            _LISTENERS.get(self.key, set()).discard(self.event)
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._fd, b"q")  # ends the reader
            if self.fifo is not None:
                with contextlib.suppress(OSError):
                    self.fifo.unlink()
            self._fd = None  # the reader closes it


# --------------------------------------------------------------------------------------------
# The store (tables in the metadata database)
# --------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, flow TEXT NOT NULL, source TEXT, schedule TEXT NOT NULL,
    plan TEXT NOT NULL, params TEXT NOT NULL, anchor TEXT NOT NULL, next_fire TEXT,
    last_fire TEXT, registered TEXT NOT NULL, updated TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0, options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    name TEXT NOT NULL, slot TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL, owner TEXT,
    claimed TEXT, started REAL, ended REAL, error TEXT, skipped INTEGER DEFAULT 0,
    PRIMARY KEY (name, slot)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, flow TEXT NOT NULL, source TEXT, plan TEXT NOT NULL,
    params TEXT NOT NULL, status TEXT NOT NULL, owner TEXT, created TEXT NOT NULL,
    started REAL, ended REAL, run_id TEXT, result TEXT, error TEXT
);
"""
# columns added after the first release of the tables: (table, column, declaration)
_MIGRATIONS = (
    ("schedules", "paused", "INTEGER NOT NULL DEFAULT 0"),
    ("schedules", "options", "TEXT NOT NULL DEFAULT '{}'"),
)
_OPEN = ("claimed", "running")  # fire/job states of a run not finished yet


@dataclass(frozen=True)
class Entry:
    """One registered schedule."""

    name: str
    flow: str
    source: str | None
    schedule: dict[str, Any]
    plan: dict[str, Any]
    params: dict[str, Any]
    anchor: datetime
    next_fire: datetime | None
    last_fire: datetime | None
    registered: datetime
    paused: bool = False
    options: Options = Options()


@dataclass(frozen=True)
class Fire:
    """One fired slot: the schedule, the slot, the run and how it ended."""

    name: str
    slot: datetime
    run_id: str | None
    status: str
    skipped: int = 0  # slots not run before this one (coalesced, missed or max_instances)
    error: str | None = None


@dataclass(frozen=True)
class Job:
    """One one-off run (``flowc jobs add``): its plan, state and, once done, its result."""

    id: str
    flow: str
    source: str | None
    plan: dict[str, Any]
    params: dict[str, Any]
    status: str  # queued | claimed | running | succeeded/success | failed | interrupted
    created: datetime
    run_id: str | None = None
    result: Any = None
    error: str | None = None
    owner: str | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def done(self) -> bool:
        return self.status not in ("queued", *_OPEN)


class ScheduleStore:
    """Registered schedules, their fires and jobs in SQLite (WAL, busy timeout): safe for
    several workers and CLI processes at once. Every change of what a worker should do wakes
    the workers (:func:`notify_workers` on ``<root>/wake``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wake_dir = self.path.parent / "wake"
        self._lock = threading.Lock()
        self.db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA busy_timeout = 60000")
        self._retry(lambda: self.db.execute("PRAGMA journal_mode = WAL"))
        self.db.execute("PRAGMA synchronous = NORMAL")
        self._retry(lambda: self.db.executescript(_SCHEMA))
        self._migrate()

    @classmethod
    def for_root(cls, root: str | Path = ".flowc") -> ScheduleStore:
        return cls(Path(root) / "metadata.db")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> ScheduleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], Any]) -> Any:
        for i in range(50):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or i == 49:
                    raise
                time.sleep(0.05 * (i + 1))
        return None  # pragma: no cover

    def _migrate(self) -> None:
        for table, column, decl in _MIGRATIONS:
            cols = {
                r[1]
                for r in self._retry(
                    functools.partial(self.db.execute, f"PRAGMA table_info({table})")
                ).fetchall()
            }
            if column not in cols:
                with contextlib.suppress(sqlite3.OperationalError):  # another process did it
                    self._tx(
                        operator.methodcaller(
                            "execute", f"ALTER TABLE {table} ADD COLUMN {column} {decl}"
                        )
                    )

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in one IMMEDIATE transaction (serialised against other writers)."""

        def go() -> Any:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return out

        with self._lock:
            return self._retry(go)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._retry(lambda: self.db.execute(sql, args))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def notify(self) -> None:
        """Wake the workers on this store (they re-read schedules and jobs)."""
        notify_workers(self.wake_dir)

    @staticmethod
    def _entry(row: Mapping[str, Any]) -> Entry:
        return Entry(
            name=row["name"],
            flow=row["flow"],
            source=row["source"],
            schedule=json.loads(row["schedule"]),
            plan=json.loads(row["plan"]),
            params=json.loads(row["params"]),
            anchor=datetime.fromisoformat(row["anchor"]),
            next_fire=_parse(row["next_fire"]),
            last_fire=_parse(row["last_fire"]),
            registered=datetime.fromisoformat(row["registered"]),
            paused=bool(row.get("paused")),
            options=Options.from_data(json.loads(row.get("options") or "{}")),
        )

    # -- schedules ------------------------------------------------------------------------------

    def register(
        self,
        plan: Mapping[str, Any],
        *,
        now: datetime,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        source: str | None = None,
        options: Options | Mapping[str, Any] | None = None,
    ) -> Entry:
        """Register (or update) the plan's schedule under ``name`` (default: the flow name).

        Re-registering with the same schedule keeps the persisted next fire time (so missed
        slots are still caught up) and the paused state; a changed schedule starts afresh from
        ``now``. ``options`` (max_instances, misfire_grace_time, coalesce) are stored as given.
        """
        schedule = plan.get("schedule")
        if not schedule:
            raise ScheduleError(f"flow '{plan.get('name')}' has no schedule")
        opts = options if isinstance(options, Options) else Options.from_data(options)
        now = now.replace(microsecond=0)  # intervals anchored here fall on whole seconds
        name = name or str(plan["name"])
        sched_text = json.dumps(schedule, sort_keys=True)
        plan_text = json.dumps(plan, sort_keys=True)
        params_text = json.dumps(dict(params or {}), sort_keys=True)
        opts_text = json.dumps(opts.to_data(), sort_keys=True)
        first = first_slot(schedule, now)  # validates timezone / cron before writing

        def tx(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT schedule, anchor, next_fire, registered FROM schedules WHERE name = ?",
                (name,),
            ).fetchone()
            if row is not None and row[0] == sched_text:
                db.execute(
                    "UPDATE schedules SET flow = ?, source = ?, plan = ?, params = ?, updated = ?, "
                    "options = ? WHERE name = ?",
                    (str(plan["name"]), source, plan_text, params_text, _iso(now), opts_text, name),
                )
                return
            db.execute(
                "INSERT OR REPLACE INTO schedules (name, flow, source, schedule, plan, params, "
                "anchor, next_fire, last_fire, registered, updated, paused, options) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, 0, ?)",
                (
                    name,
                    str(plan["name"]),
                    source,
                    sched_text,
                    plan_text,
                    params_text,
                    _iso(now),
                    _iso(first),
                    _iso(now),
                    _iso(now),
                    opts_text,
                ),
            )

        self._tx(tx)
        self.notify()
        entry = self.get(name)
        assert entry is not None
        return entry

    def get(self, name: str) -> Entry | None:
        rows = self._rows("SELECT * FROM schedules WHERE name = ?", (name,))
        return self._entry(rows[0]) if rows else None

    def list(self) -> list[Entry]:
        return [self._entry(r) for r in self._rows("SELECT * FROM schedules ORDER BY name")]

    def remove(self, name: str) -> bool:
        def tx(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM schedules WHERE name = ?", (name,))
            return cur.rowcount > 0

        done = bool(self._tx(tx))
        if done:
            self.notify()
        return done

    def pause(self, name: str) -> bool:
        """Stop firing ``name`` until :meth:`resume`. False when there is no such schedule."""
        done = bool(
            self._tx(
                lambda db: db.execute(
                    "UPDATE schedules SET paused = 1 WHERE name = ?", (name,)
                ).rowcount
            )
        )
        if done:
            self.notify()
        return done

    def resume(self, name: str, *, now: datetime) -> bool:
        """Fire ``name`` again. As APScheduler's ``resume_job``, the next fire time is computed
        afresh from ``now``: slots that fell in the pause are not run."""
        entry = self.get(name)
        if entry is None:
            return False
        if not entry.paused:
            return True
        nxt = next_slot(entry.schedule, entry.anchor, now - timedelta(microseconds=1))
        if entry.next_fire is not None and entry.next_fire > now:
            nxt = entry.next_fire  # nothing was due during the pause
        if entry.next_fire is None:
            nxt = None  # a finished schedule stays finished
        self._tx(
            lambda db: db.execute(
                "UPDATE schedules SET paused = 0, next_fire = ? WHERE name = ?",
                (_iso(nxt), name),
            )
        )
        self.notify()
        return True

    def fires(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            return self._rows("SELECT * FROM schedule_fires ORDER BY name, slot")
        return self._rows("SELECT * FROM schedule_fires WHERE name = ? ORDER BY slot", (name,))

    # -- the worker's side ---------------------------------------------------------------------

    def claim_batch(
        self,
        name: str,
        expected: datetime,
        runs: builtins.list[tuple[datetime, int]],
        next_fire: datetime | None,
        owner: str,
        *,
        now: datetime,
        not_run: tuple[datetime, str, int, str] | None = None,
    ) -> list[datetime] | None:
        """Atomically take the due slots of ``name``: only when the persisted next fire time is
        still ``expected`` and no slot was fired before. ``runs`` are ``(slot, skipped)`` rows
        recorded ``claimed`` (run id set); ``not_run`` is ``(slot, status, skipped, reason)``,
        one row standing for slots that will not run (``skipped``/``missed``). Advances the next
        fire time to ``next_fire``. Returns the slots taken (those never fired before), or None
        when another worker took them first."""
        last = max([s for s, _ in runs] + ([not_run[0]] if not_run else []))

        def tx(db: sqlite3.Connection) -> list[datetime] | None:
            cur = db.execute(
                "UPDATE schedules SET next_fire = ?, last_fire = ? "
                "WHERE name = ? AND next_fire = ? AND paused = 0",
                (_iso(next_fire), _iso(last), name, _iso(expected)),
            )
            if cur.rowcount != 1:
                return None
            taken = []
            for slot, skipped in runs:
                # a slot fired before (a schedule re-registered with an older next fire time)
                # does not fire again
                if db.execute(
                    "SELECT 1 FROM schedule_fires WHERE name = ? AND slot = ?", (name, _iso(slot))
                ).fetchone():
                    continue
                db.execute(
                    "INSERT INTO schedule_fires (name, slot, run_id, status, owner, claimed, "
                    "skipped) VALUES (?, ?, ?, 'claimed', ?, ?, ?)",
                    (name, _iso(slot), run_id_for(name, slot), owner, _iso(now), skipped),
                )
                taken.append(slot)
            if not_run is not None:
                slot, status, skipped, reason = not_run
                db.execute(
                    "INSERT OR IGNORE INTO schedule_fires (name, slot, run_id, status, owner, "
                    "claimed, ended, error, skipped) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                    (name, _iso(slot), status, owner, _iso(now), time.time(), reason, skipped),
                )
            return taken

        return self._tx(tx)

    def claim(
        self,
        name: str,
        expected: datetime,
        slot: datetime,
        next_fire: datetime | None,
        owner: str,
        *,
        skipped: int = 0,
        now: datetime,
        run_id: str | None = None,
    ) -> bool:
        """Take one ``slot`` of ``name`` (see :meth:`claim_batch`); with ``run_id`` the fire is
        recorded as ``running`` at once."""
        ok = bool(self.claim_batch(name, expected, [(slot, skipped)], next_fire, owner, now=now))
        if ok and run_id is not None:
            self.fire_started(name, slot, run_id)
        return ok

    def fire_started(self, name: str, slot: datetime, run_id: str) -> None:
        self._tx(
            lambda db: db.execute(
                "UPDATE schedule_fires SET status = 'running', run_id = ?, started = ? "
                "WHERE name = ? AND slot = ?",
                (run_id, time.time(), name, _iso(slot)),
            )
        )

    def fire_ended(self, name: str, slot: datetime, status: str, error: str | None) -> None:
        self._tx(
            lambda db: db.execute(
                "UPDATE schedule_fires SET status = ?, ended = ?, error = ? "
                "WHERE name = ? AND slot = ?",
                (status, time.time(), error, name, _iso(slot)),
            )
        )

    def recover(self, is_alive: Callable[[str], bool]) -> int:
        """Mark fires and jobs left ``claimed``/``running`` by a dead worker as ``interrupted``
        (they are not re-run: a slot fires at most once). Returns how many."""
        fires = self._rows(
            "SELECT name, slot, owner FROM schedule_fires WHERE status IN ('claimed', 'running')"
        )
        jobs = self._rows("SELECT id, owner FROM jobs WHERE status IN ('claimed', 'running')")
        dead = [(r["name"], r["slot"]) for r in fires if not is_alive(r["owner"] or "")]
        dead_jobs = [r["id"] for r in jobs if not is_alive(r["owner"] or "")]

        def tx(db: sqlite3.Connection) -> None:
            for name, slot in dead:
                db.execute(
                    "UPDATE schedule_fires SET status = 'interrupted', ended = ? "
                    "WHERE name = ? AND slot = ? AND status IN ('claimed', 'running')",
                    (time.time(), name, slot),
                )
            for job_id in dead_jobs:
                db.execute(
                    "UPDATE jobs SET status = 'interrupted', ended = ?, "
                    "error = 'its worker stopped during the run' "
                    "WHERE id = ? AND status IN ('claimed', 'running')",
                    (time.time(), job_id),
                )

        if dead or dead_jobs:
            self._tx(tx)
        return len(dead) + len(dead_jobs)

    # -- jobs (FlowerPower's add-job / run-job) --------------------------------------------------

    @staticmethod
    def _job(row: Mapping[str, Any]) -> Job:
        return Job(
            id=row["id"],
            flow=row["flow"],
            source=row["source"],
            plan=json.loads(row["plan"]),
            params=json.loads(row["params"]),
            status=row["status"],
            created=datetime.fromisoformat(row["created"]),
            run_id=row["run_id"],
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            owner=row["owner"],
            started=row["started"],
            ended=row["ended"],
        )

    def add_job(
        self,
        plan: Mapping[str, Any],
        *,
        now: datetime,
        params: Mapping[str, Any] | None = None,
        source: str | None = None,
        owner: str | None = None,
    ) -> Job:
        """Queue one run of ``plan``; a worker runs it and stores its result. With ``owner`` the
        job is claimed for that owner at once (``flowc jobs run`` runs it in its own process)."""
        job_id = uuid.uuid4().hex[:12]
        status = "queued" if owner is None else "claimed"
        self._tx(
            lambda db: db.execute(
                "INSERT INTO jobs (id, flow, source, plan, params, status, owner, created, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    str(plan["name"]),
                    source,
                    json.dumps(plan, sort_keys=True),
                    json.dumps(dict(params or {}), sort_keys=True),
                    status,
                    owner,
                    _iso(now),
                    f"{plan['name']}-job-{job_id}",
                ),
            )
        )
        if owner is None:
            self.notify()
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def jobs(self) -> list[Job]:
        return [self._job(r) for r in self._rows("SELECT * FROM jobs ORDER BY created, id")]

    def claim_jobs(self, owner: str, limit: int) -> builtins.list[Job]:
        """Take up to ``limit`` queued jobs, oldest first, for ``owner``."""
        if limit <= 0:
            return []

        def tx(db: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created, id LIMIT ?",
                    (limit,),
                ).fetchall()
            ]
            for job_id in ids:
                db.execute(
                    "UPDATE jobs SET status = 'claimed', owner = ? WHERE id = ?", (owner, job_id)
                )
            return ids

        return [j for j in (self.job(i) for i in self._tx(tx)) if j is not None]

    def job_started(self, job_id: str) -> None:
        self._tx(
            lambda db: db.execute(
                "UPDATE jobs SET status = 'running', started = ? WHERE id = ?",
                (time.time(), job_id),
            )
        )

    def job_ended(self, job_id: str, status: str, error: str | None, result: Any) -> None:
        self._tx(
            lambda db: db.execute(
                "UPDATE jobs SET status = ?, ended = ?, error = ?, result = ? WHERE id = ?",
                (status, time.time(), error, _json_text(result), job_id),
            )
        )


def _json_text(value: Any) -> str | None:
    """A result as JSON; values JSON cannot hold (frames, objects) become ``"<TypeName>"``."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=lambda v: f"<{type(v).__name__}>")


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------

Runner = Callable[[Entry, datetime, str], tuple[str, str | None]]
"""``runner(entry, slot, run_id) -> (status, error)``: run the flow for one slot."""

JobRunner = Callable[[Job], tuple[str, str | None, Any]]
"""``job_runner(job) -> (status, error, result)``: run a one-off job (run id ``job.run_id``)."""


def owner_id() -> str:
    """``host:pid:random``: who claimed a slot."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """Whether the worker that wrote ``owner`` may still be running (other hosts: assume so)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_id_for(name: str, slot: datetime) -> str:
    """A run id that names the schedule and slot (UTC): ``nightly-sched-20260329T010000Z``."""
    return f"{name}-sched-{slot.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def _outputs(result: Any) -> dict[str, Any]:
    return {
        "run_id": getattr(result, "run_id", None),
        "status": getattr(result, "status", None),
        "outputs": getattr(result, "outputs", {}),
    }


def _error_text(error: Any) -> str | None:
    """A run's first error as ``flowc run`` prints it (step, attempt, exception, log path)."""
    if error is None:
        return None
    render = getattr(error, "render", None)
    return str(render() if callable(render) else error)


def plan_runner(root: str | Path = ".flowc") -> Runner:
    """The default runner: ``flowc.runtime.executor.run_plan`` with the run recorded in the
    metadata store exactly like ``flowc run`` (logical date = the slot)."""

    def run(entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        from flowc.runtime.executor import run_plan  # lazy: the executor is big

        result = run_plan(
            entry.plan,
            dict(entry.params) or None,
            root=str(root),
            run_id=run_id,
            run_date=slot.astimezone(UTC).isoformat(),
        )
        status = str(getattr(result, "status", "succeeded"))
        return status, _error_text(getattr(result, "error", None))

    return run


def plan_job_runner(root: str | Path = ".flowc") -> JobRunner:
    """Runs a job's plan like ``flowc run``; its result is ``{run_id, status, outputs}`` (every
    step's outputs; values JSON cannot hold are stored as ``"<TypeName>"``)."""

    def run(job: Job) -> tuple[str, str | None, Any]:
        from flowc.runtime.executor import run_plan  # lazy: the executor is big

        result = run_plan(job.plan, dict(job.params) or None, root=str(root), run_id=job.run_id)
        status = str(getattr(result, "status", "succeeded"))
        return status, _error_text(getattr(result, "error", None)), _outputs(result)

    return run


def run_job_here(store: ScheduleStore, job: Job, runner: JobRunner) -> Job:
    """Run a claimed job in this process (``flowc jobs run``) and store its result."""
    store.job_started(job.id)
    try:
        status, error, result = runner(job)
    except Exception as e:  # a broken flow is a failed job, not a crash
        status, error, result = "failed", f"{type(e).__name__}: {e}", None
    store.job_ended(job.id, status, error, result)
    done = store.job(job.id)
    assert done is not None
    return done


@dataclass
class _Plan:
    """What one dispatch does with a schedule's due slots."""

    runs: list[tuple[datetime, int]] = field(default_factory=list)  # (slot, skipped before it)
    not_run: tuple[datetime, str, int, str] | None = None  # (slot, status, count, reason)
    next_fire: datetime | None = None


class Worker:
    """Runs due slots of every registered schedule, and queued jobs, in a thread pool of
    ``max_workers`` threads: schedules do not wait for each other. Wakes up at the next slot,
    when a run ends, and when the store changes (:func:`notify_workers`); ``poll`` is only a
    safety net."""

    def __init__(
        self,
        store: ScheduleStore,
        runner: Runner,
        clock: Clock | None = None,
        *,
        owner: str | None = None,
        log: Callable[[str], None] | None = None,
        poll: float = 30.0,
        max_workers: int = DEFAULT_MAX_WORKERS,
        job_runner: JobRunner | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.store = store
        self.runner = runner
        self.job_runner = job_runner
        self.clock = clock or SystemClock()
        self.owner = owner or owner_id()
        self.log = log or (lambda msg: None)
        self.poll = poll
        self.max_workers = max_workers
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._instances: dict[str, int] = {}  # schedule -> batches submitted and not finished
        self._in_flight = 0  # batches and jobs submitted and not finished
        self._pool: ThreadPoolExecutor | None = None
        self._fired = 0  # runs started (slots and jobs)

    # -- state ----------------------------------------------------------------------------------

    def busy(self) -> int:
        """Pool threads that are running something now (submitted work, at most the pool)."""
        with self._lock:
            return min(self._in_flight, self.max_workers)

    def in_flight(self) -> int:
        """Batches and jobs submitted and not finished (running or waiting for a thread)."""
        with self._lock:
            return self._in_flight

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="flowc-run")
        with self._lock:
            self._in_flight += 1
        try:
            return self._pool.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._in_flight -= 1
            raise

    def _finished(self, name: str | None) -> None:
        """A batch or job ended: free its instance, wake the loop, then leave the pool count
        (in that order, so a clock waiting for idleness sees the loop busy first)."""
        if name is not None:
            with self._lock:
                self._instances[name] -= 1
        self.wake.set()
        with self._lock:
            self._in_flight -= 1

    # -- what is due ----------------------------------------------------------------------------

    def _plan(self, entry: Entry, now: datetime) -> _Plan:
        """The due slots of ``entry`` (its next fire time is at or before ``now``) and what to
        do with each: coalesce, drop misfired ones, or skip all when at ``max_instances``."""
        assert entry.next_fire is not None
        opts = entry.options
        coalesce = opts.coalescing(entry.schedule)
        slot: datetime | None = entry.next_fire
        due: list[datetime] = []
        jumped = 0
        if coalesce and entry.schedule.get("kind") == "every":
            # long downtimes: straight to the last interval slot at or before now
            step = float(entry.schedule["every_seconds"])
            k = int((now - entry.next_fire).total_seconds() // step) - 1
            tz = _zone(str(entry.schedule.get("timezone") or "UTC"))
            end = _local(entry.schedule.get("end"), tz)
            if end is not None:  # never past the last slot
                k = min(k, int((end - entry.next_fire).total_seconds() // step))
            if k > 0:
                jumped = k
                slot = entry.next_fire + timedelta(seconds=k * step)
        while slot is not None and slot <= now:
            due.append(slot)
            slot = next_slot(entry.schedule, entry.anchor, slot)
            if coalesce and len(due) > 1:
                due.pop(0)
                jumped += 1
        plan = _Plan(next_fire=slot)
        grace = opts.misfire_grace_time
        late = [s for s in due if grace is not None and (now - s).total_seconds() > grace]
        runnable = [s for s in due if s not in late]
        skipped = jumped + len(late)
        with self._lock:
            full = self._instances.get(entry.name, 0) >= opts.max_instances
        if full and runnable:
            reason = f"{opts.max_instances} run(s) of it still going (max_instances)"
            plan.not_run = (runnable[-1], "skipped", skipped + len(runnable) - 1, reason)
        elif runnable:
            plan.runs = [(runnable[0], skipped)] + [(s, 0) for s in runnable[1:]]
        elif due:
            reason = f"more than {grace:g}s late (misfire_grace_time)"
            plan.not_run = (due[-1], "missed", skipped - 1, reason)
        return plan

    def dispatch(self) -> list[Future]:
        """Claim everything due now and hand it to the pool; returns the futures (each gives a
        list of :class:`Fire`, or a :class:`Job`)."""
        now = self.clock.now()
        futures: list[Future] = []
        for entry in self.store.list():
            if self.stop_event.is_set():
                break
            if entry.paused or entry.next_fire is None or entry.next_fire > now:
                continue
            try:
                plan = self._plan(entry, now)
            except ScheduleError as e:  # e.g. a zone missing on this machine: skip, keep going
                self.log(f"{entry.name}: cannot compute its next slot: {e}")
                continue
            taken = self.store.claim_batch(
                entry.name,
                entry.next_fire,
                plan.runs,
                plan.next_fire,
                self.owner,
                now=now,
                not_run=plan.not_run,
            )
            if taken is None:
                continue  # another worker took these slots
            if plan.not_run is not None:
                slot, status, count, reason = plan.not_run
                self.log(f"{entry.name}: slot {slot.isoformat()} {status}: {reason}")
            runs = [(s, k) for s, k in plan.runs if s in taken]
            if runs:
                with self._lock:
                    self._instances[entry.name] = self._instances.get(entry.name, 0) + 1
                futures.append(self._submit(self._run_batch, entry, runs))
        if self.job_runner is not None and not self.stop_event.is_set():
            free = self.max_workers - self.in_flight()
            for job in self.store.claim_jobs(self.owner, free):
                futures.append(self._submit(self._run_job, job))
        return futures

    # -- running --------------------------------------------------------------------------------

    def _run_batch(self, entry: Entry, runs: list[tuple[datetime, int]]) -> list[Fire]:
        fires: list[Fire] = []
        grace = entry.options.misfire_grace_time
        try:
            for i, (slot, skipped) in enumerate(runs):
                run_id = run_id_for(entry.name, slot)
                if i and self.stop_event.is_set():
                    self.store.fire_ended(entry.name, slot, "cancelled", "the worker stopped")
                    fires.append(Fire(entry.name, slot, run_id, "cancelled", skipped))
                    continue
                late = (self.clock.now() - slot).total_seconds()
                if grace is not None and late > grace:
                    why = f"started {late:g}s late (misfire_grace_time {grace:g}s)"
                    self.store.fire_ended(entry.name, slot, "missed", why)
                    self.log(f"{entry.name}: slot {slot.isoformat()} missed: {why}")
                    fires.append(Fire(entry.name, slot, None, "missed", skipped, why))
                    continue
                fires.append(self._run(entry, slot, run_id, skipped))
        finally:
            self._finished(entry.name)
        return fires

    def _run(self, entry: Entry, slot: datetime, run_id: str, skipped: int) -> Fire:
        if skipped:
            self.log(f"{entry.name}: {skipped} earlier slot(s) not run (coalesce/misfire)")
        self.log(f"{entry.name}: slot {slot.isoformat()} -> run {run_id}")
        self.store.fire_started(entry.name, slot, run_id)
        with self._lock:
            self._fired += 1
        try:
            status, error = self.runner(entry, slot, run_id)
        except Exception as e:  # a broken flow must not stop the worker
            status, error = "failed", f"{type(e).__name__}: {e}"
        self.store.fire_ended(entry.name, slot, status, error)
        self.log(f"{entry.name}: run {run_id} {status}" + (f": {error}" if error else ""))
        return Fire(entry.name, slot, run_id, status, skipped, error)

    def _run_job(self, job: Job) -> Job:
        assert self.job_runner is not None
        try:
            self.log(f"job {job.id} ({job.flow}) -> run {job.run_id}")
            with self._lock:
                self._fired += 1
            done = run_job_here(self.store, job, self.job_runner)
            self.log(f"job {job.id} {done.status}" + (f": {done.error}" if done.error else ""))
            return done
        finally:
            self._finished(None)

    # -- loops ----------------------------------------------------------------------------------

    def tick(self) -> list[Fire]:
        """Fire everything due now and wait for those runs; return what was fired."""
        fired: list[Fire] = []
        for fut in self.dispatch():
            out = fut.result()
            if isinstance(out, list):
                fired.extend(out)
        return fired

    def seconds_until_next(self) -> float:
        now = self.clock.now()
        pending = [
            e.next_fire for e in self.store.list() if e.next_fire is not None and not e.paused
        ]
        if not pending:
            return self.poll
        return max(0.0, min(self.poll, (min(pending) - now).total_seconds()))

    def run_forever(self, *, until: datetime | None = None, max_ticks: int | None = None) -> int:
        """Dispatch, wait until the next slot, a finished run, a change of the store or
        :meth:`stop`, and repeat; until :meth:`stop` (SIGTERM), ``until`` or ``max_ticks``.
        Waits for the runs in progress before returning. Returns the runs fired (jobs
        included)."""
        ticks = 0
        futures: list[Future] = []
        self.store.recover(owner_alive)
        listener = _Listener(self.store.wake_dir, self.wake)
        poll = self.poll if listener.fifo is not None else min(self.poll, 1.0)
        try:
            while not self.stop_event.is_set():
                self.wake.clear()
                futures = [f for f in futures if not f.done()] + self.dispatch()
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    break
                if until is not None and self.clock.now() >= until:
                    break
                if getattr(self.clock, "settle", False):
                    for fut in futures:  # runs take no time on this clock
                        fut.result()
                wait = max(min(self.seconds_until_next(), poll), 0.05)  # never spin
                if until is not None:
                    wait = min(wait, max(0.0, (until - self.clock.now()).total_seconds()))
                self.clock.sleep(wait, self.wake)
        finally:
            listener.close()
            for fut in futures:
                with contextlib.suppress(Exception):
                    fut.result()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        return self._fired

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
