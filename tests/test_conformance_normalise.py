"""The conformance matrix's comparison itself: what it normalises away (run ids, dates, retry
gaps within tolerance) and what it must still catch (a second run id in one run, a retry that
came too early or far too late, a changed value)."""

from __future__ import annotations

from typing import Any

from tests.conformance.matrix import RETRY_TOLERANCE, diff, normalise

PLAN = {"steps": {"a": {"retry_delay": 2.0}, "b": {"retry_delay": 0.0}}}


def _rec(step: str, t: float, run_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {"step": step, "run_id": run_id, "time": t, "kwargs": {"id": run_id}, **extra}


def test_run_ids_and_dates_are_normalised_and_one_run_id_per_run_is_checked() -> None:
    one, _ = normalise(PLAN, [_rec("b", 1.0, "x-1"), _rec("b", 2.0, "x-1")])
    other, _ = normalise(PLAN, [_rec("b", 5.0, "manual__2026"), _rec("b", 9.0, "manual__2026")])
    assert one == other and one["b"][0]["kwargs"] == {"id": "<run id>"}
    split, _ = normalise(PLAN, [_rec("b", 1.0, "x-1"), _rec("b", 2.0, "x-2")])
    assert diff(one, split)  # two run ids in one run is a difference
    _, outs = normalise(PLAN, [_rec("b", 1.0)], {"b": {"d": "2026-12-07T00:23:46+00:00"}})
    assert outs == {"b": {"d": "<iso date>"}}
    dated, _ = normalise(PLAN, [{**_rec("b", 1.0), "run_date": "2026-12-07"}])
    assert dated["b"][0]["run_date"] == "not ISO: 2026-12-07"


def test_retry_gaps_are_checked_against_the_delay() -> None:
    def gaps(step: str, second: float) -> list[Any]:
        recs = [_rec(step, 100.0, call=1), _rec(step, 100.0 + second, call=2)]
        return [r.get("gap") for r in normalise(PLAN, recs)[0][step]]

    assert gaps("a", 2.3) == [None, "retry delay 2s kept"]
    assert gaps("a", 2.3) == gaps("a", 2.0 + RETRY_TOLERANCE - 1)
    assert gaps("a", 0.5) == [None, "0.5s after the last"]  # too early
    assert gaps("b", 300.0) == [None, "300.0s after the last"]  # Airflow's default delay
    assert gaps("b", 0.2) == [None, "retry delay 0s kept"]


def test_diff_names_every_difference() -> None:
    want = {"status": "success", "outputs": {"s": {"v": [1, 2]}}, "records": {}}
    got = {"status": "failed", "outputs": {"s": {"v": [1, 3]}, "t": {}}, "records": {}}
    assert diff(want, got) == [
        "/outputs/s/v[1]: flowc run 2 != 3",
        "/outputs/t: extra {}",
        '/status: flowc run "success" != "failed"',
    ]
    assert diff(want, want) == []
