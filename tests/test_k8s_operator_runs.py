"""Streaming operators on Kubernetes, end to end: pypz's deploy -> attach -> destroy through the
real ``kubernetes`` client against the in-test API server (tests/k8s_fake_api.py, which runs
every pod as a local process) and a real Kafka-protocol broker (Tansu, see
tests/test_streaming_kafka.py). No real cluster and no Apache Kafka were used.

What is proven: ``flowc attach`` returns only after every operator Job ended (every record was
consumed: counted), a failing writer makes attach and status report failed and the readers are
stopped (their Job deleted, their processes gone), every deployment and every CronJob firing has
its own run id and starts its own operator Jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli
from tests import test_streaming_kafka as kafka_tests
from tests.k8s_fake_api import FakeCluster
from tests.test_streaming_kafka import read_sink

# the Kafka-protocol broker of the kafka transport's tests (fixtures, found by these names)
tansu_bin = kafka_tests.tansu_bin
broker = kafka_tests.broker

NS = "default"

FLOW = """\
flowc: 1
name: kops
params:
  kafka: {type: str, default: "localhost:9092"}
  record_count: {type: int, default: 20}
  out_dir: {type: str, default: out}
channels:
  records:
    schema: {type: record, name: DemoRecord, fields: [{name: text, type: string}]}
    transport: kafka
    location: "${params.kafka}"
SCHEDULE
steps:
  writer: {run: "WRITER", operator: true, produces: [records],
           replicas: 3, with: WITH, timeout: 2m}
  reader: {run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
           replicas: 2, with: {out_dir: "${params.out_dir}"}, timeout: 2m}
  prepare: {run: flowc_demo.steps:echo, with: {value: 1}}
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


def write_flow(
    tmp_path: Path, writer: str = "flowc_streaming.ops:DemoWriter", schedule: str = ""
) -> Path:
    p = tmp_path / "flow.yaml"
    with_ = "{batch: 5}" if writer.endswith("DemoWriter") else "{}"
    text = FLOW.replace("WRITER", writer).replace("WITH", with_).replace("SCHEDULE", schedule)
    p.write_text(text, encoding="utf-8")
    return p


def deploy(cluster: FakeCluster, flow: Path, kafka: str, out: Path) -> None:
    code, text = flowc(
        cluster, "deploy", str(flow), "--param", f"kafka={kafka}", "--param", f"out_dir={out}"
    )
    assert code == 0, text
    assert "created Job/kops-driver" in text
    assert "kops-writer" not in text  # operators start with a run, not at deploy


def operator_jobs(cluster: FakeCluster) -> list[dict]:
    return cluster.items("jobs", NS, "app.kubernetes.io/component=operator")


def run_env(job: dict) -> str:
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "FLOWC_RUN_ID")


def expected(n: int = 20) -> list[str]:
    return sorted(f"HelloWorld_{r}_{i}" for r in range(3) for i in range(n))


def test_deploy_attach_destroy_consumes_every_record(
    tmp_path: Path, cluster: FakeCluster, broker: str
) -> None:
    out = tmp_path / "out"
    deploy(cluster, write_flow(tmp_path), broker, out)
    code, text = flowc(cluster, "attach", "kops", "--timeout", "180", "--poll", "0.2")
    assert code == 0, text
    # attach returned after the readers ended: every record is in their sinks already
    got = read_sink(out)
    assert len(got) == 60 and sorted(got) == expected()
    jobs = operator_jobs(cluster)
    assert sorted(j["metadata"]["labels"]["flowc.dev/step"] for j in jobs) == ["reader", "writer"]
    driver = cluster.get("jobs", NS, "kops-driver")
    assert driver is not None
    run_id = driver["metadata"]["uid"].replace("-", "")[:8]
    for job in jobs:  # the run's: named, labelled, owned by the driver, FLOWC_RUN_ID = run id
        assert job["metadata"]["name"].endswith(f"-{run_id}")
        assert job["metadata"]["labels"]["flowc.dev/run"] == run_id
        assert job["metadata"]["ownerReferences"][0]["uid"] == driver["metadata"]["uid"]
        assert run_env(job) == run_id
        assert [c["type"] for c in job["status"]["conditions"]] == ["Complete"]
    assert f"=== operator reader (job kops-reader-{run_id}): succeeded" in text
    assert f"=== operator writer (job kops-writer-{run_id}): succeeded" in text
    assert "=== driver kops-driver: succeeded" in text
    assert "--- writer/2 (pod kops-writer-" in text  # each replica's log, streamed
    assert "step prepare succeeded" in text  # the batch step ran beside the operators

    code, text = flowc(cluster, "status", "kops", "--json")
    assert code == 0, text
    info = json.loads(text)
    run = info["runs"][run_id]
    assert run["state"] == "succeeded"
    writer = run["steps"]["writer"][0]
    assert writer["kind"] == "operator" and writer["state"] == "succeeded"
    assert writer["replicas"]["succeeded"] == 3 and writer["replicas"]["failed"] == 0
    assert run["steps"]["reader"][0]["replicas"]["succeeded"] == 2

    # flowc sniff --deployed: each operator pod's state and the counters it logged, read
    # through the API server (pod list and pod logs), not from a local channel database
    code, text = flowc(cluster, "sniff", "--deployed", "kops", "-n", NS, "--json")
    assert code == 0, text
    view = json.loads(text)
    assert view["run_id"] == run_id and view["produced"] == {"records": 60}
    outs = {(p["step"], p["replica"]): p["count"] for p in view["ports"] if p["direction"] == "out"}
    assert outs == {("writer", 0): 20, ("writer", 1): 20, ("writer", 2): 20}
    assert sum(p["count"] for p in view["ports"] if p["direction"] == "in") == 60
    assert view["groups"] == [
        {"channel": "records", "consumer": "reader", "acked": 60, "in_flight": 0, "lag": 0}
    ]
    assert [(i["step"], i["replica"], i["state"]) for i in view["instances"]] == [
        ("reader", 0, "succeeded"),
        ("reader", 1, "succeeded"),
        ("writer", 0, "succeeded"),
        ("writer", 1, "succeeded"),
        ("writer", 2, "succeeded"),
    ]
    code, text = flowc(cluster, "sniff", "--deployed", "kops", "-n", NS)
    assert code == 0 and f"run {run_id} of kops in {NS}" in text, text
    assert "channel records: 60 record(s) in the channel" in text
    assert "group reader: acknowledged 60, in flight 0, lag 0" in text
    code, text = flowc(cluster, "sniff", "--deployed", "nope", "-n", NS)
    assert code == 1 and "Traceback" not in text

    code, text = flowc(cluster, "destroy", "kops")
    assert code == 0, text
    assert cluster.all_objects() == []

    # the same manifests deployed again: a fresh run id, a fresh stream, every record again
    out2 = tmp_path / "out2"
    deploy(cluster, write_flow(tmp_path), broker, out2)
    code, text = flowc(cluster, "attach", "kops", "--timeout", "180", "--poll", "0.2")
    assert code == 0, text
    driver2 = cluster.get("jobs", NS, "kops-driver")
    assert driver2 is not None
    run2 = driver2["metadata"]["uid"].replace("-", "")[:8]
    assert run2 != run_id
    assert {run_env(j) for j in operator_jobs(cluster)} == {run2}
    assert sorted(read_sink(out2)) == expected()
    assert flowc(cluster, "destroy", "kops")[0] == 0


def test_a_failing_writer_fails_the_run_and_stops_the_readers(
    tmp_path: Path, cluster: FakeCluster, broker: str
) -> None:
    out = tmp_path / "out"
    deploy(cluster, write_flow(tmp_path, writer="flowc_streaming.ops:BadWriter"), broker, out)
    code, text = flowc(cluster, "attach", "kops", "--timeout", "180", "--poll", "0.2")
    assert code == 1, text
    assert "flowc: error: flow 'kops' failed on the cluster" in text
    assert "=== driver kops-driver: failed" in text
    assert "operator writer failed: job kops-writer-" in text  # the driver's log, streamed
    driver = cluster.get("jobs", NS, "kops-driver")
    assert driver is not None
    run_id = driver["metadata"]["uid"].replace("-", "")[:8]
    assert f"stopped job kops-reader-{run_id}" in text
    # the readers, which wait for records that never come, were stopped: Job and pods gone
    assert [j["metadata"]["name"] for j in operator_jobs(cluster)] == [f"kops-writer-{run_id}"]
    assert cluster.items("pods", NS, "flowc.dev/step=reader") == []
    with cluster.lock:
        procs = list(cluster.procs.values())
    for proc in procs:  # every pod's process ended (none left running forever)
        assert proc.wait(30) is not None

    code, text = flowc(cluster, "status", "kops")
    assert code == 0, text
    assert "driver kops-driver: failed" in text and f"run {run_id}: failed" in text
    assert "writer                   failed (1 job, pods: " in text
    assert flowc(cluster, "destroy", "kops")[0] == 0
    assert cluster.all_objects() == []


def test_each_cronjob_firing_starts_its_own_operators(
    tmp_path: Path, cluster: FakeCluster, broker: str
) -> None:
    out = tmp_path / "out"
    flow = write_flow(tmp_path, schedule="schedule: {cron: '0 3 * * *'}")
    code, text = flowc(
        cluster, "deploy", str(flow), "--param", f"kafka={broker}", "--param", f"out_dir={out}"
    )
    assert code == 0, text
    assert "created CronJob/kops-driver" in text
    assert operator_jobs(cluster) == []  # nothing runs at deploy
    runs = []
    for firing in ("1", "2"):
        job = cluster.trigger_cronjob(NS, "kops-driver", firing)
        assert cluster.wait_job(NS, job, timeout=180) == "succeeded"
        stored = cluster.get("jobs", NS, job)
        assert stored is not None
        runs.append(stored["metadata"]["uid"].replace("-", "")[:8])
        mine = [
            j
            for j in operator_jobs(cluster)
            if j["metadata"]["labels"]["flowc.dev/run"] == runs[-1]
        ]
        assert len(mine) == 2 and {run_env(j) for j in mine} == {runs[-1]}
        assert sorted(read_sink(out)) == sorted(expected() * len(runs))  # this firing's too
    assert runs[0] != runs[1]
    code, text = flowc(cluster, "status", "kops", "--json")
    info = json.loads(text)
    assert {r: info["runs"][r]["state"] for r in runs} == {r: "succeeded" for r in runs}
    assert flowc(cluster, "destroy", "kops")[0] == 0


class _Jobs:
    """A BatchV1Api stand-in: list answers from ``self.listing`` (V1Job-like objects)."""

    def __init__(self, listing: list) -> None:
        self.listing = listing
        self.deleted: list[str] = []

    def list_namespaced_job(self, namespace: str, label_selector: str = "") -> object:
        from types import SimpleNamespace

        return SimpleNamespace(items=list(self.listing))

    def delete_namespaced_job(self, name: str, namespace: str, **kw: object) -> None:
        self.deleted.append(name)


def _job(name: str, cond: str | None) -> object:
    from types import SimpleNamespace

    conds = [SimpleNamespace(type=cond, status="True", reason="R", message="m")] if cond else []
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name), status=SimpleNamespace(conditions=conds, failed=1)
    )


def test_an_operator_job_removed_after_it_completed_still_counts_as_succeeded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ttlSecondsAfterFinished may delete a completed operator Job before the driver ends: the
    run remembers it completed; a Job gone before completing fails the run."""
    import io
    import subprocess
    import sys

    from flowc.runtime.k8s_run import Run

    monkeypatch.setenv("FLOWC_K8S_POLL", "0.01")
    batch = _Jobs([_job("w-r1", "Complete")])
    run = Run({}, batch=batch, namespace=NS, run_id="r1", owner=None, params=[], out=io.StringIO())
    run.jobs = {"w": "w-r1"}
    assert run._operator_states()["w"][0] == "succeeded"
    batch.listing = []  # deleted by its TTL
    run.child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert run.watch() == 0

    gone = Run({}, batch=_Jobs([]), namespace=NS, run_id="r2", owner=None, params=[])
    gone.out = io.StringIO()
    gone.jobs = {"w": "w-r2"}
    gone.child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert gone.watch() == 1
    assert "operator w failed: job w-r2 disappeared" in gone.out.getvalue()
