"""Run the same N-step flow (default 50) four ways, side by side in one invocation:

- `flowc run` (the CLI, end to end: start-up, SQLite history, artifacts),
- Airflow 3 `dag.test()` on flowc's generated DAG (in `.venv-airflow`, metadata DB created
  before timing; the time includes Airflow's import, as `flowc run`'s includes flowc's),
- `kfp.local` (SubprocessRunner, use_venv=False) on flowc's compiled pipeline.yaml,
- a plain Python loop calling the same functions (and flowc's `run_plan` in-process, for the
  per-step overhead).

Goals (issue 25): flowc >= 100x faster than Airflow, >= 50x faster than kfp.local, <= 1 ms/step
over the loop. Every side is the median of ``--repeat`` whole-process runs (bench/_proc.py: bytecode
caches written before timing, PYTHONDONTWRITEBYTECODE never inherited), run interleaved.

    python bench/engines_bench.py [--steps 50] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from _proc import bytecode_env, precompile  # noqa: E402
from _rows import Row  # noqa: E402
from _rows import emit as emit_rows  # noqa: E402


def flow_yaml(n: int) -> str:
    lines = [
        "flowc: 1",
        f"name: engines_{n}",
        "steps:",
        "  s0: {run: 'bench_steps:noop', with: {x: 0}, outputs: [out]}",
    ]
    for i in range(1, n):
        lines.append(
            f"  s{i}: {{run: 'bench_steps:noop', with: {{x: '${{steps.s{i - 1}.outputs.out}}'}}, outputs: [out]}}"
        )
    return "\n".join(lines) + "\n"


def med(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def span(xs: list[float]) -> str:
    return f"{med(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def timed_run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return dt


KFP_SCRIPT = """
import sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2], raise_on_error=True)
components.load_component_from_file(sys.argv[1])()
"""

AIRFLOW_INIT = """
from airflow.utils import db
db.initdb()
"""

AIRFLOW_TEST = """
import sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
assert not bag.import_errors, bag.import_errors
(dag,) = bag.dags.values()
dr = dag.test()
assert str(dr.state).endswith("success"), dr.state
"""


def airflow_python() -> str | None:
    py = os.environ.get("FLOWC_AIRFLOW_PYTHON") or str(REPO / ".venv-airflow" / "bin" / "python")
    return py if Path(py).exists() else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="10 steps")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = 10 if args.quick else args.steps
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / ".git").mkdir()
        (d / "flow.yaml").write_text(flow_yaml(n))
        env = bytecode_env(
            {"PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
        )
        precompile()
        reps = args.repeat

        # plain loop and run_plan in-process
        import bench_steps

        from flowc.compiler.api import compile_flow, emit
        from flowc.runtime.executor import run_plan

        t0 = time.perf_counter()
        x = 0
        for _ in range(n):
            x = bench_steps.noop(x)
        loop = time.perf_counter() - t0
        os.chdir(d)
        ir = compile_flow("flow.yaml")
        best = float("inf")
        for i in range(3):
            t0 = time.perf_counter()
            r = run_plan(ir.to_data(), root=d / f".flowc-inproc-{i}", max_workers=2)
            best = min(best, time.perf_counter() - t0)
            assert r.ok
        per_step = (best - loop) / n * 1000
        rows.append(
            Row(
                f"run_plan {n} steps, overhead per step over a plain loop",
                f"{best * 1000:.1f} ms",
                f"loop {loop * 1000:.3f} ms",
                per_step,
                "<= 1 ms/step",
                per_step <= 1.0,
            )
        )

        flowc_run = [sys.executable, "-m", "flowc", "run", "flow.yaml"]
        timed_run(flowc_run, d, env)  # warm-up, as each peer gets below
        runs = [timed_run(flowc_run, d, env) for _ in range(reps)]
        cli = med(runs)
        rows.append(
            Row(f"`flowc run` {n} steps (CLI, end to end)", span(runs), "-", None, "-", None)
        )

        # kfp.local
        (d / "pipeline.yaml").write_text(emit(ir, "kfp")["pipeline.yaml"])
        kfp_cmd = [sys.executable, "-c", KFP_SCRIPT, "pipeline.yaml", str(d / "kfp-root")]
        timed_run(kfp_cmd, d, env)
        kfp_runs = [timed_run(kfp_cmd, d, env) for _ in range(reps)]
        kfp_t = med(kfp_runs)
        rows.append(
            Row(
                f"kfp.local {n} steps vs `flowc run`",
                span(runs),
                f"kfp.local {span(kfp_runs)}",
                kfp_t / cli,
                ">= 50x faster",
                kfp_t / cli >= 50,
            )
        )

        # Airflow dag.test()
        py = airflow_python()
        if py is None:
            rows.append(
                Row(
                    f"Airflow dag.test() {n} steps",
                    "-",
                    "no .venv-airflow (run scripts/test.sh)",
                    None,
                    ">= 100x faster",
                    False,
                )
            )
        else:
            dags = d / "dags"
            dags.mkdir()
            for rel, text in emit(ir, "airflow").items():
                (dags / rel).write_text(text)
            aenv = {
                **env,
                "AIRFLOW_HOME": str(d / "airflow-home"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            }
            timed_run([py, "-c", AIRFLOW_INIT], d, aenv)  # also writes Airflow's bytecode caches
            precompile(py)
            timed_run([py, "-c", AIRFLOW_TEST, str(dags)], d, aenv)
            af_runs = [timed_run([py, "-c", AIRFLOW_TEST, str(dags)], d, aenv) for _ in range(reps)]
            af = med(af_runs)
            rows.append(
                Row(
                    f"Airflow dag.test() {n} steps vs `flowc run`",
                    span(runs),
                    f"dag.test {span(af_runs)}",
                    af / cli,
                    ">= 100x faster",
                    af / cli >= 100,
                )
            )
    emit_rows(rows)


if __name__ == "__main__":
    main()
