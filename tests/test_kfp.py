"""The KFP target against the real kfp packages: strict proto parses, reference resolution, kfp's
component loader, kfp's own compiler on the same pipeline, and kfp.local running compiled specs
with the same outputs as flowc's local runtime. No mocks; a missing package fails."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import black
import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from flowc.compiler.api import compile_flow, emit, load_text
from flowc.compiler.errors import FlowcError
from flowc.runtime import kfp as glue
from tests.golden_harness import GOLDEN

KFP_GOLDENS = sorted(GOLDEN.glob("*/kfp/pipeline.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _case(path: Path) -> str:
    return path.parent.parent.name


def test_every_case_has_a_kfp_spec() -> None:
    assert len(KFP_GOLDENS) >= 12, KFP_GOLDENS
    names = {_case(p) for p in KFP_GOLDENS}
    assert {"basic", "foreach", "when", "replicas", "secrets", "command", "params"} <= names


# ---------------------------------------------------------------------------------------------
# Static checks of every golden spec
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", KFP_GOLDENS, ids=_case)
def test_golden_spec_parses_strictly(path: Path) -> None:
    docs = _docs(path)
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())  # unknown field fails
    assert spec.schema_version == "2.1.0"
    assert spec.sdk_version.startswith("flowc-")
    # the proto check treats deploymentSpec as a free Struct: parse it as what it is
    dep = json_format.ParseDict(
        docs[0]["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    assert set(dep.executors) == set(docs[0]["deploymentSpec"]["executors"])
    assert len(docs) <= 2
    if len(docs) == 2:
        plat = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
        execs = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert set(plat.platforms) == {"kubernetes"}
        for cfg in execs.values():
            json_format.ParseDict(cfg, kubernetes_executor_config_pb2.KubernetesExecutorConfig())


def _check_dag(spec: dict[str, Any], comp: dict[str, Any], where: str, problems: list[str]) -> None:
    components = spec["components"]
    tasks = comp["dag"]["tasks"]
    inputs = comp.get("inputDefinitions", {}).get("parameters", {})
    for name, task in tasks.items():
        ref = task["componentRef"]["name"]
        if ref not in components:
            problems.append(f"{where}/{name}: componentRef {ref} missing")
            continue
        callee = components[ref]
        callee_inputs = callee.get("inputDefinitions", {}).get("parameters", {})
        for dep in task.get("dependentTasks", []):
            if dep not in tasks:
                problems.append(f"{where}/{name}: dependentTask {dep} not in this DAG")
        for pname, p in task.get("inputs", {}).get("parameters", {}).items():
            if pname not in callee_inputs:
                problems.append(f"{where}/{name}: input {pname} not declared by {ref}")
            if "componentInputParameter" in p and p["componentInputParameter"] not in inputs:
                problems.append(f"{where}/{name}: {p['componentInputParameter']} not an input")
            if "taskOutputParameter" in p:
                top = p["taskOutputParameter"]
                producer = tasks.get(top["producerTask"])
                if producer is None:
                    problems.append(f"{where}/{name}: producer {top['producerTask']} missing")
                    continue
                if top["producerTask"] not in task.get("dependentTasks", []):
                    problems.append(f"{where}/{name}: reads {top['producerTask']} without a dep")
                outs = components[producer["componentRef"]["name"]].get("outputDefinitions", {})
                if top["outputParameterKey"] not in outs.get("parameters", {}):
                    problems.append(f"{where}/{name}: output {top['outputParameterKey']} missing")
        it = task.get("parameterIterator")
        if it is not None:
            if it["itemInput"] not in callee_inputs:
                problems.append(f"{where}/{name}: itemInput {it['itemInput']} not declared")
            src = it["items"].get("inputParameter")
            if src is not None and src not in task.get("inputs", {}).get("parameters", {}):
                problems.append(f"{where}/{name}: items {src} not passed to the loop")
        cond = task.get("triggerPolicy", {}).get("condition")
        if cond:
            for chan in re.findall(r"parameter_values\['([^']+)'\]", cond):
                if chan not in task.get("inputs", {}).get("parameters", {}):
                    problems.append(f"{where}/{name}: condition reads {chan}, not an input")
        if "dag" in callee:
            _check_dag(spec, callee, f"{where}/{name}", problems)
            for oname, o in callee["dag"].get("outputs", {}).get("parameters", {}).items():
                sub = o["valueFromParameter"]["producerSubtask"]
                if sub not in callee["dag"]["tasks"]:
                    problems.append(f"{where}/{name}: output {oname} from missing {sub}")
        elif callee.get("executorLabel") not in spec["deploymentSpec"]["executors"]:
            problems.append(f"{where}/{name}: executorLabel {callee.get('executorLabel')} missing")


@pytest.mark.parametrize("path", KFP_GOLDENS, ids=_case)
def test_golden_spec_references_resolve(path: Path) -> None:
    docs = _docs(path)
    spec = docs[0]
    problems: list[str] = []
    _check_dag(spec, spec["root"], "root", problems)
    if len(docs) == 2:
        for label in docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]:
            if label not in spec["deploymentSpec"]["executors"]:
                problems.append(f"platform executor {label} missing")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", KFP_GOLDENS, ids=_case)
def test_golden_spec_loads_with_kfp(path: Path) -> None:
    from kfp import components

    comp = components.load_component_from_file(str(path))
    spec = _docs(path)[0]
    assert comp.pipeline_spec.pipeline_info.name == spec["pipelineInfo"]["name"]
    assert set(comp.component_spec.inputs or {}) == set(
        spec["root"].get("inputDefinitions", {}).get("parameters", {})
    )


@pytest.mark.parametrize("path", KFP_GOLDENS, ids=_case)
def test_generated_python_is_black_formatted_and_compiles(path: Path) -> None:
    mode = black.Mode(line_length=100)
    for label, ex in _docs(path)[0]["deploymentSpec"]["executors"].items():
        cmd = ex["container"]["command"]
        if "kfp.dsl.executor_main" not in " ".join(cmd):
            continue
        src = cmd[3]
        assert black.format_str(src, mode=mode) == src, label
        compile(src, label, "exec")
        assert ex["container"]["args"][:2] == ["--executor_input", "{{$}}"]


# ---------------------------------------------------------------------------------------------
# Same task graph as kfp's own compiler
# ---------------------------------------------------------------------------------------------


def _graph(spec: dict[str, Any]) -> dict[str, Any]:
    """Leaf tasks (executors) with their wrapper kinds, upstream leaf tasks, and component
    input/output parameter types; root parameter types and defaults."""
    comps = spec["components"]
    leaves: dict[str, dict[str, Any]] = {}

    def leaves_under(task: dict[str, Any], name: str) -> list[str]:
        c = comps[task["componentRef"]["name"]]
        if "dag" not in c:
            return [name]
        return [x for n, t in c["dag"]["tasks"].items() for x in leaves_under(t, n)]

    def walk(dag: dict[str, Any], wrappers: tuple[str, ...], ups: frozenset[str]) -> None:
        tasks = dag["tasks"]
        for name, task in tasks.items():
            deps = set(ups)
            for d in task.get("dependentTasks", []):
                deps.update(leaves_under(tasks[d], d))
            c = comps[task["componentRef"]["name"]]
            kind = ()
            if "parameterIterator" in task:
                kind = ("loop",)
            elif "triggerPolicy" in task:
                kind = ("condition",)
            if "dag" in c:
                walk(c["dag"], wrappers + kind, frozenset(deps))
            else:
                leaves[name] = {
                    "wrappers": wrappers + kind,
                    "upstream": sorted(deps),
                    "inputs": {
                        k: v["parameterType"]
                        for k, v in c.get("inputDefinitions", {}).get("parameters", {}).items()
                    },
                    "outputs": {
                        k: v["parameterType"]
                        for k, v in c.get("outputDefinitions", {}).get("parameters", {}).items()
                    },
                }

    walk(spec["root"]["dag"], (), frozenset())
    params = {}
    for k, v in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        params[k] = (v["parameterType"], json.dumps(v.get("defaultValue"), sort_keys=True))
    return {"leaves": leaves, "params": params}


def _normalize(spec: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through the proto so 3 and 3.0 compare equal (protobuf numbers)."""
    msg = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    return json_format.MessageToDict(msg)


DSL_CASES = {
    "basic": """
        @dsl.component(base_image="python:3.11-slim")
        def load(path: str, rows: int) -> list: ...

        @dsl.component(base_image="python:3.11-slim")
        def count(frame: list) -> int: ...

        @dsl.pipeline(name="basic")
        def pipeline(path: str = "data.csv", rows: int = 3):
            l = load(path=path, rows=rows)
            count(frame=l.output)
    """,
    "foreach": """
        class TrainOut(NamedTuple):
            model: str
            auc: str

        @dsl.component(base_image="python:3.11-slim")
        def train(frame: list) -> TrainOut: ...

        @dsl.component(base_image="python:3.11-slim")
        def shard_eval(model: str, shard: str) -> str: ...

        @dsl.component(base_image="python:3.11-slim")
        def publish(scores: list) -> str: ...

        @dsl.pipeline(name="foreach")
        def pipeline(shards: list = ["a", "bb", "ccc"]):
            t = train(frame=[1, 2, 3])
            with dsl.ParallelFor(shards) as item:
                s = shard_eval(model=t.outputs["model"], shard=item)
            publish(scores=dsl.Collected(s.output))
    """,
    "when": """
        class TrainOut(NamedTuple):
            model: str
            auc: float

        @dsl.component(base_image="python:3.11-slim")
        def train(frame: list) -> TrainOut: ...

        @dsl.component(base_image="python:3.11-slim")
        def publish(_s_train_auc: float) -> str: ...

        @dsl.component(base_image="python:3.11-slim")
        def full_eval(value: str) -> str: ...

        @dsl.pipeline(name="when")
        def pipeline(full: bool = False):
            t = train(frame=[1, 2])
            with dsl.If(t.outputs["auc"] >= 0.8):
                publish(_s_train_auc=t.outputs["auc"])
            with dsl.If(full == True):  # noqa: E712
                full_eval(value=t.outputs["model"])
    """,
    "params": """
        @dsl.component(base_image="python:3.11-slim")
        def noop() -> str: ...

        @dsl.pipeline(name="params")
        def pipeline(
            path: str,
            mode: str = "fast",
            rows: int = 3,
            lr: float = 0.01,
            full: bool = False,
            shards: list = ["a", "b"],
            opts: dict = {"depth": 2, "name": "x"},
        ):
            noop()
    """,
}


@pytest.mark.parametrize("case", sorted(DSL_CASES))
def test_same_graph_types_and_defaults_as_kfp_compiler(case: str, tmp_path: Path) -> None:
    import importlib.util
    import warnings

    from kfp import compiler, dsl  # noqa: F401

    src = "from typing import NamedTuple\nfrom kfp import dsl\n" + textwrap.dedent(DSL_CASES[case])
    mod_path = tmp_path / f"dsl_{case}.py"  # kfp reads the component functions' source
    mod_path.write_text(src, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = importlib.util.spec_from_file_location(f"dsl_{case}", mod_path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = tmp_path / "kfp.yaml"
        compiler.Compiler().compile(mod.pipeline, str(out))
    theirs = _graph(_normalize(_docs(out)[0]))
    ours = _graph(_normalize(_docs(GOLDEN / case / "kfp" / "pipeline.yaml")[0]))
    assert ours["params"] == theirs["params"]
    if case == "params":
        return  # the DSL twin has no steps; the golden's graph is checked elsewhere
    # inputs only the flowc glue reads (every param, for ctx.params; the item and its list, for
    # ctx.index): a hand-written KFP component has no use for them
    for graph in (ours, theirs):
        for leaf in graph["leaves"].values():
            leaf["inputs"] = {
                k: v
                for k, v in leaf["inputs"].items()
                if k not in ("_item", "_items") and not k.startswith("_p_")
            }
    assert ours["leaves"] == theirs["leaves"]


# ---------------------------------------------------------------------------------------------
# kfp.local runs the compiled spec; flowc's local runtime gives the same outputs
# ---------------------------------------------------------------------------------------------


def _kfp_outputs(spec: dict[str, Any], root: Path) -> dict[str, dict[str, Any]]:
    """Step outputs of a kfp.local run, read from the executor output files and decoded."""
    by_task: dict[str, tuple[str, list[list[Any]], int]] = {}
    for label, ex in spec["deploymentSpec"]["executors"].items():
        cmd = ex["container"]["command"]
        m = re.search(r"^SPEC = json\.loads\(\s*('.*'|\".*\")\s*\)$", cmd[3], re.M | re.S)
        assert m, label
        import ast

        prog = json.loads(ast.literal_eval(m.group(1)))
        step = prog["step"]
        depth = (prog["plan"]["steps"][step]["foreach"] is not None) + (
            prog["plan"]["steps"][step]["replicas"] > 1
        )
        by_task[label[len("exec-") :]] = (step, prog["outputs"], depth)
    got: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[int, dict[str, Any]]] = {}
    for f in sorted(root.rglob("executor_output.json")):
        task = f.parent.name
        if task not in by_task:
            continue
        step, outputs, depth = by_task[task]
        values = json.loads(f.read_text())["parameterValues"]
        decoded = {}
        for name, key, enc in outputs:
            v = values[key]
            decoded[name] = (
                json.loads(v)
                if enc == "json"
                else ([json.loads(x) for x in v] if enc == "json-list" else v)
            )
        # a step with foreach/replicas of its own, or a member of a foreach group (the group's
        # ParallelFor): one executor run per item, the step's output is the list over them
        its = re.findall(r"-iteration-(\d+)", str(f.relative_to(root)))
        if depth or its:
            assert len(its) == 1 and depth <= 1, f
            items.setdefault(step, {})[int(its[0])] = decoded
        else:
            got[step] = decoded
    for step, per in items.items():
        names = list(per[0])
        got[step] = {n: [per[i][n] for i in sorted(per)] for n in names}
    return got


def _run_both(flow: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from kfp import components, local

    from flowc.runtime.executor import run_plan

    ir = compile_flow(flow)
    text = emit(ir, "kfp")["pipeline.yaml"]
    spec_path = tmp_path / "pipeline.yaml"
    spec_path.write_text(text, encoding="utf-8")
    pipeline_root = tmp_path / "kfp-root"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    comp = components.load_component_from_file(str(spec_path))
    comp()
    kfp_out = _kfp_outputs(_docs(spec_path)[0], pipeline_root)
    result = run_plan(ir.to_data(), root=str(tmp_path / "flowc"))
    return kfp_out, result.outputs, result


def test_kfp_local_passes_outputs_between_steps(tmp_path: Path) -> None:
    kfp_out, flowc_out, result = _run_both(GOLDEN / "basic" / "flow.yaml", tmp_path)
    assert set(result.states.values()) == {"success"}
    assert kfp_out == flowc_out
    assert kfp_out["count"] == {"n": 3}


FOREACH_FLOW = """\
flowc: 1
name: foreach_local
params:
  shards: {type: list, default: [a, bb, ccc]}
  n: {type: int, default: 3}
steps:
  make:
    run: flowc_demo.steps:load
    with: {path: x, rows: "${params.n}"}
    outputs: [frame]
  shard_eval:
    run: flowc_demo.steps:score
    foreach: "${params.shards}"
    with: {model: m, shard: "${item}"}
    outputs: [score]
  sizes:
    run: flowc_demo.steps:count
    foreach: "${steps.make.outputs.frame}"
    with: {frame: ["${item}", "${item}"]}
    outputs: [n]
  publish:
    run: flowc_demo.steps:echo
    with: {value: "${steps.shard_eval.outputs.score}", ns: "${steps.sizes.outputs.n}"}
    outputs: [value, ns]
"""


def test_kfp_local_runs_foreach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kfp.local replaces every task output a ParallelFor task reads with the loop item, so the
    # loop bodies here read params, items and literals (kfp's own compiler emits the same shape)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.yaml").write_text(FOREACH_FLOW, encoding="utf-8")
    kfp_out, flowc_out, result = _run_both(Path("flow.yaml"), tmp_path)
    assert set(result.states.values()) == {"success"}
    assert kfp_out == flowc_out
    assert kfp_out["publish"] == {"value": [2.0, 3.0, 4.0], "ns": [2, 2, 2]}
    assert kfp_out["make"]["frame"][0] == {"id": 0, "src": "x"}  # ints stay ints (JSON)


def test_kfp_local_runs_when(tmp_path: Path) -> None:
    kfp_out, flowc_out, result = _run_both(GOLDEN / "when" / "flow.yaml", tmp_path)
    assert result.states == {"train": "success", "publish": "success", "full_eval": "skipped"}
    assert kfp_out == flowc_out
    assert "full_eval" not in kfp_out
    assert kfp_out["publish"] == {"message": "published 1"}


def test_kfp_local_runs_replicas(tmp_path: Path) -> None:
    kfp_out, flowc_out, result = _run_both(GOLDEN / "replicas" / "flow.yaml", tmp_path)
    assert set(result.states.values()) == {"success"}
    assert kfp_out == flowc_out == {"square": {"y": [49, 49, 49]}, "total": {"sum": 147}}


# ---------------------------------------------------------------------------------------------
# Errors, the YAML emitter and the runtime glue
# ---------------------------------------------------------------------------------------------


def _flow(steps: str) -> str:
    return "flowc: 1\nname: t\nparams:\n  xs: {type: list, default: [1]}\nsteps:\n" + steps


def test_name_collision_is_a_located_error() -> None:
    text = _flow(
        "  x:\n    run: flowc_demo.steps:echo\n    foreach: '${params.xs}'\n"
        "  for_loop_x:\n    run: flowc_demo.steps:echo\n"
    )
    ir = load_text(text, "f.yaml")
    with pytest.raises(FlowcError) as e:
        emit(ir, "kfp")
    assert re.match(r"f\.yaml:\d+:3: error: .*KFP name 'for-loop-x'", e.value.render())


def test_when_over_item_is_a_located_error() -> None:
    text = _flow(
        "  x:\n    run: flowc_demo.steps:echo\n    foreach: '${params.xs}'\n"
        "    when: '${item} > 1'\n"
    )
    with pytest.raises(FlowcError) as e:
        emit(load_text(text, "f.yaml"), "kfp")
    assert "f.yaml:" in e.value.render() and "${item}" in e.value.render()


def test_conflicting_condition_types_are_a_located_error() -> None:
    text = _flow(
        "  a:\n    run: flowc_demo.steps:echo\n    outputs: [v]\n"
        '  b:\n    run: flowc_demo.steps:echo\n    when: "${steps.a.outputs.v} > 1"\n'
        "  c:\n    run: flowc_demo.steps:echo\n    when: \"${steps.a.outputs.v} == 'x'\"\n"
    )
    with pytest.raises(FlowcError) as e:
        emit(load_text(text, "f.yaml"), "kfp")
    assert re.search(
        r"f\.yaml:\d+:\d+: error: .*both as NUMBER_DOUBLE and as STRING", e.value.render()
    )


def test_glue_encodes_and_decodes() -> None:
    assert glue.encode("s", "o", {"a": 1}, "json") == '{"a": 1}'
    assert glue.encode("s", "o", [1, "x"], "json-list") == ["1", '"x"']
    assert glue.encode("s", "o", 3, "NUMBER_DOUBLE") == 3.0
    assert glue.encode("s", "o", {"a": 1}, "text") == '{"a":1}'
    with pytest.raises(glue.StepError, match="must be NUMBER_DOUBLE"):
        glue.encode("s", "o", "x", "NUMBER_DOUBLE")
    assert glue.decode('{"a": 1}', ["json", 0]) == {"a": 1}
    assert glue.decode(['"x"', "2"], ["json", 1]) == ["x", 2]
    assert glue.decode(3.0, "int") == 3


def test_glue_finds_the_foreach_position_of_an_item() -> None:
    assert glue.item_index(["a", "b", "c"], "b") == 1
    assert glue.item_index([{"k": 1}, {"k": 2}], {"k": 2}) == 1
    assert glue.item_index([1, 2, 1], 1) is None  # no single position
    assert glue.item_index(["a"], glue.MISSING) is None  # not a foreach iteration


def test_every_param_and_no_null_constant_reaches_the_executors() -> None:
    text = _flow(
        "  x:\n    run: flowc_demo.steps:echo\n"
        "    with: {n: null, d: {k: [1, null]}, v: 2}\n"
        "  y:\n    run: flowc_demo.steps:echo\n    foreach: '${params.xs}'\n"
    )
    spec = next(yaml.safe_load_all(emit(load_text(text, "f.yaml"), "kfp")["pipeline.yaml"]))
    comps = spec["components"]
    # ctx.params: every param, in every executor; the literals holding a null stay in the plan
    assert sorted(comps["comp-x"]["inputDefinitions"]["parameters"]) == ["_p_xs", "v"]
    # ctx.item and ctx.index: the item and the foreach list it is in
    assert sorted(comps["comp-y"]["inputDefinitions"]["parameters"]) == ["_item", "_items", "_p_xs"]


def test_glue_runs_a_step_like_kfps_executor() -> None:
    spec = _docs(GOLDEN / "basic" / "kfp" / "pipeline.yaml")[0]
    src = spec["deploymentSpec"]["executors"]["exec-count"]["container"]["command"][3]
    ns: dict[str, Any] = {}
    exec(compile(src, "count", "exec"), ns)
    # typed: the LIST value in (its nested ints as KFP's doubles), the NUMBER_INTEGER out
    assert ns["count"](frame=[{"id": 0.0}, {"id": 1.0}], _p_path="in.csv", _p_rows=3.0) == 2


TRICKY = [
    "",
    " x",
    "a: b",
    "yes",
    "No",
    "ON",
    "1.0",
    "12",
    "-x",
    "a #b",
    "multi\nline\n",
    "multi\nline",
    "x\n\n",
    "tab\there",
    "\x7f",
    "é",
    "😀",
    "\ufeff",
    "'q'",
    '"q"',
    "{{$}}",
    "null",
    "~",
    "a\r\nb",
    "trailing \nx",
    "2026-01-01",
    "0x1f",
    "1e5",
    ".inf",
    "=",
    "<<",
    "a:b",
    "@x",
    "%x",
    "!x",
    "&x",
    "*x",
    "|x",
    ">x",
    "\n lead",
    "  two\nlines",
]


def test_yaml_emitter_round_trips() -> None:
    from flowc.targets.kfp import dump_yaml

    doc = {
        "strings": TRICKY,
        "floats": [0.1, 1e-05, 1e20, 3.0, -0.0],
        "scalars": [None, True, False, 3, -4],
        "empty": {"d": {}, "l": []},
        "nested": [[1, [2]], {"a": {"b": [{}]}}, [{"x": 1, "y": [1, 2]}]],
        **{k: k for k in TRICKY if k},
    }
    assert yaml.safe_load(dump_yaml(doc)) == doc
    for path in KFP_GOLDENS:
        for d in _docs(path):
            assert yaml.safe_load(dump_yaml(d)) == d


def test_step_settings_map_to_kfp_fields() -> None:
    rt = _docs(GOLDEN / "retries_timeout" / "kfp" / "pipeline.yaml")
    tasks = rt[0]["root"]["dag"]["tasks"]
    assert tasks["train"]["retryPolicy"] == {
        "backoffDuration": "30s",
        "backoffFactor": 1.0,
        "backoffMaxDuration": "30s",
        "maxRetryCount": 5,
    }
    k8s = rt[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-train"]["activeDeadlineSeconds"] == 90
    cache = _docs(GOLDEN / "cache" / "kfp" / "pipeline.yaml")[0]["root"]["dag"]["tasks"]
    assert cache["load"]["cachingOptions"] == {"enableCache": True}
    assert cache["count"]["cachingOptions"] == {}
    res = _docs(GOLDEN / "resources" / "kfp" / "pipeline.yaml")[0]["deploymentSpec"]["executors"]
    gpu = [
        e["container"]["resources"]
        for e in res.values()
        if "accelerator" in e["container"].get("resources", {})
    ]
    assert gpu and gpu[0]["accelerator"]["resourceCount"] == "1"
    sec = _docs(GOLDEN / "secrets" / "kfp" / "pipeline.yaml")[1]
    env = sec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-call"]["secretAsEnv"]
    assert [(e["secretName"], e["keyToEnv"][0]["envVar"]) for e in env] == [
        ("api", "API_TOKEN"),
        ("secrets-secrets", "DB_PASSWORD"),
    ]


@pytest.mark.parametrize(("case", "label"), [("basic", "exec-count"), ("when", "exec-train")])
def test_stdlib_executor_writes_what_kfps_executor_writes(
    case: str, label: str, tmp_path: Path
) -> None:
    """The launcher falls back to ``python -m flowc.runtime.kfp`` in images without kfp."""
    import subprocess
    import sys

    spec = _docs(GOLDEN / case / "kfp" / "pipeline.yaml")[0]
    container = spec["deploymentSpec"]["executors"][label]["container"]
    program = tmp_path / "ephemeral_component.py"
    program.write_text(container["command"][3], encoding="utf-8")
    comp = spec["components"]["comp-" + label[len("exec-") :]]
    inputs = {
        "count": {"frame": json.dumps([{"id": 1}, {"id": 2}]), "_p_path": "in.csv", "_p_rows": 3},
        "train": {"frame": [1, 2], "_p_full": False},
    }
    outputs: dict[str, str] = {}
    for runner in ("kfp.dsl.executor_main", "flowc.runtime.kfp"):
        out = tmp_path / runner / "executor_output.json"
        executor_input = {
            "inputs": {"parameterValues": inputs[label[len("exec-") :]]},
            "outputs": {
                "outputFile": str(out),
                "parameters": {
                    k: {"outputFile": str(tmp_path / runner / k)}
                    for k in comp["outputDefinitions"]["parameters"]
                },
            },
        }
        args = [a if a != "{{$}}" else json.dumps(executor_input) for a in container["args"]]
        subprocess.run(
            [sys.executable, "-m", runner, "--component_module_path", str(program), *args],
            check=True,
            capture_output=True,
        )
        outputs[runner] = json.loads(out.read_text())
    assert outputs["flowc.runtime.kfp"] == outputs["kfp.dsl.executor_main"]
    assert outputs["flowc.runtime.kfp"]["parameterValues"]
    assert "flowc.runtime.kfp" in container["command"][2]


def _kfp_own_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str) -> dict:
    """The root tasks kfp's own compiler writes for a pipeline whose one task is ``call`` of a
    ``show(value: str) -> str`` component (a module file: kfp reads the component's source)."""
    import hashlib
    import importlib

    from kfp import compiler

    module = f"kfp_own_{hashlib.sha256(call.encode()).hexdigest()[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from kfp import dsl\n\n\n@dsl.component\ndef show(value: str) -> str:\n"
        f"    return value\n\n\n@dsl.pipeline(name='p')\ndef p() -> None:\n    {call}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    compiler.Compiler().compile(importlib.import_module(module).p, str(tmp_path / "kfp.yaml"))
    return yaml.safe_load((tmp_path / "kfp.yaml").read_text())["root"]["dag"]["tasks"]


RUN_VALUES_FLOW = """\
flowc: 1
name: run_values
steps:
  stamp:
    run: flowc_demo.steps:echo
    with: {value: "${run.date}", ns: "${run.id}"}
    outputs: [value, ns]
"""


def test_run_date_and_id_compile_to_job_placeholders_and_run_on_kfp_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ${run.date} was a compile error for KFP and Vertex although the DSL defines it everywhere
    from datetime import UTC, datetime, timedelta

    from kfp import components, dsl, local

    from flowc.runtime.executor import run_plan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.yaml").write_text(RUN_VALUES_FLOW, encoding="utf-8")
    ir = compile_flow(Path("flow.yaml"))
    text = emit(ir, "kfp")["pipeline.yaml"]
    spec = next(yaml.safe_load_all(text))
    consts = spec["root"]["dag"]["tasks"]["stamp"]["inputs"]["parameters"]
    created = {"runtimeValue": {"constant": dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER}}
    assert consts["_run_date"] == created
    assert consts["_run_id"] == {"runtimeValue": {"constant": dsl.PIPELINE_JOB_ID_PLACEHOLDER}}

    # kfp's own compiler spells the placeholder the same way
    theirs = _kfp_own_tasks(
        tmp_path, monkeypatch, "show(value=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER)"
    )
    assert theirs["show"]["inputs"]["parameters"]["value"] == created

    # kfp.local (2.17) fills in the job id but not the job times (its placeholder resolver
    # raises IndexError on them, for kfp's own pipelines too): fill it in as the backend does
    filled = text.replace(dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, "2026-01-02T03:04:05Z")
    (tmp_path / "pipeline.yaml").write_text(filled, encoding="utf-8")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=True,
    )
    components.load_component_from_file(str(tmp_path / "pipeline.yaml"))()
    kfp_out = _kfp_outputs(_docs(tmp_path / "pipeline.yaml")[0], tmp_path / "kfp-root")
    assert kfp_out["stamp"]["value"] == "2026-01-02T03:04:05+00:00"  # as `flowc run` spells it
    assert kfp_out["stamp"]["ns"] and "{{" not in kfp_out["stamp"]["ns"]
    got = run_plan(ir.to_data(), root=str(tmp_path / "flowc")).outputs["stamp"]
    when = datetime.fromisoformat(got["value"])
    assert when.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - when) < timedelta(hours=1)

    vertex = json.loads(emit(ir, "vertex")["pipeline_job.json"])
    assert vertex["pipelineSpec"]["root"]["dag"]["tasks"]["stamp"]["inputs"] == {
        "parameters": consts
    }
    scheduled = RUN_VALUES_FLOW.replace("steps:\n", "schedule: {cron: '0 1 * * *'}\nsteps:\n", 1)
    (tmp_path / "flow.yaml").write_text(scheduled, encoding="utf-8")
    job = json.loads(emit(compile_flow(Path("flow.yaml")), "vertex")["pipeline_job.json"])
    params = job["pipelineSpec"]["root"]["dag"]["tasks"]["stamp"]["inputs"]["parameters"]
    assert params["_run_date"] == {
        "runtimeValue": {"constant": dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER}
    }


def test_job_time_is_spelled_like_flowc_run() -> None:
    from flowc.runtime.kfp import _job_time

    assert _job_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05+00:00"
    assert _job_time("2026-01-02T03:04:05.123456Z") == "2026-01-02T03:04:05+00:00"
    assert "{{" not in _job_time("{{$.pipeline_job_create_time_utc}}")  # kfp.local leaves it


def test_retry_delay_0s_is_the_retry_policy_kfps_compiler_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # retry_delay: 0s used to leave backoffDuration out (kfp then reads its defaults: factor 2)
    theirs = _kfp_own_tasks(
        tmp_path,
        monkeypatch,
        "show(value='x').set_retry(3, backoff_duration='0s', backoff_factor=1)",
    )
    ir = load_text(
        _flow("  a: {run: flowc_demo.steps:echo, with: {value: x}, retries: 3, retry_delay: 0s}\n"),
        "f.yaml",
    )
    ours = next(yaml.safe_load_all(emit(ir, "kfp")["pipeline.yaml"]))["root"]["dag"]["tasks"]
    assert (
        ours["a"]["retryPolicy"]
        == theirs["show"]["retryPolicy"]
        == {
            "backoffDuration": "0s",
            "backoffFactor": 1.0,
            "backoffMaxDuration": "3600s",
            "maxRetryCount": 3,
        }
    )
    vertex = json.loads(emit(ir, "vertex")["pipeline_job.json"])
    assert vertex["pipelineSpec"]["root"]["dag"]["tasks"]["a"]["retryPolicy"] == (
        ours["a"]["retryPolicy"]
    )
