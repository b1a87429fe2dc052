"""DagBag parse time of a 1,000-task flow, side by side in one run:

(a) the DAG file flowc generates (``flowc compile --target airflow``),
(b) a hand-written DAG with the same tasks and edges (one PythonOperator per task),
(c) dag-factory loading the equivalent YAML.

Each variant is parsed once to check the shapes agree, then ``--repeat`` times, each in a fresh
Airflow process (the way Airflow's DAG processor parses files); a process imports Airflow and the
operators first (not timed), then times ``DagBag(dag_folder=FILE)`` (Airflow sets
``dont_write_bytecode``: every parse compiles the file) in CPU time and wall time. Prints medians
per variant and the ratios a/b (goal <= 0.9) and a/c (goal <= 0.2). Needs ``.venv-airflow`` (scripts/test.sh builds it);
installs ``dag-factory`` into it when missing. Run: ``.venv/bin/python bench/airflow_parse_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "pkgs"

PROBE = r"""
import json, sys, time
import airflow.sdk  # noqa: F401  warm-up, not timed: every variant needs Airflow itself
from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401
from airflow.dag_processing.dagbag import DagBag
t, c = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
dt, dc = time.perf_counter() - t, time.process_time() - c
assert not bag.import_errors, bag.import_errors
(dag,) = bag.dags.values()
print("RESULT", json.dumps({"seconds": dt, "cpu": dc, "tasks": len(dag.tasks),
      "edges": sum(len(t.upstream_task_ids) for t in dag.tasks)}))
"""


def parent(i: int) -> int | None:
    return None if i == 0 else (i - 1) // 2  # a binary tree: 999 edges, depth 10


def flow_yaml(n: int) -> str:
    lines = ["flowc: 1", "name: bench_1000", "steps:"]
    for i in range(n):
        p = parent(i)
        value = str(i) if p is None else f'"${{steps.s{p:04d}.outputs.value}}"'
        lines += [
            f"  s{i:04d}:",
            "    run: flowc_demo.steps:echo",
            f"    with: {{value: {value}}}",
            "    outputs: [value]",
        ]
    return "\n".join(lines) + "\n"


def hand_written(n: int) -> str:
    out = [
        "from airflow.providers.standard.operators.python import PythonOperator",
        "from airflow.sdk import DAG",
        "from flowc_demo.steps import echo",
        "",
        "",
        "def pull(parent, **context):",
        "    return echo(context['ti'].xcom_pull(task_ids=parent))",
        "",
        "",
        'with DAG(dag_id="hand_1000", schedule=None, catchup=False, default_args={"retries": 0}):',
    ]
    for i in range(n):
        p = parent(i)
        if p is None:
            out.append(
                f'    s{i:04d} = PythonOperator(task_id="s{i:04d}", python_callable=echo, '
                f'op_kwargs={{"value": {i}}})'
            )
        else:
            out.append(
                f'    s{i:04d} = PythonOperator(task_id="s{i:04d}", python_callable=pull, '
                f'op_args=["s{p:04d}"])'
            )
    for i in range(1, n):
        out.append(f"    s{parent(i):04d} >> s{i:04d}")
    return "\n".join(out) + "\n"


def factory_yaml(n: int) -> str:
    lines = [
        "bench_1000_factory:",
        "  default_args: {owner: bench, retries: 0, start_date: 2024-01-01}",
        "  catchup: false",
        "  tasks:",
    ]
    for i in range(n):
        p = parent(i)
        lines += [
            f"    s{i:04d}:",
            "      operator: airflow.providers.standard.operators.python.PythonOperator",
            "      python_callable: flowc_demo.steps.echo",
            f"      op_kwargs: {{value: {i}}}",
        ]
        if p is not None:
            lines.append(f"      dependencies: [s{p:04d}]")
    return "\n".join(lines) + "\n"


FACTORY_LOADER = """from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), config_filepath=str(Path(__file__).with_suffix(".yml")))
"""


def airflow_python() -> str:
    py = os.environ.get("FLOWC_AIRFLOW_PYTHON") or str(REPO / ".venv-airflow" / "bin" / "python")
    if not Path(py).is_file():
        sys.exit(f"error: no Airflow interpreter at {py}: run scripts/test.sh first")
    return py


def ensure_dag_factory(py: str) -> None:
    if subprocess.run([py, "-c", "import dagfactory"], capture_output=True).returncode == 0:
        return
    print("installing dag-factory into the Airflow venv ...", flush=True)
    subprocess.run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(REPO / "scripts" / "airflow-constraints.txt"),
            "dag-factory",
        ],
        check=True,
    )


def parse_once(py: str, file: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run([py, "-c", PROBE, str(file)], env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"parse of {file} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    py = airflow_python()
    ensure_dag_factory(py)
    sys.path.insert(0, str(FIXTURES))
    from flowc.compiler.api import compile_flow, emit

    with tempfile.TemporaryDirectory(prefix="flowc-af-bench-") as tmp:
        d = Path(tmp)
        home = d / "home"
        home.mkdir()
        flow = d / "bench_1000.yaml"
        flow.write_text(flow_yaml(a.tasks))
        (text,) = emit(compile_flow(str(flow)), "airflow").values()
        files = {
            "a flowc": d / "a" / "bench_1000.py",
            "b hand-written": d / "b" / "hand_1000.py",
            "c dag-factory": d / "c" / "bench_1000_factory.py",
        }
        for f in files.values():
            f.parent.mkdir()
        files["a flowc"].write_text(text)
        files["b hand-written"].write_text(hand_written(a.tasks))
        files["c dag-factory"].write_text(FACTORY_LOADER)
        files["c dag-factory"].with_suffix(".yml").write_text(factory_yaml(a.tasks))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            "SCARF_NO_ANALYTICS": "1",
            "PYTHONPATH": os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]),
        }
        wall: dict[str, list[float]] = {k: [] for k in files}
        cpu: dict[str, list[float]] = {k: [] for k in files}
        shape = {}
        for k, f in files.items():  # check the three DAGs have the same shape
            r = parse_once(py, f, env)
            shape[k] = (r["tasks"], r["edges"])
        assert len(set(shape.values())) == 1, shape
        for _ in range(a.repeat):  # interleaved, so machine load hits every variant alike
            for k, f in files.items():
                r = parse_once(py, f, env)
                wall[k].append(r["seconds"])
                cpu[k].append(r["cpu"])
    tasks, edges = shape["a flowc"]
    print(
        f"DagBag parse of one DAG file, {tasks} tasks / {edges} edges, {a.repeat} fresh processes"
    )
    print("(CPU time of the parsing process is the primary measure: wall time on a shared machine")
    print(" swings with other load; both are shown, as medians, with every run's CPU ms)")
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    wmed = {k: statistics.median(v) for k, v in wall.items()}
    for k in files:
        runs = ", ".join(f"{t * 1000:.0f}" for t in cpu[k])
        print(f"  {k:<16} cpu {cmed[k] * 1000:7.1f} ms  wall {wmed[k] * 1000:7.1f} ms  ({runs})")
    for label, agg in (("cpu", cmed), ("wall", wmed)):
        ab = agg["a flowc"] / agg["b hand-written"]
        ac = agg["a flowc"] / agg["c dag-factory"]
        print(
            f"ratios ({label}): a/b = {ab:.2f} (goal <= 0.9: {'ok' if ab <= 0.9 else 'MISSED'})"
            f"   a/c = {ac:.2f} (goal <= 0.2: {'ok' if ac <= 0.2 else 'MISSED'})"
        )
    from _rows import Row, emit

    a_, b_, c_ = cmed["a flowc"], cmed["b hand-written"], cmed["c dag-factory"]
    emit(
        [
            Row(
                f"DagBag parse, {tasks}-task DAG: flowc vs hand-written (CPU)",
                f"{a_ * 1000:.0f} ms",
                f"hand-written {b_ * 1000:.0f} ms",
                a_ / b_,
                "<= 0.9x",
                a_ / b_ <= 0.9,
            ),
            Row(
                f"DagBag parse, {tasks}-task DAG: flowc vs dag-factory (CPU)",
                f"{a_ * 1000:.0f} ms",
                f"dag-factory {c_ * 1000:.0f} ms",
                a_ / c_,
                "<= 0.2x",
                a_ / c_ <= 0.2,
            ),
        ]
    )


if __name__ == "__main__":
    main()
