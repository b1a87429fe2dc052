"""Function modules (FlowerPower / Hamilton): ``functions:`` -> steps, edges from parameter
names, per-function ``with:``, ``final:`` pruning, located errors; and FlowerPower's own example
(examples/flowerpower) run with ``flowc run`` and compiled by every target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Edge, Lit, Ref
from flowc.compiler.registry import target_names
from flowc.runtime.executor import run_plan

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden" / "functions" / "flow.yaml"
EXAMPLE = REPO / "examples" / "flowerpower"
FLOWC = [sys.executable, "-m", "flowc"]

HEAD = """\
flowc: 1
name: fx
params:
  n_rows: {type: int, default: 3}
functions: [flowc_functions.features]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flow.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def errors(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(FlowcError) as e:
        compile_flow(p)
    return e.value.render().replace(str(p), "flow.yaml")


def test_one_step_per_public_function_with_edges_from_parameter_names() -> None:
    ir = compile_flow(GOLDEN, sets=["final=[]"])
    # definition order; imported `dumps` and private `_helper` are not steps
    assert [s.name for s in ir.steps] == ["raw_rows", "add_int_col", "doubled", "total", "report"]
    assert ir.functions == ("flowc_functions.features",)
    add = ir.step("add_int_col")
    assert add.run == "flowc_functions.features:add_int_col"
    assert add.outputs == ("add_int_col",)
    w = dict(add.with_)
    assert w["raw_rows"] == Ref("steps", ("raw_rows", "outputs", "raw_rows"))  # a function
    assert w["col_name"] == Lit("bar") and w["values"] == Lit(7)  # steps.add_int_col.with
    assert dict(ir.step("raw_rows").with_) == {"n_rows": Ref("params", ("n_rows",))}  # a param
    assert ir.step("doubled").retries == 1  # other step options apply as for any step
    assert ir.step("report").upstream == ("add_int_col", "total")
    assert Edge("total", "report", "data", "total") in ir.edges


def test_defaults_cascade_and_function_defaults_are_left_out(tmp_path: Path) -> None:
    ir = compile_flow(
        write(
            tmp_path,
            HEAD
            + "defaults: {retries: 4, image: acme:1}\nsteps:\n  doubled: {with: {factor: 3}}\n",
        )
    )
    add = ir.step("add_int_col")
    assert [k for k, _ in add.with_] == ["raw_rows"]  # col_name/values keep their defaults
    assert add.retries == 4 and add.image == "acme:1"


def test_final_prunes_to_what_is_needed() -> None:
    ir = compile_flow(GOLDEN)
    assert ir.final == ("total",)
    assert [s.name for s in ir.steps] == ["raw_rows", "add_int_col", "doubled", "total"]
    assert all("report" not in (e.src, e.dst) for e in ir.edges)
    assert "report" not in ir.to_data()["steps"]


def test_explicit_with_wins_over_a_data_edge(tmp_path: Path) -> None:
    ir = compile_flow(
        write(
            tmp_path,
            HEAD
            + "steps:\n  doubled:\n    with: {factor: 2, add_int_col: [{a: 1}]}\n"
            + "final: [doubled]\n",
        )
    )
    assert [s.name for s in ir.steps] == ["doubled"]
    assert dict(ir.step("doubled").with_)["add_int_col"] == Lit([{"a": 1}])


def test_golden_functions_flow_runs_locally(tmp_path: Path) -> None:
    ir = compile_flow(GOLDEN, params={"n_rows": "4"})
    result = run_plan(ir.to_data(), root=tmp_path / ".flowc")
    assert result.ok, result.error
    # rows {id: i, bar: 7} doubled -> sum(2i) + 4 * 14
    assert result.outputs["total"]["total"] == (0 + 2 + 4 + 6) + 4 * 14
    assert set(result.states) == {"raw_rows", "add_int_col", "doubled", "total"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "",  # doubled's `factor` has no default and is nowhere
            "flow.yaml:5:13: error: parameter 'factor' of function 'doubled' of "
            "'flowc_functions.features' is not a function, a param or a 'with:' value (defined at "
            "tests/fixtures/pkgs/flowc_functions/features.py:18)\n"
            "  hint: add it under steps.doubled.with, declare a param 'factor', define a function "
            "'factor', or give it a default",
        ),
        (
            "steps:\n  doubled: {retries: 2}\n",
            "flow.yaml:7:3: error: parameter 'factor' of function 'doubled' of "
            "'flowc_functions.features' is not a function, a param or a 'with:' value",
        ),
        (
            "steps:\n  doubled: {with: {fctor: 2}}\n",
            "flow.yaml:7:20: error: function 'doubled' of 'flowc_functions.features' has no "
            "parameter 'fctor'\n  hint: did you mean 'factor'?",
        ),
        (
            "steps:\n  doubled: {with: {factor: 2}}\n  totl: {retries: 1}\n",
            "flow.yaml:8:3: error: step 'totl' has no 'run' or 'command' and no function module "
            "defines 'totl'\n  hint: did you mean 'total'?",
        ),
        (
            "steps:\n  doubled: {with: {factor: 2}}\n  total: {run: flowc_demo.steps:total}\n",
            "flow.yaml:8:3: error: step 'total' clashes with function 'total' of "
            "'flowc_functions.features'",
        ),
        (
            "steps:\n  doubled: {with: {factor: 2}, outputs: [a]}\n",
            "flow.yaml:7:32: error: a function step has one output named after the function "
            "('doubled')",
        ),
        (
            "steps:\n  doubled: {with: {factor: 2}}\nfinal: [totl]\n",
            "flow.yaml:8:9: error: unknown step 'totl' in final\n  hint: did you mean 'total'?",
        ),
    ],
)
def test_located_errors(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in errors(tmp_path, HEAD + body)


def test_function_named_like_a_param_is_an_error(tmp_path: Path) -> None:
    text = HEAD.replace("params:\n", "params:\n  total: {type: int, default: 1}\n")
    got = errors(tmp_path, text + "steps:\n  doubled: {with: {factor: 2}}\n")
    assert (
        "flow.yaml:4:3: error: param 'total' has the same name as function 'total' of "
        "'flowc_functions.features'" in got
    )


def test_unimportable_module_is_a_located_error(tmp_path: Path) -> None:
    text = HEAD.replace("flowc_functions.features", "flowc_functions.nope")
    got = errors(tmp_path, text + "steps:\n  doubled: {with: {factor: 2}}\n")
    assert "doubled" not in got  # one error, not one per step entry
    assert got.startswith(
        "flow.yaml:5:13: error: cannot import function module 'flowc_functions.nope': "
        "No module named 'flowc_functions.nope'\n  hint: the compiler imports function modules"
    )


def test_modules_next_to_the_flow_file_are_found(tmp_path: Path) -> None:
    (tmp_path / "my_fns.py").write_text(
        "def a(x: int = 1) -> int:\n    return x + 1\n\n\ndef b(a: int) -> int:\n"
        "    return a * 10\n",
        encoding="utf-8",
    )
    ir = compile_flow(write(tmp_path, "flowc: 1\nname: near\nfunctions: [my_fns]\n"))
    assert [s.name for s in ir.steps] == ["a", "b"]
    assert str(tmp_path) not in sys.path  # the import path is restored


# --------------------------------------------------------------------------------------------
# FlowerPower's own example
# --------------------------------------------------------------------------------------------


def flowc(*args: str, cwd: Path = EXAMPLE, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWC, *args, "--root", str(root)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_flowerpower_example_runs_with_flowc_run(tmp_path: Path) -> None:
    root = tmp_path / ".flowc"
    done = flowc("run", "flow.yaml", root=root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].endswith("(4 success)")
    assert not any(line.startswith("summary") for line in lines)  # pruned by final:
    run_id = lines[-1].split()[1]
    out = json.loads((root / "runs" / run_id / "final_df" / "final_df.json").read_text())
    assert out[0] == {"id": 1, "name": "ada", "score": 0.9, "foo": "bar", "n_rows": 3}


def test_flowerpower_example_only_and_whole_dag(tmp_path: Path) -> None:
    root = tmp_path / ".flowc"
    done = flowc("run", "flow.yaml", "--only", "add_int_col", root=root)
    assert done.returncode == 0, done.stderr
    ran = [ln.split(":")[0] for ln in done.stdout.splitlines() if ln.endswith("success (0.00s)")]
    assert done.stdout.splitlines()[-1].endswith("(2 success)")
    assert "final_df" not in done.stdout and "row_count" not in done.stdout, ran
    # without final: the whole DAG, summary included
    done = flowc("run", "flow.yaml", "--set", "final=[]", root=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("(5 success)")
    assert "summary: success" in done.stdout


@pytest.mark.parametrize("target", target_names())
def test_flowerpower_example_compiles_to_every_target(target: str) -> None:
    # Vertex needs a stack whose orchestrator is vertex: the example's `gcp` environment
    ir = compile_flow(EXAMPLE / "flow.yaml", environment="gcp" if target == "vertex" else None)
    files = emit(ir, target)
    assert files, target
    text = "\n".join(files.values())
    assert "pipelines.my_flow:add_int_col" in text or "add_int_col" in text
    assert "summary" not in text.replace("summary_", "")  # pruned by final: in every target
