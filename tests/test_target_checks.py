"""Targets as capability tables: ``check_supported`` reports every feature a target cannot
express, at once, located, naming the target; ``flowc validate --target T`` (or the stack's
orchestrator) runs it, so "ok" is never followed by a compile error; the front end decides
facts (resources) the same for every target."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowc.compiler.api import check_targets, compile_flow, emit, load_text
from flowc.compiler.errors import FlowcError
from tests.golden_harness import GOLDEN, case_targets

TARGETS = ["airflow", "kfp", "vertex", "k8s", "local"]


def flowc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent(text), encoding="utf-8")
    return f


@pytest.mark.parametrize("case", sorted(p.parent.name for p in GOLDEN.glob("*/flow.yaml")))
def test_validate_ok_is_never_followed_by_a_compile_error(case: str) -> None:
    import json

    meta = GOLDEN / case / "case.json"
    stack = json.loads(meta.read_text()).get("stack") if meta.exists() else None
    ir = compile_flow(GOLDEN / case / "flow.yaml", stack=stack)
    for target in sorted(set(TARGETS) & set(case_targets(GOLDEN / case))):
        try:
            check_targets(ir, [target], warn=lambda _text: None)
        except FlowcError as e:
            with pytest.raises(FlowcError) as again:
                emit(ir, target, warn=lambda _text: None)
            assert again.value.render() == e.render()  # the same problems, all of them
            continue
        assert emit(ir, target, warn=lambda _text: None)


FOREACH_OF_FOREACH = """\
flowc: 1
name: nested
params:
  xs: {type: list, default: [1, 2]}
steps:
  first:
    run: flowc_demo.steps:echo
    foreach: "${params.xs}"
    with: {value: "${item}"}
    outputs: [value]
  second:
    run: flowc_demo.steps:echo
    foreach: "${steps.first.outputs.value}"
    with: {value: "${item}"}
    outputs: [value]
  third:
    run: flowc_demo.steps:echo
    foreach: "${steps.second.outputs.value}"
    with: {value: "${item}"}
"""


def test_foreach_over_a_foreach_output_is_refused_for_kfp_and_vertex(tmp_path: Path) -> None:
    # it used to compile into a spec kfp.local cannot run ("output 'Output' ... not found")
    f = _write(tmp_path, FOREACH_OF_FOREACH)
    ir = compile_flow(f)
    for target in ("kfp", "vertex"):
        with pytest.raises(FlowcError) as e:
            emit(ir, target)
        text = e.value.render()
        assert text.count("error:") == 2, text  # both loops, at once
        assert "flow.yaml:13:" in text and f"the {target} target cannot loop over" in text
    assert emit(ir, "airflow") and emit(ir, "k8s")  # the engines that can run it still do
    out = flowc("validate", "flow.yaml", "--target", "kfp", cwd=tmp_path)
    assert out.returncode == 1 and "the kfp target cannot loop over" in out.stderr
    assert flowc("validate", "flow.yaml", cwd=tmp_path).returncode == 0  # no target asked


def test_a_schedule_on_kfp_is_a_warning_not_dropped_silently(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """\
        flowc: 1
        name: nightly
        schedule: {cron: "0 2 * * *"}
        steps:
          a: {run: flowc_demo.steps:load}
        """,
    )
    out = flowc("compile", "flow.yaml", "--target", "kfp", "-o", "out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "flow.yaml:3:1: warning: the kfp target's output holds no schedule" in out.stderr
    assert "create_recurring_run" in out.stderr
    assert (tmp_path / "out" / "pipeline.yaml").exists()
    out = flowc("compile", "flow.yaml", "--target", "vertex", "-o", "v", cwd=tmp_path)
    assert out.returncode == 0 and "warning" not in out.stderr  # Vertex has schedule.json
    assert (tmp_path / "v" / "schedule.json").exists()


STORE = """\
from flowc.runtime.stack import ArtifactStore, setting


class BucketStore(ArtifactStore):
    SETTINGS = {"bucket": setting(str, default="b")}
"""


def test_a_components_artifact_store_is_refused_in_kubernetes_pods(tmp_path: Path) -> None:
    (tmp_path / "stores.py").write_text(STORE, encoding="utf-8")
    f = _write(
        tmp_path,
        """\
        flowc: 1
        name: podstore
        components:
          bucket_store: {kind: artifact_store, class: stores.py:BucketStore}
        stacks:
          cluster:
            orchestrator: {type: kubernetes}
            artifact_store: {type: bucket_store}
        steps:
          a: {run: flowc_demo.steps:load}
        """,
    )
    ir = compile_flow(f, stack="cluster")
    with pytest.raises(FlowcError) as e:
        emit(ir, "k8s")
    text = e.value.render()
    assert "flow.yaml:8:5: error: artifact store 'bucket_store' is a class from the file " in text
    assert "k8s target's step pods cannot import" in text
    assert emit(ir, "local")  # flowc run imports it on this machine
    out = flowc("validate", "flow.yaml", "--stack", "cluster", cwd=tmp_path)  # the stack's target
    assert out.returncode == 1 and "step pods cannot import" in out.stderr


def test_a_metadata_store_flowc_run_cannot_open_is_refused_by_validate(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        """\
        flowc: 1
        name: meta
        components:
          epstore: {kind: metadata_store, class: "flowc_stackfix.entrypoint_components:EpMetadataStore"}
        stacks:
          dev:
            orchestrator: {type: local}
            metadata_store: {type: epstore}
        steps:
          a: {run: flowc_demo.steps:load}
        """,
    )
    out = flowc("validate", "flow.yaml", "--stack", "dev", cwd=tmp_path)
    assert out.returncode == 1, out.stdout
    assert (
        "flow.yaml:8:5: error: metadata store type 'epstore' cannot be opened by `flowc run`"
        in (out.stderr)
    )
    run = flowc("run", "flow.yaml", "--stack", "dev", cwd=tmp_path)
    assert run.returncode != 0  # what validate now says up front
    assert compile_flow(f, stack="dev").stack is not None  # the front end alone accepts it


@pytest.mark.parametrize("where", ["step", "defaults", "stack"])
def test_a_bad_quantity_is_one_located_error_for_validate_and_every_target(where: str) -> None:
    step_res = ", resources: {cpu: lots}" if where == "step" else ""
    text = (
        "flowc: 1\nname: q\n"
        + ("defaults: {resources: {memory: lots}}\n" if where == "defaults" else "")
        + (
            "stacks:\n  s:\n    orchestrator: {type: kubernetes, resources: {gpu_type: ''}}\n"
            if where == "stack"
            else ""
        )
        + "steps:\n"
        + f"  a: {{run: flowc_demo.steps:load{step_res}}}\n"
        + "  b: {run: flowc_demo.steps:load}\n"
    )
    with pytest.raises(FlowcError) as e:  # before any target runs: the same for all of them
        load_text(text, "f.yaml", stack="s" if where == "stack" else None)
    rendered = e.value.render()
    assert rendered.count("error:") == 1, rendered  # once, where it was written
    want = {
        "step": "f.yaml:4:52: error: step 'a': resources.cpu 'lots' is not a Kubernetes quantity",
        "defaults": "f.yaml:3:32: error: defaults: resources.memory 'lots' is not a Kubernetes",
        "stack": "error: stack 's' orchestrator: resources.gpu_type must be an accelerator name",
    }[where]
    assert want in rendered, rendered


def test_every_unsupported_feature_is_reported_at_once_naming_the_target() -> None:
    from flowc.compiler.registry import load_target
    from flowc.targets.base import check_supported

    ir = compile_flow(GOLDEN / "streaming" / "flow.yaml", stack="cluster")
    for name in ("airflow", "kfp", "vertex"):
        diags = check_supported(ir, load_target(name))
        assert len(diags) >= 3 and all(f"the {name} target" in d.message for d in diags)
        assert all(d.loc is not None and d.loc.line > 1 for d in diags)
    assert check_supported(ir, load_target("k8s")) == []
    assert check_supported(ir, load_target("local")) == []


def test_what_a_target_drops_is_a_located_warning() -> None:
    from flowc.compiler.registry import load_target
    from flowc.targets.base import check_supported

    ir = compile_flow(GOLDEN / "retries_timeout" / "flow.yaml")
    (k8s,) = check_supported(ir, load_target("k8s"))  # one warning for all the steps
    assert k8s.severity == "warning" and str(k8s.loc).endswith("flow.yaml:8:3")
    assert k8s.message == (
        "the k8s target cannot apply retry_delay (its engine's own back-off applies between "
        "attempts): steps 'fetch', 'train'"
    )
    (vertex,) = check_supported(ir, load_target("vertex"))
    assert "cannot enforce a per-step timeout: not applied to steps 'fetch', 'train'" in (
        vertex.message
    )
    assert [d for d in check_supported(ir, load_target("airflow"))] == []
    assert emit(ir, "k8s", warn=lambda _t: None)  # warnings never stop the compile
