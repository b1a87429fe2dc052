"""Typed KFP outputs: a step callable's return annotation, read from the module's source by the
``output_types`` pass without importing it, becomes the type of the component's output parameter
(NUMBER_INTEGER, NUMBER_DOUBLE, STRING, BOOLEAN, LIST, STRUCT), so the KFP UI and plain-KFP
consumers see values, not JSON text. Proved in ``kfp.local``: the executor outputs hold the
typed values, and a flowc step reading them gets what it gets under ``flowc run``."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.passes.output_types import module_file, step_output_types

MODULE = '''\
"""Step functions with return annotations (imported only when a step runs)."""
import os
from typing import Optional, TypedDict

open(os.environ["TYPED_MARKER"], "a").write("imported\\n")


class Both(TypedDict):
    model: str
    auc: float


def count() -> int:
    return 7


def ratio() -> "float":
    return 0.25


def word() -> str:
    return "hi"


def flag() -> bool:
    return True


def rows() -> list[dict]:
    return [{"id": 1, "w": 0.5}, {"id": 2, "w": 1.0}]


def info() -> dict:
    return {"k": [1, 2], "f": 1.5, "t": "x"}


def both() -> Both:
    return {"model": "m", "auc": 0.9}


def maybe() -> Optional[int]:
    return 3


def untyped():
    return {"a": 1}


def echo(**kw):
    return kw
'''

FLOW = """\
flowc: 1
name: typed
steps:
  n: {run: "typedsteps:count", outputs: [n]}
  x: {run: "typedsteps:ratio", outputs: [x]}
  s: {run: "typedsteps:word", outputs: [s]}
  b: {run: "typedsteps:flag", outputs: [b]}
  l: {run: "typedsteps:rows", outputs: [l]}
  d: {run: "typedsteps:info", outputs: [d]}
  m: {run: "typedsteps:both", outputs: [model, auc]}
  o: {run: "typedsteps:maybe", outputs: [o]}
  u: {run: "typedsteps:untyped", outputs: [u]}
  see:
    run: "typedsteps:echo"
    with:
      n: "${steps.n.outputs.n}"
      x: "${steps.x.outputs.x}"
      s: "${steps.s.outputs.s}"
      b: "${steps.b.outputs.b}"
      l: "${steps.l.outputs.l}"
      d: "${steps.d.outputs.d}"
      model: "${steps.m.outputs.model}"
      auc: "${steps.m.outputs.auc}"
      o: "${steps.o.outputs.o}"
      u: "${steps.u.outputs.u}"
    outputs: [all]
"""

WANT_TYPES = {
    "n": "NUMBER_INTEGER",
    "x": "NUMBER_DOUBLE",
    "s": "STRING",
    "b": "BOOLEAN",
    "l": "LIST",
    "d": "STRUCT",
    "o": "STRING",  # Optional: no KFP type, JSON text as before
    "u": "STRING",
}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "typedsteps.py").write_text(MODULE, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    marker = tmp_path / "imported.txt"
    monkeypatch.setenv("TYPED_MARKER", str(marker))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("typedsteps", None)
    return tmp_path


def test_the_annotations_are_read_without_importing(project: Path) -> None:
    ir = compile_flow("flow.yaml")
    assert not (project / "imported.txt").exists() and "typedsteps" not in sys.modules
    types = {s.name: dict(s.output_types) for s in ir.steps}
    assert types == {
        "n": {"n": "int"},
        "x": {"x": "float"},
        "s": {"s": "str"},
        "b": {"b": "bool"},
        "l": {"l": "list"},
        "d": {"d": "dict"},
        "m": {"model": "str", "auc": "float"},
        "o": {},
        "u": {},
        "see": {},
    }
    assert "output_types" not in json.dumps(ir.to_data())  # the plan is unchanged


def test_what_leaves_an_output_untyped(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "pkg" / "mod.py").write_text(textwrap.dedent("""\
            import functools
            import typing

            def deco(f):
                return f

            @deco
            def decorated() -> int: ...

            def rebound() -> int: ...
            rebound = functools.partial(print)

            def union() -> int | None: ...

            def typing_list() -> typing.List[int]: ...

            async def later() -> int: ...
            """))
    roots = (str(tmp_path),)
    assert module_file("pkg.mod", roots) == str(tmp_path / "pkg" / "mod.py")
    assert module_file("pkg.missing", roots) is None

    def typed(ref: str) -> tuple:
        from flowc.compiler.ir import Step

        return step_output_types(Step(name="a", kind="run", run=ref, outputs=("o",)), roots)

    assert typed("pkg.mod:typing_list") == (("o", "list"),)
    for name in ("decorated", "rebound", "union", "later", "absent"):
        assert typed(f"pkg.mod:{name}") == (), name


def test_kfp_local_reads_typed_outputs(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import components, local

    from flowc.runtime.executor import run_plan

    ir = compile_flow("flow.yaml")
    text = emit(ir, "kfp")["pipeline.yaml"]
    (project / "pipeline.yaml").write_text(text, encoding="utf-8")
    spec = next(yaml.safe_load_all(text))
    comps = spec["components"]
    got_types = {
        name: comps[f"comp-{name}"]["outputDefinitions"]["parameters"]["Output"]["parameterType"]
        for name in WANT_TYPES
    }
    assert got_types == WANT_TYPES
    m_out = comps["comp-m"]["outputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in m_out.items()} == {
        "model": "STRING",
        "auc": "NUMBER_DOUBLE",
    }
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(project), os.environ["PYTHONPATH"]]))
    root = project / "kfp-root"
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    components.load_component_from_file(str(project / "pipeline.yaml"))()
    outs = {
        f.parent.name: json.loads(f.read_text())["parameterValues"]
        for f in root.rglob("executor_output.json")
    }
    # what the KFP UI and a plain-KFP consumer read: the values themselves
    assert outs["n"] == {"Output": 7}
    assert outs["x"] == {"Output": 0.25}
    assert outs["s"] == {"Output": "hi"}
    assert outs["b"] == {"Output": True}
    assert outs["l"] == {"Output": [{"id": 1, "w": 0.5}, {"id": 2, "w": 1.0}]}
    assert outs["d"] == {"Output": {"k": [1, 2], "f": 1.5, "t": "x"}}
    assert outs["m"] == {"model": "m", "auc": 0.9}
    assert outs["o"] == {"Output": "3"} and outs["u"] == {"Output": '{"a": 1}'}  # JSON text
    # a flowc step reading them sees what it sees under flowc run (nested ints stay ints)
    monkeypatch.syspath_prepend(str(project))  # as `flowc run` puts the flow's folder first
    local_run = run_plan(ir.to_data(), root=str(project / "flowc"))
    assert local_run.ok
    assert json.loads(outs["see"]["Output"]) == local_run.outputs["see"]["all"]
    assert local_run.outputs["see"]["all"]["l"][0] == {"id": 1, "w": 0.5}
