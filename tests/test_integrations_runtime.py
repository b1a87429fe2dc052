"""lolpop's documented integration-framework behaviour, built by flowc.runtime.integrations.

Each test ports an example of lolpop's "Integration Frameworks" page (or its framework tests)
and asserts the attributes lolpop documents. The IR is built by hand here (the YAML front-end
path is covered in test_integrations_flow.py) and goes through ``to_data()`` like a real plan.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowc.compiler.ir import FrameworkNode, Integration, IntegrationFramework, Layer
from flowc.runtime import integrations as rt

DEFAULT_TREE = {"runner": {"component": None, "pipeline": {"component": None}}}
PIPELINES = {
    "process": "flowc_lolpop.pipeline:MyProcessPipeline",
    "train": "flowc_lolpop.pipeline:MyTrainingPipeline",
    "predict": "flowc_lolpop.pipeline:MyPredictionPipeline",
}
COMPONENTS = {
    "metadata_tracker": "flowc_lolpop.component:MLFlowMetadataTracker",
    "metrics_tracker": "flowc_lolpop.component:MLFlowMetricsTracker",
}


def node(tree: dict[str, Any]) -> FrameworkNode:
    ((name, kids),) = tree.items()
    return FrameworkNode(name, tuple(node({k: v}) for k, v in (kids or {}).items()))


def layer(name: str, section: dict[str, Any]) -> Layer:
    section = dict(section)
    cfg = dict(section.pop("config", {}) or {})
    pass_sib = cfg.pop("pass_integration_to_siblings", True)
    peers = cfg.pop("update_peer_integrations", None)
    paths = tuple(section.pop("search_paths", ()))
    integs = []
    for key, spec in section.items():
        if isinstance(spec, str):
            integs.append(Integration(key, spec))
        else:
            spec = dict(spec)
            cls = spec.pop("class")
            icfg = tuple(spec.pop("config", {}).items())
            integs.append(
                Integration(key, cls, icfg, layers=tuple(layer(n, s) for n, s in spec.items()))
            )
    return Layer(name, tuple(integs), tuple(cfg.items()), pass_sib, peers, paths)


def plan_fw(
    sections: dict[str, Any],
    tree: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    search_paths: tuple[str, ...] = (),
) -> dict[str, Any]:
    fw = IntegrationFramework(
        root=node(tree or DEFAULT_TREE),
        layers=tuple(layer(n, s) for n, s in sections.items()),
        config=tuple((config or {}).items()),
        search_paths=search_paths,
    )
    return fw.to_data()


def build(*args: Any, **kwargs: Any) -> Any:
    tree = rt.build(plan_fw(*args, **kwargs))
    assert tree is not None
    return tree.root


def test_default_framework_components_are_peers_pipelines_are_not() -> None:
    runner = build({"pipeline": PIPELINES, "component": COMPONENTS})
    # lolpop: "runner.metadata_tracker.metrics_tracker and runner.metrics_tracker.metadata_tracker"
    assert runner.metadata_tracker.metrics_tracker is runner.metrics_tracker
    assert runner.metrics_tracker.metadata_tracker is runner.metadata_tracker
    # "... there is no runner.process.train attribute"
    assert not hasattr(runner.process, "train")
    assert not hasattr(runner.train, "predict")
    # runner components are processed first and passed into each pipeline ("global")
    for p in ("process", "train", "predict"):
        assert getattr(runner, p).metadata_tracker is runner.metadata_tracker
        assert getattr(runner, p).metrics_tracker is runner.metrics_tracker
    # but pipelines are not passed back into components
    assert not hasattr(runner.metadata_tracker, "train")
    # a peer is never its own attribute
    assert "metadata_tracker" not in vars(runner.metadata_tracker)
    assert type(runner).__name__ == "Integration"  # no runner section: a stand-in root


def test_reversed_sibling_order_wires_pipelines_into_components() -> None:
    tree = {"runner": {"pipeline": {"component": None}, "component": None}}
    runner = build({"pipeline": PIPELINES, "component": COMPONENTS}, tree)
    # "Pipelines would then be passed into each runner component"
    assert runner.metadata_tracker.train is runner.train
    assert runner.metrics_tracker.process is runner.process
    # and components are no longer handed to pipelines
    assert not hasattr(runner.train, "metadata_tracker")
    assert not hasattr(runner.process, "metrics_tracker")


def test_custom_widget_layer_found_along_search_paths() -> None:
    tree = {
        "runner": {
            "widget": None,
            "component": {"widget": None},
            "pipeline": {"component": {"widget": None}},
        }
    }
    sections = {
        "widget": {"some_cool_widget": "MyWidget"},
        "component": {
            "metadata_tracker": {
                "class": "MLFlowMetadataTracker",
                "widget": {"gear": "MyWidget"},
            }
        },
        "pipeline": {
            "train": {
                "class": "MyTrainingPipeline",
                "component": {"model_trainer": {"class": "XGBoostModelTrainer"}},
            }
        },
    }
    runner = build(sections, tree, search_paths=("flowc_lolpop",))
    # "MyWidget would then be ... accessible under the some_cool_widget attribute of the runner"
    assert type(runner.some_cool_widget).__name__ == "MyWidget"
    assert type(runner.some_cool_widget).__module__ == "flowc_lolpop.widget"
    assert runner.some_cool_widget.spin() == "spinning"
    # widgets are processed before components, so the runner's widget reaches every component
    assert runner.metadata_tracker.some_cool_widget is runner.some_cool_widget
    # a component's own widget, and a pipeline-specific component
    assert type(runner.metadata_tracker.gear).__name__ == "MyWidget"
    assert not hasattr(runner, "gear")
    assert type(runner.train.model_trainer).__name__ == "XGBoostModelTrainer"
    assert not hasattr(runner, "model_trainer")
    # handed-down integrations reach grandchildren
    assert runner.train.model_trainer.metadata_tracker is runner.metadata_tracker
    assert runner.train.model_trainer.some_cool_widget is runner.some_cool_widget


def test_pipeline_specific_components_do_not_leak_to_other_pipelines() -> None:
    sections = {
        "component": COMPONENTS,
        "pipeline": {
            "train": {
                "class": PIPELINES["train"],
                "component": {"model_trainer": "flowc_lolpop.component:XGBoostModelTrainer"},
            },
            "predict": PIPELINES["predict"],
        },
    }
    runner = build(sections)
    assert runner.train.model_trainer.fit(3) == "xgb-3"
    assert not hasattr(runner.predict, "model_trainer")
    # pipeline-level leaf components are peers of each other, and see the runner's components
    assert runner.train.model_trainer.metrics_tracker is runner.metrics_tracker
    assert runner.train.fit([1, 2], epochs=2)["model"] == "xgb-2"


def test_pass_integration_to_siblings_false() -> None:
    # lolpop tests/framework_tests: framework_sibling.yaml
    sections = {
        "component": {**COMPONENTS, "config": {"pass_integration_to_siblings": False}},
        "pipeline": {"train": PIPELINES["train"]},
    }
    runner = build(sections)
    assert not hasattr(runner.train, "metrics_tracker")
    assert hasattr(runner, "metrics_tracker")  # still the runner's child
    sections["component"]["config"] = {"pass_integration_to_siblings": True}
    assert build(sections).train.metrics_tracker is not None


def test_peers_for_leaves_only_and_the_override() -> None:
    # pipelines are not leaves: no peers by default; turning it on makes runner.process.train
    sections = {
        "component": {**COMPONENTS, "config": {"update_peer_integrations": False}},
        "pipeline": {**PIPELINES, "config": {"update_peer_integrations": True}},
    }
    runner = build(sections)
    assert runner.process.train is runner.train
    assert runner.train.predict is runner.predict
    assert not hasattr(runner.metadata_tracker, "metrics_tracker")
    assert not hasattr(runner.metrics_tracker, "metadata_tracker")


def test_get_config_precedence() -> None:
    sections = {
        "runner": {
            "config": {"where": "runner-layer", "lr": 0.5},
            "main": {"class": "flowc_lolpop.runner:ChurnRunner", "config": {"owner": "me"}},
        },
        "component": {
            "config": {"where": "component-layer", "tracking_uri": "layer-uri"},
            "metadata_tracker": {
                "class": COMPONENTS["metadata_tracker"],
                "config": {"where": "integration", "tracking_uri": None},
            },
            "metrics_tracker": COMPONENTS["metrics_tracker"],
        },
        "pipeline": {"train": PIPELINES["train"]},
    }
    config = {"where": "global", "lr": 0.1, "train_data": "data/train.csv"}
    runner = build(sections, config=config)
    mt = runner.metadata_tracker
    assert mt._get_config("where") == "integration"  # integration > layer > global
    assert mt._get_config("tracking_uri") is None  # an explicit null still wins
    assert runner.metrics_tracker._get_config("where") == "component-layer"
    assert runner.metrics_tracker._get_config("tracking_uri") == "layer-uri"
    # the parent chain: the runner's own and its layer's config, then global
    assert mt._get_config("owner") == "me"
    assert mt._get_config("lr") == 0.5
    assert runner.train._get_config("lr") == 0.5
    assert runner.train._get_config("train_data") == "data/train.csv"
    assert runner._get_config("where") == "runner-layer"
    assert mt._get_config("nope") is None
    assert mt._get_config("nope", 7) == 7
    assert runner.train.fit([1])["lr"] == 0.5


def test_plain_class_gets_get_config_and_attributes() -> None:
    sections = {
        "component": {
            "config": {"k": "v"},
            "plain": "flowc_lolpop.component.PlainComponent",
            "metrics_tracker": COMPONENTS["metrics_tracker"],
        }
    }
    runner = build(sections)
    assert runner.plain._get_config("k") == "v"
    assert runner.plain.metrics_tracker is runner.metrics_tracker
    assert runner.plain._flowc_parent is runner
    assert runner.plain._flowc_layer == "component"


def test_root_integration_and_method_resolution() -> None:
    sections = {
        "runner": {"main": "flowc_lolpop.runner:ChurnRunner"},
        "pipeline": PIPELINES,
        "component": COMPONENTS,
    }
    tree = rt.build(plan_fw(sections))
    assert tree is not None
    assert type(tree.root).__name__ == "ChurnRunner"
    assert tree.get("main") is tree.root
    assert tree.train is tree.root.train
    assert rt.resolve_callable(tree, "integration:main.run")("x.csv") == "processed x.csv"
    fit = rt.resolve_callable(tree, "integration:train.fit")
    assert fit(frame=[1, 2, 3])["model"] == "model-3"

    class Ctx:
        integrations = tree

    log = rt.resolve_callable(Ctx(), "integration:train.metadata_tracker.log")
    assert log("auc") == "logged auc to nowhere"
    with pytest.raises(rt.IntegrationError, match="has no method 'fly'"):
        rt.resolve_callable(tree, "integration:train.fly")
    with pytest.raises(rt.IntegrationError, match="has no attribute 'nope'"):
        rt.resolve_callable(tree, "integration:nope.fit")
    with pytest.raises(rt.IntegrationError, match="private"):
        rt.resolve_callable(tree, "integration:train._flowc_parent.run")
    with pytest.raises(rt.IntegrationError, match="declares no integration framework"):
        rt.resolve_callable(object(), "integration:train.fit")


def test_for_run_builds_once_per_run() -> None:
    from flowc_lolpop.base import Recording

    plan = {"integrations": plan_fw({"pipeline": PIPELINES, "component": COMPONENTS})}
    before = getattr(Recording, "built_total", 0)
    t1 = rt.for_run(plan, "run-a")
    t2 = rt.for_run(plan, "run-a")
    assert t1 is t2
    assert Recording.built_total - before == 5
    t3 = rt.for_run(plan, "run-b")
    assert t3 is not t1
    assert Recording.built_total - before == 10
    assert rt.for_run({"integrations": None}, "run-a") is None


@pytest.mark.parametrize(
    ("sections", "kwargs", "message"),
    [
        (
            {"component": {"x": "Missing"}},
            {"search_paths": ("flowc_lolpop", "flowc_demo")},
            "class 'Missing' of layer 'component' not found; tried: flowc_lolpop.component:Missing, "
            "flowc_lolpop:Missing, flowc_demo.component:Missing, flowc_demo:Missing",
        ),
        ({"component": {"x": "Missing"}}, {}, "no search_paths are set"),
        (
            {"component": {"x": "flowc_lolpop.component:SlottedComponent"}},
            {},
            "no __slots__",
        ),
        (
            {"pipeline": {"b": "flowc_lolpop.pipeline:BrokenPipeline"}},
            {},
            "building integration 'b' .* failed: RuntimeError: boom",
        ),
        (
            {
                "runner": {
                    "a": "flowc_lolpop.runner:ChurnRunner",
                    "b": "flowc_lolpop.runner:ChurnRunner",
                }
            },
            {},
            "root layer 'runner' holds one integration, found: a, b",
        ),
        (
            {"component": {"x": "no_such_module_xyz:Thing"}},
            {},
            "not found; tried: no_such_module_xyz:Thing",
        ),
    ],
)
def test_build_errors(sections: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(rt.IntegrationError, match=message):
        rt.build(plan_fw(sections, **kwargs))


def test_layer_search_paths_come_before_global_ones() -> None:
    sections = {"widget": {"search_paths": ["flowc_lolpop"], "w": "MyWidget"}}
    tree = {"runner": {"widget": None}}
    runner = build(sections, tree, search_paths=("flowc_demo",))
    assert type(runner.w).__module__ == "flowc_lolpop.widget"
    assert rt.candidate_modules("MyWidget", "widget", ["a", "b"]) == [
        ("a.widget", "MyWidget"),
        ("a", "MyWidget"),
        ("b.widget", "MyWidget"),
        ("b", "MyWidget"),
    ]


def test_run_service_exposes_one_tree_per_run() -> None:
    from flowc.runtime import services

    plan = {
        "name": "svc",
        "integrations": plan_fw({"pipeline": PIPELINES, "component": COMPONENTS}),
    }
    assert rt.service({"integrations": None}) is None
    run = services.RunInfo(run_id="svc-1", flow="svc", params={})
    with services.running(plan, run) as outer:
        tree = outer["integrations"]
        assert isinstance(tree, rt.IntegrationTree)
        with services.running(plan, run) as inner:  # e.g. a step attempt in the same process
            assert inner["integrations"] is tree
        assert rt.for_run(plan, "svc-1") is tree  # still held by the outer run
    with services.running(plan, run) as again:
        assert again["integrations"] is not tree  # released after the run, rebuilt fresh


def test_nested_sections_inherit_their_layers_search_paths() -> None:
    sections = {
        "component": {"search_paths": ["flowc_lolpop"], "metrics_tracker": "MLFlowMetricsTracker"},
        "pipeline": {
            "train": {
                "class": PIPELINES["train"],
                "component": {"model_trainer": "XGBoostModelTrainer"},  # no search_paths here
            }
        },
    }
    runner = build(sections)
    assert type(runner.train.model_trainer).__module__ == "flowc_lolpop.component"
