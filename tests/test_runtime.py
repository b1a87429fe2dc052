"""The local runtime, end to end with real step functions (tests/fixtures/pkgs/flowc_rt)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowc.compiler.api import load_text
from flowc.runtime import params as rt_params
from flowc.runtime.executor import RunError, run_plan
from flowc.runtime.metadata import MetadataStore
from flowc.runtime.step import StepError, execute


def plan_of(tmp_path: Path, text: str, **kw) -> dict:
    return load_text(textwrap.dedent(text), str(tmp_path / "flow.yaml"), **kw).to_data()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


DEMO = """
flowc: 1
name: demo
params:
  rows: {type: int, default: 3}
  shards: {type: list, default: [a, bb, ccc]}
  threshold: {type: float, default: 0.8}
steps:
  load:
    run: flowc_demo.steps:load
    with: {rows: "${params.rows}"}
    outputs: [frame]
  train:
    run: flowc_demo.steps:train
    with: {frame: "${steps.load.outputs.frame}", epochs: 2}
    outputs: [model, auc]
  score:
    run: flowc_demo.steps:score
    foreach: "${params.shards}"
    with: {model: "${steps.train.outputs.model}", shard: "${item}"}
    outputs: [score]
  publish:
    run: flowc_demo.steps:publish
    when: "${steps.train.outputs.auc} >= ${params.threshold}"
    with: {scores: "${steps.score.outputs.score}"}
    outputs: [msg]
  after_publish:
    run: flowc_demo.steps:echo
    with: {value: done}
    after: [publish]
    outputs: [v]
  independent:
    run: flowc_demo.steps:add
    with: {a: 1, b: 2}
    outputs: [sum]
"""


def test_data_passing_foreach_order_and_when_true(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.outputs["load"]["frame"][2] == {"id": 2, "src": "data.csv"}
    assert r.outputs["train"] == {"model": "model-3-2", "auc": 0.9}
    # foreach: one instance per item, outputs gathered in item order
    assert r.outputs["score"]["score"] == [10.0, 11.0, 12.0]
    assert r.outputs["publish"]["msg"] == "published 3"
    assert set(r.states.values()) == {"success"}
    # persisted: JSON artifacts, metadata rows with output URIs
    art = tmp_path / ".flowc" / "runs" / r.run_id / "score" / "score.json"
    assert json.loads(art.read_text()) == [10.0, 11.0, 12.0]
    meta = MetadataStore(root=tmp_path / ".flowc")
    run = meta.run(r.run_id)
    assert run["status"] == "success" and run["params"]["rows"] == 3
    steps = {s["step"]: s for s in meta.steps(r.run_id)}
    assert steps["score"]["outputs"]["score"].endswith("score.json")
    assert steps["train"]["duration"] >= 0


def test_when_false_skips_step_and_its_downstream(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    r = run_plan(plan, {"threshold": 0.95}, root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.states["publish"] == "skipped"
    assert r.states["after_publish"] == "skipped"  # `after` edge: all_success -> skipped too
    assert r.states["independent"] == "success" and r.states["score"] == "success"
    assert "publish" not in r.outputs


def test_params_validation_and_cli_parsing(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    assert rt_params.parse_cli(plan, ["rows=7", 'shards=["x"]']) == {"rows": 7, "shards": ["x"]}
    with pytest.raises(rt_params.ParamError, match="not a valid int"):
        rt_params.parse_cli(plan, ["rows=x"])
    with pytest.raises(RunError, match="unknown param 'rowz'.*did you mean 'rows'"):
        run_plan(plan, {"rowz": 1}, root=tmp_path / ".flowc")
    text = 'flowc: 1\nname: p\nparams: {code: {type: str, default: "1"}}\nsteps:\n  e: {run: "flowc_demo.steps:echo", with: {value: "${params.code}"}, outputs: [v]}\n'
    p2 = plan_of(tmp_path, text)
    assert rt_params.parse_cli(p2, ["code=007"]) == {"code": "007"}
    r = run_plan(p2, rt_params.parse_cli(p2, ["code=007"]), root=tmp_path / ".flowc")
    assert r.outputs["e"]["v"] == "007"


def test_retries_then_success(tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    plan = plan_of(
        tmp_path,
        f"""
        flowc: 1
        name: flaky
        steps:
          f:
            run: flowc_rt.steps:flaky
            with: {{counter: "{counter}", fails: 2}}
            retries: 2
            retry_delay: 100ms
            outputs: [calls]
        """,
    )
    events: list[dict] = []
    t0 = time.monotonic()
    r = run_plan(plan, root=tmp_path / ".flowc", progress=events.append)
    assert r.ok, r.error
    assert r.outputs["f"]["calls"] == 3
    assert time.monotonic() - t0 >= 0.2  # two retry delays
    assert [e["attempt"] for e in events if e["status"] == "retry"] == [1, 2]
    attempts = MetadataStore(root=tmp_path / ".flowc").attempts(r.run_id, "f")
    assert [a["status"] for a in attempts] == ["failed", "failed", "success"]
    assert "flaky failure 1" in attempts[0]["error"]
    log1 = Path(attempts[0]["log"])
    assert "RuntimeError: flaky failure 1" in log1.read_text()


def test_retries_exhausted_fail(tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    plan = plan_of(
        tmp_path,
        f"""
        flowc: 1
        name: flaky
        steps:
          f: {{run: "flowc_rt.steps:flaky", with: {{counter: "{counter}", fails: 5}}, retries: 1}}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert not r.ok
    assert r.error.step == "f" and r.error.attempt == 2
    assert len(lines(counter)) == 2


def test_timeout_stops_the_step(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: slow
        steps:
          slow: {run: "flowc_rt.steps:sleep", with: {seconds: 30}, timeout: 1s, outputs: [s]}
          fast: {run: "flowc_rt.steps:sleep", with: {seconds: 0.01}, outputs: [s]}
        """,
    )
    t0 = time.monotonic()
    r = run_plan(plan, root=tmp_path / ".flowc")
    elapsed = time.monotonic() - t0
    assert not r.ok
    assert r.states == {"slow": "failed", "fast": "success"}
    assert "timed out after 1s" in r.error.error
    assert elapsed < 15, elapsed  # stopped, not waited for


def test_failure_isolation_and_first_error(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: fails
        steps:
          bad: {run: "flowc_rt.steps:boom", with: {message: "it broke"}, outputs: [x]}
          child: {run: "flowc_demo.steps:echo", with: {value: "${steps.bad.outputs.x}"}, outputs: [v]}
          grandchild: {run: "flowc_demo.steps:echo", after: [child]}
          other: {run: "flowc_rt.steps:sleep", with: {seconds: 0.2}, outputs: [s]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.status == "failed"
    assert r.states == {
        "bad": "failed",
        "child": "upstream_failed",
        "grandchild": "upstream_failed",
        "other": "success",
    }
    text = r.error.render()
    assert "step 'bad'" in text and "attempt 1" in text and "ValueError: it broke" in text
    log = Path(r.error.log_path)
    assert log.exists() and "about to fail" in log.read_text()
    assert "Traceback" in log.read_text()
    run = MetadataStore(root=tmp_path / ".flowc").run(r.run_id)
    assert run["status"] == "failed" and "it broke" in run["error"]


def test_cache_hit_across_runs(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    text = f"""
        flowc: 1
        name: cached
        params: {{v: {{type: int, default: 1}}}}
        steps:
          c:
            run: flowc_rt.steps:record
            with: {{log: "{log}", name: c, value: "${{params.v}}"}}
            cache: true
            outputs: [out]
          d: {{run: "flowc_demo.steps:square", with: {{x: "${{steps.c.outputs.out}}"}}, outputs: [y]}}
        """
    plan = plan_of(tmp_path, text)
    root = tmp_path / ".flowc"
    r1 = run_plan(plan, root=root)
    r2 = run_plan(plan, root=root)
    assert r1.states["c"] == "success" and r2.states["c"] == "cached"
    assert r2.outputs["d"]["y"] == 1
    assert lines(log) == ["c"]  # ran once
    assert {s["step"]: s["status"] for s in MetadataStore(root=root).steps(r2.run_id)}[
        "c"
    ] == "cached"
    r3 = run_plan(plan, {"v": 4}, root=root)  # other inputs: runs again
    assert r3.states["c"] == "success" and r3.outputs["d"]["y"] == 16
    assert lines(log) == ["c", "c"]


def test_replicas_are_processes_with_env(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: reps
        steps:
          r: {run: "flowc_rt.steps:replica_env", replicas: 3, outputs: [info]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.ok, r.error
    infos = r.outputs["r"]["info"]
    assert [i["replica"] for i in infos] == [0, 1, 2]
    assert {i["replicas"] for i in infos} == {3}
    assert len({i["pid"] for i in infos} | {os.getpid()}) == 4


def test_step_env_and_ctx(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: ctxflow
        params: {p: {type: str, default: hi}}
        steps:
          e: {run: "flowc_rt.steps:read_env", with: {name: MY_VAR}, env: {MY_VAR: "v-${params.p}"}, outputs: [v]}
          c: {run: "flowc_rt.steps:with_ctx", with: {x: 5}, outputs: [info]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc", run_id="my-run")
    assert r.ok, r.error
    assert r.outputs["e"]["v"] == "v-hi"
    assert "MY_VAR" not in os.environ
    info = r.outputs["c"]["info"]
    assert info == {
        "run_id": "my-run",
        "step": "c",
        "flow": "ctxflow",
        "params": {"p": "hi"},
        "x": 5,
        "dir_ok": True,
    }
    assert "hello from c" in (tmp_path / ".flowc/runs/my-run/c/attempt-1.log").read_text()


SECRET_FLOW = """
flowc: 1
name: sec
secrets:
  token: {env: FLOWC_TEST_TOKEN}
steps:
  use: {run: "flowc_rt.steps:use_secret", with: {token: "${secrets.token}"}, outputs: [n]}
  use_iso: {run: "flowc_rt.steps:use_secret", with: {token: "${secrets.token}"}, timeout: 30s, outputs: [n]}
  fail: {run: "flowc_rt.steps:boom", with: {message: "${secrets.token}"}}
  fail_iso: {run: "flowc_rt.steps:boom", with: {message: "${secrets.token}"}, timeout: 30s}
  direct: {run: "flowc_rt.steps:print_env", with: {name: FLOWC_TEST_TOKEN}, outputs: [n]}
"""


def test_secrets_from_env_never_persisted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = "s3cr3t-VALUE-xyz"
    monkeypatch.setenv("FLOWC_TEST_TOKEN", value)
    plan = plan_of(tmp_path, SECRET_FLOW)
    assert value not in json.dumps(plan)
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.outputs["use"]["n"] == len(value) and r.outputs["use_iso"]["n"] == len(value)
    assert r.states["fail"] == "failed" and r.states["fail_iso"] == "failed"
    assert value not in r.error.render()
    attempts = MetadataStore(root=tmp_path / ".flowc").attempts(r.run_id, "fail_iso")
    assert attempts[0]["error"] == "ValueError: ***"
    found = [
        p
        for p in (tmp_path / ".flowc").rglob("*")
        if p.is_file() and value.encode() in p.read_bytes()
    ]
    assert found == []
    logs = list((tmp_path / ".flowc").rglob("*.log"))
    assert any("token is ***" in p.read_text() for p in logs)
    assert any("env FLOWC_TEST_TOKEN = ***" in p.read_text() for p in logs)
    db = sqlite3.connect(tmp_path / ".flowc" / "metadata.db")
    dump = "\n".join(db.iterdump())
    assert value not in dump and "***" in dump


def test_missing_secret_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWC_TEST_TOKEN", raising=False)
    plan = plan_of(tmp_path, SECRET_FLOW)
    r = run_plan(plan, only=["use"], root=tmp_path / ".flowc")
    assert not r.ok and r.error.step == "use"
    assert (
        "secret 'token' is missing at run time: set environment variable FLOWC_TEST_TOKEN"
        in r.error.error
    )


def test_only_prunes_to_needed_upstream(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    r = run_plan(plan, only=["train"], root=tmp_path / ".flowc")
    assert r.ok
    assert set(r.states) == {"load", "train"}
    with pytest.raises(RunError, match="unknown step"):
        run_plan(plan, only=["nope"], root=tmp_path / ".flowc")


def test_non_json_outputs_are_pickled(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: pick
        steps:
          s: {run: "flowc_rt.steps:not_json", with: {n: 3}, outputs: [v]}
          t: {run: "flowc_demo.steps:total", with: {values: "${steps.s.outputs.v}"}, outputs: [n]}
          p: {run: "flowc_rt.steps:pair", with: {a: 2}, outputs: [left, right]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert r.outputs["s"]["v"] == {0, 1, 2} and r.outputs["t"]["n"] == 3
    assert r.outputs["p"] == {"left": 2, "right": 4}
    assert (tmp_path / ".flowc/runs" / r.run_id / "s/v.pkl").exists()


def test_missing_output_is_a_clear_error(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: miss
        steps:
          p: {run: "flowc_rt.steps:pair", outputs: [left, middle]}
        """,
    )
    with pytest.raises(StepError, match=r"missing output\(s\) \['middle'\]"):
        execute(plan, "p", params={}, upstream={}, run_id="r")


def test_command_step_argv_outputs_and_failure(tmp_path: Path) -> None:
    code = "import json,os,sys; json.dump({'n': len(sys.argv[1])}, open(os.environ['FLOWC_OUTPUTS'], 'w')); print(sys.argv[1])"
    plan = plan_of(
        tmp_path,
        f"""
        flowc: 1
        name: cmd
        params: {{word: {{type: str, default: "a b; rm -rf x $(id)"}}}}
        steps:
          c: {{command: ["{sys.executable}", "-c", "{code}", "${{params.word}}"], outputs: [n]}}
          bad: {{command: ["{sys.executable}", "-c", "import sys; sys.exit(3)"]}}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.outputs["c"]["n"] == len("a b; rm -rf x $(id)")
    log = tmp_path / ".flowc/runs" / r.run_id / "c/attempt-1.log"
    assert log.read_text().strip() == "a b; rm -rf x $(id)"
    assert r.states["bad"] == "failed" and "exited with code 3" in r.error.error


def test_entry_module_runs_one_step(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "in.json").write_text(
        json.dumps({"params": {"rows": 1}, "upstream": {"load": {"frame": [1, 2]}}, "run_id": "x"})
    )
    cmd = [sys.executable, "-m", "flowc.runtime", "step", "--plan", str(tmp_path / "plan.json")]
    cmd += [
        "--step",
        "train",
        "--inputs",
        str(tmp_path / "in.json"),
        "--outputs",
        str(tmp_path / "out.json"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == {"model": "model-2-2", "auc": 0.9}
    (tmp_path / "in.json").write_text(json.dumps({"params": {}, "upstream": {}, "run_id": "x"}))
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    err = json.loads((tmp_path / "out.json").read_text())["$error"]
    assert err["type"] == "StepError" and "train" in err["message"]


def test_unsafe_run_id_and_symlinked_artifact_dir_are_refused(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DEMO)
    root = tmp_path / ".flowc"
    with pytest.raises(RunError, match="run id"):
        run_plan(plan, root=root, run_id="../evil")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "runs" / "r1").mkdir(parents=True)
    (root / "runs" / "r1" / "load").symlink_to(outside)
    r = run_plan(plan, root=root, run_id="r1", only=["load"])
    assert not r.ok and "resolves outside" in r.error.error
    assert list(outside.iterdir()) == []


def test_stack_max_workers_and_store_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: stacked
        stacks:
          local:
            orchestrator: {type: local, max_workers: 1}
            artifact_store: {type: local, path: store}
            metadata_store: {type: sqlite, path: meta/history.db}
        environments:
          dev: {stack: local}
        steps:
          a: {run: "flowc_rt.steps:span", with: {seconds: 0.4}, outputs: [s]}
          b: {run: "flowc_rt.steps:span", with: {seconds: 0.4}, outputs: [s]}
        """,
        environment="dev",
    )

    def overlap(r) -> bool:  # noqa: ANN001
        (a0, a1), (b0, b1) = r.outputs["a"]["s"], r.outputs["b"]["s"]
        return a0 < b1 and b0 < a1

    r = run_plan(plan, root=".flowc")
    assert r.ok, r.error
    assert not overlap(r)  # max_workers 1 from the stack: one at a time
    assert (tmp_path / "store" / "runs" / r.run_id / "a" / "s.json").exists()
    assert (tmp_path / "meta" / "history.db").exists()
    r = run_plan(plan, root=".flowc", max_workers=2)  # the argument wins
    assert r.ok and overlap(r)


def test_run_and_flow_refs_and_sys_exit_in_a_step(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: refs
        steps:
          r:
            run: flowc_demo.steps:echo
            with: {value: "${run.id}", flow: "${flow.name}", date: "${run.date}", tag: "${flow.name}-${run.id}"}
            outputs: [v]
          x: {run: "flowc_rt.steps:exits", with: {code: 4}}
          y: {run: "flowc_demo.steps:add", with: {a: 1, b: 1}, outputs: [s]}
        """,
    )
    r = run_plan(
        plan, root=tmp_path / ".flowc", run_id="run-7", run_date="2026-01-02T03:04:05+00:00"
    )
    assert r.outputs["r"]["v"] == {
        "value": "run-7",
        "flow": "refs",
        "date": "2026-01-02T03:04:05+00:00",
        "tag": "refs-run-7",
    }
    assert r.states["x"] == "failed" and "SystemExit: 4" in r.error.error
    assert r.states["y"] == "success"


def test_unimportable_callable_is_a_clear_error(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        flowc: 1
        name: missing
        steps:
          m: {run: "no_such_module_xyz:fn"}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert "cannot load callable 'no_such_module_xyz:fn'" in r.error.error
    assert "PYTHONPATH" in r.error.error


def test_resume_in_process_reuses_finished_steps_and_warns_on_changes(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    text = f"""
        flowc: 1
        name: res
        steps:
          a: {{run: "flowc_rt.steps:record", with: {{log: "{log}", name: a, value: 1}}, outputs: [v]}}
          b: {{run: "flowc_rt.steps:flaky", with: {{counter: "{tmp_path / 'n.txt'}", fails: 1}}, outputs: [n]}}
          c: {{run: "flowc_demo.steps:add", with: {{a: "${{steps.a.outputs.v}}", b: "${{steps.b.outputs.n}}"}}, outputs: [s]}}
        """
    plan = plan_of(tmp_path, text)
    root = tmp_path / ".flowc"
    r1 = run_plan(plan, root=root)
    assert r1.states == {"a": "success", "b": "failed", "c": "upstream_failed"}
    r2 = run_plan(plan, root=root, resume=r1.run_id)
    assert r2.run_id == r1.run_id and r2.ok and r2.outputs["c"]["s"] == 3
    assert lines(log) == ["a"] and r2.warnings == []
    plan["steps"]["a"]["with"]["value"] = 5
    r3 = run_plan(plan, root=root, resume=r1.run_id)
    assert r3.ok and r3.outputs["c"]["s"] == 3 and "steps a" in r3.warnings[0]
    with pytest.raises(RunError, match="no run 'nope'"):
        run_plan(plan, root=root, resume="nope")


def test_resume_skips_foreach_items_that_finished(tmp_path: Path) -> None:
    log, block = tmp_path / "calls.txt", tmp_path / "block.txt"
    block.write_text("c")
    plan = plan_of(
        tmp_path,
        f"""
        flowc: 1
        name: items
        params: {{names: {{type: list, default: [a, b, c, d]}}}}
        steps:
          each:
            run: flowc_rt.steps:record_unless
            foreach: "${{params.names}}"
            with: {{log: "{log}", name: "${{item}}", block_file: "{block}"}}
            outputs: [v]
          total: {{run: "flowc_demo.steps:echo", with: {{value: "${{steps.each.outputs.v}}"}}, outputs: [v]}}
        """,
    )
    root = tmp_path / ".flowc"
    r1 = run_plan(plan, root=root, max_workers=2)
    assert r1.states == {"each": "failed", "total": "upstream_failed"}
    assert sorted(lines(log)) == ["a", "b", "d"]
    block.unlink()
    r2 = run_plan(plan, root=root, resume=r1.run_id)
    assert r2.ok, r2.error
    assert sorted(lines(log)) == ["a", "b", "c", "d"]  # only the failed item ran again
    assert r2.outputs["total"]["v"] == ["A", "B", "C", "D"]
