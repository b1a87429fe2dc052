"""Control flow (issue 18) on KFP / Vertex: kfp.local (SubprocessRunner) runs the compiled specs
where it can, and the spec is compared with what kfp's own compiler emits for the equivalent
pipeline (dsl.ExitHandler with PipelineTaskFinalStatus, ParallelFor bodies, nested pipelines,
ignore_upstream_failure, set_retry). Flows are written in the DSL and, for the constructs the
loader does not read yet in this branch, given their control flow in the IR (the contract's
fields) by hand."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from flowc.compiler.api import emit, load_text
from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Group, Lit, Pipeline, Ref
from tests.test_kfp import _check_dag


def _flow(body: str) -> Pipeline:
    return load_text("flowc: 1\nname: cf\n" + textwrap.dedent(body), "flow.yaml")


def _change(ir: Pipeline, steps: dict[str, dict[str, Any]], **top: Any) -> Pipeline:
    """``ir`` with step fields (and new names) and pipeline fields replaced."""
    out = []
    for s in ir.steps:
        out.append(dataclasses.replace(s, **steps.get(s.name, {})))
    return dataclasses.replace(ir, steps=tuple(out), **top)


def _run_value(ir: Pipeline, step: str, **keys: str) -> Pipeline:
    """``ir`` with ``with: {key: ${run.NAME}}`` set on ``step`` (written as ``${run.id}``:
    until the front end lands here its loader reads only run.id / run.date)."""
    s = ir.step(step)
    refs = {k: Ref("run", (v,), loc=s.loc) for k, v in keys.items()}
    with_ = tuple((k, refs.get(k, e)) for k, e in s.with_)
    return _change(ir, {step: {"with_": with_, "run_refs": tuple(refs.values())}})


def _spec(ir: Pipeline) -> dict[str, Any]:
    spec = next(yaml.safe_load_all(emit(ir, "kfp")["pipeline.yaml"]))
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields fail
    problems: list[str] = []
    _check_dag(spec, spec["root"], "root", problems)
    for name, comp in spec["components"].items():
        for p in comp.get("inputDefinitions", {}).get("parameters", {}):
            assert p.isidentifier() or p.startswith("pipelinechannel--"), (name, p)
    assert not problems, "\n".join(problems)
    vertex = json.loads(emit(ir, "vertex")["pipeline_job.json"])["pipelineSpec"]
    assert vertex["root"] == spec["root"] and vertex["components"] == spec["components"]
    return spec


def _programs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """task name -> the flowc SPEC its executor runs."""
    out = {}
    for label, ex in spec["deploymentSpec"]["executors"].items():
        cmd = ex["container"].get("command", [])
        if len(cmd) < 4:
            continue
        m = re.search(r"^SPEC = json\.loads\(\s*('.*'|\".*\")\s*\)$", cmd[3], re.M | re.S)
        assert m, label
        out[label[len("exec-") :]] = json.loads(ast.literal_eval(m.group(1)))
    return out


def _run_local(ir: Pipeline, tmp_path: Path, raise_on_error: bool = True) -> Any:
    from kfp import components, local

    path = tmp_path / "pipeline.yaml"
    path.write_text(emit(ir, "kfp")["pipeline.yaml"], encoding="utf-8")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=raise_on_error,
    )
    return components.load_component_from_file(str(path))()


def _executor_outputs(tmp_path: Path, task: str) -> list[tuple[str, dict[str, Any]]]:
    """(path under the pipeline root, parameter values) of every run of ``task``."""
    root = tmp_path / "kfp-root"
    out = []
    for f in sorted(root.rglob("executor_output.json")):
        if f.parent.name == task:
            out.append((str(f.relative_to(root)), json.loads(f.read_text())["parameterValues"]))
    return out


def _kfp_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> dict[str, Any]:
    """What kfp's own compiler writes for pipeline ``p`` (``body`` defines it)."""
    from kfp import compiler

    module = f"kfp_cf_{abs(hash(body)) % 10**8}"
    head = (
        "from typing import List\n\nfrom kfp import dsl\n\n\n"
        "@dsl.component\ndef echo(value: str = 'null') -> str:\n    return value\n\n\n"
        "@dsl.component\ndef collect(values: List[str]) -> str:\n    return str(values)\n\n\n"
        "@dsl.component\ndef report(status: dsl.PipelineTaskFinalStatus) -> str:\n"
        "    return status.state\n\n\n"
    )
    (tmp_path / f"{module}.py").write_text(head + textwrap.dedent(body), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    compiler.Compiler().compile(importlib.import_module(module).p, str(tmp_path / "kfp.yaml"))
    return yaml.safe_load((tmp_path / "kfp.yaml").read_text())


# ---------------------------------------------------------------------------------------------
# finally -> ExitHandler + PipelineTaskFinalStatus
# ---------------------------------------------------------------------------------------------

FINALLY = """\
steps:
  ok: {run: flowc_demo.steps:echo, with: {value: a}, outputs: [value]}
  boom: {run: flowc_demo.steps:count, with: {frame: 5}, after: [ok]}
  report: {run: flowc_demo.steps:echo, with: {value: "${run.id}"}, outputs: [value]}
"""


def _finally_ir(text: str = FINALLY) -> Pipeline:
    ir = _change(_flow(text), {"report": {"is_finally": True, "upstream": (), "after": ()}})
    return _run_value(ir, "report", value="status")


def test_finally_is_an_exit_handler_as_kfp_compiles_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(_finally_ir())
    theirs = _kfp_own(
        tmp_path,
        monkeypatch,
        """\
        @dsl.pipeline(name='p')
        def p():
            r = report()
            with dsl.ExitHandler(r):
                echo(value='a')
        """,
    )
    ours_root, their_root = spec["root"]["dag"]["tasks"], theirs["root"]["dag"]["tasks"]
    assert set(ours_root) == {"exit-handler-1", "report"}
    assert set(their_root) == {"exit-handler-1", "report"}
    for key in ("dependentTasks", "triggerPolicy"):
        assert ours_root["report"][key] == their_root["report"][key]
    assert ours_root["report"]["inputs"]["parameters"]["_status"] == (
        their_root["report"]["inputs"]["parameters"]["status"]
    )
    assert spec["components"]["comp-report"]["inputDefinitions"]["parameters"]["_status"] == (
        theirs["components"]["comp-report"]["inputDefinitions"]["parameters"]["status"]
    )
    assert set(spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]) == {"ok", "boom"}
    assert spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["boom"]["dependentTasks"] == [
        "ok"
    ]


def test_finally_after_a_failure_sees_failed_and_the_run_still_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="FAILURE|failed"):
        _run_local(_finally_ir(), tmp_path)
    (where, values), *more = _executor_outputs(tmp_path, "report")
    assert not more
    assert json.loads(values["Output"]) == "failed"
    assert _executor_outputs(tmp_path, "ok")  # the body ran before


def test_finally_after_success_sees_success(tmp_path: Path) -> None:
    ir = _finally_ir(FINALLY.replace("frame: 5", "frame: [5]"))
    _run_local(ir, tmp_path)
    (_where, values), *_ = _executor_outputs(tmp_path, "report")
    assert json.loads(values["Output"]) == "success"


def test_glue_reads_the_final_status() -> None:
    from flowc.runtime.kfp import final_status

    assert final_status({"state": "SUCCEEDED", "error": {}}) == "success"
    assert final_status({"state": "FAILED", "error": {"code": 1}}) == "failed"
    assert final_status({"state": "CANCELED"}) == "failed"
    assert final_status(None) == "failed"


def test_failed_steps_and_ordered_finally_steps_are_refused_located() -> None:
    text = FINALLY + (
        '  second: {run: flowc_demo.steps:echo, with: {value: "${run.id}"},' " after: [report]}\n"
    )
    ir = _change(
        _run_value(_flow(text), "second", value="failed_steps"),
        {
            "report": {"is_finally": True, "upstream": (), "after": ()},
            "second": {"is_finally": True, "upstream": ("report",), "after": ("report",)},
        },
    )
    for target in ("kfp", "vertex"):
        with pytest.raises(FlowcError) as exc:
            emit(ir, target)
        text_ = str(exc.value)
        assert "flow.yaml:7:" in text_ and f"the {target} target" in text_
        assert "run.failed_steps" in text_ and "finally step 'second'" in text_


# ---------------------------------------------------------------------------------------------
# trigger: all_done -> ALL_UPSTREAM_TASKS_COMPLETED; others refused
# ---------------------------------------------------------------------------------------------

JOIN = """\
params:
  go: {type: bool, default: false}
steps:
  branch: {run: flowc_demo.steps:echo, with: {value: b}, outputs: [value], when: "${params.go}"}
  join: {run: flowc_demo.steps:echo, with: {value: j}, outputs: [value], after: [branch]}
"""


def test_all_done_join_runs_after_a_skipped_branch_on_kfp_local(tmp_path: Path) -> None:
    ir = _change(_flow(JOIN), {"join": {"trigger": "all_done"}})
    spec = _spec(ir)
    join = spec["root"]["dag"]["tasks"]["join"]
    assert join["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert join["dependentTasks"] == ["condition-branch"]
    _run_local(ir, tmp_path)
    assert not _executor_outputs(tmp_path, "branch")
    assert [json.loads(v["Output"]) for _w, v in _executor_outputs(tmp_path, "join")] == ["j"]


def test_all_success_join_is_skipped_after_a_skipped_branch(tmp_path: Path) -> None:
    _run_local(_flow(JOIN), tmp_path)
    assert not _executor_outputs(tmp_path, "join")


def test_all_done_reading_an_upstream_output_gets_kfps_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = JOIN.replace("{value: j}", '{value: "${steps.branch.outputs.value}"}')
    text = text.replace(", after: [branch]", "")
    spec = _spec(_change(_flow(text), {"join": {"trigger": "all_done"}}))
    theirs = _kfp_own(
        tmp_path,
        monkeypatch,
        """\
        @dsl.pipeline(name='p')
        def p():
            a = echo(value='b')
            echo(value=a.output).ignore_upstream_failure()
        """,
    )
    ours = spec["components"]["comp-join"]["inputDefinitions"]["parameters"]["value"]
    their = theirs["components"]["comp-echo-2"]["inputDefinitions"]["parameters"]["value"]
    assert ours == their == {"defaultValue": "null", "isOptional": True, "parameterType": "STRING"}
    strategy = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert theirs["root"]["dag"]["tasks"]["echo-2"]["triggerPolicy"] == strategy
    assert spec["root"]["dag"]["tasks"]["join"]["triggerPolicy"] == strategy


@pytest.mark.parametrize("trigger", ["one_failed", "one_success", "none_failed", "all_failed"])
def test_other_triggers_are_refused_located_naming_the_target(trigger: str) -> None:
    ir = _change(_flow(JOIN), {"join": {"trigger": trigger}})
    for target in ("kfp", "vertex"):
        with pytest.raises(FlowcError) as exc:
            emit(ir, target)
        msg = str(exc.value)
        assert "flow.yaml:7:" in msg and f"the {target} target" in msg and trigger in msg


def test_skip_on_exit_code_is_refused_located() -> None:
    ir = _change(
        _flow("steps:\n  probe: {command: [sh, -c, 'exit 99']}\n"),
        {"probe": {"skip_on_exit_code": (99,)}},
    )
    with pytest.raises(FlowcError) as exc:
        emit(ir, "kfp")
    assert "flow.yaml:4:" in str(exc.value) and "no skipped state" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# groups: foreach group of two steps, sub-DAG groups, flow outputs
# ---------------------------------------------------------------------------------------------

GROUPED = """\
params:
  shards: {type: list, default: [a, bb]}
steps:
  prep:
    run: flowc_demo.steps:echo
    foreach: "${params.shards}"
    with: {value: "${item}"}
    outputs: [value]
  score:
    run: flowc_demo.steps:echo
    with: {value: "${steps.prep.outputs.value}", ns: "${params.shards}"}
    outputs: [value]
  publish: {run: flowc_demo.steps:echo, with: {value: "${steps.score.outputs.value}"}, outputs: [value]}
"""


def _grouped(foreach: bool = True) -> Pipeline:
    ir = _flow(GROUPED)
    prep, score, publish = ir.steps
    g = "per_shard"
    prep_out = Ref("steps", (f"{g}.prep", "outputs", "value"))
    score_out = Ref("steps", (f"{g}.score", "outputs", "value"))
    steps = (
        dataclasses.replace(prep, name=f"{g}.prep", group=g, foreach=None),
        dataclasses.replace(
            score,
            name=f"{g}.score",
            group=g,
            upstream=(f"{g}.prep",),
            with_=(("value", prep_out), score.with_[1]),
        ),
        dataclasses.replace(
            publish,
            upstream=(g,),
            with_=(("value", Ref("steps", (g, "outputs", "score"))),),
        ),
    )
    group = Group(
        name=g,
        foreach=Ref("params", ("shards",)) if foreach else None,
        steps=(f"{g}.prep", f"{g}.score"),
        outputs=(("score", score_out),),
        leaves=(f"{g}.score",),
        loc=prep.loc,
    )
    if not foreach:  # a sub-DAG: its member reads a param instead of an item
        steps = (
            dataclasses.replace(steps[0], with_=(("value", Ref("params", ("shards",))),)),
            *steps[1:],
        )
    outputs = (("published", Ref("steps", ("publish", "outputs", "value"))),)
    return dataclasses.replace(ir, steps=steps, groups=(group,), outputs=outputs)


def test_foreach_group_is_one_parallel_for_body_with_both_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(_grouped())
    loop = spec["root"]["dag"]["tasks"]["for-loop-per-shard"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--shards"}
    body = spec["components"]["comp-for-loop-per-shard"]["dag"]
    assert set(body["tasks"]) == {"per-shard-prep", "per-shard-score"}
    # item-wise: score depends on its own iteration's prep, inside the same body
    assert body["tasks"]["per-shard-score"]["dependentTasks"] == ["per-shard-prep"]
    assert body["outputs"]["parameters"]["score"]["valueFromParameter"] == {
        "outputParameterKey": "Output",
        "producerSubtask": "per-shard-score",
    }
    assert spec["components"]["comp-for-loop-per-shard"]["outputDefinitions"] == {
        "parameters": {"score": {"parameterType": "LIST"}}
    }
    publish = spec["root"]["dag"]["tasks"]["publish"]
    assert publish["dependentTasks"] == ["for-loop-per-shard"]
    theirs = _kfp_own(
        tmp_path,
        monkeypatch,
        """\
        @dsl.pipeline(name='p')
        def p(shards: List[str] = ['a', 'bb']):
            with dsl.ParallelFor(shards) as it:
                a = echo(value=it)
                b = echo(value=a.output)
            collect(values=dsl.Collected(b.output))
        """,
    )
    their_loop = theirs["root"]["dag"]["tasks"]["for-loop-1"]
    assert their_loop["parameterIterator"]["items"] == loop["parameterIterator"]["items"]
    their_body = theirs["components"]["comp-for-loop-1"]
    assert their_body["dag"]["tasks"]["echo-2"]["dependentTasks"] == ["echo"]
    assert their_body["outputDefinitions"]["parameters"]["pipelinechannel--echo-2-Output"] == {
        "parameterType": "LIST"
    }


def test_foreach_group_runs_per_item_on_kfp_local_with_flow_outputs(tmp_path: Path) -> None:
    outputs = _run_local(_grouped(), tmp_path)
    preps = _executor_outputs(tmp_path, "per-shard-prep")
    scores = _executor_outputs(tmp_path, "per-shard-score")
    assert sorted(json.loads(v["Output"]) for _w, v in preps) == ["a", "bb"]
    # each item's score read its own item's prep (and the param, threaded into the loop body)
    want = [{"value": "a", "ns": ["a", "bb"]}, {"value": "bb", "ns": ["a", "bb"]}]
    got = [json.loads(v["Output"]) for _w, v in scores]
    assert sorted(got, key=lambda d: d["value"]) == want
    for where, _v in scores:
        assert "for-loop-per-shard-iteration-" in where
    (_w, published), *_ = _executor_outputs(tmp_path, "publish")
    assert json.loads(published["Output"]) == want  # the group's export, over items, in order
    # the flow output is the root DAG's output: kfp.local returns it
    assert json.loads(outputs.outputs["published"]) == want


def test_group_is_a_sub_dag_component_and_flow_outputs_are_pipeline_outputs(
    tmp_path: Path,
) -> None:
    ir = _grouped(foreach=False)
    spec = _spec(ir)
    task = spec["root"]["dag"]["tasks"]["per-shard"]
    assert task["componentRef"] == {"name": "comp-per-shard"}
    assert "parameterIterator" not in task
    comp = spec["components"]["comp-per-shard"]
    assert comp["inputDefinitions"]["parameters"] == {
        "pipelinechannel--shards": {"parameterType": "LIST"}
    }
    assert task["inputs"]["parameters"]["pipelinechannel--shards"] == {
        "componentInputParameter": "shards"
    }
    assert spec["root"]["outputDefinitions"] == {
        "parameters": {"published": {"parameterType": "STRING"}}
    }
    assert spec["root"]["dag"]["outputs"]["parameters"]["published"] == {
        "valueFromParameter": {"outputParameterKey": "Output", "producerSubtask": "publish"}
    }
    task = _run_local(ir, tmp_path)
    assert json.loads(task.outputs["published"]) == {"value": ["a", "bb"], "ns": ["a", "bb"]}


# ---------------------------------------------------------------------------------------------
# matrix: a 2x2 cross product, one ParallelFor over the product of the literal lists
# ---------------------------------------------------------------------------------------------

MATRIX = """\
steps:
  grid:
    run: flowc_demo.steps:echo
    foreach: [x]
    with: {value: "${item.lr}", ns: "${item.depth}"}
    outputs: [value, ns]
"""


def test_matrix_runs_four_instances_with_the_right_items(tmp_path: Path) -> None:
    ir = _flow(MATRIX)
    grid = Lit({"lr": [0.1, 0.01], "depth": [3, 5]})
    ir = _change(ir, {"grid": {"foreach": grid, "matrix": ("lr", "depth")}})
    spec = _spec(ir)
    items = json.loads(
        spec["root"]["dag"]["tasks"]["for-loop-grid"]["parameterIterator"]["items"]["raw"]
    )
    assert items == [
        {"lr": 0.1, "depth": 3},
        {"lr": 0.1, "depth": 5},
        {"lr": 0.01, "depth": 3},
        {"lr": 0.01, "depth": 5},
    ]
    _run_local(ir, tmp_path)
    got = sorted(
        (json.loads(v["value"]), json.loads(v["ns"]))
        for _w, v in _executor_outputs(tmp_path, "grid")
    )
    assert got == [(0.01, 3), (0.01, 5), (0.1, 3), (0.1, 5)]
    assert {type(d) for _lr, d in got} == {int}  # not 3.0: KFP carries the item as a Struct


# ---------------------------------------------------------------------------------------------
# retries, run.ds
# ---------------------------------------------------------------------------------------------


def test_retry_backoff_and_max_delay_are_kfps_retry_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ir = _change(
        _flow(
            "steps:\n  a: {run: flowc_demo.steps:echo, with: {value: x}, retries: 3,"
            " retry_delay: 5s}\n"
        ),
        {"a": {"retry_backoff": 2.0, "retry_max_delay": 600.0}},
    )
    theirs = _kfp_own(
        tmp_path,
        monkeypatch,
        """\
        @dsl.pipeline(name='p')
        def p():
            echo(value='x').set_retry(
                3, backoff_duration='5s', backoff_factor=2, backoff_max_duration='600s'
            )
        """,
    )
    ours = _spec(ir)["root"]["dag"]["tasks"]["a"]["retryPolicy"]
    assert (
        ours
        == theirs["root"]["dag"]["tasks"]["echo"]["retryPolicy"]
        == {
            "backoffDuration": "5s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "600s",
            "maxRetryCount": 3,
        }
    )
    # without a cap: the longest delay flowc waits (5s * 2**2), not KFP's default of 1h
    uncapped = _change(ir, {"a": {"retry_max_delay": None}})
    assert _spec(uncapped)["root"]["dag"]["tasks"]["a"]["retryPolicy"]["backoffMaxDuration"] == (
        "20s"
    )


def test_run_ds_is_spelled_from_the_job_time(tmp_path: Path) -> None:
    from kfp import dsl

    ir = _flow(
        'steps:\n  a: {run: flowc_demo.steps:echo, with: {value: "${run.id}",'
        ' ns: "${run.id}"}, outputs: [value, ns]}\n'
    )
    ir = _run_value(ir, "a", value="ds", ns="ds_nodash")
    spec = _spec(ir)
    consts = spec["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]
    assert consts["_run_date"] == {
        "runtimeValue": {"constant": dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER}
    }
    text = emit(ir, "kfp")["pipeline.yaml"].replace(
        dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, "2026-01-02T23:04:05Z"
    )
    from kfp import components, local

    (tmp_path / "pipeline.yaml").write_text(text, encoding="utf-8")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=True,
    )
    components.load_component_from_file(str(tmp_path / "pipeline.yaml"))()
    (_w, v), *_ = _executor_outputs(tmp_path, "a")
    assert (json.loads(v["value"]), json.loads(v["ns"])) == ("2026-01-02", "20260102")


def test_group_nested_in_a_foreach_group_reads_the_item_on_kfp_local(tmp_path: Path) -> None:
    # outer: foreach over a literal list; outer.inner: a sub-DAG inside each iteration's body,
    # whose member reads the outer item (threaded in as an input of the inner DAG)
    ir = _flow(
        "steps:\n"
        "  x:\n"
        "    run: flowc_demo.steps:echo\n"
        "    foreach: [p, q]\n"
        '    with: {value: "${item}"}\n'
        "    outputs: [value]\n"
    )
    (x,) = ir.steps
    member = dataclasses.replace(x, name="outer.inner.x", group="outer.inner", foreach=None)
    out = Ref("steps", ("outer.inner.x", "outputs", "value"))
    inner = Group(
        name="outer.inner",
        parent="outer",
        steps=("outer.inner.x",),
        outputs=(("v", out),),
        leaves=("outer.inner.x",),
    )
    outer = Group(
        name="outer",
        foreach=Lit(["p", "q"]),
        groups=("outer.inner",),
        outputs=(("v", Ref("steps", ("outer.inner", "outputs", "v"))),),
        leaves=("outer.inner.x",),
    )
    ir = dataclasses.replace(
        ir,
        steps=(member,),
        groups=(outer, inner),
        outputs=(("vs", Ref("steps", ("outer", "outputs", "v"))),),
    )
    spec = _spec(ir)
    body = spec["components"]["comp-for-loop-outer"]
    assert set(body["dag"]["tasks"]) == {"outer-inner"}
    item = "pipelinechannel--loop-item-param-for-loop-outer"
    assert body["dag"]["tasks"]["outer-inner"]["inputs"]["parameters"] == {
        item: {"componentInputParameter": item}
    }
    assert set(spec["components"]["comp-outer-inner"]["dag"]["tasks"]) == {"outer-inner-x"}
    task = _run_local(ir, tmp_path)
    # a foreach group's export: a LIST of the per-item values, each the member's JSON text
    assert [json.loads(v) for v in task.outputs["vs"]] == ["p", "q"]


# ---------------------------------------------------------------------------------------------
# The DSL end to end: a uses: sub-flow with with: params, a foreach group, a matrix, finally and
# a flow output, compiled by the front end and run by kfp.local
# ---------------------------------------------------------------------------------------------

SUB_FLOW = """\
flowc: 1
name: sub
params:
  trials: {type: int, default: 1}
steps:
  fit: {run: flowc_demo.steps:echo, with: {value: "${params.trials}"}, outputs: [value]}
outputs:
  best: "${steps.fit.outputs.value}"
"""

DSL_FLOW = """\
flowc: 1
name: cf_dsl
params:
  shards: {type: list, default: [a, bb]}
steps:
  per_shard:
    foreach: "${params.shards}"
    steps:
      prep: {run: flowc_demo.steps:echo, with: {value: "${item}"}, outputs: [value]}
      score:
        run: flowc_demo.steps:echo
        with: {value: "${steps.prep.outputs.value}"}
        outputs: [value]
    outputs: {score: "${steps.score.outputs.value}"}
  grid:
    run: flowc_demo.steps:echo
    foreach: {lr: [0.1, 0.01], depth: [3, 5]}
    with: {value: "${item.lr}", ns: "${item.depth}"}
    outputs: [value, ns]
  tuned:
    uses: flows/sub.yaml
    with: {trials: 20}
  publish:
    run: flowc_demo.steps:echo
    with: {value: "${steps.per_shard.outputs.score}", ns: "${steps.tuned.outputs.best}"}
    outputs: [value]
finally:
  report:
    run: flowc_demo.steps:echo
    with: {value: "${run.status}"}
    outputs: [value]
outputs:
  published: "${steps.publish.outputs.value}"
"""


def test_dsl_flow_with_uses_group_matrix_finally_and_outputs_on_kfp_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowc.compiler.api import compile_flow

    monkeypatch.chdir(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "sub.yaml").write_text(SUB_FLOW, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(DSL_FLOW, encoding="utf-8")
    ir = compile_flow(Path("flow.yaml"))
    spec = _spec(ir)
    body = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert set(body) == {"for-loop-per-shard", "for-loop-grid", "tuned", "publish"}
    # the sub-flow is a nested pipeline component: its with: value reaches its step
    assert body["tuned"]["componentRef"] == {"name": "comp-tuned"}
    fit = spec["components"]["comp-tuned"]["dag"]["tasks"]["tuned-fit"]
    assert fit["inputs"]["parameters"]["value"] == {"runtimeValue": {"constant": 20}}
    task = _run_local(ir, tmp_path)
    (_w, pub), *_ = _executor_outputs(tmp_path, "publish")
    assert json.loads(pub["Output"]) == {"value": ["a", "bb"], "ns": 20}
    assert json.loads(task.outputs["published"]) == {"value": ["a", "bb"], "ns": 20}
    grid = sorted(
        (json.loads(v["value"]), json.loads(v["ns"]))
        for _w, v in _executor_outputs(tmp_path, "grid")
    )
    assert grid == [(0.01, 3), (0.01, 5), (0.1, 3), (0.1, 5)]
    assert {type(d) for _lr, d in grid} == {int}
    (_w, rep), *_ = _executor_outputs(tmp_path, "report")
    assert json.loads(rep["Output"]) == "success"


def test_two_finally_steps_are_two_exit_tasks_both_seeing_the_status(tmp_path: Path) -> None:
    text = (
        FINALLY
        + '  notify: {run: flowc_demo.steps:echo, with: {value: "${run.id}"}, outputs: [value]}\n'
    )
    ir = _finally_ir(text)
    ir = _run_value(
        _change(ir, {"notify": {"is_finally": True, "upstream": (), "after": ()}}),
        "notify",
        value="status",
    )
    spec = _spec(ir)
    for task in ("report", "notify"):
        t = spec["root"]["dag"]["tasks"][task]
        assert t["dependentTasks"] == ["exit-handler-1"]
        assert t["inputs"]["parameters"]["_status"] == {
            "taskFinalStatus": {"producerTask": "exit-handler-1"}
        }
    with pytest.raises(RuntimeError):
        _run_local(ir, tmp_path)
    for task in ("report", "notify"):
        (_w, values), *_ = _executor_outputs(tmp_path, task)
        assert json.loads(values["Output"]) == "failed"
