"""Every flow of the DSL spec (tests/fixtures/spec/*.yaml, copied from dsl.md) parses, validates,
builds the IR the spec describes, and ``flowc graph`` prints its DAG."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli

SPEC = Path(__file__).parent / "fixtures" / "spec"
FLOWS = sorted(SPEC.glob("*.yaml"))


def test_spec_fixtures_exist() -> None:
    assert {f.stem for f in FLOWS} >= {
        "churn_training",
        "integration_framework",
        "function_modules",
        "channels",
    }


@pytest.mark.parametrize("flow", FLOWS, ids=[f.stem for f in FLOWS])
def test_spec_flow_validates_and_graphs(flow: Path) -> None:
    ir = compile_flow(flow)
    assert ir.steps
    runner = CliRunner()
    res = runner.invoke(cli, ["validate", str(flow)])
    assert res.exit_code == 0, res.output
    for fmt in ("mermaid", "dot"):
        res = runner.invoke(cli, ["graph", str(flow), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert "Traceback" not in res.output
        for s in ir.steps:
            assert s.name in res.output
        for e in ir.edges:
            if fmt == "mermaid" and e.kind == "data":
                assert f"s_{e.src} -->" in res.output


def test_churn_training_ir() -> None:
    ir = compile_flow(SPEC / "churn_training.yaml")
    assert ir.name == "churn_training" and ir.tags == ("ml", "churn") and ir.owner == "data-team"
    assert [s.name for s in ir.steps] == ["load", "validate", "train", "shard_eval", "publish"]
    assert ir.source.path == "tests/fixtures/spec/churn_training.yaml"
    train = ir.step("train")
    assert train.upstream == ("load", "validate")
    assert train.retries == 3 and train.retry_delay == 30.0 and train.timeout == 7200.0
    assert train.resources.cpu == "4" and train.resources.gpu == 1
    assert train.secrets == ("api_token",) and train.cache is True
    load = ir.step("load")
    assert load.retries == 2 and load.timeout == 3600.0 and load.image == "python:3.11-slim"
    assert load.resources.memory == "2Gi" and dict(load.env)["LOG_LEVEL"].value == "info"
    assert ir.step("validate").kind == "command" and ir.step("validate").image == "acme/checks:1.4"
    assert ir.step("shard_eval").foreach is not None
    publish = ir.step("publish")
    assert publish.upstream == ("shard_eval", "train") and publish.replicas == 1
    kinds = {(e.src, e.dst, e.kind, e.output) for e in ir.edges}
    assert ("train", "publish", "when", "auc") in kinds
    assert ("validate", "train", "order", None) in kinds
    assert ("shard_eval", "publish", "data", "score") in kinds
    assert ir.schedule is not None and ir.schedule.cron == "0 3 * * 1"
    assert ir.schedule.timezone == "Europe/Berlin" and ir.schedule.start == "2026-01-01"
    assert ir.param("data_path").required and not ir.param("data_path").has_default
    assert ir.param("shards").default == ["a", "b", "c"]
    assert ir.secret("api_token").k8s_name == "api" and ir.secret("api_token").vertex
    assert [p.name for p in ir.plugins] == ["mlops", "datastream"]
    assert ir.components[0].class_ref == "acme.stores:MinioStore"
    assert ir.stack is None


def test_churn_training_environments() -> None:
    dev = compile_flow(SPEC / "churn_training.yaml", environment="dev")
    assert dev.environment == "dev" and dev.stack is not None and dev.stack.name == "local"
    assert dev.param("data_path").default == "data/sample.csv"
    assert dev.stack.orchestrator is not None and dev.stack.orchestrator.setting("max_workers") == 4
    prod = compile_flow(
        SPEC / "churn_training.yaml", environment="prod", environ={"GCP_PROJECT": "acme-prod"}
    )
    assert prod.stack is not None and prod.stack.orchestrator is not None
    assert prod.stack.orchestrator.setting("project") == "acme-prod"
    assert prod.param("epochs").default == 50
    load = prod.step("load")
    assert load.resources.cpu == "4" and load.resources.memory == "16Gi"
    # defaults merge key-wise: retries still cascades from the base defaults
    assert load.retries == 2


def test_integration_framework_ir() -> None:
    ir = compile_flow(SPEC / "integration_framework.yaml")
    fw = ir.integrations
    assert fw is not None and fw.explicit
    assert fw.root.layer == "runner"
    assert [c.layer for c in fw.root.children] == ["component", "pipeline"]
    pipeline = fw.layer("pipeline")
    assert pipeline is not None
    assert [i.key for i in pipeline.integrations] == ["train", "predict"]
    assert dict(fw.config) == {"train_data": "data/train.csv"}
    assert fw.search_paths == ("acme.integrations",)
    assert ir.step("fit").is_integration


def test_channels_ir() -> None:
    ir = compile_flow(SPEC / "channels.yaml")
    ch = ir.channel("records")
    assert ch.producers == ("writer",) and ch.consumers == ("reader",)
    assert ch.transport == "kafka"
    assert ir.step("writer").replicas == 3 and ir.step("writer").operator


def test_function_modules_flow() -> None:
    ir = compile_flow(SPEC / "function_modules.yaml")
    assert "add_int_col" in [s.name for s in ir.steps]
    assert ir.functions == ("flowc_spec_features",) and ir.final == ("final_df",)
