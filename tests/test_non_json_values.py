"""Values that are not JSON (a DataFrame, issue 16): a step output annotated as one is an IR fact
(``Step.non_json_outputs``, read from the source, nothing imported); KFP and Vertex, whose
values cross as JSON parameters, refuse it at compile time, located, instead of failing at run
time; ``flowc run`` and the Kubernetes driver (the artifact store pickles it) carry it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.errors import FlowcError

STEPS = textwrap.dedent("""\
    import pandas as pd


    def make(rows: int = 3) -> pd.DataFrame:
        return pd.DataFrame({"a": list(range(1, rows + 1))})


    def total(frame: "pd.DataFrame") -> int:
        return int(frame["a"].sum())
    """)
FLOW = """\
flowc: 1
name: frames
steps:
  make: {run: frame_steps:make, outputs: [frame]}
  total: {run: frame_steps:total, with: {frame: "${steps.make.outputs.frame}"}, outputs: [n]}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "frame_steps.py").write_text(STEPS, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    sys.modules.pop("frame_steps", None)
    return tmp_path


def test_the_annotation_is_an_ir_fact_read_without_importing(project: Path) -> None:
    ir = compile_flow(str(project / "flow.yaml"))
    assert ir.step("make").non_json_outputs == (("frame", "a DataFrame"),)
    assert ir.step("make").output_types == ()  # not a KFP type either
    assert ir.step("total").output_types == (("n", "int"),)
    assert "frame_steps" not in sys.modules


@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_kfp_and_vertex_refuse_it_at_compile_time_located(project: Path, target: str) -> None:
    ir = compile_flow(str(project / "flow.yaml"))
    with pytest.raises(FlowcError) as e:
        emit(ir, target)
    out = e.value.render()
    assert (
        f"flow.yaml:4:3: error: step 'make': output 'frame' is a DataFrame (its return "
        f"annotation), which the {target} target cannot pass between steps" in out
    )
    assert "frame.to_dict('records')" in out
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "validate", "flow.yaml", "--target", target],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert res.returncode == 1 and "is a DataFrame" in res.stderr and "Traceback" not in res.stderr


def test_flowc_run_carries_the_frame(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowc.runtime.executor import run_plan

    monkeypatch.chdir(project)
    result = run_plan(compile_flow(str(project / "flow.yaml")).to_data(), {})
    assert result.status == "success", result.error
    assert result.outputs["total"]["n"] == 6


def test_the_kubernetes_driver_carries_the_frame_through_the_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.k8s_fake_api import FakeCluster, drive_configmap, plan_configmap

    cm = plan_configmap(compile_flow(str(project / "flow.yaml")))
    assert json.loads(cm["data"]["plan.json"])["steps"]["make"]["outputs"] == ["frame"]
    with FakeCluster(tmp_path / "cluster") as cluster:
        code, store = drive_configmap(cluster, cm, monkeypatch)
        assert code == 0, capsys.readouterr().out
        assert store.get("r1", "total", "n") == 6
        assert list(store.get("r1", "make", "frame")["a"]) == [1, 2, 3]
