"""Runtime hardening (issue 19): artifact paths stay in the run folder, secrets are masked on the
stream, steps die with their runner, a run being executed is locked, run history is right."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from flowc.compiler.api import load_text
from flowc.runtime.executor import run_plan

_ids = itertools.count()


def plan_with_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, flow: str):
    """Write ``code`` as a fresh module next to the flow; ``MOD`` in ``flow`` names it."""
    mod = f"flowc_hardening_{next(_ids)}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)
    text = textwrap.dedent(flow).replace("MOD", mod)
    return load_text(text, str(tmp_path / "flow.yaml")).to_data()


# -- item 5: ctx.artifact_path stays inside the step's folder ------------------------------------


@pytest.mark.parametrize("name", ["../../escaped.txt", "ABSOLUTE", "a/../../escaped.txt"])
def test_artifact_path_refuses_names_leaving_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    target = tmp_path / "escaped.txt"
    if name == "ABSOLUTE":
        name = str(target)
    plan = plan_with_module(
        tmp_path,
        monkeypatch,
        """
        def write(ctx, name):
            ctx.artifact_path(name).write_text("x")
            return 1
        """,
        f"""
        flowc: 1
        name: paths
        steps:
          w: {{run: "MOD:write", with: {{name: "{name}"}}, outputs: [v]}}
        """,
    )
    r = run_plan(plan, root=tmp_path / "state" / ".flowc")
    assert not r.ok
    assert "leaves the step's artifact folder" in r.error.error or "relative name" in r.error.error
    assert not target.exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_artifact_path_allows_sub_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_with_module(
        tmp_path,
        monkeypatch,
        """
        def write(ctx):
            p = ctx.artifact_path("plots/a.txt")
            p.write_text("x")
            return str(p)
        """,
        """
        flowc: 1
        name: paths
        steps:
          w: {run: "MOD:write", outputs: [v]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert (
        Path(r.outputs["w"]["v"]).resolve()
        == (tmp_path / ".flowc" / "runs" / r.run_id / "w" / "plots" / "a.txt").resolve()
    )
