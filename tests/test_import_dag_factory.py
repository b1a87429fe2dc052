"""``flowc import`` of dag-factory YAML (astronomer/dag-factory's own examples, tests/data/import/
dag_factory with their licence note), issue 23.

dag-factory itself is not installed in the Airflow test environment, so the originals cannot be
loaded there; the imported flows are checked against what dag-factory documents the YAML to mean
(tasks, commands, callables, dependencies, mapping, groups, params, schedule) and the ones without
issue-18 keys run on Airflow (``dag.test()``) with the expected task states and values.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from flowc.compiler.api import compile_flow, emit
from tests.test_import_airflow import _result, _start, source_dir

REPO = Path(__file__).resolve().parent.parent


_SRC: list[Path] = []


def data() -> Path:
    """The dag-factory examples as files (copied once per test process)."""
    if not _SRC:
        _SRC.append(source_dir("dag_factory", Path(tempfile.mkdtemp(prefix="flowc-import-df-"))))
    return _SRC[0]


def do_import(src: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowc", "import", str(data() / src), "-o", str(out)] + list(extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def load(out: Path, name: str) -> dict:
    return yaml.safe_load((out / f"{name}.yaml").read_text(encoding="utf-8"))


def test_default_args_example(tmp_path: Path) -> None:
    res = do_import("example_dag_factory_default_args.yml", tmp_path)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    flow = load(tmp_path, "etl")
    assert flow["schedule"] == {"cron": "0 0 * * *", "start": "2025-01-01"}
    assert flow["tags"] == ["data engineering"]
    assert flow["steps"] == {
        "extract": {"command": ["bash", "-c", "echo extract"]},
        "transform": {"command": ["bash", "-c", "echo transform"], "after": ["extract"]},
        "load": {"command": ["bash", "-c", "echo load"], "after": ["transform"]},
    }


def test_default_config_merges_tasks_by_id(tmp_path: Path) -> None:
    res = do_import("example_dag_factory_default_config.yml", tmp_path)
    assert res.returncode == 0, res.stderr
    flow = load(tmp_path, "data_science")
    assert flow["steps"]["load"] == {
        "command": ["bash", "-c", "echo data_science"],
        "after": ["transform"],
    }
    assert flow["tags"] == ["dynamic"]


def test_multiple_config_warns_about_callbacks(tmp_path: Path) -> None:
    res = do_import("example_dag_factory_multiple_config.yml", tmp_path)
    assert res.returncode == 0, res.stderr
    src = str(data() / "example_dag_factory_multiple_config.yml")
    assert f"{src}:52: warning: DAG argument 'on_failure_callback_name'" in res.stderr
    flow = load(tmp_path, "example_multiple1")
    assert flow["steps"]["task_3"]["run"] == "print_hello:print_hello"
    assert (tmp_path / "print_hello.py").read_text() == (data() / "print_hello.py").read_text()
    strict = do_import("example_dag_factory_multiple_config.yml", tmp_path / "s", "--strict")
    assert strict.returncode == 1 and not (tmp_path / "s").exists()


def test_params_and_jinja(tmp_path: Path) -> None:
    res = do_import("example_params.yml", tmp_path)
    assert res.returncode == 0, res.stderr
    flow = load(tmp_path, "example_params")
    assert flow["params"] == {
        "model_version": {"type": "str", "default": "1.0.0"},
        "input_uri": {"type": "str", "default": "localhost"},
    }
    cmd = flow["steps"]["task_1"]["command"][2]
    assert cmd == (
        "echo 'Running task 1 with model version ${params.model_version} and url: "
        "${params.input_uri}'"
    )
    assert flow["steps"]["task_2"]["with"] == {
        "params": {
            "model_version": "${params.model_version}",
            "input_uri": "${params.input_uri}",
            "my_param": 10,
        }
    }
    assert flow["schedule"]["cron"] == "0 0 * * *"  # @daily


def test_taskflow_and_mapping(tmp_path: Path) -> None:
    res = do_import("example_taskflow.yml", tmp_path)
    assert res.returncode == 0, res.stderr
    assert "start_date '2 days'" in res.stderr
    steps = load(tmp_path, "taskflow")["steps"]
    assert steps["numbers_list"]["run"] == "sample:build_numbers_list"
    assert steps["double_number_from_task"]["with"] == {
        "number": "${steps.some_number.outputs.return_value}"
    }
    assert steps["double_number_with_dynamic_task_mapping_static"]["foreach"] == [1, 3, 5]
    assert steps["multiply_with_multiple_parameters"]["foreach"] == {
        "a": "${steps.numbers_list.outputs.return_value}",
        "b": "${steps.another_numbers_list.outputs.return_value}",
    }
    assert steps["double_number_with_dynamic_task_and_partial"]["with"] == {
        "label": True,
        "number": "${item}",
    }


def test_task_groups(tmp_path: Path) -> None:
    res = do_import("example_task_group.yml", tmp_path)
    assert res.returncode == 0, res.stderr
    steps = load(tmp_path, "task_group")["steps"]
    g1 = steps["task_group_1"]
    assert g1["after"] == ["task_1"]
    assert g1["steps"]["task_2"] == {"command": ["bash", "-c", "echo 2"]}
    assert g1["steps"]["task_group_2"]["steps"]["task_4"] == {"command": ["bash", "-c", "echo 4"]}


def _run_on_airflow(tmp_path: Path, src: str, name: str) -> dict:
    flow_dir, dags = tmp_path / "flow", tmp_path / "imp" / "dags"
    dags.mkdir(parents=True)
    res = do_import(src, flow_dir)
    assert res.returncode == 0, res.stderr
    ir = compile_flow(str(flow_dir / f"{name}.yaml"))
    ((_, text),) = emit(ir, "airflow").items()
    (dags / f"{name}.py").write_text(text, encoding="utf-8")
    (r,) = _result(
        _start(dags.parent, [{"file": str(dags / f"{name}.py"), "dag_id": name}], str(flow_dir))
    )
    return r


def test_default_args_example_runs_on_airflow(tmp_path: Path) -> None:
    r = _run_on_airflow(tmp_path, "example_dag_factory_default_args.yml", "etl")
    assert r["state"] == "success"
    assert r["tis"] == {"extract": "success", "transform": "success", "load": "success"}


def test_dynamic_task_mapping_example_runs_on_airflow(tmp_path: Path) -> None:
    r = _run_on_airflow(tmp_path, "example_dynamic_task_mapping.yml", "dynamic_task_map")
    # dag-factory: process.expand(op_args=request.output) with make_list() == [[1], [2], [3], [4]]
    assert r["state"] == "success"
    assert [r["xcom"][f"process[{i}]"] for i in range(4)] == [
        {"return_value": [i + 1]} for i in range(4)
    ]


def test_the_copied_module_is_the_source(tmp_path: Path) -> None:
    do_import("example_dynamic_task_mapping.yml", tmp_path)
    assert (tmp_path / "expand_tasks.py").read_text() == (data() / "expand_tasks.py").read_text()
