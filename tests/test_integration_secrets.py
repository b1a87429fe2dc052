"""``${secrets.NAME}`` in integration-framework config (lolpop, issue 20): the compiler keeps a
reference, every target's output is free of the value, and the object tree is built with the
value where the step runs: ``flowc run``, a KFP executor (``kfp.local``, the secret given as
env by ``secretAsEnv``) and a Kubernetes step pod (``secretKeyRef`` env). The step here returns
the config it saw, so the value is checked where it arrives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowc.compiler.api import compile_flow, emit, load_text
from flowc.compiler.errors import FlowcError

FLOW = """\
flowc: 1
name: isec
secrets:
  mlflow_pw: {env: MLFLOW_PW, k8s: {name: mlflow, key: pw}}
runner: {main: flowc_lolpop.runner:ChurnRunner}
component:
  config: {tracking_uri: "mlflow://u:${secrets.mlflow_pw}@host"}
  metadata_tracker: MLFlowMetadataTracker
search_paths: [flowc_lolpop]
steps:
  log:
    run: "integration:main.metadata_tracker.log"
    with: {name: m}
    outputs: [logged]
"""
VALUE = "int-pw-7f3e9c"
SEEN = f"logged m to mlflow://u:{VALUE}@host"


def _flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return path


def test_the_reference_is_kept_and_no_target_holds_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_PW", VALUE)  # set at compile time too: still never read
    ir = compile_flow(str(_flow(tmp_path)))
    layer = ir.to_data()["integrations"]["layers"]["component"]
    assert layer["config"]["tracking_uri"] == {
        "$fmt": ["mlflow://u:", {"$ref": ["secrets", "mlflow_pw"], "env": "MLFLOW_PW"}, "@host"]
    }
    for target in ("airflow", "kfp", "vertex", "k8s", "local"):
        for text in emit(ir, target).values():
            assert VALUE not in text, target


def test_an_undeclared_secret_in_integration_config_is_located() -> None:
    with pytest.raises(FlowcError) as e:
        load_text(FLOW.replace("${secrets.mlflow_pw}", "${secrets.mlfow_pw}"), "flow.yaml")
    out = e.value.render()
    assert "flow.yaml:7:38: error: unknown secret 'mlfow_pw'" in out, out
    assert "did you mean 'mlflow_pw'?" in out


def test_flowc_run_builds_the_tree_with_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowc.runtime.executor import run_plan

    monkeypatch.setenv("MLFLOW_PW", VALUE)
    monkeypatch.chdir(tmp_path)
    plan = compile_flow(str(_flow(tmp_path))).to_data()
    result = run_plan(plan, {}, root=str(tmp_path / ".flowc"))
    assert result.status == "success", result
    assert result.outputs["log"]["logged"] == SEEN


def test_a_missing_value_fails_the_run_naming_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowc.runtime.executor import run_plan

    monkeypatch.delenv("MLFLOW_PW", raising=False)
    monkeypatch.chdir(tmp_path)
    plan = compile_flow(str(_flow(tmp_path))).to_data()
    result = run_plan(plan, {}, root=str(tmp_path / ".flowc"))
    # the tree is built when the run starts (its service): the run fails before any step
    assert result.status == "failed" and result.states == {"log": "not_run"}
    assert result.error is not None
    assert "secret 'mlflow_pw' is missing at run time: set MLFLOW_PW" in str(result.error)


def test_kfp_executors_get_the_secret_as_env_and_kfp_local_builds_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfp import components, local

    ir = compile_flow(str(_flow(tmp_path)))
    text = emit(ir, "kfp")["pipeline.yaml"]
    docs = list(yaml.safe_load_all(text))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-log"]
    (env,) = platform["secretAsEnv"]
    assert env["secretName"] == "mlflow"
    assert env["keyToEnv"] == [{"envVar": "MLFLOW_PW", "secretKey": "pw"}]
    monkeypatch.setenv("MLFLOW_PW", VALUE)  # what secretAsEnv gives the pod
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "r"))
    components.load_component_from_file(str(path))()
    (out,) = (tmp_path / "r").rglob("log/executor_output.json")
    values: dict[str, Any] = json.loads(out.read_text())["parameterValues"]
    assert json.loads(values["Output"]) == SEEN


def test_k8s_step_pods_get_the_secret_and_build_with_it_on_the_in_test_api_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.k8s_fake_api import FakeCluster, drive_configmap, plan_configmap

    monkeypatch.delenv("MLFLOW_PW", raising=False)  # only the pod's secretKeyRef gives it
    cm = plan_configmap(compile_flow(str(_flow(tmp_path))))
    job = json.loads(cm["data"]["k8s.json"])["job"]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "MLFLOW_PW",
        "valueFrom": {"secretKeyRef": {"name": "mlflow", "key": "pw"}},
    } in (env)
    with FakeCluster(tmp_path / "cluster") as cluster:
        cluster.create_secret("default", "mlflow", {"pw": VALUE})
        code, store = drive_configmap(cluster, cm, monkeypatch)
        assert code == 0, capsys.readouterr().out
        assert store.get("r1", "log", "logged") == SEEN
