"""``flowc submit`` against in-test HTTP servers on 127.0.0.1 that speak the part of each API the
real SDK calls: the KFP v2beta1 REST API (healthz, experiments, runs) for
``kfp.Client.create_run_from_pipeline_package``, and the Vertex AI REST API
(``pipelineJobs.create``, ``schedules.create``) for ``aiplatform.PipelineJob.submit`` with
``api_endpoint`` pointed at the server. No real KFP or Vertex AI is used."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.cli import cli

ROOT = Path(__file__).resolve().parent.parent


class FakeApi:
    """Records every request; answers from ``routes`` ((method, path prefix) -> handler)."""

    def __init__(self, routes: dict[tuple[str, str], Any]):
        self.requests: list[dict[str, Any]] = []
        self.routes = routes
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                api.requests.append({"method": method, "path": self.path, "body": body})
                for (m, prefix), handler in api.routes.items():
                    if m == method and self.path.split("?")[0].startswith(prefix):
                        status, answer = handler(self.path, body)
                        break
                else:
                    status, answer = 404, {"error": f"no route {method} {self.path}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posted(self, prefix: str) -> list[dict[str, Any]]:
        return [
            r["body"]
            for r in self.requests
            if r["method"] == "POST" and r["path"].startswith(prefix)
        ]


def _kfp_routes() -> dict[tuple[str, str], Any]:
    return {
        ("GET", "/apis/v2beta1/healthz"): lambda p, b: (200, {"multi_user": False}),
        ("GET", "/apis/v2beta1/experiments"): lambda p, b: (200, {}),
        ("POST", "/apis/v2beta1/experiments"): lambda p, b: (
            200,
            {"experiment_id": "exp-7", "display_name": b["display_name"]},
        ),
        ("POST", "/apis/v2beta1/runs"): lambda p, b: (
            200,
            {**b, "run_id": "run-42", "state": "PENDING"},
        ),
    }


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    dest = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", dest)
    return dest / "flow.yaml"


def _invoke(args: list[str], cwd: Path) -> Any:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_kfp_submit_creates_the_run(quickstart: Path, tmp_path: Path) -> None:
    with FakeApi(_kfp_routes()) as api:
        res = _invoke(
            [
                "submit",
                str(quickstart),
                "-t",
                "kfp",
                "--host",
                api.url,
                "--param",
                "min_rows=3",
                "--pipeline-root",
                "minio://mlpipeline/v2",
                "--service-account",
                "pipeline-runner",
                "--run-name",
                "nightly",
            ],
            tmp_path,
        )
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == f"{api.url}/#/runs/details/run-42"
    (exp,) = api.posted("/apis/v2beta1/experiments")
    assert exp["display_name"] == "Default"
    (run,) = api.posted("/apis/v2beta1/runs")
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-7"
    assert run["service_account"] == "pipeline-runner"
    assert run["runtime_config"] == {
        "parameters": {"min_rows": 3},
        "pipeline_root": "minio://mlpipeline/v2",
    }
    # the pipeline spec is the compiled one, byte for byte as data
    expected = emit(compile_flow(str(quickstart), params={"min_rows": "3"}), "kfp")
    assert run["pipeline_spec"] == yaml.safe_load(expected["pipeline.yaml"])


def test_kfp_submit_without_host_is_a_located_error(quickstart: Path, tmp_path: Path) -> None:
    res = _invoke(["submit", str(quickstart), "-t", "kfp"], tmp_path)
    assert res.exit_code == 1
    assert "error: no KFP host" in res.output and "Traceback" not in res.output


VERTEX_STACK = """
stacks:
  gcp:
    orchestrator:
      type: vertex
      project: acme-ml
      region: europe-west4
      pipeline_root: gs://acme-runs/pipelines
      service_account: runner@acme-ml.iam.gserviceaccount.com
"""


def _vertex_routes() -> dict[tuple[str, str], Any]:
    name = "projects/acme-ml/locations/europe-west4"
    base = f"/v1/{name}"

    def job(path: str, body: dict) -> tuple[int, dict]:
        return 200, {**body, "name": f"{name}/pipelineJobs/quickstart-1", "state": 2}

    def schedule(path: str, body: dict) -> tuple[int, dict]:
        return 200, {**body, "name": f"{name}/schedules/77", "state": "ACTIVE"}

    return {("POST", f"{base}/pipelineJobs"): job, ("POST", f"{base}/schedules"): schedule}


def _vertex_flow(quickstart: Path, schedule: str = "") -> Path:
    quickstart.write_text(quickstart.read_text() + schedule + VERTEX_STACK)
    return quickstart


def test_vertex_submit_creates_the_pipeline_job(quickstart: Path, tmp_path: Path) -> None:
    flow = _vertex_flow(quickstart)
    with FakeApi(_vertex_routes()) as api:
        res = _invoke(
            ["submit", str(flow), "-t", "vertex", "--stack", "gcp", "--param", "title=Q3"]
            + ["--api-endpoint", api.url, "--anonymous", "--run-name", "q3"],
            tmp_path,
        )
    assert res.exit_code == 0, res.output
    url = res.output.strip().splitlines()[-1]
    assert "pipelines/runs/quickstart-1" in url and "europe-west4" in url, url
    (body,) = api.posted("/v1/projects/acme-ml/locations/europe-west4/pipelineJobs")
    assert body["displayName"] == "q3"
    assert body["serviceAccount"] == "runner@acme-ml.iam.gserviceaccount.com"
    runtime = body["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://acme-runs/pipelines"
    assert runtime["parameterValues"] == {"data_path": "sales.csv", "min_rows": 5, "title": "Q3"}
    ir = compile_flow(str(flow), stack="gcp", params={"title": "Q3"})
    from flowc.targets.vertex import pipeline_job

    assert body["pipelineSpec"] == pipeline_job(ir)["pipelineSpec"]


def test_vertex_submit_of_a_scheduled_flow_creates_a_schedule(
    quickstart: Path, tmp_path: Path
) -> None:
    flow = _vertex_flow(quickstart, "\nschedule: {cron: '0 6 * * 1', timezone: Europe/Berlin}\n")
    with FakeApi(_vertex_routes()) as api:
        res = _invoke(
            ["submit", str(flow), "-t", "vertex", "--stack", "gcp"]
            + ["--api-endpoint", api.url, "--anonymous"],
            tmp_path,
        )
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].endswith("/schedules/77")
    assert not api.posted("/v1/projects/acme-ml/locations/europe-west4/pipelineJobs")
    (body,) = api.posted("/v1/projects/acme-ml/locations/europe-west4/schedules")
    assert body["cron"] == "TZ=Europe/Berlin 0 6 * * 1"
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-runs/pipelines"
    assert job["serviceAccount"] == "runner@acme-ml.iam.gserviceaccount.com"


def test_vertex_submit_needs_a_vertex_stack(quickstart: Path, tmp_path: Path) -> None:
    res = _invoke(["submit", str(quickstart), "-t", "vertex"], tmp_path)
    assert res.exit_code == 1 and "needs a stack whose orchestrator is vertex" in res.output
