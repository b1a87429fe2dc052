"""The mlflow plugin against real MLflow (SQLite tracking store): the example flow run with
`flowc run`, its params/metrics/artifacts read back through mlflow's own client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from flowc.compiler.cli import cli
from flowc.runtime import plugins as pl
from flowc.runtime.plugins_builtin.mlflow_plugin import RUN_TAG, MLflowPlugin

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "mlflow_stack" / "flow.yaml"


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema created once (MLflow's migrations take seconds);
    each test copies it."""
    path = tmp_path_factory.mktemp("mlflow") / "empty.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def fresh_uri(empty_db: Path, path: Path) -> str:
    shutil.copy(empty_db, path)
    return f"sqlite:///{path}"


def unusable_uri(tmp_path: Path) -> str:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder should be")
    return f"sqlite:///{blocker / 'x.db'}"


def test_example_flow_metrics_appear_in_mlflow(tmp_path: Path, empty_db: Path) -> None:
    uri = fresh_uri(empty_db, tmp_path / "mlflow.db")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    cmd = [sys.executable, "-m", "flowc", "run", str(EXAMPLE), "--stack", "local"]
    res = subprocess.run(
        [*cmd, "--param", "epochs=6", "--param", "n_rows=300"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = res.stdout.split("run ", 1)[1].split()[0]

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("churn")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == run_id and run.data.tags[RUN_TAG] == run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags["team"] == "data-team" and run.data.tags["published"] == "true"
    # pipeline params (auto-logged) and a step's own params
    assert run.data.params["epochs"] == "6" and run.data.params["n_rows"] == "300"
    assert run.data.params["train_rows"] == "225" and run.data.params["test_rows"] == "75"
    # metrics: the loss curve (one point per epoch, decreasing) and the evaluation
    curve = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in curve] == list(range(6))
    assert curve[-1].value < curve[0].value
    assert 0.7 <= run.data.metrics["auc"] <= 1.0
    assert 0.5 <= run.data.metrics["accuracy"] <= 1.0
    # the model file, attached by the publish step
    (folder,) = client.list_artifacts(run.info.run_id)
    assert folder.path == "model"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.json"]
    # the local stack's stores were used
    assert list((tmp_path / ".flowc" / "mlflow_stack" / "artifacts" / "runs" / run_id).iterdir())
    assert (tmp_path / ".flowc" / "mlflow_stack" / "metadata.db").is_file()


def test_plugin_api_and_health(tmp_path: Path, empty_db: Path) -> None:
    from flowc.runtime.services import RunInfo

    uri = fresh_uri(empty_db, tmp_path / "m.db")
    p = MLflowPlugin(tracking_uri=uri, experiment="unit")
    p.initialize()
    ok, details = p.health_check()
    assert ok and details == {"status": "connected", "uri": uri}
    p.on_run_start(RunInfo(run_id="r-1", flow="f", params={"lr": 0.1, "shards": ["a", "b"]}))
    p.log_metric("m", 2.5, step=3)
    p.log_param("extra", {"k": 1})
    # a second process of the same flowc run (e.g. a replica) reuses the MLflow run
    q = MLflowPlugin(tracking_uri=uri, experiment="unit")
    q.initialize()
    q.on_run_start(RunInfo(run_id="r-1", flow="f", params={}))
    assert q.run_id == p.run_id
    q.log_metrics({"n": 1})
    q.on_run_end()  # not the owner: the run goes on
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(p.run_id).info.status == "RUNNING"
    p.on_run_end()
    p.shutdown()
    run = client.get_run(p.run_id)
    assert run.data.metrics == {"m": 2.5, "n": 1.0}
    assert run.data.params == {"lr": "0.1", "shards": '["a", "b"]', "extra": '{"k": 1}'}
    assert run.info.status == "FINISHED"

    # `flowc run --resume` of that run: the finished MLflow run is reopened and closed again
    r = MLflowPlugin(tracking_uri=uri, experiment="unit")
    r.initialize()
    r.on_run_start(RunInfo(run_id="r-1", flow="f", params={}))
    assert r.run_id == p.run_id and client.get_run(p.run_id).info.status == "RUNNING"
    r.on_run_end()
    assert client.get_run(p.run_id).info.status == "FINISHED"

    # a run service told the run failed marks the MLflow run FAILED
    svc = pl.PluginService({"mlops": {"type": "mlflow", "config": {"tracking_uri": uri}}})
    plugins = svc.start({}, RunInfo(run_id="r-2", flow="f", params={}))
    failed_id = plugins.mlops.run_id
    svc.stop("failed")
    assert client.get_run(failed_id).info.status == "FAILED"

    bad = MLflowPlugin(tracking_uri=unusable_uri(tmp_path))
    ok, details = bad.health_check()
    assert not ok and details["status"] == "error" and details["message"]


def test_health_table_with_real_mlflow(tmp_path: Path, empty_db: Path) -> None:
    good, bad = fresh_uri(empty_db, tmp_path / "h.db"), unusable_uri(tmp_path)
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
flowc: 1
name: tracked
plugins:
  mlops: {{type: mlflow, enabled: true, config: {{tracking_uri: "{good}"}}}}
  broken: {{type: mlflow, enabled: true, config: {{tracking_uri: "{bad}"}}}}
steps:
  a: {{run: "flowc_demo.steps:echo"}}
""".lstrip())
    res = CliRunner().invoke(cli, ["plugins", "list", str(flow), "--health"])
    assert res.exit_code == 1, res.output
    rows = {ln.split()[0]: ln.split() for ln in res.output.splitlines()}
    assert rows["mlops"][1:4] == ["mlflow", "mlops", "healthy"]
    assert rows["broken"][1:4] == ["mlflow", "mlops", "UNHEALTHY"]


def test_replica_processes_share_the_flowc_runs_mlflow_run(tmp_path: Path, empty_db: Path) -> None:
    uri = fresh_uri(empty_db, tmp_path / "r.db")
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
flowc: 1
name: replicated
plugins:
  mlops: {{type: mlflow, enabled: true, config: {{tracking_uri: "{uri}", experiment: rep}}}}
steps:
  fan: {{run: "flowc_stackfix.steps:log_replica", replicas: 2, outputs: [r]}}
""".lstrip())
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "run", str(flow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("rep").experiment_id])
    assert run.data.metrics == {"replica_0": 1.0, "replica_1": 2.0}
    assert run.info.status == "FINISHED"
