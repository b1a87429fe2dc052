"""``flowc import``'s command-line contract (issue 23): located errors without tracebacks, no
half-written output, --strict, --name, deterministic formatted output that validates, and the
writer reading back as the data it was given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from flowc.compiler.importers.writer import Map, render

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "import"


def flowc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args], capture_output=True, text=True, timeout=300
    )


def test_missing_source(tmp_path: Path) -> None:
    res = flowc("import", str(tmp_path / "nope.yml"), "-o", str(tmp_path / "out"))
    assert res.returncode == 1
    assert res.stderr.startswith(f"{tmp_path / 'nope.yml'}:1:1: error: no such file")
    assert not (tmp_path / "out").exists()


def test_bad_dag_factory_file_reports_every_problem(tmp_path: Path) -> None:
    src = tmp_path / "dags.yml"
    src.write_text("a:\n  tasks:\n    - operator: x\nb:\n  schedule: '@daily'\n")
    res = flowc("import", str(src), "-o", str(tmp_path / "out"))
    assert res.returncode == 1
    assert f"{src}:2:5: error: DAG 'a': task 1 has no task_id" in res.stderr or (
        f"{src}:3:7: error: DAG 'a': task 1 has no task_id" in res.stderr
    ), res.stderr
    assert f"{src}:5:3: error: DAG 'b' has no tasks" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_invalid_yaml_is_located(tmp_path: Path) -> None:
    src = tmp_path / "dags.yml"
    src.write_text("a:\n  tasks: [\n")
    res = flowc("import", str(src), "-o", str(tmp_path / "out"))
    assert res.returncode == 1 and res.stderr.startswith(f"{src}:"), res.stderr
    assert "error:" in res.stderr and "Traceback" not in res.stderr


def test_name_and_bad_name(tmp_path: Path) -> None:
    src = DATA / "dag_factory" / "example_dag_factory_default_args.yml"
    res = flowc("import", str(src), "-o", str(tmp_path), "--name", "my_etl")
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load((tmp_path / "my_etl.yaml").read_text())["name"] == "my_etl"
    bad = flowc("import", str(src), "-o", str(tmp_path / "x"), "--name", "My-ETL")
    assert bad.returncode == 2 and "my_etl" in bad.stderr
    many = flowc(
        "import",
        str(DATA / "dag_factory" / "example_dag_factory_default_config.yml"),
        "-o",
        str(tmp_path / "y"),
        "--name",
        "one",
    )
    assert many.returncode == 1 and "--name needs a source with one DAG" in many.stderr


def test_output_is_deterministic_and_validates(tmp_path: Path) -> None:
    for src in ("dag_factory/example_taskflow.yml", "kfp/pipeline_with_condition.yaml"):
        a, b = tmp_path / "a", tmp_path / "b"
        assert flowc("import", str(DATA / src), "-o", str(a)).returncode == 0
        assert flowc("import", str(DATA / src), "-o", str(b)).returncode == 0
        for f in a.iterdir():
            assert f.read_text() == (b / f.name).read_text(), f
    ok = flowc("validate", str(tmp_path / "a" / "single_condition_pipeline.yaml"))
    assert ok.returncode == 0, ok.stderr
    text = (tmp_path / "a" / "single_condition_pipeline.yaml").read_text()
    assert text.startswith(
        "# Imported by `flowc import` from pipeline_with_condition.yaml.\nflowc: 1\n"
    )
    comp = flowc(
        "compile",
        str(tmp_path / "a" / "single_condition_pipeline.yaml"),
        "--all",
        "-o",
        str(tmp_path / "c"),
    )
    assert comp.returncode == 0, comp.stderr


def test_writer_comments_and_read_back() -> None:
    m = Map()
    m.set("flowc", 1)
    m.set("name", "x", comment="the DAG id")
    steps = Map(spaced=True)
    s = Map()
    s.set("command", ["bash", "-c", "echo a, b: #c"])
    s.notes.append("flowc import: something dropped")
    steps.set("a", s)
    steps.set("b", Map().set("run", "m:f").set("with", {"x": "yes", "y": "${item}", "z": [1, "2"]}))
    m.set("steps", steps)
    text = render(m, ["header"])
    assert yaml.safe_load(text) == m.plain()
    assert "name: x  # the DAG id\n" in text
    assert "    # flowc import: something dropped\n" in text
    assert text.startswith("# header\n")
