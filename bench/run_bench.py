"""Runtime overhead, side by side with a plain-Python baseline in the same process.

1. A chain of N no-op steps through ``flowc.runtime.executor.run_plan`` (what ``flowc run``
   calls; artifacts + SQLite metadata included) vs a plain loop calling the same function:
   overhead per step (goal <= 1 ms).
2. 8 independent 0.5 s sleep steps with 8 workers: wall time (goal <= 0.6 s) vs the ideal 0.5 s.

Usage: python bench/run_bench.py [--steps 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_steps  # noqa: E402

from flowc.runtime.executor import run_plan  # noqa: E402


def step(run: str, with_: dict, upstream: list[str]) -> dict:
    return {
        "kind": "run",
        "run": run,
        "with": with_,
        "outputs": ["out"],
        "upstream": upstream,
        "after": [],
        "foreach": None,
        "when": None,
        "retries": 0,
        "retry_delay": 0.0,
        "timeout": None,
        "cache": False,
        "replicas": 1,
        "image": None,
        "env": {},
        "resources": {},
        "secrets": [],
    }


def plan(name: str, steps: dict[str, dict]) -> dict:
    return {
        "plan_version": 1,
        "name": name,
        "params": {},
        "secrets": {},
        "steps": steps,
        "order": list(steps),
        "stack": None,
        "plugins": {},
        "integrations": None,
        "channels": {},
    }


def chain_plan(n: int) -> dict:
    steps = {"s0": step("bench_steps:noop", {"x": 0}, [])}
    for i in range(1, n):
        ref = {"$ref": ["steps", f"s{i - 1}", "outputs", "out"]}
        steps[f"s{i}"] = step("bench_steps:noop", {"x": ref}, [f"s{i - 1}"])
    return plan("chain", steps)


def sleep_plan(k: int, seconds: float) -> dict:
    return plan(
        "sleeps",
        {f"z{i}": step("bench_steps:sleep", {"seconds": seconds}, []) for i in range(k)},
    )


def timed(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_timed(fn) -> tuple[float, float]:  # noqa: ANN001
    """(wall, CPU of this process: all threads) seconds."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.steps

    def baseline() -> None:
        x = 0
        for _ in range(n):
            x = bench_steps.noop(x)

    p = chain_plan(n)
    runtime_times, base_times, cpu_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            base_times.append(timed(baseline))
            r = None

            def through_runtime(i: int = i) -> None:
                nonlocal r
                r = run_plan(p, root=Path(tmp) / f"r{i}", max_workers=4)

            wall, cpu = cpu_timed(through_runtime)
            runtime_times.append(wall)
            cpu_times.append(cpu)
            assert r is not None and r.ok, r.error if r else None
        rt, bt = min(runtime_times), min(base_times)
        per_step_ms = (rt - bt) / n * 1000
        print(f"chain of {n} no-op steps (best of {args.repeat}):")
        print(f"  plain python loop : {bt * 1000:10.3f} ms")
        print(f"  flowc runtime     : {rt * 1000:10.3f} ms")
        print(
            f"  overhead per step : {per_step_ms:10.3f} ms   (goal <= 1 ms)  "
            f"{'OK' if per_step_ms <= 1 else 'MISSED'}"
        )
        print(f"  ratio runtime/loop: {rt / bt:10.0f}x")
        cpu_ms = min(cpu_times) / n * 1000
        print(f"  CPU per step      : {cpu_ms:10.3f} ms   (all threads; wall minus this = waiting")
        print("                                         for a core on a loaded machine / the disk)")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"  load average      : {load:10.2f}    on {os.cpu_count()} CPUs")

        sp = sleep_plan(8, 0.5)
        walls = []
        for i in range(args.repeat):
            walls.append(timed(lambda i=i: run_plan(sp, root=Path(tmp) / f"s{i}", max_workers=8)))
        wall = min(walls)
        print(f"8 independent 0.5 s sleep steps, 8 workers (best of {args.repeat}):")
        print("  ideal (one sleep) :      500.000 ms")
        print(f"  sequential        : {8 * 500:10.3f} ms")
        print(
            f"  flowc runtime     : {wall * 1000:10.3f} ms   (goal <= 600 ms)  "
            f"{'OK' if wall <= 0.6 else 'MISSED'}"
        )
        print(
            f"  ratio wall/ideal  : {wall / 0.5:10.2f}x   speed-up vs sequential "
            f"{4.0 / wall:.1f}x"
        )
    from _rows import Row, emit

    emit(
        [
            Row(
                f"run_plan {n:,}-step no-op chain, overhead per step over a plain loop",
                f"{rt * 1000:.0f} ms ({cpu_ms:.2f} ms CPU/step, load {load:.1f})",
                f"loop {bt * 1000:.2f} ms",
                per_step_ms,
                "<= 1 ms/step",
                per_step_ms <= 1,
            ),
            Row(
                "8 independent 0.5 s steps on 8 workers (wall)",
                f"{wall:.3f} s",
                "ideal 0.5 s",
                wall / 0.5,
                "<= 0.6 s",
                wall <= 0.6,
            ),
        ]
    )


if __name__ == "__main__":
    main()
