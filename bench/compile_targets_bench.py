"""Compile generated flows of 10 / 100 / 1,000 / 10,000 / 50,000 steps to all five targets, in
process: time and peak memory, and linearity (issue 25: 10,000 / 1,000 <= x10.5 and
50,000 / 10,000 <= x5.2). Each size runs in a fresh process that first compiles a 10-step flow
(imports, templates, grammar loaded), then times ``--repeat`` compiles and reports the median
(the same rule at every size). Whole-process figures of the commands: bench/cli_bench.py.

    python bench/compile_targets_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rows import Row, emit  # noqa: E402

TARGETS = ("local", "airflow", "kfp", "vertex", "k8s")
VERTEX_STACK = (
    "stacks:\n  gcp:\n    orchestrator: {type: vertex, project: acme-bench, region: us-central1,"
    " pipeline_root: 'gs://bench/root'}\n"
)


def flow_text(n: int) -> str:
    """A realistic wide flow of ``n`` steps: 10 parallel chains sharing params and defaults,
    each chain reading its predecessor and a fan-in from the first chain, a ``foreach`` every
    10th step and three ``when`` gates in all. (KFP/Vertex conditions are transitive: a flow
    where every 10th step of one long chain is gated grows as steps x gates there.)"""
    lines = [
        "flowc: 1",
        f"name: bench_{n}",
        "params:",
        "  epochs: {type: int, default: 10, min: 1}",
        "  path: {type: str, default: data.csv}",
        "  shards: {type: list, default: [a, b]}",
        "defaults: {retries: 1, retry_delay: 30s, timeout: 1h, resources: {cpu: '1'}}",
        "steps:",
    ]
    gates = {x - x % 10 + 3 for x in (n // 4, n // 2, (3 * n) // 4)}  # never after a foreach
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append(f"    run: bench.mod:step_{i % 7}")
        lines.append("    outputs: [out, aux]")
        with_ = ['n: "${params.epochs}"', 'p: "gs://b/${params.path}/x"']
        if i >= 10:
            with_.append(f'prev: "${{steps.s{i - 10}.outputs.out}}"')
            with_.append(f'far: "${{steps.s{(i // 10) * 10 - 10}.outputs.aux}}"')
        lines.append("    with: {" + ", ".join(with_) + "}")
        if i % 10 == 5:
            lines.append('    foreach: "${params.shards}"')
        if i in gates and i >= 10:
            lines.append(f'    when: "${{steps.s{i - 10}.outputs.out}} >= 0.5"')
    return "\n".join(lines) + "\n" + VERTEX_STACK


def measure_in_child(path: Path, repeat: int) -> tuple[float, float, list[float]]:
    """(median seconds, peak RSS MiB, every run) of compiling ``path`` to every target, in a
    fresh process (after one warm-up compile of a 10-step flow)."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(path), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    runs = [float(x) for x in out[1:]]
    return statistics.median(runs), float(out[0]), runs


def one(path: Path, repeat: int) -> None:
    import resource

    from flowc.compiler.api import compile_flow, emit
    from flowc.targets.build_cache import BuildCache

    def all_targets(p: Path) -> None:  # as `flowc compile --all`: one build cache per flow
        ir = compile_flow(str(p), stack="gcp")
        cache = BuildCache()
        for t in TARGETS:
            assert emit(ir, t, cache=cache)

    warm = path.with_name("warm_10.yaml")
    warm.write_text(flow_text(10))
    all_targets(warm)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        all_targets(path)
        runs.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(peak, *runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="sizes up to 1,000 steps")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(Path(args.one), args.repeat)
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000, 50000]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        times: dict[int, float] = {}
        for n in sizes:
            p = root / f"flow_{n}.yaml"
            p.write_text(flow_text(n))
            times[n], peak, runs = measure_in_child(p, 2 if n >= 50000 else 3)
            rows.append(
                Row(
                    f"compile {n:,} steps, all 5 targets (in process)",
                    f"{times[n]:.3f} s ({min(runs):.3f}-{max(runs):.3f}), peak RSS {peak:.0f} MiB",
                    "-",
                    None,
                    "-",
                    None,
                )
            )
        for small, big, goal in ((1000, 10000, 10.5), (10000, 50000, 5.2)):
            if big in times:
                r = times[big] / times[small]
                rows.append(
                    Row(
                        f"linearity {big:,} / {small:,} steps (in process)",
                        f"{times[big]:.2f} s",
                        f"{times[small]:.3f} s",
                        r,
                        f"<= x{goal}",
                        r <= goal,
                    )
                )
    emit(rows)


if __name__ == "__main__":
    main()
