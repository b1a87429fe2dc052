"""Integration frameworks from YAML: the IR the front-end builds (nested per-integration layers,
lolpop-style options inside ``config``), the compile-time checks with their locations, and flows
whose steps call ``integration:OBJ.METHOD`` run by the local executor and compiled by every
target."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow, emit
from flowc.compiler.errors import FlowcError
from flowc.compiler.registry import target_names
from flowc.runtime.executor import run_plan

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden" / "integration_framework" / "flow.yaml"

HEAD = "flowc: 1\nname: lol\n"
STEP = "steps:\n  s: {run: flowc_demo.steps:echo}\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flow.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def errors(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(FlowcError) as e:
        compile_flow(p)
    return e.value.render().replace(str(p), "flow.yaml")


def test_golden_flow_ir_has_nested_layers_and_options_from_config() -> None:
    fw = compile_flow(GOLDEN).integrations
    assert fw is not None and fw.explicit
    comp = fw.layer("component")
    assert comp.update_peer_integrations is True  # lolpop writes it inside the layer's config
    assert dict(comp.config) == {"tracking_uri": "file:///tmp/mlruns"}
    train = fw.layer("pipeline").integrations[1]
    assert train.key == "train" and dict(train.config) == {"lr": 0.05}
    (own,) = train.layers
    assert own.name == "component" and own.integrations[0].key == "model_trainer"
    assert fw.to_data()["layers"]["pipeline"]["integrations"][1]["layers"]["component"]


def test_golden_flow_runs_with_one_tree_per_run(tmp_path: Path) -> None:
    plan = compile_flow(GOLDEN).to_data()
    plan["steps"]["again"] = {**plan["steps"]["wiring"], "run": "flowc_lolpop.steps:tree_id"}
    plan["steps"]["again"]["outputs"] = ["id"]
    plan["order"].append("again")
    result = run_plan(plan, root=tmp_path / ".flowc")
    assert result.ok, result.error
    out = result.outputs
    assert out["process"]["processed"] == "processed data/train.csv"  # the root's own method
    assert out["fit"] == {"model": "xgb-3", "epochs": 2, "lr": 0.05}  # train's own trainer
    assert out["log"]["logged"] == "logged xgb-3 to file:///tmp/mlruns"
    facts = out["wiring"]["facts"]
    assert facts["metadata_tracker.metrics_tracker"] and facts["metrics_tracker.metadata_tracker"]
    assert facts["process.train"] is False  # "there is no runner.process.train attribute"
    assert facts["train.metadata_tracker"] is True  # runner components passed to pipelines
    assert facts["train.model_trainer"] == "XGBoostModelTrainer"
    assert facts["process.model_trainer"] is False
    assert facts["train_data"] == "data/train.csv" and facts["tracking_uri"] == "file:///tmp/mlruns"
    assert facts["tree_id"] == out["again"]["id"]  # every step of the run sees the same tree
    again = run_plan(plan, root=tmp_path / ".flowc")
    assert again.outputs["again"]["id"] != out["again"]["id"] or again.run_id != result.run_id


def test_default_framework_when_only_layer_sections_are_written(tmp_path: Path) -> None:
    text = (
        HEAD
        + "pipeline: {train: flowc_lolpop.pipeline:MyTrainingPipeline}\n"
        + "component: {metadata_tracker: flowc_lolpop.component:MLFlowMetadataTracker}\n"
        + "steps:\n  fit: {run: 'integration:train.fit', outputs: [model, epochs, lr]}\n"
    )
    ir = compile_flow(write(tmp_path, text))
    assert ir.integrations is not None and not ir.integrations.explicit
    assert [c.layer for c in ir.integrations.root.children] == ["component", "pipeline"]
    result = run_plan(ir.to_data(), root=tmp_path / ".flowc")
    assert result.ok, result.error
    assert result.outputs["fit"]["model"] == "model-0"


def test_custom_widget_layer_from_yaml(tmp_path: Path) -> None:
    text = (
        HEAD
        + "integration_framework:\n  runner:\n    widget:\n    component:\n      widget:\n"
        + "widget: {some_cool_widget: MyWidget}\n"
        + "component:\n  metadata_tracker: {class: MLFlowMetadataTracker, widget: {gear: MyWidget}}\n"
        + "search_paths: [flowc_lolpop]\n"
        + "steps:\n"
        + "  spin: {run: 'integration:some_cool_widget.spin', outputs: [s]}\n"
        + "  spin2: {run: 'integration:metadata_tracker.gear.spin', outputs: [s]}\n"
        + "  spin3: {run: 'integration:metadata_tracker.some_cool_widget.spin', outputs: [s]}\n"
    )
    ir = compile_flow(write(tmp_path, text))
    result = run_plan(ir.to_data(), root=tmp_path / ".flowc")
    assert result.ok, result.error
    assert {k: v["s"] for k, v in result.outputs.items()} == {
        "spin": "spinning",
        "spin2": "spinning",
        "spin3": "spinning",
    }


LOL = (
    HEAD
    + "pipeline: {train: flowc_lolpop.pipeline:MyTrainingPipeline}\n"
    + "component: {metadata_tracker: flowc_lolpop.component:MLFlowMetadataTracker}\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD
            + "integration_framework:\n  runner:\n    pipeline:\n      component:\n"
            + "        pipeline:\n"
            + STEP,
            "flow.yaml:7:9: error: layer 'pipeline' is nested inside itself: "
            "runner > pipeline > component > pipeline",
        ),
        (
            HEAD
            + "integration_framework:\n  runner:\n    component:\n      widget:\n"
            + "widget: {w: flowc_lolpop.widget:MyWidget}\n"
            + STEP,
            "flow.yaml:7:1: error: layer section 'widget' declares integrations, but 'widget' is "
            "not a child of the root layer 'runner'\n  hint: declare them inside the integration "
            "that owns them: component: {KEY: {class: ..., widget: {...}}}",
        ),
        (
            HEAD
            + "runner: {a: flowc_lolpop.runner:ChurnRunner, b: flowc_lolpop.runner:ChurnRunner}\n"
            + STEP,
            "flow.yaml:3:46: error: the root layer 'runner' holds one integration (the root "
            "object), found 2: a, b",
        ),
        (
            HEAD + "component: {x: Missing}\nsearch_paths: [flowc_lolpop, flowc_demo]\n" + STEP,
            "flow.yaml:3:13: error: class 'Missing' of 'component.x' not found; tried: "
            "flowc_lolpop.component:Missing, flowc_lolpop:Missing, flowc_demo.component:Missing, "
            "flowc_demo:Missing",
        ),
        (
            HEAD + "component: {x: Missing}\n" + STEP,
            "flow.yaml:3:13: error: class 'Missing' of 'component.x' is a bare name but no "
            "search_paths are set",
        ),
        (
            HEAD + "component: {x: flowc_lolpop.component:Nope}\n" + STEP,
            "flow.yaml:3:13: error: class 'flowc_lolpop.component:Nope' of 'component.x' not "
            "found; tried: flowc_lolpop.component:Nope",
        ),
        (
            LOL + "steps:\n  fit: {run: 'integration:trian.fit'}\n",
            "flow.yaml:6:14: error: step 'fit': 'integration:trian.fit': the root integration has "
            "no integration 'trian'\n  hint: did you mean 'train'?",
        ),
        (
            LOL + "steps:\n  fit: {run: 'integration:train.fitt'}\n",
            "flow.yaml:6:14: error: step 'fit': integration 'train' "
            "(flowc_lolpop.pipeline.MyTrainingPipeline) has no method 'fitt'\n"
            "  hint: did you mean 'fit'?",
        ),
        (
            LOL + "steps:\n  fit: {run: 'integration:train.model_trainer.fit'}\n",
            "flow.yaml:6:14: error: step 'fit': 'integration:train.model_trainer.fit': 'train' "
            "has no integration 'model_trainer'\n  hint: integrations there: metadata_tracker",
        ),
        (
            LOL + "steps:\n  fit: {run: 'integration:train.fit', with: {epoch: 2}}\n",
            "flow.yaml:6:46: error: step 'fit': method 'train.fit' has no parameter 'epoch'\n"
            "  hint: did you mean 'epochs'?",
        ),
        (
            LOL + "steps:\n  m: {run: 'integration:metadata_tracker.log', with: {name: x}}\n"
            "  n: {run: 'flowc_lolpop.steps:wiring'}\n"
            "  o: {run: 'integration:train.model', with: {}}\n",
            "flow.yaml:8:12: error: step 'o': integration 'train' "
            "(flowc_lolpop.pipeline.MyTrainingPipeline) has no method 'model'",
        ),
        (
            HEAD + "steps:\n  fit: {run: 'integration:train.fit'}\n",
            "flow.yaml:4:14: error: step 'fit' runs 'integration:train.fit' but the flow "
            "declares no integration framework",
        ),
        (
            HEAD + "pipeline:\n  train: {class: flowc_lolpop.pipeline:MyTrainingPipeline, "
            "widget: {}}\n" + STEP,
            "flow.yaml:4:60: error: unknown key 'widget' in integration 'pipeline.train': not a "
            "layer below 'pipeline'\n  hint: allowed keys: class, config, component",
        ),
        (
            HEAD + "component:\n  config: {pass_integration_to_siblings: maybe}\n" + STEP,
            "flow.yaml:4:42: error: 'component.pass_integration_to_siblings' must be true or false",
        ),
        (
            HEAD + "component: {_x: flowc_lolpop.component:PlainComponent}\n" + STEP,
            "flow.yaml:3:13: error: invalid integration name '_x'",
        ),
        (  # an unknown layer section (the layer names come from integration_framework)
            HEAD
            + "integration_framework:\n  runner:\n    widget:\n"
            + "widgit: {w: flowc_lolpop.widget:MyWidget}\n"
            + STEP,
            "flow.yaml:6:1: error: unknown key 'widgit'\n  hint: did you mean 'widget'?",
        ),
    ],
)
def test_located_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in errors(tmp_path, text)


def test_classes_not_importable_at_compile_time_are_not_errors(tmp_path: Path) -> None:
    text = (
        HEAD
        + "pipeline: {train: acme_not_installed.pipelines:Train}\n"
        + "steps:\n  fit: {run: 'integration:train.fit'}\n"
    )
    ir = compile_flow(write(tmp_path, text))  # the code may only exist in the image
    assert ir.step("fit").is_integration


def test_pass_integration_to_siblings_false_from_yaml(tmp_path: Path) -> None:
    text = (
        HEAD
        + "component:\n  config: {pass_integration_to_siblings: false}\n"
        + "  metrics_tracker: flowc_lolpop.component:MLFlowMetricsTracker\n"
        + "pipeline: {train: flowc_lolpop.pipeline:MyTrainingPipeline}\n"
        + "steps:\n  m: {run: 'integration:train.metrics_tracker.log_metric'}\n"
    )
    got = errors(tmp_path, text)
    assert (
        "flow.yaml:8:12: error: step 'm': 'integration:train.metrics_tracker.log_metric': 'train' "
        "has no integration 'metrics_tracker'\n  hint: integrations there: none" in got
    )
    ok = compile_flow(write(tmp_path, text.replace("false", "true")))
    assert ok.integrations.layer("component").pass_integration_to_siblings is True


VERTEX_STACK = """
stacks:
  gcp:
    orchestrator: {type: vertex, project: acme-ml, region: europe-west4, pipeline_root: gs://b/r}
"""


@pytest.mark.parametrize("target", target_names())
def test_integration_flow_compiles_to_every_target(target: str, tmp_path: Path) -> None:
    flow, stack = GOLDEN, None
    if target == "vertex":  # Vertex needs a stack whose orchestrator is vertex
        flow, stack = write(tmp_path, GOLDEN.read_text() + VERTEX_STACK), "gcp"
    files = emit(compile_flow(flow, stack=stack), target)
    text = "\n".join(files.values())
    assert "integration:train.fit" in text
    assert "MyTrainingPipeline" in text  # the framework travels with the plan


def test_nested_section_bare_names_checked_along_inherited_paths(tmp_path: Path) -> None:
    text = (
        HEAD
        + "component: {search_paths: [flowc_lolpop], metrics_tracker: MLFlowMetricsTracker}\n"
        + "pipeline:\n  train:\n    class: flowc_lolpop.pipeline:MyTrainingPipeline\n"
        + "    component: {model_trainer: XGBoostModelTrainr}\n"
        + STEP
    )
    assert (
        "flow.yaml:7:17: error: class 'XGBoostModelTrainr' of 'component.model_trainer' not "
        "found; tried: flowc_lolpop.component:XGBoostModelTrainr, flowc_lolpop:XGBoostModelTrainr"
    ) in errors(tmp_path, text)
    ok = compile_flow(write(tmp_path, text.replace("Trainr", "Trainer")))
    assert run_plan(ok.to_data(), root=tmp_path / ".flowc").ok


def test_required_method_parameter_without_a_value(tmp_path: Path) -> None:
    text = (
        HEAD
        + "component: {scorer: flowc_lolpop.component:NeedsArg}\n"
        + "steps:\n  s: {run: 'integration:scorer.score', with: {threshold: 0.9}}\n"
    )
    assert (
        "flow.yaml:5:12: error: step 's': parameter 'model' of method 'scorer.score' has no "
        "value\n  hint: add it under steps.s.with"
    ) in errors(tmp_path, text)
    ok = text.replace("{threshold: 0.9}", "{threshold: 0.9, model: m}")
    assert compile_flow(write(tmp_path, ok)).step("s").is_integration
