"""The local scheduler (FlowerPower's APScheduler part): registered schedules and the worker.

``flowc schedule FLOW`` stores the compiled plan and its ``schedule`` (cron / every / at,
timezone, start/end, catchup) in the metadata store (``<root>/metadata.db``, tables
``schedules`` and ``schedule_fires``); ``flowc worker`` runs what is due. Stdlib only, except
croniter (a base dependency of flowc) imported lazily for ``cron`` schedules.

Rules (docs/scheduler.md):

* the *next fire time* of every schedule is persisted; a worker never recomputes it from "now",
  so a restart neither loses nor repeats a slot;
* a slot is *claimed* (compare-and-swap on the persisted next fire time, plus a unique
  ``(schedule, slot)`` row) before its run starts: two workers, or a worker restarted while a
  run was going, never fire a slot twice (at-most-once; an interrupted run is marked
  ``interrupted``, not re-run);
* after a downtime, ``catchup: true`` runs every missed slot in order; ``catchup: false`` runs
  only the most recent one and skips the rest;
* cron slots are computed in the schedule's timezone (croniter); ``every`` slots are anchored at
  ``start`` (or the registration time) and are real-time intervals; ``at`` fires once;
* ``start``/``end`` (naive local times in the timezone) bound the slots, ``end`` inclusive.

Time comes from an injectable :class:`Clock`, so tests drive hours of schedule without sleeping.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "Clock",
    "Entry",
    "Fire",
    "ManualClock",
    "ScheduleError",
    "ScheduleStore",
    "SystemClock",
    "Worker",
    "first_slot",
    "next_slot",
]


class ScheduleError(Exception):
    """A schedule cannot be registered or computed (bad timezone, bad cron, ...)."""


# --------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait up to ``seconds``, returning early when ``stop`` is set."""
        ...


class SystemClock:
    """Wall-clock time; sleeping waits on the stop event (so SIGTERM ends it at once)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told (tests, simulations): ``sleep`` advances it."""

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

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        if not stop.is_set():
            self.advance(max(0.0, seconds))


# --------------------------------------------------------------------------------------------
# Slot arithmetic
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


def _is_repeated_wall_time(dt: datetime, tz: tzinfo) -> bool:
    """True for the second occurrence of an ambiguous local time (the hour repeated when DST
    ends)."""
    local = dt.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _cron_next(expr: str, after: datetime, tz: tzinfo) -> datetime:
    """The first cron slot strictly after ``after``, computed on local wall time (croniter).

    Daylight saving follows cron (Vixie) practice: a time skipped when clocks go forward fires at
    the first valid time after it (croniter's behaviour); a fixed-hour job whose time occurs
    twice when clocks go back fires once; a job with a wildcard hour (``*/30 * * * *``) follows
    real time and fires in both occurrences of the repeated hour.
    """
    from croniter import croniter  # lazy: only cron schedules need it

    fields = expr.split()
    fixed_hour = len(fields) >= 2 and not fields[1].startswith("*")
    key = (expr, str(tz))
    with _CRON_LOCK:  # walking slot after slot (a catch-up) reuses the iterator
        cached = _CRON_ITERS.pop(key, None)
    if cached is not None and cached[1] == after:
        it = cached[0]
    else:
        it = croniter(expr, after.astimezone(tz))
    for _ in range(10_000):
        nxt = it.get_next(datetime)
        if nxt.tzinfo is None:  # pragma: no cover - croniter keeps the zone of its start
            nxt = nxt.replace(tzinfo=tz)
        nxt = nxt.astimezone(UTC)
        if nxt <= after:
            continue
        if fixed_hour and _is_repeated_wall_time(nxt, tz):
            continue
        with _CRON_LOCK:
            _CRON_ITERS[key] = (it, nxt)
            while len(_CRON_ITERS) > 64:
                _CRON_ITERS.pop(next(iter(_CRON_ITERS)))
        return nxt
    raise ScheduleError(f"cron {expr!r} produced no slot after {after.isoformat()}")


_CRON_ITERS: dict[tuple[str, str], tuple[Any, datetime]] = {}
_CRON_LOCK = threading.Lock()


def next_slot(schedule: Mapping[str, Any], anchor: datetime, after: datetime) -> datetime | None:
    """The first slot strictly after ``after`` that lies within ``start``..``end`` (None when
    there is none). ``anchor`` is the origin of ``every`` intervals when there is no ``start``."""
    tz = _zone(str(schedule.get("timezone") or "UTC"))
    start = _local(schedule.get("start"), tz)
    end = _local(schedule.get("end"), tz)
    if start is not None and after < start:
        after = start - timedelta(microseconds=1)  # start itself is a valid slot
    kind = schedule.get("kind")
    if kind == "cron":
        slot: datetime | None = _cron_next(str(schedule["cron"]), after, tz)
    elif kind == "every":
        step = float(schedule["every_seconds"])
        if step <= 0:
            raise ScheduleError("'every' must be a positive duration")
        origin = start or anchor
        if after < origin:
            slot = origin
        else:
            k = math.floor((after - origin).total_seconds() / step) + 1
            slot = origin + timedelta(seconds=k * step)
            while slot <= after:  # float rounding
                k += 1
                slot = origin + timedelta(seconds=k * step)
    elif kind == "at":
        at = _local(schedule.get("at"), tz)
        slot = at if at is not None and at > after else None
    else:
        raise ScheduleError(f"unknown schedule kind {kind!r}")
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
            return next_slot(schedule, now, datetime.min.replace(tzinfo=UTC))
    return next_slot(schedule, now, just_before)


# --------------------------------------------------------------------------------------------
# The store (tables in the metadata database)
# --------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, flow TEXT NOT NULL, source TEXT, schedule TEXT NOT NULL,
    plan TEXT NOT NULL, params TEXT NOT NULL, anchor TEXT NOT NULL, next_fire TEXT,
    last_fire TEXT, registered TEXT NOT NULL, updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    name TEXT NOT NULL, slot TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL, owner TEXT,
    claimed TEXT, started REAL, ended REAL, error TEXT, skipped INTEGER DEFAULT 0,
    PRIMARY KEY (name, slot)
);
"""


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


@dataclass(frozen=True)
class Fire:
    """One fired slot: the schedule, the slot, the run and how it ended."""

    name: str
    slot: datetime
    run_id: str | None
    status: str
    skipped: int = 0  # slots skipped before this one (catchup: false)
    error: str | None = None


class ScheduleStore:
    """Registered schedules and their fires in SQLite (WAL, busy timeout): safe for several
    workers and CLI processes at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA busy_timeout = 60000")
        self._retry(lambda: self.db.execute("PRAGMA journal_mode = WAL"))
        self.db.execute("PRAGMA synchronous = NORMAL")
        self._retry(lambda: self.db.executescript(_SCHEMA))

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
    ) -> Entry:
        """Register (or update) the plan's schedule under ``name`` (default: the flow name).

        Re-registering with the same schedule keeps the persisted next fire time (so missed
        slots are still caught up); a changed schedule starts afresh from ``now``.
        """
        schedule = plan.get("schedule")
        if not schedule:
            raise ScheduleError(f"flow '{plan.get('name')}' has no schedule")
        now = now.replace(microsecond=0)  # intervals anchored here fall on whole seconds
        name = name or str(plan["name"])
        sched_text = json.dumps(schedule, sort_keys=True)
        plan_text = json.dumps(plan, sort_keys=True)
        params_text = json.dumps(dict(params or {}), sort_keys=True)
        first = first_slot(schedule, now)  # validates timezone / cron before writing

        def tx(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT schedule, anchor, next_fire, registered FROM schedules WHERE name = ?",
                (name,),
            ).fetchone()
            if row is not None and row[0] == sched_text:
                db.execute(
                    "UPDATE schedules SET flow = ?, source = ?, plan = ?, params = ?, updated = ? "
                    "WHERE name = ?",
                    (str(plan["name"]), source, plan_text, params_text, _iso(now), name),
                )
                return
            db.execute(
                "INSERT OR REPLACE INTO schedules (name, flow, source, schedule, plan, params, "
                "anchor, next_fire, last_fire, registered, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
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
                ),
            )

        self._tx(tx)
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

        return bool(self._tx(tx))

    def fires(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is None:
            return self._rows("SELECT * FROM schedule_fires ORDER BY name, slot")
        return self._rows("SELECT * FROM schedule_fires WHERE name = ? ORDER BY slot", (name,))

    # -- the worker's side ---------------------------------------------------------------------

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
        """Atomically take ``slot`` of ``name``: only when the persisted next fire time is still
        ``expected`` (``slot`` itself, or an earlier missed slot when ``catchup: false`` jumps to
        the latest) and ``slot`` was never fired. Advances the next fire time to ``next_fire``.
        With ``run_id`` the fire is recorded as ``running`` that run at once."""

        def tx(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE schedules SET next_fire = ?, last_fire = ? "
                "WHERE name = ? AND next_fire = ?",
                (_iso(next_fire), _iso(slot), name, _iso(expected)),
            )
            if cur.rowcount != 1:
                return False
            try:
                db.execute(
                    "INSERT INTO schedule_fires (name, slot, run_id, status, owner, claimed, "
                    "started, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        _iso(slot),
                        run_id,
                        "claimed" if run_id is None else "running",
                        owner,
                        _iso(now),
                        None if run_id is None else time.time(),
                        skipped,
                    ),
                )
            except sqlite3.IntegrityError:
                # fired before (a schedule re-registered with an older next fire): keep the
                # advanced next fire time, do not fire again
                return False
            return True

        return bool(self._tx(tx))

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
        """Mark fires left ``claimed``/``running`` by a dead worker as ``interrupted`` (they are
        not re-run: a slot fires at most once). Returns how many."""
        rows = self._rows(
            "SELECT name, slot, owner FROM schedule_fires WHERE status IN ('claimed', 'running')"
        )
        dead = [(r["name"], r["slot"]) for r in rows if not is_alive(r["owner"] or "")]

        def tx(db: sqlite3.Connection) -> None:
            for name, slot in dead:
                db.execute(
                    "UPDATE schedule_fires SET status = 'interrupted', ended = ? "
                    "WHERE name = ? AND slot = ? AND status IN ('claimed', 'running')",
                    (time.time(), name, slot),
                )

        if dead:
            self._tx(tx)
        return len(dead)


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------

Runner = Callable[[Entry, datetime, str], tuple[str, str | None]]
"""``runner(entry, slot, run_id) -> (status, error)``: run the flow for one slot."""


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
        error = getattr(result, "error", None)
        return status, None if error is None else str(error)

    return run


class Worker:
    """Runs due slots of every registered schedule, one run at a time, in slot order."""

    def __init__(
        self,
        store: ScheduleStore,
        runner: Runner,
        clock: Clock | None = None,
        *,
        owner: str | None = None,
        log: Callable[[str], None] | None = None,
        poll: float = 30.0,
    ) -> None:
        self.store = store
        self.runner = runner
        self.clock = clock or SystemClock()
        self.owner = owner or owner_id()
        self.log = log or (lambda msg: None)
        self.poll = poll
        self.stop_event = threading.Event()

    def due(self) -> Iterator[tuple[Entry, datetime, datetime | None, int]]:
        """``(entry, slot, following slot, skipped)`` for every schedule with a slot due now;
        with ``catchup: false`` the slot is the most recent due one."""
        now = self.clock.now()
        for entry in self.store.list():
            slot = entry.next_fire
            if slot is None or slot > now:
                continue
            try:
                nxt = next_slot(entry.schedule, entry.anchor, slot)
            except ScheduleError as e:  # e.g. a zone missing on this machine: skip, keep going
                self.log(f"{entry.name}: cannot compute its next slot: {e}")
                continue
            skipped = 0
            if not entry.schedule.get("catchup"):
                if entry.schedule.get("kind") == "every" and nxt is not None and nxt <= now:
                    # jump straight to the last interval slot before now (long downtimes)
                    step = float(entry.schedule["every_seconds"])
                    k = max(0, int((now - nxt).total_seconds() // step) - 1)
                    if k:
                        skipped += k
                        jumped = nxt + timedelta(seconds=k * step)
                        slot, nxt = jumped - timedelta(seconds=step), jumped
                while nxt is not None and nxt <= now:
                    skipped += 1
                    slot, nxt = nxt, next_slot(entry.schedule, entry.anchor, nxt)
            yield entry, slot, nxt, skipped

    def tick(self) -> list[Fire]:
        """Fire everything due now (catching up slot by slot); return what was fired."""
        fired: list[Fire] = []
        while not self.stop_event.is_set():
            progressed = False
            for entry, slot, nxt, skipped in list(self.due()):
                if self.stop_event.is_set():
                    break
                assert entry.next_fire is not None
                # fired, or not claimed (another worker took it, or it fired before): re-read
                progressed = True
                if self.store.claim(
                    entry.name,
                    entry.next_fire,
                    slot,
                    nxt,
                    self.owner,
                    skipped=skipped,
                    now=self.clock.now(),
                    run_id=run_id_for(entry.name, slot),
                ):
                    fired.append(self._run(entry, slot, skipped))
            if not progressed:
                break
        return fired

    def _run(self, entry: Entry, slot: datetime, skipped: int) -> Fire:
        run_id = run_id_for(entry.name, slot)
        if skipped:
            self.log(f"{entry.name}: skipped {skipped} missed slot(s) (catchup: false)")
        self.log(f"{entry.name}: slot {slot.isoformat()} -> run {run_id}")
        try:
            status, error = self.runner(entry, slot, run_id)
        except Exception as e:  # a broken flow must not stop the worker
            status, error = "failed", f"{type(e).__name__}: {e}"
        self.store.fire_ended(entry.name, slot, status, error)
        self.log(f"{entry.name}: run {run_id} {status}" + (f": {error}" if error else ""))
        return Fire(entry.name, slot, run_id, status, skipped, error)

    def seconds_until_next(self) -> float:
        now = self.clock.now()
        pending = [e.next_fire for e in self.store.list() if e.next_fire is not None]
        if not pending:
            return self.poll
        return max(0.0, min(self.poll, (min(pending) - now).total_seconds()))

    def run_forever(self, *, until: datetime | None = None, max_ticks: int | None = None) -> int:
        """Tick, sleep until the next slot (at most ``poll`` seconds, to see new schedules), and
        repeat until :meth:`stop` (SIGTERM), ``until`` or ``max_ticks``. Returns runs fired."""
        n = 0
        ticks = 0
        self.store.recover(owner_alive)
        while not self.stop_event.is_set():
            n += len(self.tick())
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            if until is not None and self.clock.now() >= until:
                break
            wait = max(self.seconds_until_next(), 0.05)  # never spin
            if until is not None:
                wait = min(wait, max(0.0, (until - self.clock.now()).total_seconds()))
            self.clock.sleep(wait, self.stop_event)
        return n

    def stop(self) -> None:
        self.stop_event.set()
