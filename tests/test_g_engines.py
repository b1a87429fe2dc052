"""The function-module and integration-framework golden cases on real engines: Airflow 3's
``dag.test()`` and ``kfp.local`` run the generated DAG / PipelineSpec and their outputs equal
what ``flowc run``'s runtime produces (the integration tree is built inside each task process
from the plan)."""

from __future__ import annotations

from pathlib import Path

from tests.test_airflow_dags import _compile, _local, _run_dags, airflow_outputs
from tests.test_kfp import _run_both

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_functions_and_integration_cases_on_airflow_match_local(tmp_path: Path) -> None:
    runs = _run_dags(tmp_path, {"functions": [None], "integration_framework": [None]})
    # function modules: final: [total] pruned `report`; the values equal the local runtime's
    ir, text = _compile("functions")
    assert "flowc_functions.features:add_int_col" in text
    (run,) = runs["functions"]
    assert run["state"] == "success", run
    got = airflow_outputs(ir, run)
    assert got == _local(ir, tmp_path / "l1").outputs
    assert got["total"]["total"] == 6 + 3 * 14
    assert set(run["tis"]) == {"raw_rows", "add_int_col", "doubled", "total"}
    # integration framework: every task process builds the tree from the plan
    ir, _ = _compile("integration_framework")
    (run,) = runs["integration_framework"]
    assert run["state"] == "success", run
    got = airflow_outputs(ir, run)
    want = _local(ir, tmp_path / "l2").outputs
    for out in (got, want):
        out["wiring"]["facts"].pop("tree_id")  # an object id: differs between processes
    assert got == want
    assert got["fit"] == {"model": "xgb-3", "epochs": 2, "lr": 0.05}
    assert got["wiring"]["facts"]["process.train"] is False
    assert got["wiring"]["facts"]["metadata_tracker.metrics_tracker"] is True


def test_functions_case_on_kfp_local_matches_local(tmp_path: Path) -> None:
    kfp_out, flowc_out, result = _run_both(GOLDEN / "functions" / "flow.yaml", tmp_path)
    assert set(result.states.values()) == {"success"}
    assert kfp_out == flowc_out
    assert kfp_out["total"] == {"total": 6 + 3 * 14}


def test_integration_case_on_kfp_local_matches_local(tmp_path: Path) -> None:
    # every KFP task runs in its own process: each builds the tree from the plan
    kfp_out, flowc_out, result = _run_both(GOLDEN / "integration_framework" / "flow.yaml", tmp_path)
    assert set(result.states.values()) == {"success"}
    for out in (kfp_out, flowc_out):
        out["wiring"]["facts"].pop("tree_id")
    assert kfp_out == flowc_out
    assert kfp_out["log"] == {"logged": "logged xgb-3 to file:///tmp/mlruns"}
