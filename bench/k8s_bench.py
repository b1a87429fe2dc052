"""Kubernetes target benchmark, side by side with baselines. Prints numbers only; never asserts.

1. compile: ``K8sTarget.emit`` on generated N-step flows vs ``json.dumps`` of the same plan (the
   floor: the ConfigMap must carry the plan anyway), and the manifest size;
2. run: the same flow run by the Kubernetes driver on the fake API server of
   ``tests/k8s_fake_api.py`` (every step a Job, every Job a local subprocess) vs ``run_plan``
   (``flowc run``); the ratio is the cost of one-process-per-step plus API round trips, not of a
   real cluster (none is used: pod scheduling and image pulls would dominate there);
3. validation: strict-schema checking of one manifest for two Kubernetes versions;
4. large plans: ``K8sTarget.emit`` (CPU time) on ``bench/compile_bench.py``'s generated 1,000 and
   10,000-step flows (plans split over several ConfigMaps), vs ``json.dumps`` of the plan, and
   the 10,000 / 1,000 ratio (linear is ~10).

    python bench/k8s_bench.py [--sizes 10,100,1000] [--steps 6] [--generated 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "fixtures" / "pkgs")]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO / "tests" / "fixtures" / "pkgs"), os.environ.get("PYTHONPATH")) if p
)


def flow_text(n: int, name: str) -> str:
    lines = [
        "flowc: 1",
        f"name: {name}",
        "steps:",
        "  s0: {run: flowc_demo.steps:add, with: {a: 1, b: 1}, outputs: [y]}",
    ]
    for i in range(1, n):
        lines.append(
            f"  s{i}: {{run: flowc_demo.steps:add, with: {{a: '${{steps.s{(i - 1) // 2}.outputs.y}}', b: {i}}}, outputs: [y]}}"
        )
    return "\n".join(lines) + "\n"


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_compile(sizes: list[int]) -> None:
    from flowc.compiler.api import load_text
    from flowc.targets.k8s import K8sTarget

    print("compile (best of 3)      steps   k8s emit   json.dumps(plan)  ratio   manifest")
    for n in sizes:
        ir = load_text(flow_text(n, f"bench_{n}"))
        t_emit = best(lambda ir=ir: K8sTarget().emit(ir))
        t_json = best(lambda ir=ir: json.dumps(ir.to_data(), indent=2))
        size = len(K8sTarget().emit(ir)["manifests.yaml"])
        print(
            f"{'':25}{n:5} {t_emit * 1000:9.1f}ms {t_json * 1000:12.1f}ms {t_emit / t_json:9.1f}x {size / 1024:8.0f} KiB"
        )


def bench_run(steps: int) -> None:
    import yaml
    from kubernetes import utils

    from flowc.compiler.api import load_text
    from flowc.runtime.executor import run_plan
    from flowc.runtime.k8s import api_client
    from tests.k8s_fake_api import FakeCluster

    ir = load_text(flow_text(steps, "bench_run"))
    docs = list(
        yaml.safe_load_all(
            __import__("flowc.targets.k8s", fromlist=["x"]).K8sTarget().emit(ir)["manifests.yaml"]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = run_plan(ir.to_data(), root=Path(tmp) / "local")
        t_local = time.perf_counter() - t
        assert result.ok
        os.environ["FLOWC_K8S_POLL"] = "0.2"
        with FakeCluster(Path(tmp) / "cluster") as fc:
            api = api_client(str(fc.kubeconfig))
            t = time.perf_counter()
            for d in docs:
                utils.create_from_dict(api, d, namespace="default")
            state = fc.wait_job("default", "bench-run-driver", timeout=600)
            t_k8s = time.perf_counter() - t
            requests = len(fc.requests)
    print(f"run ({steps} steps, binary-tree DAG)")
    print(f"  flowc run (run_plan)         {t_local:8.2f}s")
    print(
        f"  k8s driver on fake API       {t_k8s:8.2f}s  ({state}; {requests} API requests)  ratio {t_k8s / t_local:6.1f}x"
    )
    print(
        f"  per step on fake API         {t_k8s / steps:8.2f}s  (a Python process per Job + 0.2s poll)"
    )


def bench_validate() -> None:
    import yaml

    from tests.k8s_schema import all_schema_errors

    docs = [
        d
        for d in yaml.safe_load_all(
            (REPO / "golden" / "foreach" / "k8s" / "manifests.yaml").read_text()
        )
        if d
    ]
    all_schema_errors(docs[0])  # warm the schema cache
    t = best(lambda: [all_schema_errors(d) for d in docs])
    print(f"validate golden/foreach ({len(docs)} documents, 2 versions, strict): {t * 1000:.1f}ms")


def bench_generated(sizes: list[int]) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from compile_bench import generate

    from flowc.compiler.api import load_text
    from flowc.targets.k8s import K8sTarget

    def cpu(fn, repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return min(times)

    print(
        "generated flows (CPU, best of 3)  steps   k8s emit   json.dumps(plan)  ratio  ConfigMaps"
    )
    emit_times: dict[int, float] = {}
    for n in sizes:
        ir = load_text(generate(n), "flow.yaml")
        emit_times[n] = t_emit = cpu(lambda ir=ir: K8sTarget().emit(ir))
        t_json = cpu(lambda ir=ir: json.dumps(ir.to_data(), indent=2))
        text = K8sTarget().emit(ir)["manifests.yaml"]
        maps = text.count("\nkind: ConfigMap\n")
        print(
            f"{'':33}{n:6} {t_emit * 1000:9.1f}ms {t_json * 1000:12.1f}ms {t_emit / t_json:6.1f}x"
            f" {maps:6}  ({len(text) / 2**20:.1f} MiB)"
        )
    ns = sorted(emit_times)
    for a, b in zip(ns, ns[1:], strict=False):
        print(
            f"  emit {b} / {a} steps: {emit_times[b] / emit_times[a]:.1f}x (linear: {b / a:.0f}x)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--generated", default="1000,10000")
    args = ap.parse_args()
    bench_generated([int(s) for s in args.generated.split(",")])
    bench_compile([int(s) for s in args.sizes.split(",")])
    bench_run(args.steps)
    bench_validate()


if __name__ == "__main__":
    main()
