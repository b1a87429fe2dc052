"""Hamilton function modules on Airflow 3 ``dag.test()``: a flow whose module uses Hamilton's
decorators (``@extract_fields``, ``@parameterize``, ``@config.when``) compiles to a DAG whose
tasks call ``flowc.runtime.hamilton:node``, which rebuilds Hamilton's graph inside the Airflow
task (``.venv-airflow`` has ``apache-hamilton``: scripts/test.sh). Every step's outputs, read
back from the run's XComs, equal ``flowc run``'s of the same flow and Hamilton's own driver's,
for both ``@config.when`` variants and a param given at trigger time."""

from __future__ import annotations

import importlib
from pathlib import Path

from hamilton import driver

from flowc.compiler.api import emit, load_text
from tests.test_airflow_dags import _local, _run_dags, airflow_outputs

FLOWS = {mode: f"""\
flowc: 1
name: hamilton_{mode}
params:
  n: {{type: int, default: 3}}
functions:
  modules: [flowc_hamilton.plain_values]
  config: {{mode: {mode}}}
""" for mode in ("fast", "slow")}
NODES = ["bounds", "low", "high", "low_plus", "high_plus", "total"]


def _hamilton(mode: str, n: int) -> dict:
    module = importlib.import_module("flowc_hamilton.plain_values")
    dr = driver.Builder().with_modules(module).with_config({"mode": mode}).build()
    return dr.execute(NODES, inputs={"n": n})


def test_hamilton_nodes_on_dag_test_match_flowc_run_and_hamiltons_driver(tmp_path: Path) -> None:
    irs = {mode: load_text(text, f"hamilton_{mode}.yaml") for mode, text in FLOWS.items()}
    for ir in irs.values():
        assert sorted(s.name for s in ir.steps) == sorted(NODES)
        assert {s.run for s in ir.steps} == {"flowc.runtime.hamilton:node"}
    sources = {f"hamilton_{m}": "\n".join(emit(ir, "airflow").values()) for m, ir in irs.items()}
    confs: dict[str, list[dict | None]] = {
        "hamilton_fast": [None, {"n": 5}],
        "hamilton_slow": [None],
    }
    runs = _run_dags(tmp_path, confs, sources=sources)
    for mode, ir in irs.items():
        pairs = zip(runs[f"hamilton_{mode}"], confs[f"hamilton_{mode}"], strict=True)
        for i, (run, conf) in enumerate(pairs):
            assert run["state"] == "success", run
            assert set(run["tis"].values()) == {"success"}, run["tis"]
            got = airflow_outputs(ir, run)
            local = _local(ir, tmp_path / f"{mode}{i}", conf)
            assert got == local.outputs
            n = (conf or {}).get("n", 3)
            want = _hamilton(mode, n)
            assert got == {name: {name: want[name]} for name in NODES}
    # the variants differ, so the config reached the Airflow tasks' graphs
    assert airflow_outputs(irs["fast"], runs["hamilton_fast"][0])["total"] == {"total": [4, 32, 36]}
    assert airflow_outputs(irs["fast"], runs["hamilton_fast"][1])["total"] == {"total": [6, 52, 58]}
    assert airflow_outputs(irs["slow"], runs["hamilton_slow"][0])["total"] == {"total": [128]}
