"""The build cache: ``compile --all`` builds the KFP PipelineSpec once per flow and hands it to
the kfp and vertex targets; without a cache nothing is kept between compiles (no module global)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flowc.compiler.api import emit, load_text
from flowc.compiler.cli import cli
from flowc.targets import kfp
from flowc.targets.build_cache import BuildCache

FLOW = """\
flowc: 1
name: {name}
params:
  n: {{type: int, default: 3}}
steps:
  load: {{run: flowc_demo.steps:load, with: {{rows: "${{params.n}}"}}, outputs: [frame]}}
  count: {{run: flowc_demo.steps:count, with: {{frame: "${{steps.load.outputs.frame}}"}}}}
"""


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The flow names whose PipelineSpec was built, in order."""
    seen: list[str] = []
    real = kfp._Builder.build

    def counting(self: kfp._Builder) -> tuple:
        seen.append(self.ir.name)
        return real(self)

    monkeypatch.setattr(kfp._Builder, "build", counting)
    return seen


def test_kfp_and_vertex_share_one_build_through_the_cache(builds: list[str]) -> None:
    ir = load_text(FLOW.format(name="one"))
    cache = BuildCache()
    pipeline = emit(ir, "kfp", cache=cache)["pipeline.yaml"]
    job = json.loads(emit(ir, "vertex", cache=cache)["pipeline_job.json"])
    assert builds == ["one"]
    assert job["pipelineSpec"] == next(yaml.safe_load_all(pipeline))
    emit(ir, "vertex", cache=cache)
    assert builds == ["one"]
    other = load_text(FLOW.format(name="two"))  # another IR: its own build, in the same cache
    emit(other, "kfp", cache=cache)
    assert builds == ["one", "two"] and len(cache) == 2


def test_without_a_cache_nothing_is_kept(builds: list[str]) -> None:
    ir = load_text(FLOW.format(name="one"))
    emit(ir, "kfp")
    emit(ir, "vertex")
    assert builds == ["one", "one"]
    assert not [k for k, v in vars(kfp).items() if k.startswith("_last") or v is ir]


def test_compile_all_builds_each_flow_once(
    builds: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(FLOW.format(name=name))
    res = CliRunner().invoke(cli, ["compile", "a.yaml", "b.yaml", "--all", "-o", "dist"])
    assert res.exit_code == 0, res.output
    assert builds == ["a", "b"]
    for name in ("a", "b"):
        spec = next(yaml.safe_load_all((tmp_path / f"dist/{name}/kfp/pipeline.yaml").read_text()))
        job = json.loads((tmp_path / f"dist/{name}/vertex/pipeline_job.json").read_text())
        assert job["pipelineSpec"] == spec
