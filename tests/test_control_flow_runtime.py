"""Control flow in the shared executor (issue 18, /work/wt/CONTRACT_18.md "Semantics"): trigger
rules, skips, finally steps, foreach groups item-wise, matrices, indexing refs, run.ds, retry
backoff, flow outputs, resume. Plans are written by hand in the plan shape (docs/plan.md), so
these tests need no compiler; tests/fixtures/pkgs/flowc_cf holds the step callables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from flowc.runtime import Skip, triggers
from flowc.runtime.attempts import retry_delay
from flowc.runtime.executor import run_plan
from flowc.runtime.expansion import ForeachError, foreach_items
from flowc.runtime.metadata import MetadataStore
from flowc.runtime.step import execute

S = "flowc_cf.steps:"


def ref(*path: Any) -> dict[str, Any]:
    return {"$ref": list(path)}


def out(step: str, name: str, *index: Any) -> dict[str, Any]:
    return ref("steps", step, "outputs", name, *index)


def step(run: str | None = None, command: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "command" if command is not None else "run",
        "with": {},
        "outputs": [],
        "upstream": [],
        "after": [],
        "foreach": None,
        "when": None,
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
    if command is not None:
        data["command"] = command
    else:
        data["run"] = S + (run or "echo")
    data.update(kw)
    return data


def group(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "parent": None,
        "foreach": None,
        "matrix": [],
        "steps": [],
        "groups": [],
        "outputs": {},
        "upstream": [],
        "leaves": [],
        "after": [],
        "uses": None,
    }
    data.update(kw)
    return data


def plan(steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "plan_version": 1,
        "name": "cf",
        "description": None,
        "tags": [],
        "owner": None,
        "source": {"path": "flow.yaml", "sha256": "0" * 64},
        "environment": None,
        "params": {},
        "secrets": {},
        "steps": steps,
        "order": list(steps),
        "schedule": None,
        "stack": None,
        "plugins": {},
        "integrations": None,
        "channels": {},
    }
    data.update(top)
    return data


def logged(log: Path, name: str) -> list[Any]:
    path = log / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log"
    path.mkdir()
    return path


# -- trigger rules ----------------------------------------------------------------------------

S_, F_, K_ = "success", "failed", "skipped"
RULES = {  # (upstream states) -> decision per rule
    "all_success": {(S_, S_): "run", (S_, K_): "skipped", (S_, F_): "upstream_failed"},
    "all_done": {(S_, S_): "run", (K_, F_): "run", (K_, K_): "run"},
    "all_failed": {(F_, F_): "run", (F_, S_): "skipped", (K_,): "skipped"},
    "one_success": {(S_, F_): "run", (F_, K_): "upstream_failed", (K_, K_): "skipped"},
    "one_failed": {(S_, F_): "run", (S_, K_): "skipped", ("upstream_failed",): "run"},
    "none_failed": {(S_, K_): "run", (K_, K_): "run", (S_, F_): "upstream_failed"},
    "none_failed_min_one_success": {
        (S_, K_): "run",
        (K_, K_): "skipped",
        (S_, F_): "upstream_failed",
    },
}


@pytest.mark.parametrize("rule", triggers.TRIGGERS)
def test_every_trigger_rule_decides_as_the_contract_says(rule: str) -> None:
    for states, expected in RULES[rule].items():
        assert triggers.decide(rule, states) == expected, (rule, states)
    assert triggers.decide(rule, []) == "run"  # no upstream: always runs
    assert triggers.decide(rule, ["cached"]) == triggers.decide(rule, ["success"])


def test_join_with_all_done_runs_after_a_skipped_branch(tmp_path: Path, log: Path) -> None:
    steps = {
        "branch": step(when=False, outputs=["v"]),
        "other": step(**{"with": {"value": 1}}, outputs=["v"]),
        "join": step(
            **{
                "with": {
                    "value": {"$list": [out("branch", "v"), out("other", "v")]},
                    "log": str(log),
                    "name": "join",
                }
            },
            upstream=["branch", "other"],
            trigger="all_done",
            outputs=["v"],
        ),
        "strict": step(upstream=["branch", "other"], after=["branch", "other"]),
        "none_failed": step(upstream=["branch", "other"], trigger="none_failed"),
        "one_success": step(upstream=["branch", "other"], trigger="one_success"),
        "one_failed": step(upstream=["branch", "other"], trigger="one_failed"),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.states == {
        "branch": "skipped",
        "other": "success",
        "join": "success",
        "strict": "skipped",
        "none_failed": "success",
        "one_success": "success",
        "one_failed": "skipped",
    }
    assert logged(log, "join") == [[None, 1]]  # the skipped branch's output is null


def test_failure_handlers_and_upstream_failed(tmp_path: Path) -> None:
    steps = {
        "bad": step("fail", outputs=["v"]),
        "good": step(outputs=["v"]),
        "down": step(upstream=["bad"]),
        "on_failure": step(upstream=["bad", "good"], trigger="one_failed"),
        "all_failed": step(upstream=["bad"], trigger="all_failed"),
        "min_one": step(upstream=["good", "down"], trigger="none_failed_min_one_success"),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert not r.ok and r.error is not None and r.error.step == "bad"
    assert r.states == {
        "bad": "failed",
        "good": "success",
        "down": "upstream_failed",
        "on_failure": "success",
        "all_failed": "success",
        "min_one": "upstream_failed",
    }


# -- skips ------------------------------------------------------------------------------------


def test_exit_code_99_skips_the_step_and_its_all_success_downstream(tmp_path: Path) -> None:
    steps = {
        "probe": step(
            command=[sys.executable, "-c", "import sys; sys.exit(99)"], skip_on_exit_code=[99]
        ),
        "down": step(upstream=["probe"], after=["probe"]),
        "downer": step(upstream=["down"], after=["down"]),
        "always": step(upstream=["probe"], trigger="all_done"),
        "other_code": step(
            command=[sys.executable, "-c", "import sys; sys.exit(3)"], skip_on_exit_code=[99]
        ),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.states["probe"] == "skipped"
    assert r.states["down"] == "skipped"
    assert r.states["downer"] == "skipped"
    assert r.states["always"] == "success"
    assert r.states["other_code"] == "failed"  # an exit code not listed fails the step
    meta = MetadataStore(root=tmp_path / ".flowc")
    row = {s["step"]: s for s in meta.steps(r.run_id)}["probe"]
    assert row["status"] == "skipped" and "code 99" in row["error"]
    meta.close()


def test_a_callable_raising_skip_skips_also_in_a_child_process(tmp_path: Path) -> None:
    steps = {
        "thread": step("skip", outputs=["v"]),
        "child": step("skip", outputs=["v"], env={"X": "1"}),  # env: runs as its own process
        "after_thread": step(upstream=["thread"], **{"with": {"v": out("thread", "v")}}),
        "sees_null": step(
            upstream=["child"],
            trigger="all_done",
            **{"with": {"value": out("child", "v")}},
            outputs=["v"],
        ),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.states == {
        "thread": "skipped",
        "child": "skipped",
        "after_thread": "skipped",
        "sees_null": "success",
    }
    assert r.outputs["sees_null"] == {"v": None}


def test_execute_raises_skip_for_the_callable_and_the_exit_code(tmp_path: Path) -> None:
    p = plan(
        {
            "a": step("skip", **{"with": {"reason": "no data"}}),
            "b": step(
                command=[sys.executable, "-c", "raise SystemExit(99)"], skip_on_exit_code=[99]
            ),
        }
    )
    with pytest.raises(Skip, match="no data"):
        execute(p, "a", params={}, upstream={}, run_id="r1")
    with pytest.raises(Skip, match="99"):
        execute(p, "b", params={}, upstream={}, run_id="r1")


def test_a_skipped_foreach_item_is_null_and_skips_an_all_success_downstream(tmp_path: Path) -> None:
    steps = {
        "each": step(
            "skip_if",
            foreach=[1, 2, 3],
            **{"with": {"value": ref("item"), "skip_value": 2}},
            outputs=["v"],
        ),
        "strict": step(upstream=["each"]),
        "done": step(
            upstream=["each"],
            trigger="all_done",
            **{"with": {"value": out("each", "v")}},
            outputs=["v"],
        ),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.states == {"each": "success", "strict": "skipped", "done": "success"}
    assert r.outputs["done"] == {"v": [1, None, 3]}


# -- finally ----------------------------------------------------------------------------------


def _finally_plan(log: Path, flag: Path | None = None) -> dict[str, Any]:
    work = (
        step("fail", **{"with": {"message": "broken"}}, outputs=["v"])
        if flag is None
        else step("fail_unless", **{"with": {"flag": str(flag), "value": 7}}, outputs=["v"])
    )
    steps = {
        "ok": step(**{"with": {"value": 1}}, outputs=["v"]),
        "work": work,
        "after_work": step(upstream=["work"], after=["work"]),
        "report": step(
            **{
                "with": {
                    "value": {
                        "$dict": {
                            "status": ref("run", "status"),
                            "failed": ref("run", "failed_steps"),
                            "work": out("work", "v"),
                        }
                    },
                    "log": str(log),
                    "name": "report",
                }
            },
            upstream=["work"],
            outputs=["v"],
            **{"finally": True},
        ),
        "cleanup": step(
            **{"with": {"value": "bye", "log": str(log), "name": "cleanup"}},
            upstream=["report"],
            after=["report"],
            **{"finally": True},
        ),
    }
    return plan(steps)


def test_finally_runs_after_a_failure_sees_the_status_and_the_run_still_fails(
    tmp_path: Path, log: Path
) -> None:
    r = run_plan(_finally_plan(log), root=tmp_path / ".flowc")
    assert r.status == "failed" and r.error is not None and r.error.step == "work"
    assert r.states["report"] == "success" and r.states["cleanup"] == "success"
    assert r.states["after_work"] == "upstream_failed"
    assert logged(log, "report") == [{"status": "failed", "failed": ["work"], "work": None}]
    assert logged(log, "cleanup") == ["bye"]


def test_finally_sees_success_and_runs_last(tmp_path: Path, log: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("x")
    r = run_plan(_finally_plan(log, flag), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert logged(log, "report") == [{"status": "success", "failed": [], "work": 7}]
    meta = MetadataStore(root=tmp_path / ".flowc")
    rows = {s["step"]: s for s in meta.steps(r.run_id)}
    meta.close()
    last_other = max(rows[s]["ended"] for s in ("ok", "work", "after_work"))
    assert rows["report"]["started"] >= last_other


def test_a_failed_finally_step_fails_the_run(tmp_path: Path) -> None:
    steps = {"a": step(), "bye": step("fail", **{"finally": True})}
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.status == "failed" and r.error is not None and r.error.step == "bye"


def test_resume_runs_a_finally_step_once_per_run(tmp_path: Path, log: Path) -> None:
    flag = tmp_path / "flag"
    p = _finally_plan(log, flag)
    root = tmp_path / ".flowc"
    first = run_plan(p, root=root)
    assert first.status == "failed"
    assert logged(log, "report") == [{"status": "failed", "failed": ["work"], "work": None}]
    flag.write_text("x")
    again = run_plan(p, root=root, resume=first.run_id)
    assert again.ok, again.error
    assert again.states["work"] == "success" and again.states["after_work"] == "success"
    assert again.states["report"] == "success"
    assert len(logged(log, "report")) == 1  # it succeeded in the run: not run again
    assert logged(log, "cleanup") == ["bye"]


def test_resume_reruns_a_finally_step_that_failed(tmp_path: Path, log: Path) -> None:
    flag = tmp_path / "flag"
    steps = {
        "a": step(**{"with": {"value": 1}}),
        "bye": step(
            "fail_unless", **{"with": {"flag": str(flag), "value": 1}}, **{"finally": True}
        ),
    }
    root = tmp_path / ".flowc"
    first = run_plan(plan(steps), root=root)
    assert first.states["bye"] == "failed"
    flag.write_text("x")
    again = run_plan(plan(steps), root=root, resume=first.run_id)
    assert again.ok and again.states["bye"] == "success"


# -- groups -----------------------------------------------------------------------------------


def _group_plan(log: Path, items: list[Any]) -> dict[str, Any]:
    steps = {
        "g.first": step(
            "first",
            **{"with": {"item": ref("item"), "log": str(log)}},
            outputs=["v"],
            group="g",
        ),
        "g.second": step(
            "second",
            **{"with": {"value": out("g.first", "v"), "item": ref("item"), "log": str(log)}},
            upstream=["g.first"],
            outputs=["v"],
            group="g",
        ),
        "total": step(
            **{"with": {"value": out("g", "score"), "log": str(log), "name": "total"}},
            upstream=["g"],
            outputs=["v"],
        ),
    }
    groups = {
        "g": group(
            foreach={"$lit": items},
            steps=["g.first", "g.second"],
            outputs={"score": out("g.second", "v")},
            leaves=["g.second"],
        )
    }
    return plan(
        steps, groups=groups, outputs={"scores": out("g", "score"), "one": out("g", "score", 1)}
    )


def test_a_foreach_group_runs_item_wise(tmp_path: Path, log: Path) -> None:
    # item 1's first member blocks until item 0's second member wrote its file: the run only
    # succeeds when item 0's second member starts before all first members finished
    r = run_plan(_group_plan(log, [0, 1]), root=tmp_path / ".flowc", max_workers=2)
    assert r.ok, r.error
    assert logged(log, "second")[0] == 0
    assert logged(log, "first") == [0, 1]
    assert r.outputs["g.first"] == {"v": [0, 10]}
    assert r.outputs["g.second"] == {"v": [1, 11]}
    assert logged(log, "total") == [[1, 11]]  # the export over items, in item order
    assert r.flow_outputs == {"scores": [1, 11], "one": 11}
    meta = MetadataStore(root=tmp_path / ".flowc")
    assert meta.run(r.run_id)["outputs"] == {"scores": [1, 11], "one": 11}
    meta.close()
    stored = tmp_path / ".flowc" / "runs" / r.run_id / "_flow" / "outputs.json"
    assert json.loads(stored.read_text()) == {"scores": [1, 11], "one": 11}


def test_a_foreach_group_item_that_skips_exports_null(tmp_path: Path, log: Path) -> None:
    steps = {
        "g.pick": step(
            "skip_if",
            **{"with": {"value": ref("item"), "skip_value": "b"}},
            outputs=["v"],
            group="g",
        ),
        "g.use": step(
            **{"with": {"value": out("g.pick", "v")}},
            upstream=["g.pick"],
            outputs=["v"],
            group="g",
        ),
        "after": step(
            upstream=["g"], trigger="all_done", **{"with": {"value": out("g", "x")}}, outputs=["v"]
        ),
        "strict": step(upstream=["g"]),
    }
    groups = {
        "g": group(
            foreach={"$lit": ["a", "b", "c"]},
            steps=["g.pick", "g.use"],
            outputs={"x": out("g.use", "v")},
            leaves=["g.use"],
        )
    }
    r = run_plan(plan(steps, groups=groups), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.outputs["after"] == {"v": ["a", None, "c"]}
    assert r.states["strict"] == "skipped"  # all_success over every item of the group's leaves
    assert r.outputs["g.use"] == {"v": ["a", None, "c"]}


def test_a_plain_group_waits_for_its_leaves_and_exports_once(tmp_path: Path) -> None:
    steps = {
        "g.a": step(**{"with": {"value": 2}}, outputs=["v"], group="g"),
        "g.b": step(
            **{"with": {"value": out("g.a", "v")}}, upstream=["g.a"], outputs=["v"], group="g"
        ),
        "use": step(**{"with": {"value": out("g", "v")}}, upstream=["g"], outputs=["v"]),
    }
    groups = {"g": group(steps=["g.a", "g.b"], outputs={"v": out("g.b", "v")}, leaves=["g.b"])}
    r = run_plan(plan(steps, groups=groups), root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.outputs["use"] == {"v": 2}


def test_a_failed_group_member_fails_the_run_and_blocks_the_group_downstream(
    tmp_path: Path,
) -> None:
    steps = {
        "g.a": step("fail", group="g", outputs=["v"]),
        "g.b": step(group="g"),
        "use": step(upstream=["g"]),
        "cleanup": step(upstream=["g"], trigger="one_failed"),
    }
    groups = {"g": group(foreach={"$lit": [1, 2]}, steps=["g.a", "g.b"], leaves=["g.a", "g.b"])}
    r = run_plan(plan(steps, groups=groups), root=tmp_path / ".flowc")
    assert r.status == "failed"
    assert r.states == {
        "g.a": "failed",
        "g.b": "success",
        "use": "upstream_failed",
        "cleanup": "success",
    }


def test_a_group_after_applies_to_its_roots(tmp_path: Path) -> None:
    steps = {
        "gate": step(when=False),
        "g.a": step(group="g"),
        "g.b": step(upstream=["g.a"], group="g", trigger="all_done"),
    }
    groups = {"g": group(steps=["g.a", "g.b"], leaves=["g.b"], after=["gate"], upstream=["gate"])}
    r = run_plan(plan(steps, groups=groups), root=tmp_path / ".flowc")
    assert r.states == {"gate": "skipped", "g.a": "skipped", "g.b": "success"}


def test_resume_of_a_foreach_group_reuses_finished_items(tmp_path: Path, log: Path) -> None:
    flag = tmp_path / "flag"
    steps = {
        "g.a": step(
            **{"with": {"value": ref("item"), "log": str(log), "name": "a"}},
            outputs=["v"],
            group="g",
        ),
        "g.b": step(
            "fail_unless",
            **{"with": {"flag": str(flag), "value": out("g.a", "v")}},
            upstream=["g.a"],
            outputs=["v"],
            group="g",
        ),
    }
    groups = {
        "g": group(
            foreach={"$lit": [1, 2]},
            steps=["g.a", "g.b"],
            leaves=["g.b"],
            outputs={"v": out("g.b", "v")},
        )
    }
    p = plan(steps, groups=groups, outputs={"v": out("g", "v")})
    root = tmp_path / ".flowc"
    first = run_plan(p, root=root)
    assert first.states == {"g.a": "success", "g.b": "failed"}
    assert first.flow_outputs == {"v": [None, None]}
    flag.write_text("x")
    again = run_plan(p, root=root, resume=first.run_id)
    assert again.ok, again.error
    assert again.flow_outputs == {"v": [1, 2]}
    assert sorted(logged(log, "a")) == [1, 2]  # g.a finished in the first run: not run again


# -- matrix, indexing, run values -------------------------------------------------------------


def test_a_2x2_matrix_runs_four_instances_with_the_item_values(tmp_path: Path, log: Path) -> None:
    steps = {
        "grid": step(
            foreach={"$dict": {"lr": {"$lit": [0.1, 0.01]}, "depth": {"$lit": [3, 5]}}},
            matrix=["lr", "depth"],
            **{
                "with": {
                    "value": {"$dict": {"lr": ref("item", "lr"), "depth": ref("item", "depth")}},
                    "log": str(log),
                    "name": "grid",
                }
            },
            outputs=["v"],
        )
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc", max_workers=1)
    assert r.ok, r.error
    expected = [
        {"lr": 0.1, "depth": 3},
        {"lr": 0.1, "depth": 5},
        {"lr": 0.01, "depth": 3},
        {"lr": 0.01, "depth": 5},
    ]
    assert r.outputs["grid"]["v"] == expected
    assert sorted(map(json.dumps, logged(log, "grid"))) == sorted(map(json.dumps, expected))


def test_foreach_items_cross_product_and_errors() -> None:
    assert foreach_items({"b": [1, 2], "a": ["x"]}, ["b", "a"]) == [
        {"b": 1, "a": "x"},
        {"b": 2, "a": "x"},
    ]
    assert foreach_items([3, 1]) == [3, 1]
    with pytest.raises(ForeachError, match="must be a list"):
        foreach_items({"a": 1})
    with pytest.raises(ForeachError, match="key 'a' must be a list"):
        foreach_items({"a": 1}, ["a"])


def test_a_matrix_foreach_group(tmp_path: Path) -> None:
    steps = {
        "m.fit": step(
            **{"with": {"value": {"$fmt": [ref("item", "a"), "-", ref("item", "b")]}}},
            outputs=["v"],
            group="m",
        )
    }
    groups = {
        "m": group(
            foreach={"$dict": {"a": {"$lit": [1, 2]}, "b": {"$lit": ["x", "y"]}}},
            matrix=["a", "b"],
            steps=["m.fit"],
            leaves=["m.fit"],
            outputs={"v": out("m.fit", "v")},
        )
    }
    r = run_plan(
        plan(steps, groups=groups, outputs={"all": out("m", "v")}), root=tmp_path / ".flowc"
    )
    assert r.ok, r.error
    assert r.flow_outputs == {"all": ["1-x", "1-y", "2-x", "2-y"]}


def test_indexing_refs_and_run_ds(tmp_path: Path) -> None:
    steps = {
        "cfg": step("config", outputs=["c"]),
        "use": step(
            **{
                "with": {
                    "value": {
                        "$list": [
                            out("cfg", "c", "k", 1),
                            out("cfg", "c", "name"),
                            ref("run", "ds"),
                            ref("run", "ds_nodash"),
                        ]
                    }
                }
            },
            upstream=["cfg"],
            outputs=["v"],
        ),
    }
    r = run_plan(
        plan(steps, outputs={"last": out("cfg", "c", "k", 2)}),
        root=tmp_path / ".flowc",
        run_date="2026-03-04T23:30:00-02:00",
    )
    assert r.ok, r.error
    assert r.outputs["use"]["v"] == [2, "cfg", "2026-03-05", "20260305"]  # the date in UTC
    assert r.flow_outputs == {"last": 3}


def test_an_index_out_of_range_fails_the_step_with_the_reference(tmp_path: Path) -> None:
    steps = {
        "cfg": step("config", outputs=["c"]),
        "use": step(**{"with": {"value": out("cfg", "c", "k", 9)}}, upstream=["cfg"]),
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.error is not None and "steps.cfg.outputs.c.k[9]" in r.error.error


# -- retries ----------------------------------------------------------------------------------


def test_retry_backoff_and_max_delay() -> None:
    data = {"retry_delay": 10.0, "retry_backoff": 2.0, "retry_max_delay": 30.0}
    assert [retry_delay(data, n) for n in (2, 3, 4, 5)] == [10.0, 20.0, 30.0, 30.0]
    assert [retry_delay({"retry_delay": 5.0}, n) for n in (2, 3)] == [5.0, 5.0]


def test_the_executor_waits_the_backed_off_delays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flowc.runtime.attempts as attempts

    waits: list[float] = []

    class Event:  # records the delays instead of waiting them
        def __init__(self) -> None:
            self.flag = False

        def set(self) -> None:
            self.flag = True

        def is_set(self) -> bool:
            return self.flag

        def wait(self, timeout: float | None = None) -> bool:
            waits.append(float(timeout or 0.0))
            return False

    init = attempts.AttemptRunner.__init__

    def patched(self: Any, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        self._stopping = Event()

    monkeypatch.setattr(attempts.AttemptRunner, "__init__", patched)
    steps = {
        "flaky": step("fail", retries=3, retry_delay=1.0, retry_backoff=3.0, retry_max_delay=5.0)
    }
    r = run_plan(plan(steps), root=tmp_path / ".flowc")
    assert r.error is not None and r.error.attempt == 4
    assert waits == [1.0, 3.0, 5.0]


# -- flow outputs on the command line ---------------------------------------------------------


def test_flow_outputs_in_the_run_summary_and_runs_show(tmp_path: Path, log: Path) -> None:
    from click.testing import CliRunner

    from flowc.compiler.cli import cli
    from flowc.compiler.commands.run import where_things_went

    p = _group_plan(log, [0, 1])
    root = tmp_path / ".flowc"
    r = run_plan(p, root=root, max_workers=2)
    assert r.ok, r.error
    summary = where_things_went(p, r)
    assert "flow outputs:\n  scores = [1, 11]\n  one = 11" in summary
    res = CliRunner().invoke(cli, ["runs", "show", r.run_id, "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert "flow outputs:\n    scores = [1, 11]\n    one = 11" in res.output
    res = CliRunner().invoke(cli, ["runs", "show", r.run_id, "--root", str(root), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["run"]["outputs"] == {"scores": [1, 11], "one": 11}


def test_skip_is_importable_without_loading_the_runtime() -> None:
    import subprocess

    code = (
        "import sys; from flowc.runtime import Skip; "
        "print(sorted(m for m in sys.modules if m.startswith('flowc.runtime')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "['flowc.runtime', 'flowc.runtime.skip']"
    assert issubclass(Skip, Exception)


def test_a_cached_foreach_group_member_is_served_per_item(tmp_path: Path, log: Path) -> None:
    def plan_for(items: list[Any]) -> dict[str, Any]:
        steps = {
            "g.a": step(
                **{"with": {"value": ref("item"), "log": str(log), "name": "a"}},
                outputs=["v"],
                group="g",
                cache=True,
            )
        }
        groups = {"g": group(foreach={"$lit": items}, steps=["g.a"], leaves=["g.a"])}
        return plan(steps, groups=groups)

    root = tmp_path / ".flowc"
    assert run_plan(plan_for([1, 2]), root=root).ok
    again = run_plan(plan_for([2, 3]), root=root)
    assert again.ok and again.outputs["g.a"] == {"v": [2, 3]}
    assert sorted(logged(log, "a")) == [1, 2, 3]  # item 2 came from the cache
