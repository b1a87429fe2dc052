"""Every benchmark, side by side, in one table: measurement, flowc, baseline, ratio, goal, met.

    python bench/run_all.py            # full run; writes bench/results.md
    python bench/run_all.py --quick    # < 2 minutes on 2 cores; what CI may run

Each script runs in its own process (one process tree, one invocation) and hands its rows back
through bench/_rows.py. Every figure is a ratio against a baseline measured in the same run;
whole-process figures are paired run by run with their baseline (bench/_proc.py: bytecode
caches written once before anything is timed, PYTHONDONTWRITEBYTECODE never inherited, the
median of the pairs with min-max). The goal column holds issue 25's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# (script, full args, quick args); quick args None = left out of --quick.
SUITE: list[tuple[str, list[str], list[str] | None]] = [
    ("cli_bench.py", [], ["--quick"]),
    ("compile_targets_bench.py", [], ["--quick"]),
    (
        "kfp_compile_bench.py",
        ["--steps", "1000", "--repeat", "5"],
        ["--steps", "200", "--repeat", "1"],
    ),
    ("airflow_parse_bench.py", [], None),
    ("engines_bench.py", ["--steps", "50"], None),
    ("run_bench.py", ["--steps", "1000", "--repeat", "3"], ["--steps", "200", "--repeat", "1"]),
]


def run_script(script: str, args: list[str]) -> tuple[list[dict], str, float]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    env["FLOWC_BENCH_JSON"] = "1"
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    dt = time.perf_counter() - t0
    rows: list[dict] = []
    for line in res.stdout.splitlines():
        if line.startswith("FLOWC_BENCH_ROWS "):
            rows.extend(json.loads(line[len("FLOWC_BENCH_ROWS ") :]))
    if res.returncode != 0 or not rows:
        rows.append(
            {
                "measurement": f"{script} FAILED (exit {res.returncode})",
                "flowc": "-",
                "baseline": (res.stderr.strip().splitlines() or ["no rows"])[-1][:120],
                "ratio": None,
                "goal": "-",
                "met": False,
            }
        )
    return rows, res.stdout, dt


def table(rows: list[dict]) -> str:
    head = "| measurement | flowc | baseline | ratio | goal | met |\n|---|---|---|---|---|---|\n"
    body = ""
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = "-" if r["met"] is None else ("met" if r["met"] else "**not met**")
        body += f"| {r['measurement']} | {r['flowc']} | {r['baseline']} | {ratio} | {r['goal']} | {met} |\n"
    return head + body


def machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    all_rows: list[dict] = []
    logs: list[str] = []
    load0 = os.getloadavg()[0]
    for script, full, quick in SUITE:
        sel = quick if args.quick else full
        if sel is None:
            continue
        print(f"== {script} {' '.join(sel)}", flush=True)
        rows, out, dt = run_script(script, sel)
        all_rows.extend(rows)
        logs.append(f"### {script} {' '.join(sel)} ({dt:.0f} s)\n\n```\n{out.strip()}\n```\n")
        for r in rows:
            print(f"   {r['measurement']}: {r['flowc']} vs {r['baseline']}", flush=True)
    text = table(all_rows)
    print()
    print(text)
    if not args.quick:
        load = os.getloadavg()[0]
        (BENCH / "results.md").write_text(
            "# flowc benchmarks\n\n"
            f"`python bench/run_all.py` on {machine()}; load average {load0:.1f} at the start, "
            f"{load:.1f} at the end (other processes share the machine: every ratio is paired). "
            "Every ratio compares flowc with a baseline run in the same invocation.\n\n"
            + text
            + "\n## Raw output\n\n"
            + "\n".join(logs)
        )
        print("wrote bench/results.md")


if __name__ == "__main__":
    main()
