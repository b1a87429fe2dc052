"""The local scheduler with a controllable clock: no test sleeps for real.

The runner here records the slots it was asked to run (the worker/executor wiring with a real
flow is in test_scheduler_cli.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.runtime.scheduler import (
    Entry,
    ManualClock,
    ScheduleError,
    ScheduleStore,
    Worker,
    first_slot,
    next_slot,
    run_id_for,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def plan(name: str = "nightly", **schedule: Any) -> dict[str, Any]:
    schedule.setdefault("timezone", "UTC")
    schedule.setdefault("catchup", False)
    return {"name": name, "steps": {}, "order": [], "schedule": schedule}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime, str]] = []
        self.lock = threading.Lock()

    def __call__(self, entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        with self.lock:
            self.calls.append((entry.name, slot, run_id))
        return "succeeded", None

    def slots(self, name: str | None = None) -> list[datetime]:
        return [s for n, s, _ in self.calls if name is None or n == name]


@pytest.fixture
def store(tmp_path: Path) -> ScheduleStore:
    s = ScheduleStore.for_root(tmp_path / ".flowc")
    yield s
    s.close()


def worker(store: ScheduleStore, clock: ManualClock, rec: Recorder, **kw: Any) -> Worker:
    return Worker(store, rec, clock, poll=kw.pop("poll", 10 * 86400), **kw)


def test_interval_fires_every_period_from_registration(store: ScheduleStore) -> None:
    clock = ManualClock(T0)
    store.register(plan(kind="every", every_seconds=30.0), now=T0)
    rec = Recorder()
    w = worker(store, clock, rec)
    assert [f.slot for f in w.tick()] == [T0]
    clock.advance(10)
    assert w.tick() == []
    clock.advance(20)
    assert [f.slot for f in w.tick()] == [T0 + timedelta(seconds=30)]
    w.run_forever(until=T0 + timedelta(minutes=5))
    assert rec.slots() == [T0 + timedelta(seconds=30 * k) for k in range(11)]
    assert clock.now() == T0 + timedelta(minutes=5)
    fires = store.fires("nightly")
    assert [f["status"] for f in fires] == ["succeeded"] * 11
    assert fires[0]["run_id"] == run_id_for("nightly", T0) == "nightly-sched-20260301T120000Z"


def test_interval_anchored_at_start_in_the_schedule_timezone() -> None:
    s = {
        "kind": "every",
        "every_seconds": 3600.0,
        "timezone": "Asia/Kolkata",
        "start": "2026-03-01T00:30:00",
    }
    # 00:30 in Kolkata (+05:30) is 19:00 UTC the day before
    assert first_slot(s, z("2026-02-28T18:00:00Z")) == z("2026-02-28T19:00:00Z")
    assert first_slot(s, z("2026-02-28T19:00:01Z")) == z("2026-02-28T20:00:00Z")
    assert next_slot(s, T0, z("2026-02-28T20:00:00Z")) == z("2026-02-28T21:00:00Z")


def test_cron_follows_local_wall_time_across_dst_in_berlin(store: ScheduleStore) -> None:
    # Europe/Berlin springs forward on 2026-03-29 (02:00 -> 03:00) and falls back on
    # 2026-10-25 (03:00 -> 02:00). A 09:00 job stays at 09:00 local: 08:00Z, then 07:00Z.
    start = z("2026-03-27T00:00:00Z")
    clock = ManualClock(start)
    store.register(
        plan("morning", kind="cron", cron="0 9 * * *", timezone="Europe/Berlin"), now=start
    )
    store.register(
        plan("night", kind="cron", cron="30 2 * * *", timezone="Europe/Berlin"), now=start
    )
    rec = Recorder()
    worker(store, clock, rec).run_forever(until=z("2026-03-31T00:00:00Z"))
    assert rec.slots("morning") == [
        z("2026-03-27T08:00:00Z"),
        z("2026-03-28T08:00:00Z"),
        z("2026-03-29T07:00:00Z"),
        z("2026-03-30T07:00:00Z"),
    ]
    # 02:30 does not exist on the 29th: it fires at the first valid time, 03:00 CEST (01:00Z)
    assert rec.slots("night") == [
        z("2026-03-27T01:30:00Z"),
        z("2026-03-28T01:30:00Z"),
        z("2026-03-29T01:00:00Z"),
        z("2026-03-30T00:30:00Z"),
    ]


def test_cron_fall_back_fixed_hour_fires_once_wildcard_hour_follows_real_time() -> None:
    berlin = {"kind": "cron", "timezone": "Europe/Berlin", "catchup": False}
    night = {**berlin, "cron": "30 2 * * *"}
    after = z("2026-10-24T12:00:00Z")
    first = next_slot(night, after, after)
    assert first == z("2026-10-25T00:30:00Z")  # 02:30 CEST
    # the repeated 02:30 CET (01:30Z) is not a second run of a daily job
    assert next_slot(night, after, first) == z("2026-10-26T01:30:00Z")
    half_hourly = {**berlin, "cron": "*/30 * * * *"}
    t = z("2026-10-24T23:45:00Z")  # 01:45 CEST
    got = []
    for _ in range(6):
        t = next_slot(half_hourly, after, t)
        got.append(t)
    # 02:00/02:30 happen twice in local time and both occurrences fire (real time)
    assert got == [z("2026-10-25T00:00:00Z") + timedelta(minutes=30 * k) for k in range(6)]


def test_one_off_date_fires_once(store: ScheduleStore) -> None:
    clock = ManualClock(T0)
    store.register(plan(kind="at", at="2026-03-01T13:00:00+00:00"), now=T0)
    rec = Recorder()
    w = worker(store, clock, rec)
    w.run_forever(until=T0 + timedelta(days=3))
    assert rec.slots() == [z("2026-03-01T13:00:00Z")]
    assert store.get("nightly").next_fire is None


def test_one_off_date_in_the_past_needs_catchup(store: ScheduleStore) -> None:
    past = "2026-02-01T00:00:00Z"
    assert store.register(plan("a", kind="at", at=past), now=T0).next_fire is None
    e = store.register(plan("b", kind="at", at=past, catchup=True), now=T0)
    assert e.next_fire == z(past)
    rec = Recorder()
    w = worker(store, ManualClock(T0), rec)
    assert [(f.name, f.slot) for f in w.tick()] == [("b", z(past))]
    assert w.tick() == []


@pytest.mark.parametrize("catchup", [True, False])
def test_catchup_after_downtime(store: ScheduleStore, catchup: bool) -> None:
    clock = ManualClock(T0)
    store.register(plan(kind="cron", cron="0 * * * *", catchup=catchup), now=T0)
    rec = Recorder()
    w1 = worker(store, clock, rec)
    w1.run_forever(until=T0 + timedelta(hours=2))  # fires 12:00, 13:00, 14:00
    assert rec.slots() == [T0 + timedelta(hours=h) for h in range(3)]
    # the worker is down from 14:00 until 19:30; a new worker process starts then
    clock.set(T0 + timedelta(hours=7, minutes=30))
    w2 = worker(store, clock, rec)
    fires = w2.tick()
    if catchup:  # every missed slot, in order: 15:00 .. 19:00
        assert [f.slot for f in fires] == [T0 + timedelta(hours=h) for h in range(3, 8)]
        assert all(f.skipped == 0 for f in fires)
    else:  # only the most recent one, the four before it skipped
        assert [(f.slot, f.skipped) for f in fires] == [(T0 + timedelta(hours=7), 4)]
    assert store.get("nightly").next_fire == T0 + timedelta(hours=8)
    assert w2.tick() == []


def test_catchup_from_start_in_the_past(store: ScheduleStore) -> None:
    s = plan(kind="cron", cron="0 0 * * *", start="2026-02-25", catchup=True)
    assert store.register(s, now=T0).next_fire == z("2026-02-25T00:00:00Z")
    rec = Recorder()
    worker(store, ManualClock(T0), rec).tick()
    assert rec.slots() == [z(f"2026-02-{d}T00:00:00Z") for d in (25, 26, 27, 28)] + [
        z("2026-03-01T00:00:00Z")
    ]
    # without catchup the past start is ignored: next midnight
    s2 = plan("n", kind="cron", cron="0 0 * * *", start="2026-02-25")
    assert store.register(s2, now=T0).next_fire == z("2026-03-02T00:00:00Z")


def test_start_and_end_bound_the_slots(store: ScheduleStore) -> None:
    s = plan(
        kind="cron",
        cron="0 12 * * *",
        timezone="America/New_York",
        start="2026-03-05",
        end="2026-03-08T12:00:00",
    )
    clock = ManualClock(T0)
    store.register(s, now=T0)
    rec = Recorder()
    worker(store, clock, rec).run_forever(until=T0 + timedelta(days=30))
    # noon in New York: EST (-5) until 2026-03-08 02:00, then EDT (-4); end is inclusive
    assert rec.slots() == [
        z("2026-03-05T17:00:00Z"),
        z("2026-03-06T17:00:00Z"),
        z("2026-03-07T17:00:00Z"),
        z("2026-03-08T16:00:00Z"),
    ]
    assert store.get("nightly").next_fire is None


def test_restart_does_not_double_fire(store: ScheduleStore) -> None:
    clock = ManualClock(T0)
    store.register(plan(kind="every", every_seconds=60.0), now=T0)
    rec = Recorder()
    assert len(worker(store, clock, rec).tick()) == 1
    # the worker restarts at the same instant (a new process, a new owner)
    assert worker(store, clock, rec).tick() == []
    clock.advance(59)
    assert worker(store, clock, rec).tick() == []
    clock.advance(1)
    assert len(worker(store, clock, rec).tick()) == 1
    assert rec.slots() == [T0, T0 + timedelta(seconds=60)]
    # re-registering the unchanged schedule keeps the persisted next fire time ...
    before = store.get("nightly").next_fire
    assert (
        store.register(
            plan(kind="every", every_seconds=60.0), now=T0 + timedelta(hours=1)
        ).next_fire
        == before
    )
    # ... a changed one starts afresh
    e = store.register(plan(kind="every", every_seconds=120.0), now=T0 + timedelta(hours=1))
    assert e.next_fire == T0 + timedelta(hours=1)


def test_two_workers_at_once_fire_each_slot_once(tmp_path: Path) -> None:
    root = tmp_path / ".flowc"
    with ScheduleStore.for_root(root) as s:
        s.register(
            plan(kind="every", every_seconds=60.0, start="2026-03-01T00:00:00", catchup=True),
            now=T0,
        )
    rec = Recorder()
    clock = ManualClock(T0)
    stores = [ScheduleStore.for_root(root) for _ in range(4)]
    threads = [threading.Thread(target=worker(one, clock, rec).tick) for one in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [z("2026-03-01T00:00:00Z") + timedelta(minutes=m) for m in range(12 * 60 + 1)]
    assert sorted(rec.slots()) == expected  # 721 slots, none twice, none lost
    assert len(stores[0].fires()) == len(expected)
    for one in stores:
        one.close()


def test_interrupted_fire_is_not_rerun(store: ScheduleStore) -> None:
    store.register(plan(kind="every", every_seconds=60.0), now=T0)
    dead = "somehost-that-is-me:999999999:dead"
    import socket

    dead = f"{socket.gethostname()}:999999999:dead"
    assert store.claim("nightly", T0, T0, T0 + timedelta(minutes=1), dead, now=T0)
    rec = Recorder()
    clock = ManualClock(T0 + timedelta(seconds=30))
    w = worker(store, clock, rec)
    w.run_forever(max_ticks=1)
    assert rec.slots() == []
    assert store.fires("nightly")[0]["status"] == "interrupted"


def test_runner_failure_is_recorded_and_worker_goes_on(store: ScheduleStore) -> None:
    store.register(plan(kind="every", every_seconds=60.0), now=T0)
    calls = []

    def boom(entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        calls.append(slot)
        if len(calls) == 1:
            raise RuntimeError("flow broke")
        return "succeeded", None

    clock = ManualClock(T0)
    Worker(store, boom, clock, poll=3600).run_forever(until=T0 + timedelta(minutes=1))
    assert [f["status"] for f in store.fires()] == ["failed", "succeeded"]
    assert store.fires()[0]["error"] == "RuntimeError: flow broke"


def test_stop_ends_run_forever(store: ScheduleStore) -> None:
    store.register(plan(kind="every", every_seconds=60.0), now=T0)
    clock = ManualClock(T0)
    rec = Recorder()
    w = worker(store, clock, rec)

    def stop_after_three(entry: Entry, slot: datetime, run_id: str) -> tuple[str, str | None]:
        rec(entry, slot, run_id)
        if len(rec.calls) == 3:
            w.stop()
        return "succeeded", None

    w.runner = stop_after_three
    assert w.run_forever() == 3


def test_list_remove_and_errors(store: ScheduleStore) -> None:
    store.register(plan("b", kind="every", every_seconds=5.0), now=T0)
    store.register(plan("a", kind="cron", cron="0 3 * * 1"), now=T0)
    assert [e.name for e in store.list()] == ["a", "b"]
    assert store.get("a").next_fire == z("2026-03-02T03:00:00Z")  # the next Monday
    assert store.remove("a") is True
    assert store.remove("a") is False
    assert [e.name for e in store.list()] == ["b"]
    with pytest.raises(ScheduleError, match="unknown timezone"):
        store.register(plan(kind="cron", cron="0 3 * * *", timezone="Mars/Olympus"), now=T0)
    with pytest.raises(ScheduleError, match="has no schedule"):
        store.register({"name": "x", "schedule": None}, now=T0)


def test_interval_without_catchup_after_a_long_downtime(store: ScheduleStore) -> None:
    clock = ManualClock(T0)
    store.register(plan(kind="every", every_seconds=1.0, end="2026-03-09T00:00:00"), now=T0)
    rec = Recorder()
    assert len(worker(store, clock, rec).tick()) == 1
    clock.set(T0 + timedelta(days=3, seconds=0.5))  # three days down: 259200 missed slots
    (fire,) = worker(store, clock, rec).tick()
    assert fire.slot == T0 + timedelta(days=3)
    assert fire.skipped == 3 * 86400 - 1
    assert store.get("nightly").next_fire == T0 + timedelta(days=3, seconds=1)


def test_a_broken_schedule_does_not_stop_the_others(store: ScheduleStore) -> None:
    store.register(plan("good", kind="every", every_seconds=60.0), now=T0)
    store.register(plan("bad", kind="every", every_seconds=60.0), now=T0)
    # the stored schedule became unusable (e.g. a zone missing on the worker's machine)
    store.db.execute(
        "UPDATE schedules SET schedule = ? WHERE name = 'bad'",
        ('{"kind": "every", "every_seconds": 60.0, "timezone": "Nowhere/Atlantis"}',),
    )
    logged: list[str] = []
    rec = Recorder()
    w = Worker(store, rec, ManualClock(T0), log=logged.append)
    assert [f.name for f in w.tick()] == ["good"]
    assert any("bad: cannot compute its next slot" in m for m in logged)


# hypothesis: any pattern of ticks, downtimes and restarts fires each slot exactly once


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    every=st.integers(min_value=1, max_value=600),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3600), st.booleans()), min_size=1, max_size=12
    ),
    catchup=st.booleans(),
)
def test_any_ticks_and_restarts_fire_each_slot_at_most_once(
    tmp_path_factory: pytest.TempPathFactory, every: int, steps: list, catchup: bool
) -> None:
    root = tmp_path_factory.mktemp("hyp")
    store = ScheduleStore.for_root(root)
    try:
        store.register(plan(kind="every", every_seconds=float(every), catchup=catchup), now=T0)
        clock = ManualClock(T0)
        rec = Recorder()
        w = worker(store, clock, rec)
        for advance, restart in steps:
            clock.advance(advance)
            if restart:  # a new worker process on the same store
                w = worker(store, clock, rec)
            w.tick()
        slots = rec.slots()
        assert slots == sorted(set(slots))  # in order, none twice
        end = clock.now()
        expected = [
            T0 + timedelta(seconds=every * k)
            for k in range(int((end - T0).total_seconds() // every) + 1)
        ]
        if catchup:
            assert slots == expected  # every slot up to now, none lost
        else:
            assert set(slots) <= set(expected) and slots[-1] == expected[-1]
        assert store.get("nightly").next_fire == expected[-1] + timedelta(seconds=every)
    finally:
        store.close()
