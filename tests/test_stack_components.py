"""Stack components: every registration path, validation as located compile errors, the
container registry prefix, the stack's target, the CLI, and stack settings at run time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flowc.compiler import stacks
from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError
from flowc.runtime import stack as st


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def flow(tmp_path: Path, stacks: str, extra: str = "", steps: str = "") -> Path:
    body = f"""
flowc: 1
name: demo
defaults:
  image: trainer:1.0
stacks:
{textwrap.indent(textwrap.dedent(stacks).strip(), "  ")}
{textwrap.dedent(extra).strip()}
steps:
  a: {{run: "flowc_demo.steps:echo"}}
{textwrap.indent(textwrap.dedent(steps).strip(), "  ")}
"""
    return write(tmp_path / "flow.yaml", body)


def at(path: Path, line_text: str, key: str, file: object = None) -> str:
    """``FILE:LINE:COL`` of ``key`` on the first line of ``path`` containing ``line_text``."""
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line_text in line:
            return f"{file or path}:{n}:{line.index(key, line.index(line_text) if key in line_text else 0) + 1}"
    raise AssertionError(f"{line_text!r} not in {path}")


def errors_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(FlowcError) as ei:
        compile_flow(path, **kw)  # type: ignore[arg-type]
    return [d.render() for d in ei.value.diagnostics]


# ---------------------------------------------------------------------------------------------
# Registration paths
# ---------------------------------------------------------------------------------------------


def test_builtins_are_registered_by_kind() -> None:
    names = st.get_component_registry().list_all()
    assert {"local", "airflow", "kubeflow", "vertex", "kubernetes"} <= set(names["orchestrator"])
    assert {"local", "gcs"} <= set(names["artifact_store"])
    assert "sqlite" in names["metadata_store"]  # the registry is per process: others may follow
    assert {"gcr", "artifact_registry", "docker"} <= set(names["container_registry"])
    targets = {
        n: st.get_component_registry().get("orchestrator", n).target
        for n in ("local", "airflow", "kubeflow", "vertex", "kubernetes")
    }
    assert targets == {
        "local": "local",
        "airflow": "airflow",
        "kubeflow": "kfp",
        "vertex": "vertex",
        "kubernetes": "k8s",
    }


def test_register_by_decorator_and_by_call() -> None:
    import flowc_stackfix.components as comps

    reg = st.get_component_registry()
    entries = {(e.kind, e.name): e for e in reg.entries()}
    dec = entries[("orchestrator", "decorated")]
    assert dec.cls is comps.DecoratedOrchestrator and dec.source.startswith("decorator")
    named = entries[("artifact_store", "named_store")]
    assert named.cls is comps.NamedStore and named.source.startswith("decorator")
    called = entries[("container_registry", "called_registry")]
    assert called.cls is comps.CalledRegistry and called.source.startswith("call")
    # usable: built, validated, serialized
    store = reg.create("artifact_store", "named_store", {"bucket": "ml", "secure": True})
    assert store.to_dict() == {"type": "named_store", "bucket": "ml", "secure": True}
    assert reg.create("container_registry", "called_registry", {}).image_uri("x:1") == (
        "registry.local:5000/x:1"
    )


def _dist_info(site: Path, dist: str, group: str, lines: list[str]) -> None:
    d = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(lines) + "\n")


def test_register_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _dist_info(
        site,
        "flowc-test-components",
        "flowc.components",
        ["epstore = flowc_stackfix.entrypoint_components:EpMetadataStore"],
    )
    monkeypatch.syspath_prepend(str(site))
    reg = st.ComponentRegistry()  # a fresh registry reads the entry points again
    cls = reg.get("metadata_store", "epstore")
    assert cls.__name__ == "EpMetadataStore"
    (entry,) = [e for e in reg.entries() if e.name == "epstore"]
    assert entry.source == "entry point (flowc-test-components)"
    assert reg.create("metadata_store", "epstore", {"dsn": "x"}).to_dict() == {
        "type": "epstore",
        "dsn": "x",
    }


def test_register_by_flowyml_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a package written for flowyml registers under the seed's group; flowc's group wins a tie
    site = tmp_path / "site"
    _dist_info(
        site,
        "flowyml-test-components",
        "flowyml.stack_components",
        [
            "fystore = flowc_stackfix.entrypoint_components:EpMetadataStore",
            "tie = flowc_stackfix.entrypoint_components:EpMetadataStore",
        ],
    )
    _dist_info(
        site,
        "flowc-tie-components",
        "flowc.components",
        ["tie = flowc_stackfix.components:PathOrchestrator"],
    )
    monkeypatch.syspath_prepend(str(site))
    reg = st.ComponentRegistry()
    assert reg.get("metadata_store", "fystore").__name__ == "EpMetadataStore"
    (entry,) = [e for e in reg.entries() if e.name == "fystore"]
    assert entry.source == "entry point (flowyml-test-components, flowyml.stack_components)"
    assert [(e.kind, e.source) for e in reg.entries() if e.name == "tie"] == [
        ("orchestrator", "entry point (flowc-tie-components)")
    ]
    assert reg.entry_point_errors == []


def test_entry_point_component_in_cli_and_flow(tmp_path: Path) -> None:
    """A separate process with the dist on its path: `flowc components list` shows it and a
    flow's stack can use it (no `components:` entry needed)."""
    site = tmp_path / "site"
    _dist_info(
        site,
        "flowc-test-components",
        "flowc.components",
        ["epstore = flowc_stackfix.entrypoint_components:EpMetadataStore"],
    )
    _dist_info(site, "flowc-broken-components", "flowc.components", ["broken = no_such_mod_zz:X"])
    f = flow(tmp_path, "s:\n  metadata_store: {type: epstore, dsn: 'postgresql://db/x'}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ["PYTHONPATH"]])}
    flowc = [sys.executable, "-m", "flowc"]
    listed = subprocess.run(
        [*flowc, "components", "list"], env=env, capture_output=True, text=True, check=True
    )
    out = listed.stdout
    # a broken third-party entry point is a warning, not a crash
    assert "flowc: warning: entry point broken = no_such_mod_zz:X (flowc-broken-components)" in (
        listed.stderr
    )
    row = [ln.split() for ln in out.splitlines() if " epstore " in ln]
    assert row and row[0][:2] == ["metadata_store", "epstore"]
    assert "entry point (flowc-test-components)" in out
    res = subprocess.run(
        [*flowc, "validate", str(f), "--stack", "s"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_module_class_reference_in_flow(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        "air:\n  orchestrator: {type: pathorch, dag_folder: dags/out}",
        extra="""
        components:
          pathorch: {kind: orchestrator, class: "flowc_stackfix.components:PathOrchestrator"}
        """,
    )
    ir = compile_flow(f, stack="air")
    assert stacks.target_for(ir.stack) == "airflow"
    assert stacks.default_output_for(ir.stack) == "dags/out"
    entry = [e for e in st.get_component_registry().entries() if e.name == "pathorch"][0]
    assert entry.source == "module flowc_stackfix.components"


def test_file_class_reference_relative_to_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "proj" / "infra" / "minio.py",
        """
        from flowc.runtime.stack import ArtifactStore, ComponentError

        class MinioStore(ArtifactStore):
            def __init__(self, name="minio", endpoint="localhost:9000", bucket="ml"):
                super().__init__(name)
                self.endpoint, self.bucket = endpoint, bucket

            def validate(self):
                if ":" not in self.endpoint:
                    raise ComponentError("endpoint needs host:port", key="endpoint")
                return True
        """,
    )
    f = flow(
        tmp_path / "proj",
        """
        ok:
          artifact_store: {type: minio, endpoint: "minio:9000", bucket: ml}
        bad:
          artifact_store: {type: minio, endpoint: "minio"}
        typo:
          artifact_store: {type: minio, endpont: "minio:9000"}
        """,
        extra="""
        components:
          minio: {kind: artifact_store, class: "infra/minio.py:MinioStore"}
        """,
    )
    monkeypatch.chdir(tmp_path)  # the path is read from the flow's folder, not the cwd
    rel = Path("proj") / "flow.yaml"
    ir = compile_flow(rel, stack="ok")
    assert ir.stack is not None and ir.stack.artifact_store.type == "minio"
    (bad,) = errors_of(rel, stack="bad")
    assert bad.startswith(
        at(f, 'endpoint: "minio"}', "endpoint", rel)
        + ": error: stack 'bad' artifact_store (minio): "
    )
    assert "endpoint needs host:port" in bad
    (typo,) = errors_of(rel, stack="typo")
    assert typo.startswith(at(f, "endpont:", "endpont", rel) + ": error: ")
    assert "unknown setting 'endpont'" in typo and "did you mean 'endpoint'?" in typo


def test_bad_component_references_are_located(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        "s:\n  orchestrator: {type: local}",
        extra="""
        components:
          nomod: {kind: orchestrator, class: "no_such_module_xyz:Thing"}
          nofile: {kind: orchestrator, class: "missing/file.py:Thing"}
          noclass: {kind: orchestrator, class: "flowc_stackfix.components:Nope"}
          wrongkind: {kind: artifact_store, class: "flowc_stackfix.components:PathOrchestrator"}
        """,
    )
    errs = errors_of(f)
    assert len(errs) == 4
    assert (
        errs[0].startswith(at(f, "nomod:", '"no_such'))
        and "cannot import module 'no_such_module_xyz'" in errs[0]
    )
    assert errs[1].startswith(at(f, "nofile:", '"missing')) and "no such file" in errs[1]
    assert (
        errs[2].startswith(at(f, "noclass:", '"flowc_stackfix'))
        and "has no class 'Nope'" in errs[2]
    )
    assert (
        errs[3].startswith(at(f, "wrongkind:", "artifact_store"))
        and "is an orchestrator, not an artifact_store" in errs[3]
    )


def test_components_list_form(tmp_path: Path) -> None:
    """flowyml's list form of `components:` means the same as the mapping form; its errors
    point into the list items."""
    mapping = flow(
        tmp_path / "mapping",
        "air:\n  orchestrator: {type: pathorch, dag_folder: dags/out}",
        extra="""
        components:
          pathorch: {kind: orchestrator, class: "flowc_stackfix.components:PathOrchestrator"}
        """,
    )
    listed = flow(
        tmp_path / "listed",
        "air:\n  orchestrator: {type: pathorch, dag_folder: dags/out}",
        extra="""
        components:
          - name: pathorch
            kind: orchestrator
            class: "flowc_stackfix.components:PathOrchestrator"
        """,
    )
    a, b = compile_flow(mapping, stack="air"), compile_flow(listed, stack="air")
    assert a.components == b.components and a.stack == b.stack
    data_a, data_b = a.to_data(), b.to_data()
    assert data_a.pop("source") != data_b.pop("source") and data_a == data_b
    assert stacks.default_output_for(b.stack) == "dags/out"

    bad = flow(
        tmp_path / "bad",
        "s:\n  orchestrator: {type: local}",
        extra="""
        components:
          - name: nokind
            class: "flowc_stackfix.components:PathOrchestrator"
          - kind: orchestrator
            class: "flowc_stackfix.components:PathOrchestrator"
          - name: twice
            kind: orchestrator
            class: "flowc_stackfix.components:PathOrchestrator"
          - name: twice
            kind: orchestrator
            class: "flowc_stackfix.components:PathOrchestrator"
          - zenml: zenml.integrations.kubernetes.orchestrators.KubernetesOrchestrator
            name: k8s
        """,
    )
    assert [e.split(": error: ", 1)[0].split(":", 1)[1] for e in errors_of(bad)] == [
        "9:11",
        "11:5",
        "16:11",
        "19:5",
    ]
    assert [e.split(": error: ", 1)[1].split("\n")[0] for e in errors_of(bad)] == [
        "'components.nokind' is missing required key 'kind'",
        "'components[1]' needs a 'name'",
        "component 'twice' is declared twice",
        "component 'k8s': zenml: needs the 'zenml' package, which is not installed",
    ]
    # the later passes' errors point into the item too
    unimportable = flow(
        tmp_path / "unimportable",
        "s:\n  orchestrator: {type: local}",
        extra="""
        components:
          - name: nomod
            kind: orchestrator
            class: "no_such_module_xyz:Thing"
        """,
    )
    (err,) = errors_of(unimportable)
    assert err.startswith(at(unimportable, '"no_such_module_xyz', '"no_such'))
    assert "component 'nomod': cannot import module 'no_such_module_xyz'" in err


# ---------------------------------------------------------------------------------------------
# validate() failures are located compile errors naming the stack and key
# ---------------------------------------------------------------------------------------------


def test_failing_validate_is_a_located_error(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        """
        gcp:
          orchestrator: {type: vertex, project: "Bad_Project", region: us-central1}
          artifact_store: {type: gcs, bucket: "gs://churn/x"}
          container_registry: {type: gcr, uri: "https://gcr.io/acme"}
        k8s:
          orchestrator: {type: kubernetes, namespace: Prod_NS, ttl_seconds_after_finished: -1}
        nope:
          orchestrator: {type: vertx, project: p}
        falsy:
          orchestrator: {type: always_invalid}
        """,
        extra="""
        components:
          always_invalid: {kind: orchestrator, class: "flowc_stackfix.components:AlwaysInvalid"}
        """,
    )
    errs = errors_of(f, stack="gcp")
    assert errs[0].startswith(
        at(f, "Bad_Project", "project") + ": error: stack 'gcp' orchestrator (vertex): project "
    )
    assert "hint: lowercase letters, digits and hyphens" in errs[0]
    assert errs[1].startswith(
        at(f, "gs://churn", "bucket") + ": error: stack 'gcp' artifact_store (gcs): bucket "
    )
    assert "hint: write bucket: churn" in errs[1]
    assert errs[2].startswith(
        at(f, "https://gcr", "uri") + ": error: stack 'gcp' container_registry (gcr): uri "
    )
    (k8s,) = errors_of(f, stack="k8s")
    assert k8s.startswith(
        at(f, "Prod_NS", "namespace") + ": error: stack 'k8s' orchestrator (kubernetes): namespace"
    )
    (nope,) = errors_of(f, stack="nope")
    assert nope.startswith(
        at(f, "vertx", "type") + ": error: stack 'nope' orchestrator (vertx): unknown"
    )
    assert "did you mean 'vertex'?" in nope
    (falsy,) = errors_of(f, stack="falsy")
    assert "stack 'falsy' orchestrator (always_invalid):" in falsy and "failed validation" in falsy


def test_validate_error_through_the_cli(tmp_path: Path) -> None:
    f = flow(tmp_path, "v:\n  orchestrator: {type: vertex, project: my-project, region: Mars}")
    res = CliRunner().invoke(cli, ["compile", str(f), "--stack", "v", "-o", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert (
        at(f, "Mars", "region") + ": error: stack 'v' orchestrator (vertex): region 'Mars'"
        in res.output
    )
    assert "Traceback" not in res.output


def test_env_interpolated_settings_are_validated(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        'v:\n  orchestrator: {type: vertex, project: "${env.GCP_PROJECT}", region: europe-west4}',
    )
    ir = compile_flow(f, stack="v", environ={"GCP_PROJECT": "acme-ml-prod"})
    assert ir.stack.orchestrator.setting("project") == "acme-ml-prod"
    (err,) = errors_of(f, stack="v", environ={"GCP_PROJECT": "ACME"})
    assert "project 'ACME' is not a valid GCP project id" in err


# ---------------------------------------------------------------------------------------------
# Container registry prefix, target from the orchestrator
# ---------------------------------------------------------------------------------------------


def test_container_registry_prefixes_step_images(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        """
        gcr:
          orchestrator: {type: kubeflow}
          container_registry: {type: gcr, uri: gcr.io/acme}
        ar:
          orchestrator: {type: vertex, project: acme-ml}
          container_registry: {type: artifact_registry, location: europe-west4, project: acme-ml, repository: ml}
        none:
          orchestrator: {type: local}
        """,
        steps="""
        b: {run: "flowc_demo.steps:echo", image: "us-docker.pkg.dev/other/repo/b:2"}
        c: {run: "flowc_demo.steps:echo", image: "gcr.io/acme/trainer:1.0"}
        """,
    )
    gcr = compile_flow(f, stack="gcr")
    assert [s.image for s in gcr.steps] == [
        "gcr.io/acme/trainer:1.0",
        "us-docker.pkg.dev/other/repo/b:2",
        "gcr.io/acme/trainer:1.0",
    ]
    ar = compile_flow(f, stack="ar")
    assert ar.step("a").image == "europe-west4-docker.pkg.dev/acme-ml/ml/trainer:1.0"
    assert compile_flow(f, stack="none").step("a").image == "trainer:1.0"
    assert compile_flow(f).step("a").image == "trainer:1.0"
    assert "gcr.io/acme/trainer:1.0" in json.dumps(gcr.to_data())


def test_target_for_accepts_ir_stack_component_and_plan() -> None:
    import flowc_stackfix.components  # noqa: F401 - registers the "decorated" orchestrator

    from flowc.compiler.ir import ComponentConfig, Stack

    orch = ComponentConfig(kind="orchestrator", type="kubernetes", settings=(("namespace", "ml"),))
    s = Stack(name="k", components=(orch,))
    assert (
        stacks.target_for(s) == stacks.target_for(orch) == stacks.target_for(s.to_data()) == "k8s"
    )
    assert stacks.target_for(Stack(name="empty")) is None
    assert stacks.target_for({"components": {"orchestrator": {"type": "decorated"}}}) == "k8s"
    with pytest.raises(st.ComponentError):
        stacks.target_for({"components": {"orchestrator": {"type": "nonesuch"}}})


def test_compile_with_stack_and_no_target_uses_the_orchestrator(tmp_path: Path) -> None:
    f = flow(
        tmp_path,
        """
        kf:
          orchestrator: {type: kubeflow, host: 'http://localhost:8080'}
          container_registry: {type: gcr, uri: gcr.io/acme}
        """,
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["compile", str(f), "--stack", "kf", "-o", str(out)])
    assert res.exit_code == 0, res.output
    (pkg,) = out.iterdir()
    text = pkg.read_text()
    assert pkg.suffix == ".yaml" and "pipelineInfo" in text
    spec = next(yaml.safe_load_all(text))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"gcr.io/acme/trainer:1.0"}


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_components_list_table() -> None:
    res = CliRunner().invoke(cli, ["components", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "SOURCE", "CLASS"]
    rows = {tuple(ln.split()[:3]) for ln in lines[1:]}
    assert ("orchestrator", "vertex", "builtin") in rows
    assert ("artifact_store", "gcs", "builtin") in rows
    assert ("metadata_store", "sqlite", "builtin") in rows
    assert ("container_registry", "gcr", "builtin") in rows


def test_components_load_honours_name(tmp_path: Path) -> None:
    """`components load X --name Y` registers (and lists) the loaded class as Y only, for a
    class reference, a module or a file; a source with several classes needs one named."""
    write(
        tmp_path / "one_comp.py",
        """
        from flowc.runtime.stack import Orchestrator

        class OnlyOne(Orchestrator):
            pass
        """,
    )

    def load(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowc", "components", "load", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ['PYTHONPATH']}"},
            timeout=120,
        )

    def rows(res: subprocess.CompletedProcess[str]) -> list[list[str]]:
        assert res.returncode == 0, res.stdout + res.stderr
        return [ln.split()[:3] for ln in res.stdout.splitlines()[1:]]

    assert rows(load("one_comp", "--name", "mine")) == [["orchestrator", "mine", "module"]]
    assert rows(load(str(tmp_path / "one_comp.py"), "--name", "mine")) == [
        ["orchestrator", "mine", "file"]
    ]
    # a decorated class (already registered under its own name at import) is listed as asked
    assert rows(load("flowc_stackfix.components:NamedStore", "--name", "store2")) == [
        ["artifact_store", "store2", "module"]
    ]
    res = load("flowc_stackfix.components", "--name", "mine")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.splitlines() == [
        "flowc: error: --name mine: 'flowc_stackfix.components' defines 5 components "
        "(AlwaysInvalid, CalledRegistry, DecoratedOrchestrator, NamedStore, PathOrchestrator)",
        "  hint: name the class: flowc components load "
        "flowc_stackfix.components:AlwaysInvalid --name mine",
    ]


def test_components_list_with_flow_and_load(tmp_path: Path) -> None:
    write(
        tmp_path / "extra" / "regs.py",
        """
        from flowc.runtime.stack import ContainerRegistry, setting

        class QuayRegistry(ContainerRegistry):
            type_name = "quay"
            SETTINGS = {"org": setting(str, default="acme")}

            @property
            def uri(self):
                return "quay.io/" + self.settings["org"]
        """,
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["components", "load", str(tmp_path / "extra" / "regs.py")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].split()[:2] == ["container_registry", "quay"]
    res = runner.invoke(
        cli, ["components", "load", "flowc_stackfix.components:PathOrchestrator", "--name", "p2"]
    )
    assert res.exit_code == 0 and " p2 " in res.output
    res = runner.invoke(cli, ["components", "load", "no_such_mod_q"])
    assert res.exit_code == 1
    assert "flowc: error: cannot load components from 'no_such_mod_q'" in res.output
    f = flow(
        tmp_path,
        "s:\n  container_registry: {type: quay2, org: ml}",
        extra="""
        components:
          quay2: {kind: container_registry, class: "extra/regs.py:QuayRegistry"}
        """,
    )
    res = runner.invoke(cli, ["components", "list", str(f), "--stack", "s"])
    assert res.exit_code == 0, res.output
    assert any(
        ln.split()[:4] == ["container_registry", "quay2", "file", "extra/regs.py"]
        for ln in res.output.splitlines()
    )


# ---------------------------------------------------------------------------------------------
# Stack settings at run time (the local runtime uses the stack's stores)
# ---------------------------------------------------------------------------------------------


def test_stack_stores_reach_the_local_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow(
        tmp_path,
        """
        local:
          orchestrator: {type: local, max_workers: 1}
          artifact_store: {type: local, path: store/artifacts}
          metadata_store: {type: sqlite, path: store/meta.db}
        """,
    )
    write(
        tmp_path / "flow.yaml",
        (tmp_path / "flow.yaml")
        .read_text()
        .replace(
            'a: {run: "flowc_demo.steps:echo"}',
            'a: {run: "flowc_stackfix.tasks:square", with: {x: 7}, outputs: [sq]}',
        ),
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "local", "--root", "state"])
    assert res.exit_code == 0, res.output
    art = list((tmp_path / "store" / "artifacts" / "runs").glob("*/a/sq.json"))
    assert len(art) == 1 and json.loads(art[0].read_text())["value"] == 49
    assert (tmp_path / "store" / "meta.db").is_file()
    import sqlite3

    con = sqlite3.connect(tmp_path / "store" / "meta.db")
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()
    assert tables, "the stack's metadata store was not written"
    assert not (tmp_path / "state" / "metadata.db").exists()
    # the helpers the runtime offers agree with what the executor did
    plan = compile_flow("flow.yaml", stack="local").to_data()
    assert st.metadata_path(plan["stack"]) == Path("store/meta.db")
    store = st.open_artifact_store(plan["stack"], root="state")
    assert store.root == (tmp_path / "store" / "artifacts").absolute()


def test_gcs_component_opens_the_gcs_store() -> None:
    comp = st.build_component(
        "artifact_store", {"type": "gcs", "bucket": "churn-art", "prefix": "p/"}
    )
    store = comp.open()  # no network until used
    from flowc.runtime.gcs_store import GcsArtifactStore

    assert isinstance(store, GcsArtifactStore)
    assert store._name("r1", "train", "model", "json") == "p/runs/r1/train/model.json"


@pytest.mark.parametrize(
    ("store", "root"),
    [
        (
            "{type: gcs, bucket: churn-art, prefix: team/churn/}",
            "gs://churn-art/team/churn/pipelines",
        ),
        ("{type: gcs, bucket: churn-art}", "gs://churn-art/pipelines"),
    ],
)
def test_vertex_keeps_the_gcs_store_prefix(tmp_path: Path, store: str, root: str) -> None:
    """Without pipeline_root, Vertex's root is under the GCS store's bucket and prefix, where
    `flowc run` with the same stack puts its objects."""
    from flowc.compiler.api import emit

    f = flow(
        tmp_path,
        f"""
        gcp:
          orchestrator: {{type: vertex, project: acme-ml, region: europe-west4}}
          artifact_store: {store}
        """,
    )
    ir = compile_flow(f, stack="gcp")
    body = json.loads(emit(ir, "vertex")["pipeline_job.json"])
    assert body["runtimeConfig"]["gcsOutputDirectory"] == root
    opened = st.open_artifact_store(ir.to_data()["stack"], root=str(tmp_path))
    assert root.startswith(f"gs://{opened.bucket_name}/{opened.prefix}".rstrip("/") + "/")


def test_custom_artifact_store_from_a_file_used_by_flowc_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `components:` artifact store (file path) is what `flowc run` stores outputs with."""
    write(
        tmp_path / "stores.py",
        """
        from flowc.runtime.stack import ArtifactStore, setting
        from flowc.runtime.store import LocalArtifactStore

        class TaggedStore(ArtifactStore):
            SETTINGS = {"folder": setting(str, default="tagged")}

            def open(self, root=".flowc"):
                return LocalArtifactStore({"path": self.settings["folder"] + "/by-tagged-store"}, root)
        """,
    )
    write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: custom_store
        stacks:
          mine:
            artifact_store: {type: tagged, folder: out}
        components:
          tagged: {kind: artifact_store, class: "stores.py:TaggedStore"}
        steps:
          a: {run: "flowc_demo.steps:square", with: {x: 5}, outputs: [y]}
        """,
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "mine"])
    assert res.exit_code == 0, res.output
    (out,) = (tmp_path / "out" / "by-tagged-store" / "runs").glob("*/a/y.json")
    assert json.loads(out.read_text()) == 25


def test_artifact_store_written_the_flowyml_way_used_by_flowc_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact store component with flowyml's save/load/exists (no open()) stores the run's
    outputs (it used to die with a raw NotImplementedError)."""
    write(
        tmp_path / "seedstores.py",
        """
        import pickle
        from pathlib import Path
        from typing import Any

        from flowc.runtime.stack import ArtifactStore

        class PickleFolderStore(ArtifactStore):
            def __init__(self, name: str = "pickles", folder: str = "pickles"):
                super().__init__(name)
                self.folder = folder

            def validate(self) -> bool:
                return True

            def save(self, artifact: Any, path: str) -> str:
                target = Path(self.folder) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(pickle.dumps(artifact))
                return f"pickles://{path}"

            def load(self, path: str) -> Any:
                return pickle.loads((Path(self.folder) / path).read_bytes())

            def exists(self, path: str) -> bool:
                return (Path(self.folder) / path).exists()

            def to_dict(self):
                return {"type": "pickles", "folder": self.folder}

        class Neither(ArtifactStore):
            pass
        """,
    )
    write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: seed_store
        stacks:
          mine:
            artifact_store: {type: pickles, folder: out}
          broken:
            artifact_store: {type: neither}
        components:
          pickles: {kind: artifact_store, class: "seedstores.py:PickleFolderStore"}
          neither: {kind: artifact_store, class: "seedstores.py:Neither"}
        steps:
          a: {run: "flowc_demo.steps:square", with: {x: 5}, outputs: [y]}
          b: {run: "flowc_demo.steps:square", with: {x: "${steps.a.outputs.y}"}, outputs: [y]}
        """,
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "mine", "--root", "state"])
    assert res.exit_code == 0, res.output
    run_id = res.output.split("run ", 1)[1].split()[0]
    import pickle

    folder = tmp_path / "out" / "runs" / run_id
    assert pickle.loads((folder / "a" / "y").read_bytes()) == 25
    assert pickle.loads((folder / "b" / "y").read_bytes()) == 625
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "broken", "--root", "state"])
    assert res.exit_code == 1
    assert "NotImplementedError" not in res.output
    assert "artifact store 'neither' (Neither) implements neither open(root) nor save" in res.output


def test_custom_metadata_store_used_by_flowc_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `components:` metadata store kind runs under `flowc run`: the run records go to SQLite
    at its `location(root)` (it used to be refused: "known: sqlite")."""
    write(
        tmp_path / "meta.py",
        """
        from pathlib import Path

        from flowc.runtime.stack import MetadataStore, setting

        class TeamMeta(MetadataStore):
            SETTINGS = {"team": setting(str, default="ml")}

            def location(self, root=".flowc"):
                return Path(root) / "teams" / self.settings["team"] / "runs.sqlite"

        class NoLocation(MetadataStore):
            pass
        """,
    )
    write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: custom_meta
        stacks:
          mine:
            metadata_store: {type: teammeta, team: churn}
          none:
            metadata_store: {type: nolocation}
        components:
          teammeta: {kind: metadata_store, class: "meta.py:TeamMeta"}
          nolocation: {kind: metadata_store, class: "meta.py:NoLocation"}
        steps:
          a: {run: "flowc_demo.steps:square", with: {x: 5}, outputs: [y]}
        """,
    )
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "mine", "--root", "state"])
    assert res.exit_code == 0, res.output
    run_id = res.output.split("run ", 1)[1].split()[0]
    import sqlite3

    con = sqlite3.connect(tmp_path / "state" / "teams" / "churn" / "runs.sqlite")
    try:
        rows = con.execute("select run_id, status from runs").fetchall()
    finally:
        con.close()
    assert rows == [(run_id, "success")]
    assert not (tmp_path / "state" / "metadata.db").exists()
    res = CliRunner().invoke(cli, ["run", "flow.yaml", "--stack", "none", "--root", "state"])
    assert res.exit_code == 1
    assert "metadata store type 'nolocation' (NoLocation) does not implement location(root)" in (
        res.output
    )


def test_run_refuses_a_stack_that_runs_elsewhere(tmp_path: Path) -> None:
    """`flowc run --stack S` with an Airflow/Vertex/... orchestrator says which target to compile
    for and exits 1 (it used to run the flow locally, silently)."""
    f = flow(
        tmp_path,
        """
        air:
          orchestrator: {type: airflow, dag_folder: dags}
        here:
          orchestrator: {type: local}
        """,
        extra="""
        environments:
          prod: {stack: air}
        """,
    )
    root = tmp_path / "state"
    for args in (["--stack", "air"], ["-e", "prod"]):
        res = subprocess.run(
            [sys.executable, "-m", "flowc", "run", str(f), "--root", str(root), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert res.returncode == 1, res.stdout + res.stderr
        assert res.stderr.splitlines() == [
            f"{at(f, 'orchestrator: {type: airflow', 'orchestrator')}: error: stack 'air' runs "
            "on airflow (orchestrator type 'airflow'): flowc run runs flows on this machine only",
            f"  hint: compile it for airflow: flowc compile {f} {' '.join(args)} --target "
            "airflow; or run it here with a stack whose orchestrator is local",
        ]
        assert "Traceback" not in res.stderr and not root.exists()
    res = CliRunner().invoke(cli, ["run", str(f), "--stack", "here", "--root", str(root)])
    assert res.exit_code == 0, res.output


def test_stack_resources_are_defaults_below_the_flow(tmp_path: Path) -> None:
    f = write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: res
        defaults:
          resources: {memory: 4Gi}
        stacks:
          big:
            orchestrator: {type: kubernetes, namespace: ml, resources: {cpu: 2, memory: 8Gi, gpu: 1}}
          bad:
            orchestrator: {type: local, resources: {cpus: 2}}
        steps:
          a: {run: "flowc_demo.steps:echo"}
          b: {run: "flowc_demo.steps:echo", resources: {cpu: "8", gpu: 0}}
        """,
    )
    ir = compile_flow(f, stack="big")
    assert ir.step("a").resources.to_data() == {"cpu": "2", "memory": "4Gi", "gpu": 1}
    assert ir.step("b").resources.to_data() == {"cpu": "8", "memory": "4Gi", "gpu": 0}
    plain = compile_flow(f)
    assert plain.step("a").resources.to_data() == {"memory": "4Gi"}
    (err,) = errors_of(f, stack="bad")
    assert err.startswith(at(f, "cpus", "resources") + ": error: stack 'bad' orchestrator (local)")
    assert "unknown key 'cpus'" in err and "did you mean 'cpu'?" in err
