"""The worker's pool and APScheduler's run options, in simulated time (no test sleeps).

:class:`VirtualClock` runs take simulated time concurrently: time moves to the next deadline
only when the worker loop and every running run are waiting on the clock, so these tests are
exact and fast on a loaded machine.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowc.runtime.scheduler import (
    Entry,
    Job,
    ManualClock,
    Options,
    ScheduleError,
    ScheduleStore,
    VirtualClock,
    Worker,
    cron_trigger,
    next_slot,
)

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)  # a Monday


def sec(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def plan(name: str, **schedule: Any) -> dict[str, Any]:
    schedule.setdefault("timezone", "UTC")
    schedule.setdefault("catchup", False)
    return {"name": name, "steps": {}, "order": [], "schedule": schedule}


@pytest.fixture
def store(tmp_path: Path) -> ScheduleStore:
    s = ScheduleStore.for_root(tmp_path / ".flowc")
    yield s
    s.close()


class TimedRunner:
    """Each run of schedule NAME takes ``durations[NAME]`` simulated seconds; records starts."""

    def __init__(self, clock: VirtualClock, durations: dict[str, float]) -> None:
        self.clock = clock
        self.durations = durations
        self.starts: dict[str, list[datetime]] = defaultdict(list)
        self.lock = threading.Lock()

    def __call__(self, entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        with self.lock:
            self.starts[entry.name].append(self.clock.now())
        self.clock.sleep(self.durations[entry.name])
        return "succeeded", None


class Running:
    """A worker's ``run_forever`` in a thread, driven by the virtual clock."""

    def __init__(self, worker: Worker, clock: VirtualClock) -> None:
        self.worker = worker
        self.clock = clock
        self.thread = threading.Thread(target=worker.run_forever, daemon=True)
        self.thread.start()

    def until(self, when: datetime) -> None:
        self.clock.run_until(when, lambda: 1 + self.worker.busy())

    def stop(self) -> None:
        """Stop the loop, let the runs in progress end (in simulated time), join."""
        self.worker.stop()
        self.clock.run_until(self.clock.now() + timedelta(days=1), self.worker.busy)
        self.thread.join(60)
        assert not self.thread.is_alive()


def test_slow_and_fast_schedules_on_one_worker_run_every_slot(store: ScheduleStore) -> None:
    # FlowerPower/APScheduler's case: a 4 s job every 5 s next to a 1 s job every 1 s
    store.register(plan("slow", kind="every", every_seconds=5.0), now=T0)
    store.register(plan("fast", kind="every", every_seconds=1.0), now=T0)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"slow": 4.0, "fast": 1.0})
    running = Running(Worker(store, runner, clock, poll=3600, max_workers=4), clock)
    running.until(sec(19.5))
    running.stop()
    # every slot of both ran, each at its own time: 20 fast, 4 slow, none late
    assert runner.starts["fast"] == [sec(k) for k in range(20)]
    assert runner.starts["slow"] == [sec(k) for k in (0, 5, 10, 15)]
    fires = store.fires()
    assert len(fires) == 24
    assert {f["status"] for f in fires} == {"succeeded"}


def test_one_thread_starves_the_fast_schedule_and_says_so(store: ScheduleStore) -> None:
    # the same two schedules with max_workers=1 (flowc's old worker): the fast one's slots
    # that come due while its queued run waits behind the slow run are skipped, and recorded
    store.register(plan("slow", kind="every", every_seconds=5.0), now=T0)
    store.register(plan("fast", kind="every", every_seconds=1.0), now=T0)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"slow": 4.0, "fast": 1.0})
    running = Running(Worker(store, runner, clock, poll=3600, max_workers=1), clock)
    running.until(sec(9.5))
    running.stop()
    assert len(runner.starts["fast"]) < 10
    skipped = [f for f in store.fires("fast") if f["status"] == "skipped"]
    assert skipped and all("max_instances" in f["error"] for f in skipped)
    assert len(runner.starts["fast"]) + len(skipped) == 10  # every slot accounted for


def test_a_schedule_added_while_the_worker_runs_fires_in_its_first_slot(
    store: ScheduleStore,
) -> None:
    store.register(plan("hourly", kind="every", every_seconds=3600.0), now=T0)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"hourly": 1.0, "late": 1.0})
    # poll an hour: without the wake-up the new schedule would wait for the next hourly slot
    running = Running(Worker(store, runner, clock, poll=3600), clock)
    running.until(sec(3))
    store.register(plan("late", kind="every", every_seconds=5.0), now=clock.now())
    running.until(sec(9))
    running.stop()
    assert runner.starts["late"] == [sec(3), sec(8)]
    assert runner.starts["hourly"] == [T0]


def test_a_schedule_changed_while_the_worker_waits_uses_its_new_times(
    store: ScheduleStore,
) -> None:
    store.register(plan("job", kind="every", every_seconds=600.0), now=T0)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"job": 0.5})
    running = Running(Worker(store, runner, clock, poll=3600), clock)
    running.until(sec(10))
    store.register(plan("job", kind="every", every_seconds=2.0), now=clock.now())
    running.until(sec(15))
    running.stop()
    assert runner.starts["job"] == [T0, sec(10), sec(12), sec(14)]


def test_max_instances_lets_runs_of_one_schedule_overlap(store: ScheduleStore) -> None:
    store.register(
        plan("long", kind="every", every_seconds=1.0), now=T0, options=Options(max_instances=3)
    )
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"long": 2.5})
    running = Running(Worker(store, runner, clock, poll=3600, max_workers=4), clock)
    running.until(sec(5.5))
    running.stop()
    assert runner.starts["long"] == [sec(k) for k in range(6)]  # up to 3 at once


def test_max_instances_one_skips_a_slot_due_while_the_run_goes_on(store: ScheduleStore) -> None:
    store.register(plan("long", kind="every", every_seconds=1.0), now=T0)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"long": 2.5})
    running = Running(Worker(store, runner, clock, poll=3600, max_workers=4), clock)
    running.until(sec(5.5))
    running.stop()
    assert runner.starts["long"] == [sec(0), sec(3)]
    statuses = [(f["slot"][17:19], f["status"]) for f in store.fires("long")]
    assert statuses == [
        ("00", "succeeded"),
        ("01", "skipped"),
        ("02", "skipped"),
        ("03", "succeeded"),
        ("04", "skipped"),
        ("05", "skipped"),
    ]


class Recorder:
    def __init__(self) -> None:
        self.slots: list[datetime] = []

    def __call__(self, entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        self.slots.append(slot)
        return "succeeded", None


def test_misfire_grace_time_drops_slots_started_too_late(store: ScheduleStore) -> None:
    s = plan("hourly", kind="cron", cron="0 * * * *", catchup=True)
    store.register(s, now=T0, options=Options(misfire_grace_time=1800))
    rec = Recorder()
    clock = ManualClock(T0)
    Worker(store, rec, clock).tick()
    clock.set(T0 + timedelta(hours=4, minutes=20))  # down since 12:00; 13..16 missed
    fires = Worker(store, rec, clock).tick()
    # catchup runs every missed slot, but only those less than 30 min late
    assert [(f.slot, f.skipped) for f in fires] == [(T0 + timedelta(hours=4), 3)]
    assert rec.slots == [T0, T0 + timedelta(hours=4)]
    clock.set(T0 + timedelta(hours=5, minutes=45))  # 17:00 is 45 min late: none runs
    assert Worker(store, rec, clock).tick() == []
    last = store.fires("hourly")[-1]
    assert last["status"] == "missed" and "misfire_grace_time" in last["error"]


def test_coalesce_overrides_catchup(store: ScheduleStore) -> None:
    s = plan("hourly", kind="cron", cron="0 * * * *", catchup=True)
    store.register(s, now=T0, options={"coalesce": True})
    rec = Recorder()
    clock = ManualClock(T0 + timedelta(hours=3, minutes=5))
    (fire,) = Worker(store, rec, clock).tick()
    assert (fire.slot, fire.skipped) == (T0 + timedelta(hours=3), 3)


def test_a_long_downtime_coalesces_to_the_last_slot_before_end(store: ScheduleStore) -> None:
    store.register(plan("tick", kind="every", every_seconds=1.0, end="2026-03-02T13:00:00"), now=T0)
    rec = Recorder()
    clock = ManualClock(T0 + timedelta(days=2))
    (fire,) = Worker(store, rec, clock).tick()
    assert (fire.slot, fire.skipped) == (T0 + timedelta(hours=1), 3600)
    assert store.get("tick").next_fire is None


def test_pause_and_resume(store: ScheduleStore) -> None:
    store.register(plan("tick", kind="every", every_seconds=60.0), now=T0)
    rec = Recorder()
    clock = ManualClock(T0)
    w = Worker(store, rec, clock)
    assert len(w.tick()) == 1
    assert store.pause("tick") is True
    clock.advance(600)
    assert w.tick() == []
    assert store.get("tick").paused
    # re-registering the unchanged schedule keeps it paused
    assert store.register(plan("tick", kind="every", every_seconds=60.0), now=clock.now()).paused
    clock.advance(30)
    assert store.resume("tick", now=clock.now()) is True
    # as APScheduler's resume_job: the next slot after now, the paused ones are not run
    assert store.get("tick").next_fire == T0 + timedelta(seconds=660)
    clock.advance(30)
    assert [f.slot for f in w.tick()] == [T0 + timedelta(seconds=660)]
    assert store.pause("nope") is False and store.resume("nope", now=T0) is False


def test_jobs_run_once_on_a_worker_and_keep_their_result(store: ScheduleStore) -> None:
    done: list[str] = []

    def job_runner(job: Job) -> tuple[str, str | None, Any]:
        done.append(job.id)
        if job.params.get("boom"):
            raise RuntimeError("no luck")
        return "success", None, {"answer": job.params["n"] * 2, "frame": object()}

    a = store.add_job({"name": "calc"}, now=T0, params={"n": 21})
    b = store.add_job({"name": "calc"}, now=T0, params={"boom": True})
    assert store.job(a.id).status == "queued" and not store.job(a.id).done
    w = Worker(store, Recorder(), ManualClock(T0), job_runner=job_runner)
    w.run_forever(max_ticks=1)
    assert sorted(done) == sorted([a.id, b.id])
    ok, bad = store.job(a.id), store.job(b.id)
    assert (ok.status, ok.result, ok.run_id) == (
        "success",
        {"answer": 42, "frame": "<object>"},
        f"calc-job-{a.id}",
    )
    assert (bad.status, bad.error) == ("failed", "RuntimeError: no luck")
    Worker(store, Recorder(), ManualClock(T0), job_runner=job_runner).run_forever(max_ticks=1)
    assert len(done) == 2  # a job runs once


def test_a_job_of_a_dead_worker_is_interrupted(store: ScheduleStore) -> None:
    import socket

    dead = f"{socket.gethostname()}:999999999:dead"
    job = store.add_job({"name": "calc"}, now=T0, owner=dead)
    store.job_started(job.id)
    Worker(
        store, Recorder(), ManualClock(T0), job_runner=lambda j: ("success", None, 1)
    ).run_forever(max_ticks=1)
    assert store.job(job.id).status == "interrupted"


def test_a_store_written_by_the_first_scheduler_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "metadata.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE schedules (name TEXT PRIMARY KEY, flow TEXT NOT NULL, source TEXT, "
        "schedule TEXT NOT NULL, plan TEXT NOT NULL, params TEXT NOT NULL, anchor TEXT NOT NULL, "
        "next_fire TEXT, last_fire TEXT, registered TEXT NOT NULL, updated TEXT NOT NULL)"
    )
    con.execute(
        "INSERT INTO schedules VALUES ('old', 'old', NULL, ?, '{}', '{}', ?, ?, NULL, ?, ?)",
        ('{"kind": "every", "every_seconds": 60.0, "timezone": "UTC"}', *[T0.isoformat()] * 4),
    )
    con.commit()
    con.close()
    with ScheduleStore(db) as s:
        (entry,) = s.list()
        assert (entry.paused, entry.options) == (False, Options())
        rec = Recorder()
        assert [f.slot for f in Worker(s, rec, ManualClock(T0)).tick()] == [T0]
        assert s.pause("old") and s.get("old").paused


def test_a_worker_without_fifos_still_wakes_in_process(
    store: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    def no_fifo(*a: Any, **k: Any) -> None:
        raise OSError("operation not permitted")

    monkeypatch.setattr(os, "mkfifo", no_fifo)
    clock = VirtualClock(T0)
    runner = TimedRunner(clock, {"late": 1.0})
    running = Running(Worker(store, runner, clock, poll=3600), clock)
    running.until(sec(2))
    assert not list(store.wake_dir.glob("*"))
    store.register(plan("late", kind="every", every_seconds=5.0), now=clock.now())
    running.until(sec(8))
    running.stop()
    assert runner.starts["late"] == [sec(2), sec(7)]


# cron: APScheduler's CronTrigger, crontab numbering, seconds field


def slots(cron: str, after: datetime, n: int, tz: str = "UTC") -> list[datetime]:
    s = {"kind": "cron", "cron": cron, "timezone": tz}
    out = []
    for _ in range(n):
        after = next_slot(s, after, after)
        out.append(after)
    return out


def test_cron_with_a_seconds_field() -> None:
    assert slots("*/20 * * * * *", T0, 4) == [sec(20), sec(40), sec(60), sec(80)]
    assert slots("30 0 12 * * *", T0, 2) == [sec(30), sec(30 + 86400)]


def test_cron_day_names_and_crontab_day_numbers_agree() -> None:
    # T0 is Monday 2026-03-02 12:00; crontab numbers Sunday 0 (and 7), Monday 1
    weekdays = slots("0 9 * * mon-fri", T0, 6)
    assert [d.strftime("%a %d") for d in weekdays] == [
        "Tue 03",
        "Wed 04",
        "Thu 05",
        "Fri 06",
        "Mon 09",
        "Tue 10",
    ]
    assert slots("0 9 * * 1-5", T0, 6) == weekdays
    assert slots("0 9 * * 0", T0, 1) == slots("0 9 * * 7", T0, 1) == slots("0 9 * * sun", T0, 1)
    assert slots("0 9 * * sun", T0, 1)[0].strftime("%a %d") == "Sun 08"
    assert [d.strftime("%a") for d in slots("0 0 * * 5-7", T0, 3)] == ["Fri", "Sat", "Sun"]
    assert slots("0 0 * * */2", T0, 3)[0].strftime("%a") == "Tue"  # 0,2,4,6: sun tue thu sat


def test_cron_day_of_month_or_day_of_week_as_in_cron() -> None:
    # both restricted: either matches (cron), not both (APScheduler's own CronTrigger)
    got = [d.strftime("%a %d") for d in slots("0 0 13 * fri", T0, 4)]
    assert got == ["Fri 06", "Fri 13", "Fri 20", "Fri 27"]
    got = [d.strftime("%d") for d in slots("0 0 1,15 * mon", T0, 4)]
    assert got == ["09", "15", "16", "23"]
    assert [d.strftime("%m-%d") for d in slots("0 0 L * *", T0, 2)] == ["03-31", "04-30"]
    assert slots("@daily", T0, 1) == [datetime(2026, 3, 3, tzinfo=UTC)]


def test_bad_cron_expressions_are_schedule_errors() -> None:
    from zoneinfo import ZoneInfo

    for bad, why in [
        ("* * *", "expected 5 fields"),
        ("61 * * * *", "invalid cron expression"),
        ("0 0 * * funday", "bad day of week"),
        ("0 0 * * 5L", "not supported"),
    ]:
        with pytest.raises(ScheduleError, match=why):
            cron_trigger(bad, ZoneInfo("UTC"))
