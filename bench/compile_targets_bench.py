"""Compile generated flows of 10 / 100 / 1,000 / 10,000 steps to all five targets: time and peak
memory, the 10,000 / 1,000 ratio (linear ~10, goal <= 11) and 1,000 steps to all targets (goal
<= 1 s); peak memory is the compiling process's peak RSS. Cold start of `flowc validate` and `flowc compile --check` on a 20-step flow vs
`python -c pass` (goal <= 5x), and 50 flows in one call (a pre-commit run on a real repository).

    python bench/compile_targets_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
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


def measure_in_child(path: Path, repeat: int) -> tuple[float, float]:
    """(best seconds, peak RSS MiB) of compiling ``path`` to every target, in a fresh process
    (after one warm-up compile: imports, templates and the grammar are loaded)."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(path), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def one(path: Path, repeat: int) -> None:
    import resource

    from flowc.compiler.api import compile_flow, emit
    from flowc.targets.build_cache import BuildCache

    def all_targets() -> None:  # as `flowc compile --all`: one build cache per flow
        ir = compile_flow(str(path), stack="gcp")
        cache = BuildCache()
        for t in TARGETS:
            assert emit(ir, t, cache=cache)

    all_targets()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        all_targets()
        best = min(best, time.perf_counter() - t0)
    print(best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cold(cmd: list[str], repeat: int, cwd: Path) -> float:
    """Median wall time of ``cmd`` in fresh processes, as an installed package runs: with
    bytecode caches (PYTHONDONTWRITEBYTECODE unset, one warm-up run to write them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cmd, cwd=cwd, env=env, check=False, capture_output=True)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=False, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="sizes up to 1,000 steps, fewer repeats")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(Path(args.one), args.repeat)
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        times: dict[int, float] = {}
        for n in sizes:
            p = root / f"flow_{n}.yaml"
            p.write_text(flow_text(n))
            times[n], peak = measure_in_child(p, 1 if n >= 10000 else 3)
            rows.append(
                Row(
                    f"compile {n:,} steps, all 5 targets",
                    f"{times[n]:.3f} s, peak RSS {peak:.0f} MiB",
                    "-",
                    None,
                    "-",
                    None,
                )
            )
        one_k = times[1000]
        rows.append(
            Row(
                "compile 1,000 steps, all 5 targets",
                f"{one_k:.3f} s",
                "1 s budget",
                one_k / 1.0,
                "<= 1 s",
                one_k <= 1.0,
            )
        )
        if 10000 in times:
            r = times[10000] / one_k
            rows.append(
                Row(
                    "linearity 10,000 / 1,000 steps",
                    f"{times[10000]:.2f} s",
                    f"{one_k:.3f} s",
                    r,
                    "<= 11",
                    r <= 11,
                )
            )

        # Cold starts: a 20-step flow, and 50 such flows in one call.
        p20 = root / "flow_20.yaml"
        p20.write_text(flow_text(20))
        out = root / "out"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flowc",
                "compile",
                str(p20),
                "--target",
                "airflow",
                "-o",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        reps = 5 if args.quick else 9
        py = cold([sys.executable, "-c", "pass"], reps, root)
        val = cold([sys.executable, "-m", "flowc", "validate", str(p20)], reps, root)
        chk = cold(
            [
                sys.executable,
                "-m",
                "flowc",
                "compile",
                str(p20),
                "--target",
                "airflow",
                "-o",
                str(out),
                "--check",
            ],
            reps,
            root,
        )
        rows.append(
            Row(
                "cold start `flowc validate` (20 steps)",
                f"{val * 1000:.0f} ms",
                f"python -c pass {py * 1000:.0f} ms",
                val / py,
                "<= 5x",
                val / py <= 5,
            )
        )
        rows.append(
            Row(
                "cold start `flowc compile --check` (20 steps)",
                f"{chk * 1000:.0f} ms",
                f"python -c pass {py * 1000:.0f} ms",
                chk / py,
                "<= 5x",
                chk / py <= 5,
            )
        )
        flows = []
        for i in range(50):
            f = root / f"many_{i:02d}.yaml"
            f.write_text(flow_text(20).replace("name: bench_20", f"name: many_{i:02d}"))
            flows.append(str(f))
        many = cold([sys.executable, "-m", "flowc", "validate", *flows], 3, root)
        rows.append(
            Row(
                "`flowc validate` 50 flows in one call",
                f"{many * 1000:.0f} ms",
                f"50 x one flow {50 * val * 1000:.0f} ms",
                many / (50 * val),
                "-",
                None,
            )
        )
    emit(rows)


if __name__ == "__main__":
    main()
