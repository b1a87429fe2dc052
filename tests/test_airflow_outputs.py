"""Outputs as Airflow users read them: every task of a flowc DAG pushes one XCom per output name
(as ``multiple_outputs=True`` does) besides the ``return_value`` flowc reads, so a hand-written
task, a sensor or another DAG can ``ti.xcom_pull(task_ids=STEP, key=OUTPUT)``. Proved with real
Airflow 3 ``dag.test()``: a plain PythonOperator added to the generated DAG pulls each output by
key (``run:`` steps, a mapped foreach step and a BashOperator command step) and sees what
``flowc run`` produced."""

from __future__ import annotations

from pathlib import Path

from flowc.compiler.api import emit, load_text
from flowc.runtime.executor import run_plan
from tests.test_airflow_dags import _run_dags

FLOW = """\
flowc: 1
name: xcom_outputs
params:
  shards: {type: list, default: [a, bb]}
steps:
  train:
    run: flowc_demo.steps:train
    with: {frame: [1, 2]}
    outputs: [model, auc]
  each:
    run: flowc_demo.steps:score
    foreach: "${params.shards}"
    with: {model: "${steps.train.outputs.model}", shard: "${item}"}
    outputs: [score]
  cmd:
    command: [python, -c, "import json, os; json.dump({'n': 7, 'word': 'hi'}, open(os.environ['FLOWC_OUTPUTS'], 'w'))"]
    outputs: [n, word]
"""

CONSUMER = '''

def _consume(ti):
    """What a user's own task reads: each output by its key."""
    return {
        "model": ti.xcom_pull(task_ids="train", key="model"),
        "auc": ti.xcom_pull(task_ids="train", key="auc"),
        "score": list(ti.xcom_pull(task_ids="each", key="score")),
        "n": ti.xcom_pull(task_ids="cmd", key="n"),
        "word": ti.xcom_pull(task_ids="cmd", key="word"),
    }


consumer = PythonOperator(task_id="consumer", python_callable=_consume, dag=dag)
[dag.get_task("train"), dag.get_task("each"), dag.get_task("cmd")] >> consumer
'''


def test_each_output_is_its_own_xcom_key(tmp_path: Path) -> None:
    ir = load_text(FLOW, "xcom_outputs.yaml")
    (dag_text,) = emit(ir, "airflow").values()
    assert "post_execute=_outputs" in dag_text  # the command task pushes its outputs by name
    runs = _run_dags(
        tmp_path,
        {"xcom_outputs": [None, {"shards": ["c", "dd", "eee"]}]},
        sources={"xcom_outputs": dag_text + CONSUMER},
    )
    for n, (run, params) in enumerate(
        zip(runs["xcom_outputs"], [None, {"shards": ["c", "dd", "eee"]}], strict=True)
    ):
        assert run["state"] == "success", run
        local = run_plan(ir.to_data(), params, root=tmp_path / f"local{n}" / ".flowc")
        assert local.ok
        want = {**local.outputs["train"], **local.outputs["each"], **local.outputs["cmd"]}
        assert run["xcom"]["consumer"] == want
        # flowc's own return_value is unchanged: the dict by output name
        assert run["xcom"]["train"] == local.outputs["train"]
    assert runs["xcom_outputs"][1]["xcom"]["consumer"]["score"] == [
        10.0,
        11.0,
        12.0,
    ]  # len("model-2-1") + len(shard)
