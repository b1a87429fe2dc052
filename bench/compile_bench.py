"""Front-end benchmark: time to validate generated 10 / 100 / 1,000 / 10,000-step flows (and the
10,000 / 1,000 ratio; linear is ~10), and the cold start of ``flowc validate`` as a ratio to
``python -c pass``. Prints numbers only; never asserts on time.

    python bench/compile_bench.py [--sizes 10,100,1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(n: int) -> str:
    """A flow with ``n`` steps: a chain plus fan-in edges, params, defaults, expressions."""
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
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append(f"    run: bench.mod:step_{i % 7}")
        lines.append("    outputs: [out, aux]")
        with_ = ['n: "${params.epochs}"', 'p: "gs://b/${params.path}/x"']
        if i:
            with_.append(f'prev: "${{steps.s{i - 1}.outputs.out}}"')
        if i >= 10:
            with_.append(f'far: "${{steps.s{i // 2}.outputs.aux}}"')
        lines.append("    with: {" + ", ".join(with_) + "}")
        if i % 10 == 5:
            lines.append('    foreach: "${params.shards}"')
        if i % 10 == 7:
            lines.append(f'    when: "${{steps.s{i - 1}.outputs.out}} >= 0.5 and not false"')
    return "\n".join(lines) + "\n"


def time_validate(path: Path, repeat: int) -> float:
    from flowc.compiler.api import compile_flow

    best = []
    for _ in range(repeat):
        t0 = time.process_time()  # CPU time: stable on a shared machine
        ir = compile_flow(path)
        best.append(time.process_time() - t0)
        assert ir.steps
    return min(best)


def cold(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user+sys of the child) of running ``cmd``."""
    import resource

    wall, cpu = [], []
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'steps':>8} {'validate CPU s':>15} {'per step ms':>12}")
        for n in sizes:
            p = Path(tmp) / f"flow_{n}.yaml"
            p.write_text(generate(n))
            results[n] = time_validate(p, args.repeat if n < 10_000 else 1)
            print(f"{n:>8} {results[n]:>15.3f} {1000 * results[n] / n:>12.3f}")
        if 1000 in results and 10_000 in results:
            print(f"ratio 10,000 / 1,000 steps: {results[10_000] / results[1000]:.2f} (linear ~10)")
        small = Path(tmp) / "flow_small.yaml"
        small.write_text(generate(5))
        py = cold([sys.executable, "-c", "pass"], 7)
        fl = cold([sys.executable, "-m", "flowc", "validate", "-q", str(small)], 7)
        for i, what in ((0, "wall"), (1, "CPU ")):
            print(
                f"cold start {what}: python -c pass {py[i] * 1000:.0f} ms, flowc validate "
                f"{fl[i] * 1000:.0f} ms, ratio {fl[i] / py[i]:.1f}"
            )


if __name__ == "__main__":
    main()
