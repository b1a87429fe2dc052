"""The Airflow target against real Airflow 3 (in its own virtualenv, driven by subprocess).

Every golden DAG is imported with a real ``DagBag`` (0 import errors, the task ids and upstream
edges the IR implies, params/schedule as declared), and several run end to end with
``dag.test()``; their XCom outputs are compared with what the local runtime (``run_plan``)
produces for the same plan and params.

The Airflow interpreter is ``$FLOWC_AIRFLOW_PYTHON`` (scripts/test.sh builds ``.venv-airflow``);
when it is missing these tests FAIL, they never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowc.compiler.api import compile_flow, emit, load_text
from flowc.compiler.ir import Pipeline
from flowc.runtime.executor import run_plan
from flowc.targets.airflow import AirflowTarget
from tests.golden_harness import case_options, environ

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"
HARNESS = REPO / "tests" / "airflow_harness" / "harness.py"
FIXTURE_PKGS = REPO / "tests" / "fixtures" / "pkgs"
FANOUT = REPO / "tests" / "fixtures" / "airflow" / "command_fanout.yaml"
FAILING = REPO / "tests" / "fixtures" / "airflow" / "failing.yaml"


def _airflow_python() -> str:
    py = os.environ.get("FLOWC_AIRFLOW_PYTHON") or str(REPO / ".venv-airflow" / "bin" / "python")
    if not Path(py).is_file():
        pytest.fail(
            f"Airflow interpreter not found at {py}: run scripts/test.sh (it builds .venv-airflow) "
            "or set FLOWC_AIRFLOW_PYTHON",
            pytrace=False,
        )
    return py


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(FIXTURE_PKGS), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    env.update(extra or {})
    return env


def _harness(home: Path, args: list[str], extra_env: dict[str, str] | None = None) -> Any:
    proc = subprocess.run(
        [_airflow_python(), str(HARNESS), *args],
        env=_env(home, extra_env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("FLOWC_HARNESS_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    raise AssertionError(
        f"harness failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    )


def _compile(case: str) -> tuple[Pipeline, str]:
    """The case's IR and its Airflow DAG text, compiled as the golden harness does."""
    case_dir = GOLDEN / case
    opts = case_options(case_dir)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with environ(opts.get("env", {})):
            ir = compile_flow(
                os.path.relpath(case_dir / "flow.yaml"),
                environment=opts.get("environment"),
                params=opts.get("params"),
                sets=opts.get("sets"),
                stack=opts.get("stack"),
            )
    finally:
        os.chdir(cwd)
    (text,) = emit(ir, "airflow", output_dir=case_dir / "airflow").values()
    return ir, text


def expected_topology(ir: Pipeline) -> dict[str, list[str]]:
    """Task id -> sorted upstream task ids, as the mapping promises: a step's own task is named
    after it (qualified inside groups); ``when`` adds a ``<step>__when`` gate and ``foreach`` a
    ``<step>__items`` task in front of it; the first of these depends on every upstream step (on
    a group: its leaves). A group waits for its upstream: a plain group's first tasks depend on
    it, a foreach group's ``<group>__items`` task does, and every member's own task depends on
    that items task (the mapped group's argument). A finally step without finally upstream
    waits for every other step; ``_flowc_outputs`` and the ``_flowc_failed`` watcher wait for
    every step (the watcher exists with a trigger rule, a finally step or flow outputs)."""
    groups = {g.name: g for g in getattr(ir, "groups", ())}

    def chain(s: Any) -> list[str]:
        out = [f"{s.name}__when"] if s.when is not None else []
        out += [f"{s.name}__items"] if s.foreach is not None else []
        return [*out, s.name]

    def last(name: str) -> list[str]:
        return list(groups[name].leaves) if name in groups else [name]

    steps = [s for s in ir.steps if not getattr(s, "is_finally", False)]
    finals = [s for s in ir.steps if getattr(s, "is_finally", False)]
    out: dict[str, set[str]] = {}
    for s in ir.steps:
        c = chain(s)
        ups = list(s.upstream)
        if getattr(s, "is_finally", False):
            ups = [u for u in ups if u in {f.name for f in finals}] or [x.name for x in steps]
        out[c[0]] = {t for u in ups for t in last(u)}
        for a, b in zip(c, c[1:], strict=False):
            out[b] = {a}
        fg = _foreach_group(ir, getattr(s, "group", None))
        if fg is not None:
            out[s.name].add(f"{fg}__items")
    for g in groups.values():
        if g.foreach is not None:
            out[f"{g.name}__items"] = {t for u in g.upstream for t in last(u)}
    for g in groups.values():  # a group's upstream reaches the members that start it
        if g.foreach is not None:
            continue
        members = [ir.step(m) for m in ir.members(g.name)]
        inside = {m.name for m in members} | {x for x in groups if x.startswith(g.name + ".")}
        for m in members:
            if not inside & set(m.upstream):
                out[chain(m)[0]] |= {t for u in g.upstream for t in last(u)}
    watcher = (
        bool(finals)
        or bool(getattr(ir, "outputs", ()))
        or any(getattr(s, "trigger", "all_success") != "all_success" for s in ir.steps)
    )
    if getattr(ir, "outputs", ()):
        out["_flowc_outputs"] = {s.name for s in ir.steps}
    if watcher:
        out["_flowc_failed"] = {s.name for s in ir.steps}
    return {k: sorted(v) for k, v in out.items()}


def _golden_dag_files() -> list[Path]:
    return sorted(GOLDEN.glob("*/airflow/*.py"))  # cases the target refuses hold airflow/ERROR


def test_dagbag_imports_every_golden_dag(tmp_path: Path) -> None:
    files = _golden_dag_files()
    assert len(files) >= 10, files
    result = _harness(tmp_path, ["import", *map(str, files)])
    for f in files:
        case = f.parent.parent.name
        got = result[str(f)]
        assert got["errors"] == {}, f"{case}: import errors {got['errors']}"
        ir, text = _compile(case)
        assert text == f.read_text(), f"golden/{case}/airflow is stale"
        assert list(got["dags"]) == [ir.name], case
        dag = got["dags"][ir.name]
        topo = {t: v["upstream"] for t, v in dag["tasks"].items()}
        assert topo == expected_topology(ir), case
        for s in ir.steps:
            task = dag["tasks"][s.name]
            assert task["mapped"] == (s.foreach is not None or s.replicas > 1), (case, s.name)
            want_op = "PythonOperator" if s.kind == "run" else "BashOperator"
            if AirflowTarget.in_pod(ir, s):  # the stack's pod_operator, an image
                want_op = "KubernetesPodOperator"
            assert task["operator"] == want_op, (case, s.name)
            assert task["retries"] == s.retries, (case, s.name)
        assert dag["description"] == ir.description
        assert dag["tags"] == sorted(ir.tags)
        assert set(dag["params"]) == {p.name for p in ir.params}
        for p in ir.params:
            if p.has_default:
                assert dag["params"][p.name]["default"] == p.default, (case, p.name)


def test_dagbag_schedule_params_and_policies(tmp_path: Path) -> None:
    cases = ["schedule_cron", "schedule_every", "schedule_at", "params", "retries_timeout"]
    files = [GOLDEN / c / "airflow" / f"{c}.py" for c in cases]
    r = _harness(tmp_path, ["import", *map(str, files)])
    dags = {c: r[str(f)]["dags"][c] for c, f in zip(cases, files, strict=True)}
    cron = dags["schedule_cron"]
    assert cron["timetable"] == "CronTriggerTimetable"
    assert cron["timezone"] == "Europe/Berlin"
    assert cron["start_date"] == "2025-12-31T23:00:00+00:00"  # 2026-01-01 00:00 in Berlin
    assert cron["end_date"] == "2026-12-31T23:00:00+00:00"
    assert cron["catchup"] is False
    assert dags["schedule_every"]["timetable"] == "DeltaTriggerTimetable"
    assert "0 3 * * 1" in cron["timetable_repr"]
    assert "datetime.timedelta(seconds=900)" in dags["schedule_every"]["timetable_repr"]
    at = dags["schedule_at"]
    assert at["timetable"] == "OnceTimetable" and at["start_date"] == "2027-01-01T00:00:00+00:00"
    p = dags["params"]["params"]
    assert p["path"]["default"] is None and p["path"]["schema"]["type"] == "string"
    assert p["path"]["description"] == "CSV to read"
    assert p["mode"] == {"default": "fast", "schema": {"type": "string", "enum": ["fast", "slow"]}}
    assert p["rows"]["schema"] == {"type": "integer", "minimum": 1}
    assert p["lr"] == {"default": 0.01, "schema": {"type": "number"}}
    assert p["full"] == {"default": False, "schema": {"type": "boolean"}}
    assert p["shards"] == {"default": ["a", "b"], "schema": {"type": "array"}}
    assert p["opts"] == {"default": {"depth": 2, "name": "x"}, "schema": {"type": "object"}}
    assert dags["retries_timeout"]["tasks"]["fetch"]["retries"] == 2
    assert dags["retries_timeout"]["tasks"]["train"]["retries"] == 5


# ---------------------------------------------------------------------------------------------
# End to end with dag.test()
# ---------------------------------------------------------------------------------------------


def airflow_outputs(ir: Pipeline, run: dict) -> dict[str, dict[str, Any]]:
    """Step outputs as the local runtime reports them, rebuilt from the run's XComs."""
    out: dict[str, dict[str, Any]] = {}
    xcom = run["xcom"]
    for s in ir.steps:
        if run["tis"].get(s.name) == "skipped":
            continue

        def decode(v: Any, s=s) -> dict:
            return json.loads(v) if s.kind == "command" else v

        group = _foreach_group(ir, getattr(s, "group", None))
        if group is not None:  # a foreach group's member: a list over the group's items
            items = xcom.get(f"{group}__items") or []
            count = 0 if list(items) == ["-1"] else len(items)
            insts = [xcom.get(f"{s.name}[{i}]") for i in range(count)]
            insts = [None if v in (None, "") else decode(v) for v in insts]
            out[s.name] = {o: [(i or {}).get(o) for i in insts] for o in s.outputs}
        elif s.foreach is not None or s.replicas > 1:
            keys = sorted(
                (k for k in xcom if k.startswith(f"{s.name}[")),
                key=lambda k: int(k[len(s.name) + 1 : -1]),
            )
            insts = [decode(xcom[k]) for k in keys if xcom[k] not in ({"$flowc": "no items"}, "")]
            out[s.name] = {o: [i[o] for i in insts] for o in s.outputs}
        elif s.outputs:
            out[s.name] = decode(xcom[s.name])
        else:
            out[s.name] = {}
    return out


def _foreach_group(ir: Pipeline, group: str | None) -> str | None:
    """The nearest foreach group holding ``group`` (itself included), if any."""
    groups = {g.name: g for g in getattr(ir, "groups", ())}
    while group is not None:
        if groups[group].foreach is not None:
            return group
        group = groups[group].parent
    return None


def _local(ir: Pipeline, tmp_path: Path, params: dict | None = None) -> Any:
    res = run_plan(ir.to_data(), params, root=tmp_path / ".flowc", max_workers=2)
    assert res.ok, res.error and res.error.render()
    return res


def _states(run: dict) -> dict[str, str]:
    return {k: v for k, v in run["tis"].items() if "__" not in k}


def _run_dags(
    tmp_path: Path,
    jobs: dict[str, list[dict | None]],
    env: dict[str, str] | None = None,
    sources: dict[str, str] | None = None,
) -> dict[str, list[dict]]:
    """dag.test() each case's golden DAG once per conf, all in ONE Airflow process (its start-up
    dominates), with a fresh SQLite AIRFLOW_HOME under tmp_path. ``{case: [run, ...]}``."""
    home = tmp_path / "airflow_home"
    (home / "dags").mkdir(parents=True)
    variables = home / "variables.json"
    variables.write_text(json.dumps({"api_token": "tok-from-airflow"}))
    spec = []
    for case, confs in jobs.items():
        f = home / "dags" / f"{case}.py"
        text = (sources or {}).get(case) or (GOLDEN / case / "airflow" / f"{case}.py").read_text()
        f.write_text(text)
        spec.append({"file": str(f), "confs": confs, "variables": str(variables)})
    (tmp_path / "jobs.json").write_text(json.dumps(spec))
    results = _harness(home, ["test", str(tmp_path / "jobs.json")], env)
    out = {}
    for case, res in zip(jobs, results, strict=True):
        assert "runs" in res, f"{case}: {res}"
        out[case] = res["runs"]
    return out


def test_dag_test_foreach_when_params(tmp_path: Path) -> None:
    """One with foreach, one with when (both ways), one with params overridden at trigger."""
    params_conf = {
        "path": "in {{ ds }}.csv",
        "rows": 5,
        "mode": "slow",
        "full": True,
        "shards": [1, "x"],
    }
    failing = load_text(FAILING.read_text(), FAILING.name)
    (failing_text,) = emit(failing, "airflow").values()
    runs = _run_dags(
        tmp_path,
        {
            "foreach": [None, {"shards": []}],
            "when": [None, {"full": True}],
            "params": [params_conf],
            "failing": [None],
        },
        sources={"failing": failing_text},
    )
    # foreach -> dynamic task mapping, outputs gathered in item order
    ir, _ = _compile("foreach")
    run, empty = runs["foreach"]
    assert run["state"] == "success", run
    got = airflow_outputs(ir, run)
    assert got == _local(ir, tmp_path / "l1").outputs
    assert got["shard_eval"]["score"] == [10.0, 11.0, 12.0]
    assert got["publish"] == {"message": "published 3"}
    assert {k for k in run["tis"] if k.startswith("shard_eval[")} == {
        "shard_eval[0]",
        "shard_eval[1]",
        "shard_eval[2]",
    }
    # foreach over nothing: downstream still runs, with an empty list (as under flowc run)
    assert empty["state"] == "success", empty
    assert airflow_outputs(ir, empty) == _local(ir, tmp_path / "l0", {"shards": []}).outputs
    assert empty["xcom"]["publish"] == {"message": "published 0"}
    # when -> gates skip exactly what the local runtime skips
    ir, _ = _compile("when")
    for n, (run, params) in enumerate(zip(runs["when"], [None, {"full": True}], strict=True)):
        assert run["state"] == "success", run
        local = _local(ir, tmp_path / f"w{n}", params)
        assert _states(run) == local.states, (params, run["tis"])
        assert airflow_outputs(ir, run) == local.outputs
    assert _states(runs["when"][0])["full_eval"] == "skipped"
    assert _states(runs["when"][0])["publish"] == "success"
    assert _states(runs["when"][1])["publish"] == "skipped"
    assert runs["when"][1]["xcom"]["full_eval"] == {"value": "model-2-1"}
    # a failing step fails the run; downstream is upstream_failed; exit 99 is a failure too
    (run,) = runs["failing"]
    local = run_plan(failing.to_data(), root=tmp_path / "l9" / ".flowc", max_workers=2)
    assert run["state"] == "failed" and local.status == "failed"
    assert (
        _states(run)
        == local.states
        == {
            "ok": "success",
            "bad": "failed",
            "after_bad": "upstream_failed",
            "bad_cmd": "failed",
        }
    )
    # params overridden when triggering (typed; a str keeps Jinja-looking text verbatim)
    ir, _ = _compile("params")
    (run,) = runs["params"]
    assert run["state"] == "success", run
    frame = run["xcom"]["load"]["frame"]
    assert len(frame) == 5 and frame[0]["src"] == "in {{ ds }}.csv"
    report = run["xcom"]["report"]["value"]
    assert report["value"] == "model model-5-2 in slow mode"
    assert report["shards"] == [1, "x"] and report["full"] is True
    assert airflow_outputs(ir, run) == _local(ir, tmp_path / "l2", params_conf).outputs


def test_dag_test_escaping_replicas_command_secrets(tmp_path: Path) -> None:
    greeting = "hi {{ x }} ''' \\ $HOME"
    fanout = load_text(FANOUT.read_text(), FANOUT.name)
    (fanout_text,) = emit(fanout, "airflow").values()
    runs = _run_dags(
        tmp_path,
        {
            "escaping": [None],
            "replicas": [None],
            "command": [{"greeting": greeting}],
            "secrets": [None],
            "command_fanout": [None, {"items": []}],
        },
        env={"DB_PASSWORD": "pw-from-env", "API_TOKEN": "not-this-one"},
        sources={"command_fanout": fanout_text},
    )
    # ''' and {{ }} and {% %} and backslashes and newlines, through Python source, Jinja-templated
    # BashOperator fields and XCom, reach the steps byte-exact (and as under the local runtime)
    ir, _ = _compile("escaping")
    (run,) = runs["escaping"]
    assert run["state"] == "success", run
    got = airflow_outputs(ir, run)
    assert got == _local(ir, tmp_path / "l1").outputs
    value = dict(ir.step("echo").with_)["value"].value  # the literal as the front-end read it
    assert got["echo"]["value"] == value and "'''" in value and "{{ ds }}" in value
    argv = got["check"]["value"]
    assert argv[0] == ir.step("shell").command[3].value
    assert argv[1] == ir.param("text").default and argv[2] == value and argv[3] == "run.sh"
    assert got["check"]["env"] == "e {{ ds }} {% if %} ''' \\ $HOME"
    # replicas -> mapped copies, outputs as a list in replica order
    ir, _ = _compile("replicas")
    (run,) = runs["replicas"]
    assert run["state"] == "success", run
    assert (
        airflow_outputs(ir, run)
        == _local(ir, tmp_path / "l2").outputs
        == {
            "square": {"y": [49, 49, 49]},
            "total": {"sum": 147},
        }
    )
    # command -> BashOperator, a param with quotes/Jinja/backslash reaches argv intact
    (run,) = runs["command"]
    assert run["state"] == "success", run
    assert _states(run) == {"load": "success", "shout": "success"}
    # command steps mapped by replicas (env carries FLOWC_REPLICA) and by foreach (the item
    # reaches argv through the flowc_arg macro, Jinja-looking text intact), and over no items
    for n, (run, params) in enumerate(
        zip(runs["command_fanout"], [None, {"items": []}], strict=True)
    ):
        assert run["state"] == "success", run
        local = _local(fanout, tmp_path / f"f{n}", params)
        assert airflow_outputs(fanout, run) == local.outputs
    got = airflow_outputs(fanout, runs["command_fanout"][0])
    assert got["rep"] == {"r": ["0/2", "1/2"], "mode": ["m {{ ds }}", "m {{ ds }}"]}
    assert got["each"] == {"arg": ["a", "b {{ x }}"]}
    assert airflow_outputs(fanout, runs["command_fanout"][1])["each"] == {"arg": []}
    # secrets: the Airflow Variable named by the flow, else the environment; never in the file
    (run,) = runs["secrets"]
    assert run["state"] == "success", run
    call = run["xcom"]["call"]
    assert call["token"] == "tok-from-airflow" and call["password"] == "pw-from-env"
    text = (GOLDEN / "secrets" / "airflow" / "secrets.py").read_text()
    assert "tok-from-airflow" not in text and "pw-from-env" not in text
    assert "airflow" not in sys.modules  # the compiler and the tests never import Airflow


def test_dagbag_pods_and_resources(tmp_path: Path) -> None:
    """pod_operator: command steps with an image are KubernetesPodOperators, Python tasks with
    resources get a pod_override; without pods, resources stay plain data (no kubernetes import
    when Airflow parses the file)."""
    src = REPO / "tests" / "fixtures" / "airflow" / "pods_resources.yaml"
    ir = load_text(src.read_text(), src.name, stack="k8s")
    (text,) = emit(ir, "airflow").values()
    f = tmp_path / "pods_resources.py"
    f.write_text(text)
    res_golden = GOLDEN / "resources" / "airflow" / "resources.py"
    r = _harness(tmp_path, ["import", str(f), str(res_golden)])
    assert r[str(f)]["errors"] == {}
    tasks = r[str(f)]["dags"]["pods_resources"]["tasks"]
    assert tasks["report"]["operator"] == "KubernetesPodOperator"
    assert tasks["report"]["upstream"] == ["train"]
    assert tasks["train"]["executor_config"] == {"pod_override": "V1Pod"}
    assert tasks["prep"]["executor_config"] == {"pod_override": "V1Pod"}
    plain = r[str(res_golden)]["dags"]["resources"]["tasks"]
    assert plain["train"]["executor_config"] == {"flowc_resources": "dict"}
    assert "kubernetes" not in res_golden.read_text()


RETRY_ENV_FLOW = """\
flowc: 1
name: retry_env
steps:
  flaky:
    command:
      - sh
      - -c
      - >-
        if [ ! -f "$MARK" ]; then touch "$MARK"; exit 1; fi;
        printf '{"script": "%s", "other": "%s"}' "$SCRIPT" "$OTHER" > "$FLOWC_OUTPUTS"
    retries: 1
    retry_delay: 0s
    env: {SCRIPT: deploy.sh, OTHER: "{{ ds }} x.bash", MARK: "MARK_PATH"}
    outputs: [script, other]
"""


def test_dag_test_retries_at_once_and_env_values_are_literal(tmp_path: Path) -> None:
    # retry_delay: 0s fell back to Airflow's 5-minute default; env values ending in .sh/.bash
    # were read as template files (TemplateNotFound, or the file rendered when it existed)
    mark = tmp_path / "attempted"
    ir = load_text(RETRY_ENV_FLOW.replace("MARK_PATH", str(mark)), "retry_env.yaml")
    (text,) = emit(ir, "airflow").values()
    assert "retry_delay" in text and "literal(" in text
    f = tmp_path / "dags_import" / "retry_env.py"
    f.parent.mkdir()
    f.write_text(text)
    dag = _harness(tmp_path / "home_import", ["import", str(f)])[str(f)]["dags"]["retry_env"]
    assert dag["tasks"]["flaky"]["retries"] == 1
    assert dag["tasks"]["flaky"]["retry_delay"] == 0.0  # timedelta(0), not Airflow's 300 s
    runs = _run_dags(tmp_path, {"retry_env": [None]}, sources={"retry_env": text})
    (run,) = runs["retry_env"]
    assert run["state"] == "success", run  # attempt 1 failed, attempt 2 ran at once
    got = airflow_outputs(ir, run)
    mark.unlink()
    assert got == _local(ir, tmp_path / "local").outputs
    assert got["flaky"] == {"script": "deploy.sh", "other": "{{ ds }} x.bash"}
