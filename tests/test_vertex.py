"""The Vertex target against the real google-cloud-aiplatform package: request bodies parse
strictly into the v1 protos, and the SDK builds a PipelineJob offline from the compiled spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform
from google.cloud.aiplatform_v1.types import PipelineJob, Schedule
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from flowc.compiler.api import emit, load_text
from flowc.compiler.errors import FlowcError
from flowc.targets.vertex import every_to_cron
from tests.golden_harness import GOLDEN

JOBS = sorted(GOLDEN.glob("*/vertex/pipeline_job.json"))
SCHEDULES = sorted(GOLDEN.glob("*/vertex/schedule.json"))


def _case(p: Path) -> str:
    return p.parent.parent.name


def test_vertex_goldens_exist() -> None:
    assert {_case(p) for p in JOBS} >= {"vertex_job", "vertex_schedule", "vertex_every", "basic"}
    assert {_case(p) for p in SCHEDULES} >= {"vertex_schedule", "vertex_every"}
    err = (GOLDEN / "vertex_every_bad" / "vertex" / "ERROR").read_text()
    assert err.startswith("golden/vertex_every_bad/flow.yaml:3:1: error: ")
    assert "every 45s has no cron equivalent" in err


@pytest.mark.parametrize("path", JOBS, ids=_case)
def test_pipeline_job_parses_strictly(path: Path) -> None:
    body = json.loads(path.read_text())
    job = json_format.ParseDict(body, PipelineJob.pb()())  # an unknown field fails
    root = job.runtime_config.gcs_output_directory
    assert root.startswith("gs://") or "gcsOutputDirectory" not in body.get("runtimeConfig", {})
    json_format.ParseDict(body["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert "platforms" not in body["pipelineSpec"]


@pytest.mark.parametrize("path", SCHEDULES, ids=_case)
def test_schedule_parses_strictly(path: Path) -> None:
    body = json.loads(path.read_text())
    sched = json_format.ParseDict(body, Schedule.pb()())
    assert sched.cron.startswith("TZ=")
    assert sched.max_concurrent_run_count == 1
    parent = sched.create_pipeline_job_request.parent
    assert parent.startswith("projects/") or "parent" not in body["createPipelineJobRequest"]
    job = json.loads((path.parent / "pipeline_job.json").read_text())
    assert body["createPipelineJobRequest"]["pipelineJob"] == job


def test_vertex_job_body_from_stack() -> None:
    body = json.loads((GOLDEN / "vertex_job" / "vertex" / "pipeline_job.json").read_text())
    assert body["serviceAccount"] == "pipelines@acme-ml.iam.gserviceaccount.com"
    assert body["network"] == "projects/123456/global/networks/private"
    assert body["runtimeConfig"] == {
        "gcsOutputDirectory": "gs://acme-pipelines/root",
        "parameterValues": {"data_path": "gs://acme-data/churn.csv", "epochs": 50},
    }
    assert body["labels"]["flowc-environment"] == "prod"


def test_schedule_times_and_cron() -> None:
    body = json.loads((GOLDEN / "vertex_schedule" / "vertex" / "schedule.json").read_text())
    assert body["cron"] == "TZ=Europe/Berlin 0 3 * * 1"
    assert body["startTime"] == "2025-12-31T23:00:00Z"  # 2026-01-01 00:00 in Berlin
    assert body["endTime"] == "2027-01-01T05:30:00Z"
    every = json.loads((GOLDEN / "vertex_every" / "vertex" / "schedule.json").read_text())
    assert every["cron"] == "TZ=UTC 0 */2 * * *"
    job = json.loads((GOLDEN / "vertex_every" / "vertex" / "pipeline_job.json").read_text())
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-artifacts/pipelines"


@pytest.mark.parametrize("path", JOBS, ids=_case)
def test_aiplatform_sdk_builds_the_job_offline(path: Path, tmp_path: Path) -> None:
    body = json.loads(path.read_text())
    template = tmp_path / "pipeline.json"
    template.write_text(json.dumps(body["pipelineSpec"]), encoding="utf-8")
    job = aiplatform.PipelineJob(
        display_name=body["displayName"],
        template_path=str(template),
        pipeline_root=body.get("runtimeConfig", {}).get("gcsOutputDirectory", "gs://b/root"),
        parameter_values=body.get("runtimeConfig", {}).get("parameterValues", {}),
        credentials=AnonymousCredentials(),
        project="acme-ml",
        location="us-central1",
    )
    built = job.to_dict()
    assert built["displayName"] == body["displayName"]
    assert built["pipelineSpec"]["root"] == json.loads(json.dumps(body["pipelineSpec"]["root"]))
    assert set(built["runtimeConfig"].get("parameterValues", {})) == set(
        body.get("runtimeConfig", {}).get("parameterValues", {})
    )


@pytest.mark.parametrize("path", JOBS, ids=_case)
def test_the_job_body_itself_is_an_aiplatform_template(path: Path) -> None:
    # a body without params used to have no runtimeConfig: PipelineJob raised KeyError
    body = json.loads(path.read_text())
    job = aiplatform.PipelineJob(
        display_name=body["displayName"],
        template_path=str(path),
        pipeline_root=body["runtimeConfig"].get("gcsOutputDirectory", "gs://b/root"),
        credentials=AnonymousCredentials(),
        project="acme-ml",
        location="us-central1",
    )
    built = job.to_dict()
    assert built["pipelineSpec"]["root"] == json.loads(json.dumps(body["pipelineSpec"]["root"]))
    given = body["runtimeConfig"].get("parameterValues", {})
    assert set(built["runtimeConfig"].get("parameterValues", {})) >= set(given)


def test_a_flow_without_params_still_has_a_runtime_config() -> None:
    out = emit(load_text("flowc: 1\nname: t\nsteps:\n  a: {run: 'm:f'}\n", "f.yaml"), "vertex")
    job = json.loads(out["pipeline_job.json"])
    assert "inputDefinitions" not in job["pipelineSpec"]["root"]  # no params
    assert job["runtimeConfig"] == {}


STACK = """\
stacks:
  gcp:
    orchestrator: {type: vertex, project: acme-ml, pipeline_root: gs://b/r}
"""


def _compile(text: str, stack: str | None = "gcp") -> dict[str, str]:
    return emit(load_text(text, "f.yaml", stack=stack), "vertex")


def test_at_schedule_is_one_run() -> None:
    out = _compile(
        "flowc: 1\nname: t\nschedule: {at: '2027-01-01T09:30:00+01:00'}\n"
        + STACK
        + "steps:\n  a: {run: 'flowc_demo.steps:echo'}\n"
    )
    body = json.loads(out["schedule.json"])
    assert body["cron"] == "TZ=UTC 30 8 1 1 *"
    assert body["maxRunCount"] == "1" and body["startTime"] == "2027-01-01T08:30:00Z"


def test_without_a_vertex_stack_the_bodies_leave_out_project_settings() -> None:
    out = emit(
        load_text(
            "flowc: 1\nname: t\nschedule: {cron: '0 1 * * *'}\nsteps:\n  a: {run: 'm:f'}\n",
            "f.yaml",
        ),
        "vertex",
    )
    job = json.loads(out["pipeline_job.json"])
    assert job["runtimeConfig"] == {} and "serviceAccount" not in job
    sched = json.loads(out["schedule.json"])
    assert sched["createPipelineJobRequest"] == {"pipelineJob": job}
    json_format.ParseDict(sched, Schedule.pb()())


def test_secret_without_vertex_source_is_a_located_error() -> None:
    text = (
        "flowc: 1\nname: t\nsecrets:\n  tok: {env: TOK}\n"
        + STACK
        + "steps:\n  a: {run: 'flowc_demo.steps:echo', with: {v: '${secrets.tok}'}}\n"
    )
    with pytest.raises(FlowcError) as e:
        _compile(text)
    assert e.value.render().startswith("f.yaml:4:")
    assert "no Secret Manager source" in e.value.render()


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (60, "* * * * *"),
        (900, "*/15 * * * *"),
        (3600, "0 * * * *"),
        (6 * 3600, "0 */6 * * *"),
        (86400, "0 0 * * *"),
        (45, None),
        (7 * 60, None),
        (5 * 3600, None),
        (2 * 86400, None),
    ],
)
def test_every_to_cron(seconds: int, cron: str | None) -> None:
    assert every_to_cron(seconds) == cron
