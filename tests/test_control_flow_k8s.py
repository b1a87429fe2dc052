"""Control flow on the Kubernetes driver (the fake API server of tests/k8s_fake_api.py): the
same rules as the local executor (tests/test_control_flow_runtime.py). The flow is compiled
flat by today's k8s target, then its plan gets the control-flow keys of the plan contract
(docs/plan.md) and the k8s config the entries of the qualified group members, so the driver's
side is tested on its own."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowc.compiler.api import load_text
from flowc.runtime.store import LocalArtifactStore
from tests.k8s_fake_api import FakeCluster

NS = "default"

FLOW = f"""\
flowc: 1
name: cf_k8s
steps:
  probe: {{command: [{sys.executable}, -c, "raise SystemExit(99)"]}}
  down: {{run: flowc_cf.steps:echo, with: {{value: 1}}, after: [probe]}}
  join: {{run: flowc_cf.steps:echo, with: {{value: 2}}, after: [probe], outputs: [v]}}
  bad: {{run: flowc_cf.steps:fail, with: {{message: kaputt}}}}
  first: {{run: flowc_cf.steps:echo, with: {{value: 1}}, outputs: [v]}}
  second: {{run: flowc_cf.steps:echo, with: {{value: 1}}, outputs: [v]}}
  grid: {{run: flowc_cf.steps:echo, with: {{value: 1}}, outputs: [v]}}
  report: {{run: flowc_cf.steps:echo, with: {{value: 0}}, outputs: [v]}}
"""


def ref(*path: Any) -> dict[str, Any]:
    return {"$ref": list(path)}


def _with_control_flow(plan: dict[str, Any], config: dict[str, Any]) -> None:
    steps = plan["steps"]
    steps["probe"]["skip_on_exit_code"] = [99]
    steps["join"]["trigger"] = "all_done"
    steps["join"]["with"] = {"value": "joined"}
    steps["grid"]["foreach"] = {"$dict": {"a": {"$lit": [1, 2]}, "b": {"$lit": ["x", "y"]}}}
    steps["grid"]["matrix"] = ["a", "b"]
    steps["grid"]["with"] = {"value": {"$fmt": [ref("item", "a"), ref("item", "b")]}}
    steps["report"]["finally"] = True
    steps["report"]["with"] = {
        "value": {"$dict": {"status": ref("run", "status"), "failed": ref("run", "failed_steps")}}
    }
    first, second = steps.pop("first"), steps.pop("second")
    first.update(group="g", **{"with": {"value": ref("item")}})
    second.update(
        group="g",
        upstream=["g.first"],
        **{"with": {"value": {"$fmt": [ref("steps", "g.first", "outputs", "v"), "!"]}}},
    )
    report = steps.pop("report")
    steps.update({"g.first": first, "g.second": second, "report": report})
    plan["order"] = [s for s in plan["order"] if s not in ("first", "second", "report")]
    plan["order"] += ["g.first", "g.second", "report"]
    plan["groups"] = {
        "g": {
            "parent": None,
            "foreach": {"$lit": ["p", "q"]},
            "matrix": [],
            "steps": ["g.first", "g.second"],
            "groups": [],
            "outputs": {"v": ref("steps", "g.second", "outputs", "v")},
            "upstream": [],
            "leaves": ["g.second"],
            "after": [],
            "uses": None,
        }
    }
    plan["outputs"] = {
        "g": ref("steps", "g", "outputs", "v"),
        "first": ref("steps", "grid", "outputs", "v", 0),
    }
    for old, new in (("first", "g.first"), ("second", "g.second")):
        entry = copy.deepcopy(config["steps"].pop(old))
        entry["name_prefix"] = entry["name_prefix"].replace(old, new.replace(".", "-"))
        entry["label"] = new.replace(".", "-")
        config["steps"][new] = entry


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWC_K8S_POLL", "0.2")
    with FakeCluster(tmp_path / "cluster") as fc:
        yield fc
    assert fc.rejected == [], fc.rejected


def test_the_driver_runs_control_flow_like_the_executor(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from kubernetes import utils

    from flowc.runtime.k8s import api_client, drive
    from flowc.targets.k8s import K8sTarget

    ir = load_text(FLOW, str(tmp_path / "flow.yaml"))
    docs = [d for d in yaml.safe_load_all(K8sTarget().emit(ir)["manifests.yaml"]) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    plan, config = json.loads(cm["data"]["plan.json"]), json.loads(cm["data"]["k8s.json"])
    _with_control_flow(plan, config)
    cm["data"]["plan.json"], cm["data"]["k8s.json"] = json.dumps(plan), json.dumps(config)
    api = api_client(str(cluster.kubeconfig))
    utils.create_from_dict(api, cm, namespace=NS)
    monkeypatch.chdir(cluster.workdir)
    monkeypatch.delenv("FLOWC_DRIVER_JOB", raising=False)
    args = ["--configmap", cm["metadata"]["name"], "--kubeconfig", str(cluster.kubeconfig)]
    code = drive([*args, "--run-id", "r1", "--namespace", NS])
    out = capsys.readouterr()
    assert code == 1, out  # `bad` failed: the run fails, after everything else ran
    assert "step bad failed" in out.out and "kaputt" in out.out
    assert "step probe skipped" in out.out
    assert "step down skipped" in out.out
    store = LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
    assert store.get("r1", "join", "v") == "joined"  # all_done after the skipped probe
    assert not store.exists("r1", "down", "v")
    assert store.get("r1", "grid", "v") == ["1x", "1y", "2x", "2y"]
    assert store.get("r1", "g.second", "v") == ["p!", "q!"]
    assert store.get("r1", "report", "v") == {"status": "failed", "failed": ["bad"]}
    assert store.get("r1", "_flow", "outputs") == {"g": ["p!", "q!"], "first": "1x"}
    names = {j["metadata"]["name"] for j in cluster.items("jobs", NS)}
    assert {"cf-k8s-g-first-r1-0", "cf-k8s-g-first-r1-1", "cf-k8s-g-second-r1-1"} <= names
    assert not any(n.startswith("cf-k8s-down") for n in names)
