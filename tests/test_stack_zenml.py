"""ZenML components (seed 000): ``zenml:`` class paths and ``wrap_zenml_component``. zenml is not
installed here: without it a ``zenml:`` component is a located error naming the package; with
a stand-in ``zenml`` package on sys.path (tests/fixtures/fake_zenml) the wrapper is exercised."""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError
from flowc.runtime import stack as st

FAKE = Path(__file__).resolve().parent / "fixtures" / "fake_zenml"
K8S = "zenml.orchestrators.KubernetesOrchestrator"


@pytest.fixture
def fake_zenml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FAKE))
    yield
    for name in [m for m in sys.modules if m == "zenml" or m.startswith("zenml.")]:
        del sys.modules[name]


def write_flow(tmp_path: Path, components: str, stacks: str = "") -> Path:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "flowc: 1\nname: z\n"
        + textwrap.dedent(components)
        + textwrap.dedent(stacks)
        + 'steps:\n  a: {run: "flowc_demo.steps:square", with: {x: 3}, outputs: [y]}\n'
    )
    return f


def test_a_zenml_class_path_without_zenml_is_a_located_error(tmp_path: Path) -> None:
    assert "zenml" not in sys.modules
    f = write_flow(
        tmp_path,
        f"""\
        components:
          k8s: {{kind: orchestrator, class: "zenml:{K8S}"}}
        """,
    )
    with pytest.raises(FlowcError) as ei:
        compile_flow(f)
    (d,) = ei.value.diagnostics
    assert d.render().splitlines() == [
        f"{f}:4:36: error: component 'k8s': zenml: needs the 'zenml' package, which is not "
        "installed",
        "  hint: pip install zenml, or declare a flowc component class",
    ]
    with pytest.raises(st.ComponentError, match="needs the 'zenml' package"):
        st.ComponentRegistry().load(f"zenml:{K8S}")


def test_wrap_zenml_component_class_and_instance(fake_zenml: None) -> None:
    from zenml.artifact_stores import LocalArtifactStore
    from zenml.orchestrators import KubernetesOrchestrator

    reg = st.ComponentRegistry(None)
    wrapper = reg.wrap_zenml_component(KubernetesOrchestrator, "k8s")
    assert wrapper.kind == "orchestrator" and issubclass(wrapper, st.Orchestrator)
    comp = reg.create("orchestrator", "k8s", {"namespace": "ml"})
    assert comp.to_dict() == {"type": "k8s", "namespace": "ml"}
    assert comp.component.config == {"namespace": "ml"}  # the ZenML object, built on use
    store = LocalArtifactStore(path="/tmp/x")
    reg.wrap_zenml_component(store, "store")  # an instance, as Client().active_stack's
    assert reg.create("artifact_store", "store", {}).component is store
    (cls,) = reg.load(f"zenml:{K8S}", "k8s2")
    assert cls.zenml_class is KubernetesOrchestrator
    with pytest.raises(st.ComponentError, match="is a ZenML orchestrator, not an artifact_store"):
        reg.wrap_zenml_component(KubernetesOrchestrator, "x", kind="artifact_store")
    with pytest.raises(st.ComponentError, match="cannot tell which kind of component dict is"):
        reg.wrap_zenml_component(dict, "x")
    with pytest.raises(st.ComponentError, match="zenml: cannot import 'zenml.nope.Thing'"):
        reg.load("zenml:zenml.nope.Thing")


def test_a_wrapped_zenml_artifact_store_keeps_a_runs_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_zenml: None
) -> None:
    write_flow(
        tmp_path,
        """\
        components:
          - name: zstore
            kind: artifact_store
            zenml: zenml.artifact_stores.LocalArtifactStore
        """,
        f"""\
        stacks:
          z:
            artifact_store: {{type: zstore, path: "{tmp_path / 'zen'}"}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "z"])
    assert res.exit_code == 0, res.output
    run_id = res.output.split("run ", 1)[1].split()[0]
    assert pickle.loads((tmp_path / "zen" / "runs" / run_id / "a" / "y").read_bytes()) == 9
