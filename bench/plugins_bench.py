"""Stacks & plugins overhead, side by side with a baseline in the same process.

1. compile: ``compile_flow`` of a flow with an active 4-component stack + container registry +
   2 plugins vs the same flow without them (the stack_components pass, registry lookups,
   validate(), image prefixing).
2. run services: ``run_plan`` of a 20-step chain with 2 enabled no-op plugins (built,
   initialized, handed to steps, shut down) vs no plugins; and the run service alone
   (``services.running`` with 2 plugins vs none).
3. mlflow: N metrics logged through the ``mlflow`` plugin (``ctx.plugins.mlops.log_metrics``) vs
   the same metrics through a bare ``MlflowClient.log_metric`` (SQLite tracking store).

Usage: python bench/plugins_bench.py [--repeat 5] [--metrics 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(name: str, ours: float, base: float, unit: str = "ms") -> None:
    k = 1000.0 if unit in ("ms", "us") else 1.0
    print(
        f"{name:<44} flowc {ours * k:9.2f} {unit}   baseline {base * k:9.2f} {unit}   "
        f"ratio {ours / base if base else float('nan'):6.2f}x"
    )


FLOW = """
flowc: 1
name: bench_stack
defaults: {{image: "trainer:1"}}
{extra}
steps:
{steps}
"""

STACK = """
stacks:
  gcp:
    orchestrator: {type: vertex, project: acme-ml, region: europe-west4, pipeline_root: "gs://acme/p"}
    artifact_store: {type: gcs, bucket: acme-artifacts}
    metadata_store: {type: sqlite, path: meta.db}
    container_registry: {type: artifact_registry, location: europe-west4, project: acme-ml, repository: ml}
plugins:
  mlops: {type: mlflow, enabled: true, config: {tracking_uri: "sqlite:///m.db"}}
  stream: {type: rabbitmq, enabled: false}
"""


def bench_compile(tmp: Path, repeat: int) -> None:
    from flowc.compiler.api import compile_flow

    steps = "\n".join(
        (
            f'  s{i}: {{run: "m:f", with: {{x: "${{steps.s{i - 1}.outputs.y}}"}}, outputs: [y]}}'
            if i
            else '  s0: {run: "m:f", outputs: [y]}'
        )
        for i in range(30)
    )
    with_stack = tmp / "with.yaml"
    with_stack.write_text(FLOW.format(extra=STACK, steps=steps))
    without = tmp / "without.yaml"
    without.write_text(FLOW.format(extra="", steps=steps))
    compile_flow(with_stack, stack="gcp")  # warm imports
    compile_flow(without)
    ours = best(lambda: compile_flow(with_stack, stack="gcp"), repeat * 4)
    base = best(lambda: compile_flow(without), repeat * 4)
    row("compile 30 steps: stack+registry+plugins", ours, base)


def bench_services(tmp: Path, repeat: int) -> None:
    from flowc.compiler.api import compile_flow
    from flowc.runtime.executor import run_plan
    from flowc.runtime.plugins import get_plugin_registry

    get_plugin_registry().register("flowc.runtime.plugins:BasePlugin", "noop")
    steps = "\n".join(
        (
            f'  s{i}: {{run: "flowc_demo_bench:inc", with: {{x: "${{steps.s{i - 1}.outputs.y}}"}}, outputs: [y]}}'
            if i
            else '  s0: {run: "flowc_demo_bench:inc", with: {x: 0}, outputs: [y]}'
        )
        for i in range(20)
    )
    (tmp / "flowc_demo_bench.py").write_text("def inc(x):\n    return x + 1\n")
    import sys

    sys.path.insert(0, str(tmp))
    plugins = "plugins:\n  a: {type: noop, enabled: true}\n  b: {type: noop, enabled: true}\n"
    p1 = tmp / "p1.yaml"
    p1.write_text(FLOW.format(extra=plugins, steps=steps))
    p0 = tmp / "p0.yaml"
    p0.write_text(FLOW.format(extra="", steps=steps))
    plan1, plan0 = compile_flow(p1).to_data(), compile_flow(p0).to_data()
    n = [0]

    def run(plan: dict) -> None:
        n[0] += 1
        res = run_plan(plan, root=str(tmp / f"root{n[0]}"))
        assert res.ok and res.outputs["s19"]["y"] == 20

    run(plan1)
    run(plan0)
    t1, t0 = [], []
    for _ in range(repeat * 2):  # interleaved: the machine's load hits both alike
        t1.append(best(lambda: run(plan1), 1))
        t0.append(best(lambda: run(plan0), 1))
    ours, base = min(t1), min(t0)
    row("run 20-step chain: 2 plugins vs none", ours, base)


def bench_service(repeat: int) -> None:
    from flowc.runtime import services
    from flowc.runtime.plugins import get_plugin_registry

    get_plugin_registry().register("flowc.runtime.plugins:BasePlugin", "noop")
    spec = {"type": "noop", "enabled": True, "config": {}}
    with_plugins = {"plugins": {"a": spec, "b": spec}}
    without: dict = {"plugins": {}}
    info = services.RunInfo(run_id="r", flow="f", params={})
    n = 2000

    def loop(plan: dict) -> None:
        for _ in range(n):
            with services.running(plan, info):
                pass

    ours = best(lambda: loop(with_plugins), repeat) / n
    base = best(lambda: loop(without), repeat) / n
    row("run services: start+stop with 2 plugins", ours * 1000, base * 1000, unit="us")


def bench_mlflow(tmp: Path, repeat: int, n: int) -> None:
    from mlflow.tracking import MlflowClient

    from flowc.runtime.plugins_builtin.mlflow_plugin import MLflowPlugin
    from flowc.runtime.services import RunInfo

    uri = f"sqlite:///{tmp / 'bench.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("base")
    base_run = client.create_run(exp).info.run_id
    plugin = MLflowPlugin(tracking_uri=uri, experiment="plugin", log_params=False)
    plugin.initialize()
    plugin.on_run_start(RunInfo(run_id="bench", flow="bench", params={}))

    def via_plugin() -> None:
        for i in range(n):
            plugin.log_metrics({"loss": 1.0 / (i + 1)}, step=i)

    def via_client() -> None:
        for i in range(n):
            client.log_metric(base_run, "loss", 1.0 / (i + 1), step=i)

    samples_p, samples_c = [], []
    for i in range(repeat):  # interleaved, alternating who goes first: the store grows
        pair = [(samples_p, via_plugin), (samples_c, via_client)]
        for samples, fn in pair if i % 2 == 0 else pair[::-1]:
            samples.append(best(fn, 1))
    ours, base = statistics.median(samples_p) / n, statistics.median(samples_c) / n
    row(f"mlflow: per metric ({n} x log_metrics)", ours, base)
    plugin.on_run_end()
    plugin.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--metrics", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(textwrap.dedent(__doc__.split("Usage")[0]).strip(), end="\n\n")
        bench_compile(tmp, args.repeat)
        bench_services(tmp, args.repeat)
        bench_service(args.repeat)
        bench_mlflow(tmp, args.repeat, args.metrics)


if __name__ == "__main__":
    main()
