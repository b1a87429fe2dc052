"""The ``mlflow`` mlops plugin: one MLflow run per flowc run, shared by every step.

Config: ``tracking_uri`` (or ExperimentHub's ``mlflow_uri``; e.g. ``sqlite:///mlflow.db`` or an
``http://`` server), ``experiment`` (default: the flow name), ``artifact_location`` (default for a
SQLite store: ``mlartifacts`` beside the database), ``tags``, ``log_params`` (log the pipeline
params on the run, default true). The run is named after the flowc run id and tagged
``flowc.run_id``; a step running in another process finds and reuses it. Uses
:class:`mlflow.tracking.MlflowClient` only (no fluent global state), so concurrent steps are safe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flowc.runtime.plugins import MLOpsPlugin, plugin_health_timeout

RUN_TAG = "flowc.run_id"
SEARCH_EXPERIMENTS = "/api/2.0/mlflow/experiments/search"
"""The REST endpoint of ``MlflowClient.search_experiments`` (the health check's request)."""


class MLflowPlugin(MLOpsPlugin):
    """MLflow tracking through ``MlflowClient``."""

    plugin_type = "mlops"
    health_imports = ("mlflow.tracking",)

    def __init__(
        self,
        tracking_uri: str | None = None,
        mlflow_uri: str | None = None,
        experiment: str | None = None,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_params: bool = True,
    ) -> None:
        super().__init__()
        self.tracking_uri = tracking_uri or mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not self.tracking_uri:
            raise ValueError("mlflow plugin needs config.tracking_uri (e.g. sqlite:///mlflow.db)")
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.tags = dict(tags or {})
        self.auto_log_params = log_params
        self.client: Any = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._owns_run = False
        self._lock = threading.RLock()  # steps run in threads; SQLite likes one writer

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        # creating a SQLite store logs its schema migrations at INFO: keep step logs quiet
        for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.client = MlflowClient(tracking_uri=self.tracking_uri)

    def on_run_start(self, run: Any) -> None:
        name = self.experiment or run.flow
        self.experiment_id = self._experiment_id(name)
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run.run_id}'", max_results=1
        )
        if found:
            self.run_id = found[0].info.run_id
            # RUNNING: another process of this flowc run (a replica, a task) owns it; else this
            # is `flowc run --resume`: the run is ours again
            self._owns_run = found[0].info.status != "RUNNING"
            if self._owns_run:
                self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {
            RUN_TAG: run.run_id,
            "flowc.flow": run.flow,
            **{k: str(v) for k, v in self.tags.items()},
        }
        created = self.client.create_run(self.experiment_id, run_name=run.run_id, tags=tags)
        self.run_id = created.info.run_id
        self._owns_run = True
        if self.auto_log_params and run.params:
            self.log_params(run.params)

    def on_run_end(self, status: str | None = None) -> None:
        if self.run_id and self._owns_run:
            self.client.set_terminated(self.run_id, "FAILED" if status == "failed" else "FINISHED")

    def shutdown(self) -> None:
        self.client = None

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """One ``search_experiments`` call. Against a tracking server it is one HTTP request
        bounded by ``health_timeout`` and never retried (``MlflowClient`` retries a refused
        connection with back-off for minutes)."""
        try:
            if urlparse(self.tracking_uri or "").scheme in ("http", "https"):
                self._ping_server(plugin_health_timeout(self))
            else:
                if self.client is None:
                    self.initialize()
                self.client.search_experiments(max_results=1)
            return True, {"status": "connected", "uri": self.tracking_uri}
        except Exception as e:  # noqa: BLE001 - reported
            return False, {"status": "error", "message": str(e), "uri": self.tracking_uri}

    def _ping_server(self, timeout: float) -> None:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        response = http_request(
            get_default_host_creds(self.tracking_uri),
            SEARCH_EXPERIMENTS,
            "POST",
            max_retries=0,
            backoff_factor=0,
            timeout=timeout,
            json={"max_results": 1},
        )
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {SEARCH_EXPERIMENTS}")

    # -- the API -----------------------------------------------------------------------------

    def set_tracking_uri(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = uri
        self.client = MlflowClient(tracking_uri=uri)

    def _default_artifact_location(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        parsed = urlparse(self.tracking_uri or "")
        if parsed.scheme == "sqlite":
            db = self.tracking_uri.split("sqlite:///", 1)[-1]
            return (Path(db).absolute().parent / "mlartifacts").as_uri()
        return None

    def _experiment_id(self, name: str) -> str:
        with self._lock:
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            try:
                return self.client.create_experiment(
                    name, artifact_location=self._default_artifact_location()
                )
            except Exception:  # created concurrently by another process
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
                return exp.experiment_id

    def create_experiment(self, name: str) -> str:
        return self._experiment_id(name)

    def get_experiment_by_name(self, name: str) -> Any:
        return self.client.get_experiment_by_name(name)

    def start_run(self, experiment_id: str | None = None, run_name: str | None = None) -> str:
        """Start an extra run (e.g. one per trial); ``log_*`` keep going to the flow's run."""
        exp = (
            experiment_id or self.experiment_id or self._experiment_id(self.experiment or "Default")
        )
        run = self.client.create_run(exp, run_name=run_name)
        return run.info.run_id

    def end_run(self, status: str = "FINISHED", run_id: str | None = None) -> None:
        self.client.set_terminated(run_id or self._run(), status)

    def get_run(self, run_id: str | None = None) -> Any:
        return self.client.get_run(run_id or self._run())

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("mlflow plugin: no active run (initialize the plugin for a run)")
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _text(v)) for k, v in params.items()]
        with self._lock:
            self.client.log_batch(self._run(), params=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        if len(metrics) == 1:  # the common case: the store's single-metric path is cheaper
            ((k, v),) = metrics.items()
            with self._lock:
                self.client.log_metric(self._run(), str(k), float(v), ts, step or 0)
            return
        items = [Metric(str(k), float(v), ts, step or 0) for k, v in metrics.items()]
        with self._lock:
            self.client.log_batch(self._run(), metrics=items)

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        with self._lock:
            self.client.log_artifact(self._run(), str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with self._lock:
            for k, v in tags.items():
                self.client.set_tag(self._run(), str(k), _text(v))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)
