"""The mlflow plugin against real MLflow (SQLite tracking store): the example flow run with
`flowc run`, its params/metrics/artifacts read back through mlflow's own client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from flowc.compiler.cli import cli
from flowc.runtime import plugins as pl
from flowc.runtime.plugins_builtin.mlflow_plugin import RUN_TAG, MLflowPlugin
from tests.plugin_services import free_port

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


class _TrackingServer:
    """The REST edge of an MLflow tracking server (no ``mlflow server`` here: it needs Flask):
    answers ``search_experiments`` with no experiments, or ``status`` for everything; records
    the paths asked."""

    def __init__(self, status: int = 200) -> None:
        import http.server
        import threading

        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.paths.append(self.path.split("?")[0])
                body = b'{"experiments": []}' if status == 200 else b'{"error_code": "X"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mlflow_spec(uri: str, **extra: object) -> dict:
    return {"type": "mlflow", "enabled": True, "config": {"tracking_uri": uri}, **extra}


def test_health_of_a_refused_tracking_server_returns_within_the_timeout() -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    row = pl.health({"mlops": mlflow_spec(refused)})["mlops"]
    elapsed = time.monotonic() - started
    # answered by the plugin itself (not cut off by the health timeout): one request, no retries
    assert row["healthy"] is False and row["details"]["status"] == "error", row
    assert "Connection refused" in row["details"]["message"]
    assert row["details"]["uri"] == refused
    assert elapsed < 60  # MlflowClient's own retries take ~250 s here


def test_health_of_a_silent_or_failing_tracking_server(tmp_path: Path) -> None:
    import socket

    silent = socket.socket()  # listens (the kernel completes the handshake), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    failing = _TrackingServer(status=503)
    try:
        started = time.monotonic()
        report = pl.health(
            {
                "silent": mlflow_spec(
                    f"http://127.0.0.1:{silent.getsockname()[1]}", health_timeout=1
                ),
                "failing": mlflow_spec(failing.uri, health_timeout=30),
            }
        )
        elapsed = time.monotonic() - started
    finally:
        silent.close()
        failing.close()
    assert report["silent"]["healthy"] is False
    assert report["silent"]["details"]["status"] in ("error", "timeout")
    # a 503 is retried with back-off by MlflowClient; the health check asks once
    assert (
        report["failing"]["healthy"] is False and report["failing"]["details"]["status"] == "error"
    )
    assert failing.paths == ["/api/2.0/mlflow/experiments/search"]
    assert elapsed < 60


def test_health_of_a_tracking_server_asks_what_mlflows_client_asks() -> None:
    server = _TrackingServer()
    try:
        row = pl.health({"mlops": mlflow_spec(server.uri)})["mlops"]
        assert row["healthy"] is True, row
        assert row["details"] == {"status": "connected", "uri": server.uri}
        asked_by_health = list(server.paths)
        MlflowClient(tracking_uri=server.uri).search_experiments(max_results=1)
    finally:
        server.close()
    assert asked_by_health == ["/api/2.0/mlflow/experiments/search"]
    assert server.paths == asked_by_health * 2


def test_plugins_list_health_with_a_refused_tracking_server(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
flowc: 1
name: tracked
plugins:
  mlops: {{type: mlflow, enabled: true, config: {{tracking_uri: "http://127.0.0.1:{free_port()}"}}}}
steps:
  a: {{run: "flowc_demo.steps:echo"}}
""".lstrip())
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "plugins", "list", str(flow), "--health"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    (row,) = [ln for ln in res.stdout.splitlines() if ln.startswith("mlops")]
    assert row.split()[1:4] == ["mlflow", "mlops", "UNHEALTHY"] and "Connection refused" in row


def test_experimenthub_from_its_hub_config_with_real_mlflow(tmp_path: Path, empty_db: Path) -> None:
    """Seed 001's ``hub_config.yaml`` ``plugins:`` (ExperimentHub's keys: ``mlflow_uri``; the
    disabled task queue's backend does not exist here and is never touched)."""
    uri = fresh_uri(empty_db, tmp_path / "hub.db")
    plugin_config = {
        "mlops": {"enabled": True, "type": "mlflow", "config": {"mlflow_uri": uri}},
        "datastream": {
            "enabled": False,
            "type": "rabbitmq",
            "config": {"host": "localhost", "port": free_port()},
        },
        "taskqueue": {
            "enabled": False,
            "type": "celery",
            "config": {
                "broker_url": "amqp://guest:guest@localhost:5672//",
                "backend_url": "redis://localhost:6379/0",
                "app_name": "experiment_hub",
            },
        },
    }
    with pl.ExperimentHub(plugin_config) as hub:
        mlops = hub.get_plugin("mlops")
        assert isinstance(mlops, MLflowPlugin) and list(hub.plugins) == ["mlops"]
        assert hub.get_plugin("datastream") is None and hub.get_plugin("taskqueue") is None
        assert hub.check_plugin_health() == {
            "mlops": {"healthy": True, "details": {"status": "connected", "uri": uri}}
        }
        exp_id = mlops.create_experiment("hub")
        run_id = mlops.start_run(exp_id)
    assert MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id == exp_id
