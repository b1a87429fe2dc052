"""Regression tests on ``kfp.local`` for two KFP/Vertex executor drifts (issue 16):
``ctx.params`` held only the params a step references in ``with:`` (``flowc run`` and Airflow
give every param), and plugins were never started (``ctx.plugins`` was None although
docs/plugins.md says every engine starts them). Each runs the KFP ``pipeline.yaml`` and the
Vertex body's ``pipelineSpec`` of the same flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowc.compiler.api import compile_flow, emit
from flowc.targets.kfp import dump_yaml
from tests.conformance.cases import FLOWS
from tests.conformance.matrix import read_records


def _run(flow: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **params: Any):
    from kfp import components, local

    ir = compile_flow(flow)
    files = emit(ir, target)
    if target == "kfp":
        text = files["pipeline.yaml"]
    else:
        ((_rel, body),) = files.items()
        text = dump_yaml(json.loads(body)["pipelineSpec"])
    spec = tmp_path / f"{target}.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "records"
    monkeypatch.setenv("FLOWC_CONFORMANCE_OUT", str(out))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )
    components.load_component_from_file(str(spec))(**params)
    return {r["step"]: r for r in read_records(out)}


@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_ctx_params_holds_every_param(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = _run(FLOWS / "f_params.yaml", target, tmp_path, monkeypatch, path="in.csv", rows=5)
    defaults = {"lr": 0.5, "full": False, "tags": ["a", "b"], "opts": {"depth": 2}}
    defaults |= {"unused": "quiet"}
    # every param reaches every executor with its run-time value, referenced or not
    assert recs["uses_some"]["params"] == {"path": "in.csv", "rows": 5, **defaults}
    assert recs["uses_some"]["kwargs"] == {"path": "in.csv", "rows": 5}
    assert recs["uses_none"]["params"] == {"path": "in.csv", "rows": 5, **defaults}


@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_plugins_are_started_in_the_executor(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = _run(FLOWS / "f_plugins.yaml", target, tmp_path, monkeypatch)
    assert recs["use"]["plugins"] == ["probe:lab"]
