"""The Kubernetes driver and deployer, end to end, through the real ``kubernetes`` client against
the fake API server of ``tests/k8s_fake_api.py`` (no real cluster: none can be installed here).

The server validates every object it receives with the strict schemas and runs each Job's
container command locally; the driver itself runs as the driver Job's pod (a subprocess)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli
from flowc.runtime.store import LocalArtifactStore
from tests.k8s_fake_api import FakeCluster

NS = "default"

E2E = """\
flowc: 1
name: k8s_e2e
params:
  shards: {type: list, default: [a, bb, ccc]}
  full: {type: bool, default: false}
steps:
  load:
    run: flowc_demo.steps:load
    with: {rows: 4}
    outputs: [frame]
  flaky:
    run: flowc_k8sdemo:flaky
    with: {marker: markers/flaky, value: 3}
    retries: 2
    outputs: [value]
  train:
    run: flowc_demo.steps:train
    with: {frame: "${steps.load.outputs.frame}", epochs: "${steps.flaky.outputs.value}"}
    outputs: [model, auc]
  shard_eval:
    run: flowc_demo.steps:score
    foreach: "${params.shards}"
    with: {model: "${steps.train.outputs.model}", shard: "${item}"}
    outputs: [score]
  publish:
    run: flowc_demo.steps:publish
    when: "${steps.train.outputs.auc} >= 0.8 and not ${params.full}"
    with: {scores: "${steps.shard_eval.outputs.score}"}
    replicas: 2
    outputs: [msg]
  fanout:
    run: flowc_k8sdemo:replica_info
    replicas: 3
    outputs: [info]
  never:
    run: flowc_demo.steps:echo
    when: "${params.full}"
    with: {value: 1}
  after_never:
    run: flowc_demo.steps:echo
    after: [never]
    with: {value: 2}
"""


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWC_K8S_POLL", "0.2")  # the driver's poll interval (default 2s)
    with FakeCluster(tmp_path / "cluster") as fc:
        yield fc
    assert fc.rejected == [], fc.rejected  # every object flowc sent passed the strict schemas


def flowc(cluster: FakeCluster, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(
        cli, [*args, "--kubeconfig", str(cluster.kubeconfig)], catch_exceptions=False
    )
    return res.exit_code, res.output


def write_flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def run_id_of(cluster: FakeCluster) -> str:
    runs = {
        j["metadata"]["labels"]["flowc.dev/run"]
        for j in cluster.items("jobs", NS, "app.kubernetes.io/component=step")
    }
    assert len(runs) == 1, runs
    return runs.pop()


def test_flow_runs_on_the_cluster_to_the_same_outputs_as_flowc_run(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write_flow(tmp_path, E2E)
    code, out = flowc(cluster, "deploy", str(flow))
    assert code == 0, out
    assert "created Job/k8s-e2e-driver" in out
    code, out = flowc(cluster, "attach", "k8s_e2e", "--timeout", "180", "--poll", "0.2")
    assert code == 0, out
    assert "flaky: first attempt fails" in out  # the failed attempt's log, streamed
    assert "=== driver k8s-e2e-driver: succeeded" in out
    run_id = run_id_of(cluster)

    # the same plan through the local executor (`flowc run`), in its own folder
    from flowc.runtime.executor import run_plan

    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.chdir(local)
    plan = compile_flow(str(flow)).to_data()
    result = run_plan(plan, root=local / ".flowc")
    assert result.ok, result.error
    store = LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
    on_cluster = {
        step: {o: store.get(run_id, step, o) for o in plan["steps"][step]["outputs"]}
        for step, outs in result.outputs.items()
    }
    assert on_cluster == result.outputs
    assert result.states["never"] == "skipped" and result.states["after_never"] == "skipped"
    assert on_cluster["fanout"]["info"] == [{"replica": r, "of": 3} for r in range(3)]

    jobs = {j["metadata"]["name"]: j for j in cluster.items("jobs", NS)}
    driver = jobs["k8s-e2e-driver"]
    steps = {n: j for n, j in jobs.items() if n != "k8s-e2e-driver"}
    assert sorted(steps) == sorted(
        [f"k8s-e2e-{s}-{run_id}" for s in ("load", "flaky", "train", "publish", "fanout")]
        + [f"k8s-e2e-shard-eval-{run_id}-{i}" for i in range(3)]
    )
    for job in steps.values():  # owned by the driver: deleting it garbage-collects them
        assert job["metadata"]["ownerReferences"][0]["uid"] == driver["metadata"]["uid"]
    assert steps[f"k8s-e2e-fanout-{run_id}"]["spec"]["completionMode"] == "Indexed"
    assert steps[f"k8s-e2e-fanout-{run_id}"]["spec"]["parallelism"] == 3
    pods = cluster.items("pods", NS, f"job-name=k8s-e2e-flaky-{run_id}")
    assert sorted(p["status"]["phase"] for p in pods) == ["Failed", "Succeeded"]  # retried

    code, out = flowc(cluster, "status", "k8s_e2e")
    assert code == 0, out
    assert f"run {run_id}:" in out and "driver k8s-e2e-driver: succeeded" in out
    assert "never" in out and "not started/skipped" in out

    from kubernetes import client

    from flowc.runtime.k8s import api_client

    client.BatchV1Api(api_client(str(cluster.kubeconfig))).delete_namespaced_job(
        "k8s-e2e-driver", NS, propagation_policy="Background"
    )
    assert cluster.items("jobs", NS) == [] and cluster.items("pods", NS) == []


def test_step_failure_fails_the_driver(tmp_path: Path, cluster: FakeCluster) -> None:
    flow = write_flow(
        tmp_path,
        """\
flowc: 1
name: failing
steps:
  ok: {run: flowc_demo.steps:load, outputs: [frame]}
  bad: {run: flowc_k8sdemo:fail, with: {message: kaputt}, retries: 1, after: [ok]}
  later: {run: flowc_demo.steps:echo, with: {value: 1}, after: [bad]}
""",
    )
    assert flowc(cluster, "deploy", str(flow))[0] == 0
    code, out = flowc(cluster, "attach", "failing", "--timeout", "120", "--poll", "0.2")
    assert code == 1, out
    assert "step bad failed" in out and "BackoffLimitExceeded" in out and "kaputt" in out
    assert "flowc: error: flow 'failing' failed on the cluster" in out
    names = {j["metadata"]["name"] for j in cluster.items("jobs", NS)}
    assert not any(n.startswith("failing-later") for n in names), names  # never started
    run_id = run_id_of(cluster)
    assert len(cluster.items("pods", NS, f"job-name=failing-bad-{run_id}")) == 2  # 1 + 1 retry


def test_timeout_is_enforced_per_attempt(tmp_path: Path, cluster: FakeCluster) -> None:
    flow = write_flow(
        tmp_path,
        """\
flowc: 1
name: slow
steps:
  nap: {run: flowc_k8sdemo:sleep, with: {seconds: 30}, timeout: 1s, outputs: [s]}
""",
    )
    assert flowc(cluster, "deploy", str(flow))[0] == 0
    assert cluster.wait_job(NS, "slow-driver", timeout=120) == "failed"
    log = next(v for (ns, name), v in cluster.logs.items() if name.startswith("slow-driver"))
    assert "step nap failed" in log and "DeadlineExceeded" in log


def test_deploy_twice_refused_retrieve_and_destroy_leaves_nothing(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    flow = write_flow(
        tmp_path,
        """\
flowc: 1
name: tidy
secrets:
  tok: {env: TOK, k8s: {name: api, key: token}}
  pw: {env: DB_PASSWORD}
steps:
  a: {run: flowc_demo.steps:count, with: {frame: "${secrets.tok}"}, outputs: [n]}
  b: {run: flowc_demo.steps:count, with: {frame: "${secrets.pw}"}, outputs: [n]}
""",
    )
    cluster.create_secret(NS, "api", {"token": "s3cr3t-value"})
    cluster.create_secret(NS, "tidy-secrets", {"DB_PASSWORD": "hunter22"})
    before = set(cluster.all_objects())
    code, out = flowc(cluster, "deploy", str(flow))
    assert code == 0, out
    code, out = flowc(cluster, "deploy", str(flow))
    assert (
        code == 1 and "flowc: error: flow 'tidy' is already deployed in namespace 'default'" in out
    )
    assert cluster.wait_job(NS, "tidy-driver", timeout=120) == "succeeded"
    run_id = run_id_of(cluster)
    store = LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
    assert store.get(run_id, "a", "n") == len("s3cr3t-value")
    assert store.get(run_id, "b", "n") == len("hunter22")
    seen = [json.dumps(cluster.get(*k)) for k in cluster.all_objects() if k[0] != "secrets"]
    seen += list(cluster.logs.values())
    assert not any("s3cr3t-value" in t or "hunter22" in t for t in seen)  # references only

    code, out = flowc(cluster, "retrieve", "tidy")
    assert code == 0 and json.loads(out) == compile_flow(str(flow)).to_data()
    code, out = flowc(cluster, "destroy", "tidy")
    assert code == 0, out
    assert "deleted Job/tidy-driver" in out and "deleted ConfigMap/tidy-flowc-plan" in out
    assert set(cluster.all_objects()) == before  # only the user's Secrets remain
    code, out = flowc(cluster, "status", "tidy")
    assert code == 1 and "is not deployed" in out
    code, out = flowc(cluster, "destroy", "tidy")
    assert code == 1 and "is not deployed" in out


def test_scheduled_flow_deploys_a_cronjob_whose_driver_runs(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    flow = write_flow(
        tmp_path,
        """\
flowc: 1
name: nightly
schedule: {every: 1d, timezone: Europe/Berlin}
steps:
  a: {run: flowc_demo.steps:add, with: {a: 2, b: 3}, outputs: [sum]}
""",
    )
    code, out = flowc(cluster, "deploy", str(flow))
    assert code == 0 and "created CronJob/nightly-driver" in out, out
    assert cluster.items("jobs", NS) == []  # nothing runs before the schedule fires
    cron = cluster.get("cronjobs", NS, "nightly-driver")
    assert cron["spec"]["schedule"] == "0 0 * * *" and cron["spec"]["timeZone"] == "Europe/Berlin"
    job = cluster.trigger_cronjob(NS, "nightly-driver", "29000000")
    code, out = flowc(cluster, "attach", "nightly", "--timeout", "120", "--poll", "0.2")
    assert code == 0, out
    assert f"=== driver {job}: succeeded" in out
    code, out = flowc(cluster, "status", "nightly")
    assert "schedule '0 0 * * *'" in out
    assert flowc(cluster, "destroy", "nightly")[0] == 0
    assert cluster.all_objects() == []


def test_driver_outside_the_schedule_window_runs_nothing() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from flowc.runtime.k8s import in_window

    s = {"timezone": "Europe/Berlin", "start": "2026-01-01T00:00:00", "end": "2027-01-01T00:00:00"}
    tz = ZoneInfo("Europe/Berlin")
    assert in_window(s, datetime(2026, 6, 1, tzinfo=tz))
    assert not in_window(s, datetime(2025, 12, 31, 23, 0, tzinfo=tz))
    assert not in_window(s, datetime(2027, 1, 1, 0, 0, tzinfo=tz))
    assert in_window(None) and in_window({"timezone": "UTC"})


def test_commands_without_a_cluster_are_user_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a free loopback port with nothing listening on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    env = {**os.environ}
    res = CliRunner(env=env).invoke(cli, ["status", "x", "--kubeconfig", str(cfg)])
    assert res.exit_code == 1 and res.output.startswith(
        "flowc: error: Kubernetes API error"
    ), res.output


def test_stack_options_reach_the_cluster(tmp_path: Path, cluster: FakeCluster) -> None:
    flow = Path(__file__).resolve().parent.parent / "golden" / "k8s_stack" / "flow.yaml"
    code, out = flowc(cluster, "deploy", str(flow), "--stack", "cluster", "-n", "elsewhere")
    assert code == 1 and "deploys to namespace 'ml-jobs', not 'elsewhere'" in out, out
    code, out = flowc(cluster, "deploy", str(flow), "--stack", "cluster")
    assert code == 0 and "to namespace 'ml-jobs'" in out, out
    assert not any(k[0] == "serviceaccounts" for k in cluster.all_objects())  # an existing one
    assert cluster.wait_job("ml-jobs", "k8s-stack-driver", timeout=120) == "succeeded"
    run_id = run_id_of_ns(cluster, "ml-jobs")
    for job in cluster.items("jobs", "ml-jobs"):
        assert job["spec"]["ttlSecondsAfterFinished"] == 86400
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "pipeline-runner"
        assert pod["nodeSelector"] == {"pool": "batch"}
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["tolerations"][0]["key"] == "dedicated"
        c = pod["containers"][0]
        assert (
            c["image"] == "registry.example.com/acme/flowc:1.0" and c["imagePullPolicy"] == "Always"
        )
        assert {"name": "flowc-artifacts", "mountPath": "/flowc/artifacts"} in c["volumeMounts"]
    pvc = cluster.workdir / ".fake-k8s" / "pvc" / "flowc-artifacts"  # the claim's volume
    assert LocalArtifactStore({"path": str(pvc)}).get(run_id, "count", "n") == 3
    code, out = flowc(cluster, "destroy", "k8s_stack", "-n", "ml-jobs")
    assert code == 0, out
    assert cluster.all_objects() == []


def run_id_of_ns(cluster: FakeCluster, ns: str) -> str:
    runs = {
        j["metadata"]["labels"]["flowc.dev/run"]
        for j in cluster.items("jobs", ns, "app.kubernetes.io/component=step")
    }
    assert len(runs) == 1, runs
    return runs.pop()


def test_driver_runs_from_outside_the_cluster_reading_the_configmap(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from kubernetes import utils

    from flowc.runtime.k8s import api_client, drive
    from flowc.targets.k8s import K8sTarget

    flow = write_flow(tmp_path, E2E.replace("name: k8s_e2e", "name: outside"))
    docs = list(yaml.safe_load_all(K8sTarget().emit(compile_flow(str(flow)))["manifests.yaml"]))
    api = api_client(str(cluster.kubeconfig))
    for d in docs:
        if d and d["kind"] == "ConfigMap":
            utils.create_from_dict(api, d, namespace=NS)
    monkeypatch.chdir(cluster.workdir)  # the step pods' working directory (shared artifact root)
    monkeypatch.delenv("FLOWC_DRIVER_JOB", raising=False)
    args = [
        "--configmap",
        "outside-flowc-plan",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--run-id",
        "r1",
    ]
    cluster.inject[("GET", "jobs")] = 2  # the driver rides out transient API errors
    assert drive([*args, "--namespace", NS, "--param", "full=true"]) == 0
    assert cluster.inject[("GET", "jobs")] == 0
    store = LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
    assert store.get("r1", "shard_eval", "score") == [11.0, 12.0, 13.0]
    assert not store.exists("r1", "publish", "msg")  # when: ... and not full -> skipped
    names = {j["metadata"]["name"] for j in cluster.items("jobs", NS)}
    assert "outside-never-r1" in names and "outside-after-never-r1" in names  # full=true
    assert drive([*args, "--namespace", NS, "--param", "nope=1"]) == 1  # unknown param


def test_values_travel_through_a_gcs_artifact_store(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No shared filesystem: the driver and the step pods exchange values through the bucket
    (a local GCS emulator, real google-cloud-storage client)."""
    from flowc.runtime.gcs_store import GcsArtifactStore
    from tests.plugin_services import gcs_emulator

    bucket = "k8s-artifacts"
    flow = write_flow(
        tmp_path,
        f"""\
flowc: 1
name: via_bucket
stacks:
  cloud:
    orchestrator: {{type: kubernetes}}
    artifact_store: {{type: gcs, bucket: {bucket}, prefix: flows}}
params:
  items: {{type: list, default: [1, 2, 3]}}
steps:
  sq: {{run: flowc_demo.steps:square, foreach: "${{params.items}}", with: {{x: "${{item}}"}}, outputs: [y]}}
  tot: {{run: flowc_demo.steps:total, with: {{values: "${{steps.sq.outputs.y}}"}}, outputs: [sum]}}
""",
    )
    with gcs_emulator(tmp_path / "gcs", bucket) as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        code, out = flowc(cluster, "deploy", str(flow), "--stack", "cloud")
        assert code == 0, out
        code, out = flowc(cluster, "attach", "via_bucket", "--timeout", "120", "--poll", "0.2")
        assert code == 0, out
        store = GcsArtifactStore({"bucket": bucket, "prefix": "flows"})
        run_id = run_id_of(cluster)
        assert store.get(run_id, "sq", "y") == [1, 4, 9]
        assert store.get(run_id, "tot", "sum") == 14
    assert not (cluster.workdir / ".flowc").exists()  # nothing went through a local folder


SPLIT = """\
flowc: 1
name: split_plan
description: "{pad}"
params:
  items: {{type: list, default: [1, 2, 3]}}
steps:
  sq: {{run: flowc_demo.steps:square, foreach: "${{params.items}}", with: {{x: "${{item}}"}}, outputs: [y]}}
  tot: {{run: flowc_demo.steps:total, with: {{values: "${{steps.sq.outputs.y}}"}}, outputs: [sum]}}
  add: {{run: flowc_demo.steps:add, with: {{a: "${{steps.tot.outputs.sum}}", b: 1}}, outputs: [sum]}}
"""


def test_a_plan_split_over_configmaps_runs_retrieves_and_destroys(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan over the one-ConfigMap limit (lowered here) goes into ConfigMaps -0, -1, ...: the
    driver and the step pods read the projected parts, the driver run from outside reads them
    through the API, ``retrieve`` joins them, ``destroy`` deletes them all."""
    from flowc.runtime.k8s import drive
    from flowc.targets import k8s

    monkeypatch.setattr(k8s, "CONFIGMAP_MAX", 2_000)
    monkeypatch.setattr(k8s, "CHUNK_BYTES", 1_500)
    monkeypatch.setattr(k8s, "MIN_PART", 200)
    flow = write_flow(tmp_path, SPLIT.format(pad="\u00e9t\u00e9 \u20ac " * 40))
    before = set(cluster.all_objects())
    code, out = flowc(cluster, "deploy", str(flow))
    assert code == 0, out
    maps = cluster.items("configmaps", NS)
    names = sorted(m["metadata"]["name"] for m in maps)
    assert len(names) >= 4 and names == sorted(
        f"split-plan-flowc-plan-{i}" for i in range(len(names))
    )
    keys = {k for m in maps for k in m["data"]}
    assert {"k8s.json.1", "plan.json.1"} <= keys and not keys & {"k8s.json", "plan.json"}
    assert all(len(k) + len(v.encode()) <= 1_501 for m in maps for k, v in m["data"].items())
    code, out = flowc(cluster, "attach", "split_plan", "--timeout", "120", "--poll", "0.2")
    assert code == 0, out
    run_id = run_id_of(cluster)
    store = LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
    assert store.get(run_id, "sq", "y") == [1, 4, 9]
    assert store.get(run_id, "add", "sum") == 15

    # the driver from outside the cluster reads the parts through the API (get only)
    monkeypatch.chdir(cluster.workdir)
    monkeypatch.delenv("FLOWC_DRIVER_JOB", raising=False)
    args = ["--configmap", "split-plan-flowc-plan", "--kubeconfig", str(cluster.kubeconfig)]
    assert drive([*args, "--run-id", "r2", "--namespace", NS, "--param", "items=[2]"]) == 0
    assert store.get("r2", "add", "sum") == 5
    assert drive([*args[:1], "nope", *args[2:], "--run-id", "r3", "--namespace", NS]) == 1

    code, out = flowc(cluster, "retrieve", "split_plan")
    assert code == 0 and json.loads(out) == compile_flow(str(flow)).to_data()
    code, out = flowc(cluster, "destroy", "split_plan")
    assert code == 0, out
    assert all(f"deleted ConfigMap/{n}" in out for n in names), out
    assert set(cluster.all_objects()) == before == set()
