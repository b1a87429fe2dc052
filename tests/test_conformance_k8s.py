"""Regression test on the in-test Kubernetes API server: a retried step pod knows its attempt
(``ctx.attempt`` 1, 2, 3 as under ``flowc run``; it was 1 on every attempt)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowc.compiler.api import compile_flow, emit
from tests.conformance.cases import FLOWS
from tests.conformance.matrix import read_records
from tests.k8s_fake_api import FakeCluster


def test_retried_pods_count_their_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import utils

    from flowc.runtime.k8s import api_client, drive

    docs = yaml.safe_load_all(
        emit(compile_flow(FLOWS / "f_retries0.yaml"), "k8s")["manifests.yaml"]
    )
    out = tmp_path / "records"
    monkeypatch.setenv("FLOWC_CONFORMANCE_OUT", str(out))
    monkeypatch.setenv("FLOWC_K8S_POLL", "0.2")
    monkeypatch.delenv("FLOWC_DRIVER_JOB", raising=False)
    with FakeCluster(tmp_path / "cluster") as cluster:
        api = api_client(str(cluster.kubeconfig))
        for d in docs:
            if d and d["kind"] == "ConfigMap":
                utils.create_from_dict(api, d, namespace="default")
        monkeypatch.chdir(cluster.workdir)
        args = ["--configmap", "f-retries0-flowc-plan", "--kubeconfig", str(cluster.kubeconfig)]
        assert drive([*args, "--run-id", "r1", "--namespace", "default"]) == 0
        assert cluster.rejected == []
    recs = sorted(read_records(out), key=lambda r: r["call"])
    assert [(r["call"], r["attempt"]) for r in recs] == [(1, 1), (2, 2), (3, 3)]
