"""Function modules built by Hamilton's own graph: decorated nodes become steps with Hamilton's
names and dependencies, ``functions.config`` (and per environment) drives ``@config.when``, the
runtime calls each node's own callable, and FlowerPower's hello-world module (``@parameterize``
from ``conf/pipelines.yml``) gives the same ``final_df`` under ``flowc run`` as Hamilton's
driver."""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hamilton import driver

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Lit, Ref
from flowc.compiler.registry import target_names
from flowc.runtime.executor import run_plan

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "flowerpower" / "hello_world"

DECORATED = """\
flowc: 1
name: hx
params:
  n_rows: {type: int, default: 4}
functions:
  modules: [flowc_hamilton.decorated]
  config: {mode: fast}
environments:
  slow:
    functions: {config: {mode: slow}}
"""
OFFSET = "steps:\n  total: {with: {offset: 100}}\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flow.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def errors(path: Path, **kw: object) -> str:
    with pytest.raises(FlowcError) as e:
        compile_flow(path, **kw)  # type: ignore[arg-type]
    return e.value.render().replace(str(path), "flow.yaml")


def hamilton_driver(module_name: str, config: dict) -> driver.Driver:
    module = importlib.import_module(module_name)
    return driver.Builder().with_modules(module).with_config(config).build()


def test_decorated_nodes_are_steps_with_hamiltons_names_and_dependencies(tmp_path: Path) -> None:
    ir = compile_flow(write(tmp_path, DECORATED))
    names = [s.name for s in ir.steps]
    # @extract_columns: the frame and a node per column; @parameterize: two nodes of one
    # function; @config.when(mode=fast): `total` is total__fast
    assert sorted(names) == ["a", "a_times_two", "b", "b_times_three", "frame", "total"]
    # @extract_columns wraps the function itself too: every node runs as Hamilton resolved it
    assert {s.run for s in ir.steps} == {"flowc.runtime.hamilton:node"}
    a = ir.step("a")
    assert a.run == "flowc.runtime.hamilton:node"
    w = dict(a.with_)
    assert w["frame"] == Ref("steps", ("frame", "outputs", "frame"))
    assert w["hamilton_node"] == Lit(
        {"modules": ["flowc_hamilton.decorated"], "config": {"mode": "fast"}, "node": "a"}
    )
    assert set(dict(ir.step("a_times_two").with_)) == {"a", "hamilton_node"}
    assert set(ir.step("total").upstream) == {"a_times_two", "b_times_three"}


def test_environment_config_merges_per_key_and_changes_the_graph(tmp_path: Path) -> None:
    flow = write(tmp_path, DECORATED + OFFSET)
    slow = compile_flow(flow, environment="slow")
    w = dict(slow.step("total").with_)
    assert w["offset"] == Lit(100)  # total__slow's extra input, from `with:`
    assert w["hamilton_node"].value["config"] == {"mode": "slow"}  # type: ignore[attr-defined]
    # the fast variant has no `offset`: the `with:` key is an error there, at its line
    assert "flow.yaml:12:18: error: function 'total' of 'flowc_hamilton.decorated' has no " in (
        errors(flow)
    )


@pytest.mark.parametrize(
    "environment,config", [(None, {"mode": "fast"}), ("slow", {"mode": "slow"})]
)
def test_flowc_run_matches_hamiltons_driver(
    tmp_path: Path, environment: str | None, config: dict
) -> None:
    text = DECORATED + OFFSET if environment else DECORATED
    ir = compile_flow(write(tmp_path, text), environment=environment)
    result = run_plan(ir.to_data(), root=tmp_path / ".flowc")
    assert result.ok, result.error
    inputs = {"n_rows": 4, **({"offset": 100} if environment else {})}
    want = hamilton_driver("flowc_hamilton.decorated", config).execute(
        ["total", "a", "b_times_three"], inputs=inputs
    )
    assert result.outputs["total"]["total"] == want["total"]
    pd.testing.assert_series_equal(result.outputs["a"]["a"], want["a"])
    pd.testing.assert_series_equal(
        result.outputs["b_times_three"]["b_times_three"], want["b_times_three"]
    )


def test_missing_input_points_at_the_flow_line_and_the_function(tmp_path: Path) -> None:
    flow = write(tmp_path, DECORATED)
    out = errors(flow, environment="slow")
    assert (
        "flow.yaml:6:13: error: parameter 'offset' of function 'total' of "
        "'flowc_hamilton.decorated' is not a function, a param or a 'with:' value (defined at "
        "tests/fixtures/pkgs/flowc_hamilton/decorated.py:29)"
    ) in out


def test_unknown_final_var_is_located(tmp_path: Path) -> None:
    flow = write(tmp_path, DECORATED + OFFSET + "final: [a_times_too]\n")
    out = errors(flow, environment="slow")
    assert "flow.yaml:13:9: error: unknown step 'a_times_too' in final" in out
    assert "did you mean 'a_times_two'?" in out


def test_decorated_module_without_hamilton_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_hamilton.py").write_text(
        "from hamilton.function_modifiers import parameterize, value\n\n\n"
        "@parameterize(b={'x': value(1)})\ndef a(x: int) -> int:\n    return x\n",
        encoding="utf-8",
    )
    for name in ("hamilton", "hamilton.function_modifiers"):  # importing it fails
        monkeypatch.setitem(sys.modules, name, None)
    flow = write(tmp_path, "flowc: 1\nname: nh\nfunctions: [needs_hamilton]\n")
    out = errors(flow)
    assert "flow.yaml:3:13: error: function module 'needs_hamilton' uses Hamilton, which is " in out
    assert "pip install 'apache-hamilton'" in out


def test_final_is_hamiltons_final_vars_pruning(tmp_path: Path) -> None:
    ir = compile_flow(write(tmp_path, DECORATED + "final: [a_times_two]\n"))
    assert sorted(s.name for s in ir.steps) == ["a", "a_times_two", "frame"]


# -- FlowerPower's hello world -----------------------------------------------------------------


@pytest.mark.parametrize("target", target_names())
def test_flowerpower_hello_world_compiles_to_every_target_that_carries_dataframes(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(HELLO)  # PARAMS is read from conf/pipelines.yml next to the module
    ir = compile_flow(HELLO / "flow.yaml")
    assert [s.name for s in ir.steps] == ["df", "add_int_col", "final_df"]
    assert ir.step("add_int_col").run == "flowc.runtime.hamilton:node"  # @parameterize's node
    if target in ("kfp", "vertex"):  # its nodes return DataFrames: KFP values are JSON
        with pytest.raises(FlowcError, match="output 'df' is a DataFrame"):
            emit(ir, target)
        return
    files = emit(ir, target)
    text = "\n".join(files.values())
    assert "flowc.runtime.hamilton:node" in text and "hello_pipelines.my_flow" in text, target


def test_flowerpower_hello_world_flowc_run_matches_hamiltons_driver(tmp_path: Path) -> None:
    root = tmp_path / ".flowc"
    done = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml", "--root", str(root)],
        cwd=HELLO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{HELLO}"},
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[-1].split()[1]
    outputs = root / "runs" / run_id
    got = {
        name: pickle.loads((outputs / name / f"{name}.pkl").read_bytes())
        for name in ("add_int_col", "final_df")
    }
    sys.path.insert(0, str(HELLO))
    cwd = Path.cwd()
    try:
        os.chdir(HELLO)
        want = hamilton_driver("hello_pipelines.my_flow", {}).execute(
            ["add_int_col", "final_df"], inputs={"data_path": "data/sample.csv"}
        )
    finally:
        os.chdir(cwd)
        sys.path.remove(str(HELLO))
    for name, frame in got.items():
        pd.testing.assert_frame_equal(frame, want[name])
    assert list(got["final_df"]["foo"]) == ["bar"] * len(got["final_df"])  # the seed's params


def test_runtime_calls_a_node_in_a_fresh_process_without_the_compiler() -> None:
    code = (
        "import sys, json\n"
        "from flowc.runtime import hamilton\n"
        "ref = {'modules': ['flowc_hamilton.decorated'], 'config': {'mode': 'fast'}, "
        "'node': 'b_times_three'}\n"
        "import pandas as pd\n"
        "out = hamilton.node(ref, b=pd.Series([1, 2]))\n"
        "print(json.dumps([list(out), any(m.startswith('flowc.compiler') for m in sys.modules)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests' / 'fixtures' / 'pkgs'}"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[3, 6], false]"


def test_plain_functions_give_the_same_graph_with_and_without_hamilton() -> None:
    from flowc.compiler import hamilton as graph

    module = importlib.import_module("flowc_functions.features")
    loaded = [(0, "flowc_functions.features", module)]
    with_h = [(n.name, n.deps, n.run) for n in graph.hamilton_nodes(loaded, {})]
    without = [(n.name, n.deps, n.run) for n in graph.signature_nodes(loaded)]
    assert with_h == without
    assert [n for n, _, _ in with_h] == ["raw_rows", "add_int_col", "doubled", "total", "report"]


def test_no_import_keeps_the_static_reading(tmp_path: Path) -> None:
    # validate --no-import cannot build Hamilton's graph (that runs the module): the stand-in's
    # signatures are read as plain functions, so @parameterize's bound values are unknown
    done = subprocess.run(
        [sys.executable, "-m", "flowc", "validate", "--no-import", "flow.yaml"],
        cwd=HELLO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert "parameter 'col_name' of function 'add_int_col'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("n,ok", [(5, True), (50, False)])
def test_check_output_results_are_validator_steps(tmp_path: Path, n: int, ok: bool) -> None:
    flow = write(
        tmp_path,
        f"flowc: 1\nname: dq\nparams:\n  n: {{type: int, default: {n}}}\n"
        "functions: [flowc_hamilton.checked]\n",
    )
    ir = compile_flow(flow)
    assert set(ir.step("bounded").upstream) == {"bounded_raw", "bounded_range_validator"}
    result = run_plan(ir.to_data(), root=tmp_path / ".flowc")
    check = result.outputs["bounded_range_validator"]["bounded_range_validator"]
    assert check.passes is ok
    assert result.ok is ok
    if ok:
        assert result.outputs["bounded"]["bounded"] == n
    else:  # importance="fail": the checked node's step fails, as Hamilton's driver raises
        assert result.states["bounded"] != "success"
        assert "does not fall within acceptable range" in str(result.error)


def test_decorated_nodes_on_kfp_local_match_flowc_run_and_hamilton(tmp_path: Path) -> None:
    from tests.test_kfp import _run_both

    flow = write(
        tmp_path,
        "flowc: 1\nname: hk\nparams:\n  n: {type: int, default: 3}\n"
        "functions: {modules: [flowc_hamilton.plain_values], config: {mode: fast}}\n",
    )
    kfp_out, flowc_out, result = _run_both(flow, tmp_path)
    assert set(result.states.values()) == {"success"}
    assert kfp_out == flowc_out
    want = hamilton_driver("flowc_hamilton.plain_values", {"mode": "fast"}).execute(
        ["total", "low", "high_plus"], inputs={"n": 3}
    )
    assert kfp_out["total"] == {"total": want["total"]} == {"total": [4, 32, 36]}
    assert kfp_out["low"] == {"low": want["low"]}
    assert kfp_out["high_plus"] == {"high_plus": want["high_plus"]}


def test_plain_modules_compile_without_loading_hamilton() -> None:
    # a module that never refers to Hamilton is read from its signatures (the same graph, see
    # above): validate does not pay for importing Hamilton and pandas
    code = (
        "import sys\n"
        "from flowc.compiler.api import compile_flow\n"
        f"ir = compile_flow({str(REPO / 'golden' / 'functions' / 'flow.yaml')!r})\n"
        "print([s.name for s in ir.steps], 'hamilton' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests' / 'fixtures' / 'pkgs'}"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['raw_rows', 'add_int_col', 'doubled', 'total'] False"
