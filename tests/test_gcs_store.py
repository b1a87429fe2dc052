"""The ``gcs`` artifact store (stack component ``artifact_store: {type: gcs}``) against a local
GCS emulator, with the real google-cloud-storage client: a flow's steps hand their outputs to
each other through the bucket."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow
from flowc.runtime.executor import run_plan
from flowc.runtime.stack import build_component
from tests.plugin_services import gcs_emulator

BUCKET = "churn-artifacts"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with gcs_emulator(tmp_path_factory.mktemp("gcs"), BUCKET) as host:
        yield host


@pytest.fixture
def gcs_env(emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    return emulator


def client():  # noqa: ANN201 - google.cloud.storage.Client
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="flowc-test", credentials=AnonymousCredentials())


def test_put_get_exists_and_format_switch(gcs_env: str) -> None:
    store = build_component(
        "artifact_store", {"type": "gcs", "bucket": BUCKET, "prefix": "unit"}
    ).open()
    uri = store.put("r1", "train", "model", {"w": [1.5, 2]})
    assert uri == f"gs://{BUCKET}/unit/runs/r1/train/model.json"
    assert store.get("r1", "train", "model") == {"w": [1.5, 2]}
    assert store.exists("r1", "train", "model") and not store.exists("r1", "train", "other")
    # a value JSON cannot hold is pickled, and the stale .json object is removed
    assert store.put("r1", "train", "model", {3, 4}).endswith("/model.pkl")
    assert store.get("r1", "train", "model") == {3, 4}
    names = sorted(b.name for b in client().list_blobs(BUCKET, prefix="unit/"))
    assert names == ["unit/runs/r1/train/model.pkl"]


def test_flow_outputs_travel_through_the_bucket(tmp_path: Path, gcs_env: str) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent(f"""
            flowc: 1
            name: via_gcs
            stacks:
              cloud:
                orchestrator: {{type: local}}
                artifact_store: {{type: gcs, bucket: {BUCKET}, prefix: flows}}
            steps:
              sq: {{run: "flowc_demo.steps:square", with: {{x: 9}}, outputs: [y]}}
              echo: {{run: "flowc_demo.steps:echo", with: {{value: "${{steps.sq.outputs.y}}"}}, outputs: [v]}}
            """).lstrip())
    result = run_plan(compile_flow(f, stack="cloud").to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    assert result.outputs["echo"]["v"] == 81
    blobs = {b.name: b for b in client().list_blobs(BUCKET, prefix=f"flows/runs/{result.run_id}/")}
    assert sorted(blobs) == [
        f"flows/runs/{result.run_id}/echo/v.json",
        f"flows/runs/{result.run_id}/sq/y.json",
    ]
    assert json.loads(blobs[f"flows/runs/{result.run_id}/sq/y.json"].download_as_bytes()) == 81
    assert not (tmp_path / ".flowc" / "runs" / result.run_id / "sq" / "y.json").exists()
