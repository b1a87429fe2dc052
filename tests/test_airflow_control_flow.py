"""Control flow on real Airflow 3 (``dag.test()`` in ``$FLOWC_AIRFLOW_PYTHON``): trigger rules,
skips (``flowc.runtime.Skip``, ``skip_on_exit_code``), foreach groups as mapped task groups
(item-wise), a matrix, ``finally`` steps, flow outputs as the final XCom, retry backoff.

The flows are IRs built here from the contract's fields (compiler/ir.py), so the Airflow side is
proven independently of the YAML front end; every DAG runs in ONE Airflow process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from flowc.compiler.api import emit, load_text
from flowc.compiler.ir import Group, Lit, Pipeline, Ref, Step
from tests.test_airflow_dags import FIXTURE_PKGS, _harness, airflow_outputs

HERE = Path(__file__).resolve().parent
STEPS = HERE / "airflow_harness"

if not hasattr(Step, "__dataclass_fields__") or "trigger" not in Step.__dataclass_fields__:
    pytest.fail("compiler/ir.py has no control-flow fields (CONTRACT_18)", pytrace=False)

BASE = """
flowc: 1
name: {name}
params:
  flag: {{type: bool, default: false}}
  shards: {{type: list, default: [a, b]}}
steps:
  placeholder: {{run: cf_steps:value, with: {{name: placeholder}}}}
"""


def _lit(v: Any) -> Lit:
    return Lit(v)


def _ref(*path: Any) -> Ref:
    return Ref(path[0], tuple(path[1:]))


def step(name: str, fn: str = "value", with_: dict[str, Any] | None = None, **kw: Any) -> Step:
    """A ``run:`` step calling ``cf_steps:<fn>``; ``with_`` values: an Expr or a literal."""
    w = {"name": name} if fn in ("value", "fail", "skip") else {}
    w.update(with_ or {})
    args = tuple((k, v if isinstance(v, (Lit, Ref)) else _lit(v)) for k, v in w.items())
    outputs = kw.pop("outputs", ("v",) if fn == "value" else ())
    return Step(name=name, kind="run", run=f"cf_steps:{fn}", with_=args, outputs=outputs, **kw)


def pipeline(name: str, steps: list[Step], **kw: Any) -> Pipeline:
    base = load_text(BASE.format(name=name), f"{name}.yaml")
    return dataclasses.replace(base, steps=tuple(steps), edges=(), **kw)


def flows() -> dict[str, Pipeline]:
    out: dict[str, Pipeline] = {}
    # a join with trigger all_done after a skipped branch; Skip and its all_success downstream
    out["cf_join"] = pipeline(
        "cf_join",
        [
            step("start", with_={"v": 1}),
            step("branch", when=_ref("params", "flag"), with_={"v": 2}),
            step("skipper", fn="skip"),
            step(
                "join",
                with_={"v": _ref("steps", "start", "outputs", "v")},
                upstream=("branch", "skipper", "start"),
                after=("branch", "skipper"),
                trigger="all_done",
            ),
            step("strict", upstream=("branch",), after=("branch",)),
            step("after_skip", upstream=("skipper",), after=("skipper",)),
            # a foreach whose instance 1 skips: null in its place downstream (all_done)
            step(
                "each",
                fn="maybe_skip",
                with_={"v": _ref("item")},
                outputs=("v",),
                foreach=_lit([1, "skip", 3]),
            ),
            step(
                "gather",
                with_={"v": _ref("steps", "each", "outputs", "v")},
                upstream=("each",),
                trigger="all_done",
            ),
            step(
                "strict_gather",
                with_={"v": _ref("steps", "each", "outputs", "v")},
                upstream=("each",),
            ),
        ],
    )
    # exit code 99 means skipped; under all_success its downstream skips too
    probe = Step(
        name="probe",
        kind="command",
        command=(_lit("sh"), _lit("-c"), _lit("exit 99")),
        skip_on_exit_code=(99,),
    )
    # ... and nested plain groups: TaskGroup ids are the qualified names
    out["cf_exit"] = pipeline(
        "cf_exit",
        [
            probe,
            step("downstream", upstream=("probe",), after=("probe",)),
            step("tolerant", upstream=("probe",), after=("probe",), trigger="none_failed"),
            step("outer.inner.x", with_={"v": 5}, group="outer.inner"),
            step(
                "outer.y",
                with_={"v": _ref("steps", "outer.inner", "outputs", "x")},
                upstream=("outer.inner",),
                group="outer",
            ),
            step(
                "last",
                with_={"v": _ref("steps", "outer", "outputs", "y")},
                upstream=("outer",),
            ),
        ],
        groups=(
            Group(
                name="outer",
                steps=("outer.y",),
                groups=("outer.inner",),
                outputs=(("y", _ref("steps", "outer.y", "outputs", "v")),),
                leaves=("outer.y",),
            ),
            Group(
                name="outer.inner",
                parent="outer",
                steps=("outer.inner.x",),
                outputs=(("x", _ref("steps", "outer.inner.x", "outputs", "v")),),
                leaves=("outer.inner.x",),
            ),
        ),
    )
    # a failure, then a finally step that sees run.status and run.failed_steps
    out["cf_finally"] = pipeline(
        "cf_finally",
        [
            step("ok", with_={"v": 1}),
            step("bad", fn="fail", upstream=("ok",), after=("ok",)),
            step("after_bad", upstream=("bad",), after=("bad",)),
            step(
                "report",
                fn="report",
                with_={"status": _ref("run", "status"), "failed": _ref("run", "failed_steps")},
                outputs=("status", "failed"),
                is_finally=True,
            ),
        ],
        outputs=(("verdict", _ref("steps", "report", "outputs", "status")),),
    )
    # a foreach group of two steps (item-wise: item 'bad' fails only its own second step), a
    # 2x2 matrix, a step after the group reading its export, flow outputs
    item = _ref("item")
    out["cf_group"] = pipeline(
        "cf_group",
        [
            step(
                "per_shard.prep",
                fn="prep",
                with_={"shard": item},
                outputs=("rows",),
                group="per_shard",
            ),
            step(
                "per_shard.score",
                fn="score",
                with_={"rows": _ref("steps", "per_shard.prep", "outputs", "rows")},
                outputs=("s",),
                upstream=("per_shard.prep",),
                group="per_shard",
            ),
            step(
                "grid",
                with_={"v": _ref("item")},
                foreach=_lit({"lr": [0.1, 0.01], "depth": [3, 5]}),
                matrix=("lr", "depth"),
            ),
            step(
                "collect",
                with_={"v": _ref("steps", "per_shard", "outputs", "score")},
                upstream=("per_shard",),
                trigger="all_done",
            ),
        ],
        groups=(
            Group(
                name="per_shard",
                foreach=_ref("params", "shards"),
                steps=("per_shard.prep", "per_shard.score"),
                outputs=(("score", _ref("steps", "per_shard.score", "outputs", "s")),),
                leaves=("per_shard.score",),
            ),
        ),
        outputs=(
            ("scores", _ref("steps", "collect", "outputs", "v")),
            ("grid", _ref("steps", "grid", "outputs", "v")),
        ),
    )
    # a foreach group inside a plain group, a plain group inside the foreach group
    out["cf_nested"] = pipeline(
        "cf_nested",
        [
            step("outer.fan.a", with_={"v": _ref("item")}, group="outer.fan"),
            step(
                "outer.fan.sub.b",
                with_={"v": _ref("steps", "outer.fan.a", "outputs", "v")},
                upstream=("outer.fan.a",),
                group="outer.fan.sub",
            ),
            step(
                "outer.c",
                with_={"v": _ref("steps", "outer.fan", "outputs", "b")},
                upstream=("outer.fan",),
                group="outer",
            ),
            step("d", with_={"v": _ref("steps", "outer", "outputs", "c")}, upstream=("outer",)),
        ],
        groups=(
            Group(
                name="outer",
                steps=("outer.c",),
                groups=("outer.fan",),
                outputs=(("c", _ref("steps", "outer.c", "outputs", "v")),),
                leaves=("outer.c",),
            ),
            Group(
                name="outer.fan",
                parent="outer",
                foreach=_ref("params", "shards"),
                steps=("outer.fan.a",),
                groups=("outer.fan.sub",),
                outputs=(("b", _ref("steps", "outer.fan.sub", "outputs", "b")),),
                leaves=("outer.fan.sub.b",),
            ),
            Group(
                name="outer.fan.sub",
                parent="outer.fan",
                steps=("outer.fan.sub.b",),
                outputs=(("b", _ref("steps", "outer.fan.sub.b", "outputs", "v")),),
                leaves=("outer.fan.sub.b",),
            ),
        ),
    )
    # retries with an exact exponential backoff: delays 1s, then 3s
    out["cf_retry"] = pipeline(
        "cf_retry",
        [
            step(
                "flaky",
                fn="flaky",
                with_={"name": "flaky", "fails": 2},
                outputs=("calls",),
                retries=2,
                retry_delay=1.0,
                retry_backoff=3.0,
                retry_max_delay=60.0,
            )
        ],
    )
    return out


def _dag_text(ir: Pipeline) -> str:
    (text,) = emit(ir, "airflow").values()
    return text


def _run(tmp_path: Path, jobs: dict[str, list[dict | None]]) -> dict[str, Any]:
    home = tmp_path / "airflow_home"
    (home / "dags").mkdir(parents=True)
    irs = flows()
    spec = []
    for name, confs in jobs.items():
        f = home / "dags" / f"{name}.py"
        f.write_text(_dag_text(irs[name]))
        spec.append({"file": str(f), "confs": confs, "variables": None})
    (tmp_path / "jobs.json").write_text(json.dumps(spec))
    rec = tmp_path / "records.jsonl"
    env = {"PYTHONPATH": f"{FIXTURE_PKGS}:{STEPS}", "FLOWC_CF_OUT": str(rec)}
    results = _harness(home, ["test", str(tmp_path / "jobs.json")], env)
    out = {}
    for name, res in zip(jobs, results, strict=True):
        assert "runs" in res, f"{name}: {res}"
        out[name] = res["runs"]
    records = [json.loads(x) for x in rec.read_text().splitlines()] if rec.exists() else []
    return {"runs": out, "records": records}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cf")
    return _run(
        tmp,
        {
            "cf_join": [None],
            "cf_exit": [None],
            "cf_finally": [None],
            "cf_group": [None, {"shards": ["a", "bad", "ccc"]}],
            "cf_retry": [None],
            "cf_nested": [None],
        },
    )


def test_join_all_done_after_a_skipped_branch(result: dict[str, Any]) -> None:
    (run,) = result["runs"]["cf_join"]
    tis = run["tis"]
    assert run["state"] == "success", run
    assert tis["branch__when"] == "success" and tis["branch"] == "skipped"
    assert tis["skipper"] == "skipped"  # flowc.runtime.Skip -> AirflowSkipException
    assert tis["join"] == "success" and run["xcom"]["join"] == {"v": 1}
    assert tis["strict"] == "skipped" and tis["after_skip"] == "skipped"
    assert tis["_flowc_failed"] == "skipped"  # the watcher: nothing failed
    assert [tis[f"each[{i}]"] for i in range(3)] == ["success", "skipped", "success"]
    assert run["xcom"]["gather"] == {"v": [1, None, 3]}
    assert tis["strict_gather"] == "skipped"  # all_success over the instances, as flowc run


def test_exit_code_skips_the_step_and_its_all_success_downstream(result: dict[str, Any]) -> None:
    (run,) = result["runs"]["cf_exit"]
    assert run["state"] == "success", run
    tis = run["tis"]
    assert tis["probe"] == "skipped"
    assert tis["downstream"] == "skipped"
    assert tis["tolerant"] == "success"  # none_failed runs after a skip
    assert tis["outer.inner.x"] == tis["outer.y"] == tis["last"] == "success"
    assert run["xcom"]["last"] == {"v": 5}  # through two groups' exports


def test_replicas_in_a_foreach_group_is_refused() -> None:
    from flowc.compiler.errors import FlowcError

    ir = flows()["cf_group"]
    steps = [
        dataclasses.replace(s, replicas=2) if s.name == "per_shard.prep" else s for s in ir.steps
    ]
    with pytest.raises(FlowcError, match="replicas inside foreach group 'per_shard'"):
        emit(dataclasses.replace(ir, steps=tuple(steps)), "airflow")


def test_finally_runs_after_a_failure_and_the_run_fails(result: dict[str, Any]) -> None:
    (run,) = result["runs"]["cf_finally"]
    tis = run["tis"]
    assert run["state"] == "failed", run
    assert tis["bad"] == "failed" and tis["after_bad"] == "upstream_failed"
    assert tis["report"] == "success"
    assert run["xcom"]["report"] == {"status": "failed", "failed": ["bad"]}
    assert tis["_flowc_failed"] == "failed"  # what makes the DAG run failed
    # flow outputs: the return_value XCom of _flowc_outputs, after the finally step
    assert run["xcom"]["_flowc_outputs"] == {"verdict": "failed"}


def test_foreach_group_item_wise_matrix_and_flow_outputs(result: dict[str, Any]) -> None:
    ok, partly = result["runs"]["cf_group"]
    assert ok["state"] == "success", ok
    tis = ok["tis"]
    assert {k: v for k, v in tis.items() if k.startswith("per_shard")} == {
        "per_shard__items": "success",
        "per_shard.prep[0]": "success",
        "per_shard.prep[1]": "success",
        "per_shard.score[0]": "success",
        "per_shard.score[1]": "success",
    }
    assert ok["xcom"]["per_shard.score[0]"] == {"s": len("rows-a")}
    assert ok["xcom"]["collect"] == {"v": [6, 6]}
    grid = [ok["xcom"][f"grid[{i}]"]["v"] for i in range(4)]
    assert grid == [
        {"lr": 0.1, "depth": 3},
        {"lr": 0.1, "depth": 5},
        {"lr": 0.01, "depth": 3},
        {"lr": 0.01, "depth": 5},
    ]
    assert ok["xcom"]["_flowc_outputs"] == {"scores": [6, 6], "grid": grid}
    # item-wise: item 1 ('bad') fails its prep; items 0 and 2 still run their score
    tis = partly["tis"]
    assert partly["state"] == "failed", partly
    assert tis["per_shard.prep[1]"] == "failed"
    assert tis["per_shard.score[1]"] == "upstream_failed"
    assert tis["per_shard.score[0]"] == tis["per_shard.score[2]"] == "success"
    assert partly["xcom"]["collect"] == {"v": [6, None, 8]}  # null for the failed item
    # what the conformance matrix reads: a member's outputs as the list over items
    got = airflow_outputs(flows()["cf_group"], partly)
    assert got["per_shard.prep"] == {"rows": ["rows-a", None, "rows-ccc"]}
    assert got["per_shard.score"] == {"s": [6, None, 8]}


def test_nested_groups(result: dict[str, Any]) -> None:
    (run,) = result["runs"]["cf_nested"]
    assert run["state"] == "success", run
    assert run["tis"]["outer.fan__items"] == "success"  # in TaskGroup "outer"
    assert run["xcom"]["outer.fan.sub.b[1]"] == {"v": "b"}  # TaskGroup "sub" in the mapped one
    assert run["xcom"]["outer.c"] == {"v": ["a", "b"]}  # the foreach group's export, per item
    assert run["xcom"]["d"] == {"v": ["a", "b"]}


def test_retry_backoff_delays(result: dict[str, Any]) -> None:
    (run,) = result["runs"]["cf_retry"]
    assert run["state"] == "success", run
    assert run["xcom"]["flaky"] == {"calls": 3}
    times = [r["time"] for r in result["records"] if r["step"] == "flaky"]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # retry_delay 1s, then 1s * 3: the second wait is the multiplied one (a constant delay
    # would retry after ~1s; Airflow's jittered backoff alone could wait up to 6s)
    assert 0.95 <= gaps[0] < 1.95, gaps
    assert 2.95 <= gaps[1] < 5.0, gaps


def test_dag_shapes(result: dict[str, Any]) -> None:
    """The constructs are Airflow's own: TaskGroup ids, a mapped task group, trigger rules,
    skip_on_exit_code, retry backoff."""
    irs = flows()
    text = _dag_text(irs["cf_group"])
    assert "@task_group(" in text and ".expand(index=" in text
    assert 'trigger_rule="all_done"' in text
    assert "skip_on_exit_code=[99]" in _dag_text(irs["cf_exit"])
    backoff = pipeline(
        "cf_backoff",
        [
            step("a", retries=3, retry_delay=2.0, retry_backoff=3.0, retry_max_delay=60.0),
            step("b", retries=1, retry_delay=30.0, retry_max_delay=10.0),
        ],
    )
    text = _dag_text(backoff)
    assert "retry_exponential_backoff=3.0" in text
    assert "max_retry_delay=datetime.timedelta(seconds=60)" in text
    assert "retry_delay=datetime.timedelta(seconds=10)" in text  # a constant delay, capped
