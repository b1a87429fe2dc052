"""``flowc import`` of Airflow DAG files, round-tripped on real Airflow 3 (issue 23).

Each example DAG (shipped with Airflow, copied into tests/data/import/airflow) is imported, the
flow compiled back to Airflow, and both DAGs run with ``dag.test()`` in ``$FLOWC_AIRFLOW_PYTHON``
(never skipped: a missing interpreter fails): every task of the original exists in the imported
DAG with the same final state, and every Python task's return value (XCom ``return_value``) is
the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowc.compiler.api import compile_flow, emit

REPO = Path(__file__).resolve().parent.parent
RUN_DAGS = REPO / "tests" / "data" / "import" / "run_dags.py"


def source_dir(kind: str, tmp_path: Path) -> Path:
    """tests/data/import/KIND copied to a temporary folder, ``NAME.py.txt`` files as ``NAME.py``
    (third-party code is stored as .txt so the project's style checks leave it unchanged)."""
    out = tmp_path / "src" / kind
    if not out.exists():
        out.mkdir(parents=True)
        for f in (REPO / "tests" / "data" / "import" / kind).iterdir():
            name = f.name[: -len(".txt")] if f.name.endswith(".py.txt") else f.name
            shutil.copy(f, out / name)
    return out


def airflow_python() -> str:
    py = os.environ.get("FLOWC_AIRFLOW_PYTHON") or str(REPO / ".venv-airflow" / "bin" / "python")
    if not Path(py).is_file():
        pytest.fail(f"Airflow interpreter not found at {py}: run scripts/test.sh", pytrace=False)
    return py


def flowc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FLOWC_AIRFLOW_PYTHON=airflow_python())
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def import_dag(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    res = flowc("import", str(src), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return res


def _start(side: Path, jobs: list[dict[str, Any]], pythonpath: str) -> subprocess.Popen[str]:
    (side / "home").mkdir(parents=True, exist_ok=True)
    (side / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=str(side / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=pythonpath,
    )
    return subprocess.Popen(
        [airflow_python(), str(RUN_DAGS), str(side / "jobs.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=900)
    for line in out.splitlines():
        if line.startswith("FLOWC_HARNESS_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    raise AssertionError(
        f"dag.test() failed (exit {proc.returncode}):\n{out[-3000:]}\n{err[-5000:]}"
    )


def roundtrip(
    tmp_path: Path, source: str, dag_ids: list[str], conf: dict[str, Any] | None = None
) -> list[tuple[dict, dict, dict]]:
    """Run the original DAGs and their imported-and-recompiled twins; (orig, imported, flow) each."""
    flow_dir, orig, imp = tmp_path / "flow", tmp_path / "orig" / "dags", tmp_path / "imp" / "dags"
    orig.mkdir(parents=True)
    imp.mkdir(parents=True)
    data = source_dir("airflow", tmp_path)
    shutil.copy(data / source, orig / source)
    import_dag(data / source, flow_dir)
    flows = {}
    for d in dag_ids:
        path = flow_dir / f"{d}.yaml"
        res = flowc("validate", str(path))
        assert res.returncode == 0, res.stderr
        ir = compile_flow(str(path))
        ((_, text),) = emit(ir, "airflow").items()
        (imp / f"{d}.py").write_text(text, encoding="utf-8")
        flows[d] = yaml.safe_load(path.read_text(encoding="utf-8"))
    p1 = _start(
        orig.parent, [{"file": str(orig / source), "dag_id": d, "conf": conf} for d in dag_ids], ""
    )
    p2 = _start(
        imp.parent,
        [{"file": str(imp / f"{d}.py"), "dag_id": d, "conf": conf} for d in dag_ids],
        str(flow_dir),
    )
    a, b = _result(p1), _result(p2)
    return list(zip(a, b, [flows[d] for d in dag_ids], strict=True))


def _python_steps(flow: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for name, s in (flow.get("steps") or {}).items():
        if "steps" in s:
            out |= _python_steps(s, f"{prefix}{name}.")
        elif "run" in s:
            out.add(prefix + name)
    return out


def same_behaviour(
    orig: dict[str, Any],
    imported: dict[str, Any],
    flow: dict[str, Any],
    unpushed_falsy: frozenset[str] = frozenset(),
) -> None:
    """Same run state, task states and return values. ``unpushed_falsy``: steps whose original
    is a ShortCircuitOperator, which records no XCom when its condition is falsy (the step
    flowc imports returns the value, False, like any other step)."""
    assert "errors" not in orig and "errors" not in imported, (orig, imported)
    assert orig["state"] == imported["state"]
    for tid, state in orig["tis"].items():  # flowc step names are lower case
        assert imported["tis"].get(tid.lower()) == state, (tid, state, imported["tis"])
    python = _python_steps(flow)
    for key, value in orig["xcom"].items():
        tid = key.split("[")[0]
        if tid.lower() in python:
            got = imported["xcom"].get(key.lower())
            assert got == {"return_value": value}, (key, value, got)
    for key, got in imported["xcom"].items():  # nothing the original did not return
        lower = {k.lower(): k for k in orig["tis"]}
        if key.split("[")[0] in python and key in lower:
            if key in unpushed_falsy and got["return_value"] is False:
                continue
            assert lower[key] in orig["xcom"] or got == {"return_value": None}, (key, got)


def test_dynamic_task_mapping_round_trip(tmp_path: Path) -> None:
    (a, b, f), (c, d, g) = roundtrip(
        tmp_path,
        "example_dynamic_task_mapping.py",
        ["example_dynamic_task_mapping", "example_task_mapping_second_order"],
    )
    same_behaviour(a, b, f)
    same_behaviour(c, d, g)
    assert c["xcom"]["add_10[2]"] == 16  # the values really were compared
    assert d["xcom"]["add_10[2]"] == {"return_value": 16}


def test_mapped_task_group_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(
        tmp_path, "example_dynamic_task_mapping.py", ["example_task_group_mapping"]
    )
    same_behaviour(a, b, f)


def test_tutorial_taskflow_api_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(tmp_path, "tutorial_taskflow_api.py", ["tutorial_taskflow_api"])
    same_behaviour(a, b, f)
    assert b["xcom"]["transform"]["return_value"] == {"total_order_value": 1236.7}


def test_bash_operator_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(tmp_path, "example_bash_operator.py", ["example_bash_operator"])
    same_behaviour(a, b, f)
    assert a["tis"]["this_will_skip"] == "skipped"


def test_short_circuit_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(
        tmp_path, "example_short_circuit_operator.py", ["example_short_circuit_operator"]
    )
    same_behaviour(a, b, f, unpushed_falsy=frozenset({"condition_is_false", "short_circuit"}))
    assert a["tis"]["false_1"] == "skipped" and a["tis"]["task_7"] == "success"
    assert b["tis"]["false_1"] == "skipped" and b["tis"]["task_7"] == "success"


def test_task_group_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(tmp_path, "example_task_group.py", ["example_task_group"])
    same_behaviour(a, b, f)
    assert "section_2.inner_section_2.task_4" in b["tis"]


def test_params_ui_tutorial_round_trip(tmp_path: Path) -> None:
    ((a, b, f),) = roundtrip(
        tmp_path,
        "example_params_ui_tutorial.py",
        ["example_params_ui_tutorial"],
        conf={"required_field": "a value given here"},
    )
    same_behaviour(a, b, f)
    assert len(f["params"]) >= 10  # every Param became a typed flowc param
    assert f["params"]["required_field"]["type"] == "str"
    assert f["params"]["required_field"]["required"] is True
    assert a["tis"] == {"show_params": "success"}


def test_branch_operator_structure(tmp_path: Path) -> None:
    # the branch picks at random: the run cannot be compared, the structure is
    import_dag(source_dir("airflow", tmp_path) / "example_branch_operator.py", tmp_path)
    flow = yaml.safe_load((tmp_path / "example_branch_operator.yaml").read_text())
    for opt in "abcd":
        step = flow["steps"][f"branch_{opt}"]
        assert step["when"] == f"'branch_{opt}' in ${{steps.branching.outputs.return_value}}"
    assert flow["steps"]["join"]["trigger"] == "none_failed_min_one_success"
    module = (tmp_path / "example_branch_operator_steps.py").read_text()
    assert "options = ['a', 'b', 'c', 'd']" in module and "import random" in module
    assert "def branching():\n    return f'branch_{random.choice(options)}'" in module


def test_warnings_are_located_and_kept_as_comments(tmp_path: Path) -> None:
    src = str(source_dir("airflow", tmp_path) / "example_bash_operator.py")
    res = import_dag(Path(src), tmp_path)
    assert f"{src}:32: warning: DAG argument 'dagrun_timeout'" in res.stderr
    text = (tmp_path / "example_bash_operator.yaml").read_text()
    assert "# flowc import: DAG argument 'dagrun_timeout' (1:00:00) has no flowc equivalent" in text
    assert "Jinja template '{{ task_instance_key_str }}'" in text
    strict = flowc("import", src, "-o", str(tmp_path / "strict"), "--strict")
    assert strict.returncode == 1 and not (tmp_path / "strict").exists()


def test_a_broken_dag_file_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad_dag.py"
    bad.write_text("from airflow.sdk import DAG\n\nwith DAG(dag_id='x'):\n    undefined_name\n")
    res = flowc("import", str(bad), "-o", str(tmp_path / "out"))
    assert res.returncode == 1
    assert f"{bad}:4:1: error: DagBag import error" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
