"""Property test of the scheduler: random DAGs with failing steps and false `when`s always end in
the states the rules of docs/runtime.md give (Airflow's all_success), with correct outputs."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.runtime.executor import run_plan


def make_step(deps: list[str], fail: bool, when: bool | None) -> dict:
    refs = [{"$ref": ["steps", d, "outputs", "v"]} for d in deps]
    return {
        "kind": "run",
        "run": "flowc_rt.steps:combine",
        "with": {"values": {"$list": refs} if refs else {"$lit": []}, "fail": fail},
        "outputs": ["v"],
        "upstream": sorted(deps),
        "after": [],
        "foreach": None,
        "when": when,
        "retries": 0,
        "retry_delay": 0.0,
        "timeout": None,
        "cache": False,
        "replicas": 1,
        "image": None,
        "env": {},
        "resources": {},
        "secrets": [],
    }


@st.composite
def dags(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 8))
    steps = {}
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        fail = draw(st.integers(0, 4)) == 0  # one step in five fails
        when = draw(st.sampled_from([None, None, None, True, False]))
        steps[f"s{i}"] = make_step([f"s{d}" for d in deps], fail, when)
    return {
        "plan_version": 1,
        "name": "prop",
        "params": {},
        "secrets": {},
        "steps": steps,
        "order": list(steps),
    }


def expected(plan: dict) -> tuple[dict[str, str], dict[str, int]]:
    states: dict[str, str] = {}
    values: dict[str, int] = {}
    for name, s in plan["steps"].items():
        ups = [states[u] for u in s["upstream"]]
        if any(u in ("failed", "upstream_failed") for u in ups):
            states[name] = "upstream_failed"
        elif any(u == "skipped" for u in ups) or s["when"] is False:
            states[name] = "skipped"
        elif s["with"]["fail"]:
            states[name] = "failed"
        else:
            states[name] = "success"
            values[name] = 1 + sum(values[u] for u in s["upstream"])
    return states, values


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=dags(), workers=st.integers(1, 4))
def test_random_dags_end_in_the_documented_states(tmp_path: Path, plan: dict, workers: int) -> None:
    r = run_plan(plan, root=tmp_path / ".flowc", max_workers=workers)
    states, values = expected(plan)
    assert r.states == states
    assert {k: v["v"] for k, v in r.outputs.items()} == values
    assert r.ok == ("failed" not in states.values())
    if not r.ok:
        first = r.error.step
        assert states[first] == "failed"
