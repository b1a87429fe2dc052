"""Control flow in the front end (issue 18, docs/control-flow.md): every located error the issue
lists through ``flowc validate`` (exit 1, FILE:LINE:COL, a hint, no traceback), and the IR/plan
facts of each construct (trigger, skip_on_exit_code, retry backoff, finally, flow outputs,
matrix, run values, indexing, groups, uses: sub-flows, graph clusters)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.api import compile_flow, load_text
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError

H = "flowc: 1\nname: demo\n"
LOC = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): error: ")


def validate(
    tmp_path: Path, files: dict[str, str], *args: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str]]:
    """Write ``files`` into ``tmp_path`` and run ``flowc validate flow.yaml *args`` there."""
    monkeypatch.chdir(tmp_path)
    for rel, text in files.items():
        Path(rel).parent.mkdir(parents=True, exist_ok=True)
        Path(rel).write_text(text, encoding="utf-8")
    res = CliRunner().invoke(cli, ["validate", "flow.yaml", *args])
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    return res.exit_code, res.stderr.splitlines()


def first_error(lines: list[str]) -> tuple[str, int, int, str, str]:
    """(file, line, col, message, hint) of the first error of a validate run."""
    for i, line in enumerate(lines):
        m = LOC.match(line)
        if m:
            hint = lines[i + 1].strip() if i + 1 < len(lines) else ""
            assert hint.startswith("hint: "), lines
            return (
                m["file"],
                int(m["line"]),
                int(m["col"]),
                line[m.end() :],
                hint.removeprefix("hint: "),
            )
    raise AssertionError(f"no located error in {lines}")


ERRORS = [
    (
        "kfp_trigger",
        {
            "flow.yaml": H + "steps:\n  a: {run: m:f}\n  b:\n    run: m:g\n    after: [a]\n"
            "    trigger: one_failed\n"
        },
        ["--target", "kfp"],
        ("flow.yaml", 5, 3, "trigger 'one_failed' cannot be expressed on the kfp target"),
        "all_success, all_done",
    ),
    (
        "vertex_trigger",
        {
            "flow.yaml": H + "steps:\n  a: {run: m:f}\n  b:\n    run: m:g\n    after: [a]\n"
            "    trigger: none_failed\n"
        },
        ["--target", "vertex"],
        ("flow.yaml", 5, 3, "trigger 'none_failed' cannot be expressed on the vertex target"),
        "all_success, all_done",
    ),
    (
        "private_ref_from_outside",
        {
            "flow.yaml": H + "steps:\n  g:\n    steps:\n      prep: {run: m:f, outputs: [rows]}\n"
            "  use:\n    run: m:g\n    with: {x: '${steps.g.prep.outputs.rows}'}\n"
        },
        [],
        ("flow.yaml", 9, 16, "step 'g.prep' is private to group 'g'"),
        "outputs of group 'g'",
    ),
    (
        "member_name_from_outside",
        {
            "flow.yaml": H + "steps:\n  g:\n    steps:\n      prep: {run: m:f, outputs: [rows]}\n"
            "  use:\n    run: m:g\n    with: {x: '${steps.prep.outputs.rows}'}\n"
        },
        [],
        ("flow.yaml", 9, 16, "unknown step 'prep' in ${steps.prep.outputs.rows}; 'g.prep' is"),
        "${steps.g.outputs.NAME}",
    ),
    (
        "cycle_through_group",
        {
            "flow.yaml": H + "steps:\n  b:\n    run: m:f\n    with: {x: '${steps.g.outputs.y}'}\n"
            "    outputs: [o]\n  g:\n    steps:\n      a:\n        run: m:f\n"
            "        with: {x: '${steps.b.outputs.o}'}\n        outputs: [y]\n"
            "    outputs: {y: '${steps.a.outputs.y}'}\n"
        },
        [],
        ("flow.yaml", 4, 3, "dependency cycle through group 'g': b -> g -> b"),
        "a group waits for",
    ),
    (
        "run_status_outside_finally",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, with: {s: '${run.status}'}}\n"},
        [],
        ("flow.yaml", 4, 28, "${run.status} is only available in finally steps"),
        "finally:",
    ),
    (
        "run_failed_steps_outside_finally",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, with: {s: '${run.failed_steps}'}}\n"},
        [],
        ("flow.yaml", 4, 28, "${run.failed_steps} is only available in finally steps"),
        "finally:",
    ),
    (
        "uses_missing",
        {"flow.yaml": H + "steps:\n  t:\n    uses: flows/nope.yaml\n"},
        [],
        ("flow.yaml", 5, 11, "sub-flow file 'flows/nope.yaml' not found"),
        "relative to the flow file",
    ),
    (
        "uses_recursive_direct",
        {"flow.yaml": H + "steps:\n  t:\n    uses: flow.yaml\n"},
        [],
        ("flow.yaml", 5, 11, "recursive sub-flow: flow.yaml -> flow.yaml"),
        "may not use itself",
    ),
    (
        "uses_recursive_indirect",
        {
            "flow.yaml": H + "steps:\n  t:\n    uses: sub/a.yaml\n",
            "sub/a.yaml": "flowc: 1\nname: a\nsteps:\n  again:\n    uses: ../flow.yaml\n",
        },
        [],
        (str(Path("sub/a.yaml")), 5, 11, "recursive sub-flow: flow.yaml -> a.yaml -> flow.yaml"),
        "through other sub-flows",
    ),
    (
        "uses_unknown_param",
        {
            "flow.yaml": H + "steps:\n  t:\n    uses: s.yaml\n    with: {trails: 3}\n",
            "s.yaml": "flowc: 1\nname: s\nparams:\n  trials: {type: int, default: 1}\n"
            "steps:\n  a: {run: m:f, with: {n: '${params.trials}'}}\n",
        },
        [],
        ("flow.yaml", 6, 12, "the sub-flow of 't' has no param 'trails'"),
        "did you mean 'trials'?",
    ),
    (
        "uses_missing_required_param",
        {
            "flow.yaml": H + "steps:\n  t:\n    uses: s.yaml\n",
            "s.yaml": "flowc: 1\nname: s\nparams:\n  x: {type: int, required: true}\n"
            "steps:\n  a: {run: m:f, with: {n: '${params.x}'}}\n",
        },
        [],
        ("flow.yaml", 5, 5, "'t' does not set the sub-flow's required param 'x'"),
        "add it to 'with:' of 't'",
    ),
    (
        "subflow_error_located_in_subflow",
        {
            "flow.yaml": H + "steps:\n  t:\n    uses: s.yaml\n",
            "s.yaml": "flowc: 1\nname: s\nsteps:\n  a: {run: m:f, with: {n: '${params.nope}'}}\n",
        },
        [],
        ("s.yaml", 4, 28, "unknown param 'nope' in ${params.nope}"),
        "declare it under 'params:' of the sub-flow",
    ),
    (
        "subflow_schedule_refused",
        {
            "flow.yaml": H + "steps:\n  t:\n    uses: s.yaml\n",
            "s.yaml": "flowc: 1\nname: s\nschedule: {cron: '0 3 * * *'}\nsteps:\n  a: {run: m:f}\n",
        },
        [],
        ("s.yaml", 3, 1, "a sub-flow may not declare 'schedule:'"),
        "declare it in the including flow",
    ),
    (
        "matrix_unknown_key",
        {
            "flow.yaml": H + "steps:\n  g:\n    run: m:f\n    foreach: {lr: [0.1], depth: [3]}\n"
            "    with: {lr: '${item.rate}'}\n"
        },
        [],
        ("flow.yaml", 7, 17, "${item.rate}: the matrix has no key 'rate'"),
        "its keys: lr, depth",
    ),
    (
        "foreach_in_foreach_group",
        {
            "flow.yaml": H + "steps:\n  g:\n    foreach: [1, 2]\n    steps:\n"
            "      a: {run: m:f, foreach: [3, 4]}\n"
        },
        [],
        ("flow.yaml", 7, 30, "step 'g.a' has 'foreach' inside foreach group 'g'"),
        "not supported on any target",
    ),
    (
        "skip_on_exit_code_on_run_step",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, skip_on_exit_code: [99]}\n"},
        [],
        ("flow.yaml", 4, 17, "'skip_on_exit_code' of step 'a' needs a 'command' step"),
        "flowc.runtime.Skip",
    ),
    (
        "unknown_trigger",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, trigger: all_don}\n"},
        [],
        ("flow.yaml", 4, 26, "unknown trigger 'all_don' of step 'a'"),
        "did you mean 'all_done'?",
    ),
    (
        "retry_backoff_below_one",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, retries: 2, retry_backoff: 0.5}\n"},
        [],
        ("flow.yaml", 4, 44, "'retry_backoff' must be a number >= 1, not 0.5"),
        "multiplier",
    ),
    (
        "retry_max_delay_not_a_duration",
        {"flow.yaml": H + "steps:\n  a: {run: m:f, retries: 2, retry_max_delay: soon}\n"},
        [],
        ("flow.yaml", 4, 46, "invalid duration 'soon'"),
        "500ms",
    ),
    (
        "finally_step_referenced_by_a_step",
        {
            "flow.yaml": H + "steps:\n  a: {run: m:f, with: {x: '${steps.r.outputs.o}'}}\n"
            "finally:\n  r: {run: m:g, outputs: [o]}\n"
        },
        [],
        ("flow.yaml", 4, 28, "finally step 'r' cannot be referenced in ${steps.r.outputs.o}"),
        "only other finally steps",
    ),
    (
        "group_without_export",
        {
            "flow.yaml": H + "steps:\n  g:\n    steps:\n      a: {run: m:f, outputs: [x]}\n"
            "  b: {run: m:g, with: {x: '${steps.g.outputs.x}'}}\n"
        },
        [],
        ("flow.yaml", 7, 28, "group 'g' has no output 'x'"),
        "exports nothing",
    ),
]


@pytest.mark.parametrize("name,files,args,expected,hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_located_error_with_hint_and_exit_1(
    name: str,
    files: dict[str, str],
    args: list[str],
    expected: tuple[str, int, int, str],
    hint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, lines = validate(tmp_path, files, *args, monkeypatch=monkeypatch)
    assert code == 1, lines
    file, line, col, message, got_hint = first_error(lines)
    assert (file, line, col) == expected[:3], lines
    assert expected[3] in message, lines
    assert hint in got_hint, lines


def test_kfp_accepts_its_native_triggers_and_airflow_every_trigger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = H + "steps:\n  a: {run: m:f}\n  b: {run: m:g, after: [a], trigger: all_done}\n"
    assert (
        validate(tmp_path, {"flow.yaml": flow}, "--target", "kfp", monkeypatch=monkeypatch)[0] == 0
    )
    flow = H + "steps:\n  a: {run: m:f}\n  b: {run: m:g, after: [a], trigger: one_failed}\n"
    assert (
        validate(tmp_path, {"flow.yaml": flow}, "--target", "airflow", monkeypatch=monkeypatch)[0]
        == 0
    )


def _plan(text: str) -> dict:
    return load_text(text, "flow.yaml", environ={}).to_data()


def test_plain_flow_plan_has_no_control_flow_keys() -> None:
    plan = _plan(H + "steps:\n  a: {run: m:f, outputs: [x]}\n  b: {run: m:g, after: [a]}\n")
    assert "groups" not in plan and "outputs" not in plan
    for key in ("trigger", "skip_on_exit_code", "retry_backoff", "retry_max_delay", "group"):
        assert key not in plan["steps"]["b"]
    assert "finally" not in plan["steps"]["b"] and "matrix" not in plan["steps"]["a"]


def test_trigger_skip_codes_and_retry_backoff_in_ir_and_plan() -> None:
    ir = load_text(
        H + "defaults: {retry_backoff: 3}\nsteps:\n"
        "  a: {command: [sh, -c, 'exit 99'], skip_on_exit_code: 99}\n"
        "  b: {run: m:g, after: [a], trigger: all_done, retries: 3, retry_delay: 10s,"
        " retry_backoff: 2, retry_max_delay: 30s}\n",
        "flow.yaml",
        environ={},
    )
    a, b = ir.step("a"), ir.step("b")
    assert a.skip_on_exit_code == (99,) and a.retry_backoff == 3.0
    assert (b.trigger, b.retry_backoff, b.retry_max_delay) == ("all_done", 2.0, 30.0)
    assert [b.retry_delay_before(n) for n in (2, 3, 4)] == [10.0, 20.0, 30.0]
    plan = ir.to_data()["steps"]
    assert plan["a"]["skip_on_exit_code"] == [99]
    assert (plan["b"]["trigger"], plan["b"]["retry_backoff"], plan["b"]["retry_max_delay"]) == (
        "all_done",
        2.0,
        30.0,
    )


def test_finally_steps_come_last_and_are_gated_only_by_finally_steps() -> None:
    ir = load_text(
        H + "finally:\n  notify: {run: m:n, after: [report]}\n"
        "  report:\n    run: m:r\n    with: {s: '${run.status}', f: '${run.failed_steps}',"
        " n: '${steps.a.outputs.x}'}\n    outputs: [o]\n"
        "steps:\n  a: {run: m:f, outputs: [x]}\n  b: {run: m:g, with: {d: '${run.ds_nodash}'}}\n",
        "flow.yaml",
        environ={},
    )
    assert [s.name for s in ir.steps] == ["a", "b", "report", "notify"]
    report = ir.step("report")
    assert report.is_finally and report.upstream == ()
    assert ir.step("notify").upstream == ("report",)
    assert any(e.src == "a" and e.dst == "report" and e.kind == "data" for e in ir.edges)
    plan = ir.to_data()
    assert plan["steps"]["report"]["finally"] is True
    assert plan["steps"]["report"]["with"]["s"] == {"$ref": ["run", "status"]}
    assert plan["steps"]["b"]["with"]["d"] == {"$ref": ["run", "ds_nodash"]}


def test_flow_outputs_and_indexing_paths() -> None:
    plan = _plan(
        H + "steps:\n  a: {run: m:f, outputs: [x]}\n"
        "  b: {run: m:g, with: {v: '${steps.a.outputs.x.rows[0]}'}}\n"
        "outputs:\n  first: '${steps.a.outputs.x[0].name}'\n  all: '${steps.a.outputs.x}'\n"
    )
    assert plan["steps"]["b"]["with"]["v"] == {"$ref": ["steps", "a", "outputs", "x", "rows", 0]}
    assert plan["outputs"] == {
        "first": {"$ref": ["steps", "a", "outputs", "x", 0, "name"]},
        "all": {"$ref": ["steps", "a", "outputs", "x"]},
    }
    assert plan["steps"]["b"]["upstream"] == ["a"]
    ir = load_text(
        H + "steps:\n  a: {run: m:f, outputs: [x]}\n"
        "  b: {run: m:g, foreach: [[1]], with: {v: '${steps.a.outputs.x.rows[0]}', i: '${item[0]}'}}\n",
        "flow.yaml",
        environ={},
    )
    v, i = (e for _, e in ir.step("b").with_)
    assert (v.path, v.index) == (("a", "outputs", "x"), ("rows", 0))  # type: ignore[attr-defined]
    assert (i.path, i.index) == ((), (0,))  # type: ignore[attr-defined]


def test_matrix_foreach_keys() -> None:
    plan = _plan(
        H + "steps:\n  g:\n    run: m:f\n    foreach: {lr: [0.1, 0.01], depth: [3, 5]}\n"
        "    with: {lr: '${item.lr}', d: '${item.depth}'}\n"
    )
    g = plan["steps"]["g"]
    assert g["matrix"] == ["lr", "depth"]
    assert g["foreach"] == {"$lit": {"lr": [0.1, 0.01], "depth": [3, 5]}}
    assert g["with"]["lr"] == {"$ref": ["item", "lr"]}


GROUPS = H + (
    "params:\n  shards: {type: list, default: [a, b]}\n"
    "steps:\n"
    "  train: {run: m:t, outputs: [model]}\n"
    "  per_shard:\n"
    "    foreach: '${params.shards}'\n"
    "    after: [train]\n"
    "    steps:\n"
    "      prep: {run: m:p, with: {shard: '${item}'}, outputs: [rows]}\n"
    "      score:\n"
    "        run: m:s\n"
    "        with: {rows: '${steps.prep.outputs.rows}', m: '${steps.train.outputs.model}'}\n"
    "        outputs: [s]\n"
    "      inner:\n"
    "        steps:\n"
    "          z: {run: m:z, with: {r: '${steps.prep.outputs.rows}'}, outputs: [o]}\n"
    "        outputs: {o: '${steps.z.outputs.o}'}\n"
    "    outputs: {score: '${steps.score.outputs.s}', o: '${steps.inner.outputs.o}'}\n"
    "  publish: {run: m:pub, with: {scores: '${steps.per_shard.outputs.score}'}}\n"
)


def test_groups_flatten_to_qualified_names_with_scoped_references() -> None:
    ir = load_text(GROUPS, "flow.yaml", environ={})
    names = [s.name for s in ir.steps]
    assert names == [
        "train",
        "per_shard.prep",
        "per_shard.score",
        "per_shard.inner.z",
        "publish",
    ]
    score = ir.step("per_shard.score")
    assert score.group == "per_shard" and score.local_name == "score"
    assert score.upstream == ("per_shard.prep", "train")
    assert ir.step("per_shard.inner.z").group == "per_shard.inner"
    assert ir.step("publish").upstream == ("per_shard",)
    g = ir.group("per_shard")
    assert (g.parent, g.steps, g.groups) == (
        None,
        ("per_shard.prep", "per_shard.score"),
        ("per_shard.inner",),
    )
    assert g.upstream == ("train",) and g.after == ("train",)
    assert g.leaves == ("per_shard.score", "per_shard.inner.z")
    assert ir.group("per_shard.inner").upstream == ("per_shard.prep",)
    assert ir.members("per_shard") == ("per_shard.prep", "per_shard.score", "per_shard.inner.z")
    assert ir.node_at("per_shard.inner.z", None) == "per_shard"
    assert ir.node_at("per_shard.inner.z", "per_shard") == "per_shard.inner"
    assert [x.name for x in ir.groups] == ["per_shard", "per_shard.inner"]
    plan = ir.to_data()
    pg = plan["groups"]["per_shard"]
    assert pg["foreach"] == {"$ref": ["params", "shards"]}
    assert pg["outputs"]["score"] == {"$ref": ["steps", "per_shard.score", "outputs", "s"]}
    assert pg["outputs"]["o"] == {"$ref": ["steps", "per_shard.inner", "outputs", "o"]}
    assert plan["steps"]["per_shard.prep"]["group"] == "per_shard"
    assert plan["steps"]["per_shard.score"]["with"]["rows"] == {
        "$ref": ["steps", "per_shard.prep", "outputs", "rows"]
    }
    assert plan["steps"]["publish"]["with"]["scores"] == {
        "$ref": ["steps", "per_shard", "outputs", "score"]
    }


def test_uses_subflow_binds_params_and_locates_its_steps(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "tune.yaml").write_text(
        "flowc: 1\nname: tune\nparams:\n  trials: {type: int, default: 5}\n"
        "  frame: {type: list, required: true}\n  seed: {type: int, default: 7}\n"
        "defaults: {retries: 2}\n"
        "steps:\n  fit:\n    run: m:fit\n"
        "    with: {n: '${params.trials}', f: '${params.frame}', s: 'seed=${params.seed}'}\n"
        "    outputs: [best]\n"
        "outputs:\n  best: '${steps.fit.outputs.best}'\n",
        encoding="utf-8",
    )
    (tmp_path / "flow.yaml").write_text(
        H + "params:\n  n: {type: int, default: 3}\n"
        "steps:\n  load: {run: m:load, outputs: [frame]}\n"
        "  tuned:\n    uses: flows/tune.yaml\n"
        "    with: {trials: '${params.n}', frame: '${steps.load.outputs.frame}'}\n"
        "  show: {run: m:show, with: {v: '${steps.tuned.outputs.best}'}}\n",
        encoding="utf-8",
    )
    ir = compile_flow(tmp_path / "flow.yaml", environ={})
    fit = ir.step("tuned.fit")
    assert fit.group == "tuned" and fit.retries == 2  # the sub-flow's defaults
    assert fit.loc is not None and fit.loc.file.endswith("tune.yaml") and fit.loc.line == 9
    plan = ir.to_data()
    w = plan["steps"]["tuned.fit"]["with"]
    assert w["n"] == {"$ref": ["params", "n"]}
    assert w["f"] == {"$ref": ["steps", "load", "outputs", "frame"]}
    assert w["s"] == {"$fmt": ["seed=", 7]}
    assert plan["steps"]["tuned.fit"]["upstream"] == ["load"]
    g = plan["groups"]["tuned"]
    assert g["uses"].endswith("flows/tune.yaml") and not g["uses"].startswith("/")
    assert g["outputs"] == {"best": {"$ref": ["steps", "tuned.fit", "outputs", "best"]}}
    assert g["upstream"] == ["load"]
    assert plan["steps"]["show"]["upstream"] == ["tuned"]


def test_all_problems_at_once_across_files(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "flowc: 1\nname: s\nsteps:\n  a: {run: m:f, with: {n: '${params.nope}'}}\n"
    )
    (tmp_path / "flow.yaml").write_text(
        H + "steps:\n  t: {uses: s.yaml}\n  b: {run: m:f, with: {s: '${run.status}'}}\n"
    )
    with pytest.raises(FlowcError) as info:
        compile_flow(tmp_path / "flow.yaml", environ={})
    text = info.value.render()
    assert "s.yaml:4:28: error: unknown param 'nope'" in text
    assert "flow.yaml:5:28: error: ${run.status} is only available in finally steps" in text


def test_graph_draws_groups_as_clusters_and_marks_triggers_and_finally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flow.yaml").write_text(
        GROUPS + "  join: {run: m:j, after: [publish], trigger: all_done}\n"
        "finally:\n  report: {run: m:r}\n"
    )
    res = CliRunner().invoke(cli, ["graph", "flow.yaml"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert 'subgraph g_per_shard["per_shard [foreach ${params.shards}]"]' in out
    assert 'subgraph g_per_shard__inner["inner"]' in out
    assert 's_per_shard__prep["prep"]' in out
    assert 's_join["join [trigger all_done]"]' in out
    assert 's_report["report [finally]"]' in out
    assert "g_per_shard -->|score| s_publish" in out
    res = CliRunner().invoke(cli, ["graph", "flow.yaml", "--format", "dot"])
    assert res.exit_code == 0, res.output
    assert 'subgraph "cluster_per_shard" {' in res.stdout
    assert "compound=true;" in res.stdout
    assert 'ltail="cluster_per_shard"' in res.stdout
