"""Operator steps on Kubernetes (targets/k8s_operators.py): Indexed Jobs with replicas, the
channel configuration in the environment, operator_image, strict schema validity, determinism."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.errors import FlowcError
from flowc.runtime.k8s_run import operator_job
from flowc.targets import k8s
from flowc.targets.k8s_operators import operator_templates
from tests.k8s_schema import all_schema_errors, semantic_errors

REPO = Path(__file__).resolve().parent.parent
GOLDEN_FLOW = REPO / "golden" / "streaming" / "flow.yaml"


def _ir(**kw: object) -> object:
    return compile_flow(GOLDEN_FLOW, stack="cluster", **kw)


def operator_documents(ir: object) -> list[dict]:
    """The operator Jobs one run creates (run id ``r1``) from the compiled templates."""
    base = k8s.flow_base(ir)
    return [
        operator_job(t, run_id="r1", namespace="streaming", owner=None, params=[])
        for t in operator_templates(ir, f"{base}-flowc-plan").values()
    ]


def _env(doc: dict) -> dict:
    c = doc["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_operator_jobs() -> None:
    docs = operator_documents(_ir())
    assert [d["metadata"]["name"] for d in docs] == [
        "streaming-demo-writer-r1",
        "streaming-demo-reader-r1",
    ]
    writer, reader = docs
    for doc, n in ((writer, 3), (reader, 2)):
        spec = doc["spec"]
        assert doc["kind"] == "Job" and spec["completionMode"] == "Indexed"
        assert spec["completions"] == spec["parallelism"] == n
        env = _env(doc)
        assert env["FLOWC_REPLICAS"] == str(n)
        assert env["FLOWC_RUN_ID"] == "r1"  # the run's id, shared by every operator
        assert doc["metadata"]["labels"]["flowc.dev/run"] == "r1"
        assert "job-completion-index" in env["FLOWC_REPLICA"]["fieldRef"]["fieldPath"]
        assert env["FLOWC_CHANNEL_RECORDS_TRANSPORT"] == "kafka"
        # the channel location cascades to every port: the param's default here
        assert env["FLOWC_CHANNEL_RECORDS_LOCATION"] == "kafka.streaming.svc:9092"
        assert json.loads(env["FLOWC_CHANNEL_RECORDS_SCHEMA"])["name"] == "DemoRecord"
        c = doc["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == "registry.example.com/acme/demo-operators:1.0"  # operator_image
        assert c["command"] == ["python", "-m", "flowc.runtime.operators"]
        assert c["args"][-2:] == ["--step", doc["metadata"]["labels"]["flowc.dev/step"]]
        assert doc["metadata"]["namespace"] == "streaming"
        assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    assert _env(reader)["LOG_LEVEL"] == "debug"
    assert _env(reader)["FLOWC_RUN_ID"] == _env(writer)["FLOWC_RUN_ID"]
    assert writer["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "256Mi",
    }


def test_param_override_reaches_the_location() -> None:
    docs = operator_documents(_ir(params={"kafka": "b1:9092,b2:9092"}))
    assert {_env(d)["FLOWC_CHANNEL_RECORDS_LOCATION"] for d in docs} == {"b1:9092,b2:9092"}


def test_manifests_are_strictly_valid_and_deterministic() -> None:
    first = emit(_ir(), "k8s")["manifests.yaml"]
    assert first == emit(_ir(), "k8s")["manifests.yaml"]
    docs = list(yaml.safe_load_all(first))
    # the operator Jobs are not in the manifests: every run starts its own (flowc.runtime.k8s_run)
    assert [d["kind"] for d in docs if d["kind"] == "Job"] == ["Job"]
    driver = next(d for d in docs if d["kind"] == "Job")
    assert driver["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "flowc.runtime.k8s_run",
    ]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    templates = json.loads(cm["data"]["k8s.json"])["operators"]
    assert list(templates) == ["writer", "reader"]
    assert "FLOWC_RUN_ID" not in json.dumps(templates)  # no run id baked into the manifests
    jobs = operator_documents(_ir())
    every = [*docs, *jobs]
    errors = [e for d in every for e in all_schema_errors(d)] + semantic_errors(every)
    assert errors == []


def test_image_fallbacks(tmp_path: Path) -> None:
    text = GOLDEN_FLOW.read_text().replace(
        "      operator_image: registry.example.com/acme/demo-operators:1.0\n", ""
    )
    f = tmp_path / "flow.yaml"
    f.write_text(text)
    docs = operator_documents(compile_flow(f, stack="cluster"))
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in docs}
    assert images == {"registry.example.com/acme/flowc:1.0"}  # the orchestrator image


def test_local_transport_is_refused_on_kubernetes(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent("""\
        flowc: 1
        name: loc
        channels:
          records: {schema: string}
        steps:
          writer: {run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records],
                   with: {record_count: 1}}
        """))
    with pytest.raises(FlowcError) as e:
        emit(compile_flow(f), "k8s")
    text = e.value.render()
    assert "flow.yaml:4:3: error: channel 'records' uses the local transport" in text
    assert "transport: kafka" in text


def test_operator_pod_entry_reads_a_plan_split_in_parts(tmp_path: Path) -> None:
    """Operator pods mount a split plan as plan.json.0, .1, ...: the entry joins the parts."""
    import json
    import subprocess
    import sys

    text = json.dumps({"name": "x", "steps": {"a": {"kind": "run"}}})
    cut = len(text) // 2
    (tmp_path / "plan.json.0").write_text(text[:cut])
    (tmp_path / "plan.json.1").write_text(text[cut:])
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowc.runtime.operators",
            "--plan",
            str(tmp_path / "plan.json"),
            "--step",
            "a",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert "'a' is not an operator step of this plan" in res.stderr
