"""The k8s target's manifests: every golden manifest passes the strict Kubernetes schemas of
kubernetes-validate (1.30 and the newest shipped; every error reported) and flowc's own semantic
checks; names, schedules, options and refusals are located errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from flowc.compiler.api import load_text
from flowc.compiler.errors import FlowcError
from flowc.targets.k8s import K8sTarget, build_documents, every_to_cron
from tests.k8s_schema import VERSIONS, all_schema_errors, schema_errors, semantic_errors

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MANIFESTS = sorted(GOLDEN.glob("*/k8s/manifests.yaml"))
EXPECTED_CASES = {
    "basic",
    "foreach",
    "when",
    "replicas",
    "schedule_cron",
    "secrets",
    "resources",
    "retries_timeout",
    "command",
}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def step_jobs(docs: list[dict]) -> list[dict]:
    """The step Jobs the driver would create, built from the ConfigMap by the driver's code."""
    from flowc.runtime.k8s import step_job

    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    config = json.loads(cm["data"]["k8s.json"])
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "driver", "uid": "u-1"}
    return [
        step_job(
            config,
            step,
            name=f"{patch['name_prefix']}-0123abcd-12",
            run_id="0123abcd",
            owner=owner,
            args=["--inputs", "i", "--outputs", "o"],
        )
        for step, patch in config["steps"].items()
    ]


def test_golden_cases_cover_the_dsl_features() -> None:
    cases = {p.parent.parent.name for p in MANIFESTS}
    assert EXPECTED_CASES <= cases, sorted(EXPECTED_CASES - cases)
    assert len(VERSIONS) == 2 and VERSIONS[0].startswith("1.30") and VERSIONS[1] > "1.30"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.parent.name)
def test_golden_manifest_is_valid_for_every_version(path: Path) -> None:
    docs = _docs(path)
    kinds = [d["kind"] for d in docs]
    assert kinds[-1] in ("Job", "CronJob") or "Deployment" in kinds, kinds
    errors = [e for d in [*docs, *step_jobs(docs)] for e in all_schema_errors(d)]
    errors += semantic_errors(docs)
    for job in step_jobs(docs):
        errors += semantic_errors([job])
    external = {
        s["name"]
        for d in docs
        if d["kind"] == "RoleBinding"
        for s in d["subjects"]
        if not any(x["kind"] == "ServiceAccount" for x in docs)
    }
    errors = [e for e in errors if not any(f"ServiceAccount {n!r}" in e for n in external)]
    assert errors == []
    import kubernetes_validate

    for doc in docs:  # and kubernetes-validate's own entry point agrees (slow: no schema cache)
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_strict_schemas_report_every_error_of_every_resource() -> None:
    docs = _docs(GOLDEN / "basic" / "k8s" / "manifests.yaml")
    job = copy.deepcopy(next(d for d in docs if d["kind"] == "Job"))
    job["spec"]["backofLimit"] = 3  # misspelled: only a strict schema catches it
    pod = job["spec"]["template"]["spec"]
    pod["restartPolicy"] = "Always"
    pod["containers"][0]["imagePulPolicy"] = "Always"  # misspelled, nested
    pod["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    role = copy.deepcopy(next(d for d in docs if d["kind"] == "Role"))
    role["rules"][0]["verb"] = ["get"]
    for version in VERSIONS:
        errs = schema_errors(job, version)
        assert any("backofLimit" in e for e in errs), errs
        assert any("imagePulPolicy" in e for e in errs), errs  # a second error, same resource
        assert any("verb" in e for e in schema_errors(role, version))
    sem = semantic_errors([job, role])
    assert any("restartPolicy" in e for e in sem), sem
    assert any("not a quantity" in e for e in sem), sem
    # without strict schemas, the misspellings pass: that is why --strict matters
    import kubernetes_validate

    lax = copy.deepcopy(job)
    lax["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    for version in VERSIONS:
        kubernetes_validate.validate(lax, version, strict=False)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(lax, version, strict=True)


def test_semantic_checks_catch_what_schemas_miss() -> None:
    docs = _docs(GOLDEN / "schedule_cron" / "k8s" / "manifests.yaml")
    bad = copy.deepcopy(docs)
    cron = next(d for d in bad if d["kind"] == "CronJob")
    cron["spec"]["schedule"] = "61 * * * *"
    cron["metadata"]["name"] = "Bad_Name"
    rb = next(d for d in bad if d["kind"] == "RoleBinding")
    rb["roleRef"]["name"] = "nope"
    rb["subjects"][0]["name"] = "ghost"
    errs = semantic_errors(bad)
    assert any("cron" in e for e in errs), errs
    assert any("DNS-1123" in e for e in errs), errs
    assert any("roleRef" in e for e in errs), errs
    assert any("ghost" in e for e in errs), errs
    assert all(all_schema_errors(d) == [] for d in bad)  # the schemas alone accept all of it


FLOW = """\
flowc: 1
name: {name}
{extra}
steps:
{steps}
"""


def _ir(steps: str, extra: str = "", name: str = "t", **kw: object):
    return load_text(FLOW.format(name=name, extra=extra, steps=steps), "flow.yaml", **kw)


def test_least_privilege_rbac_and_no_secret_values() -> None:
    ir = _ir(
        "  a: {run: flowc_demo.steps:echo, with: {value: '${secrets.tok}'}}",
        "secrets:\n  tok: {env: TOK, k8s: {name: api, key: token}}",
    )
    docs = build_documents(ir)
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
    ]
    assert not any(d["kind"].startswith("Cluster") for d in docs)
    job = step_jobs(docs)[0]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TOK", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}} in env
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_names_are_sanitized_and_collisions_are_located_errors() -> None:
    ir = _ir(
        "  load_data: {run: flowc_demo.steps:load}\n  load__data: {run: flowc_demo.steps:load}",
        name="my_flow",
    )
    with pytest.raises(FlowcError) as e:
        K8sTarget().emit(ir)
    text = e.value.render()
    assert text.startswith("flow.yaml:6:3: error:"), text
    assert "'my-flow-load-data'" in text


def test_truncated_step_names_stay_distinct_and_valid() -> None:
    # realistic names sharing their first 44 characters once prefixed by the flow's name used
    # to collide ("both become the Kubernetes name"), failing `compile --all`
    steps = "\n".join(
        f"  {n}: {{run: flowc_demo.steps:load}}"
        for n in ("condition_is_true", "condition_is_false", "x" * 60 + "_a", "x" * 60 + "_b")
    )
    ir = _ir(steps, name="nightly_customer_churn_feature_pipeline")
    docs = build_documents(ir)
    config = json.loads(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["k8s.json"])
    prefixes = [p["name_prefix"] for p in config["steps"].values()]
    assert len(set(prefixes)) == 4 and all(len(p) <= 44 for p in prefixes), prefixes
    assert prefixes[0].startswith("nightly-customer-churn-feature-pipe-")
    assert prefixes == [
        p["name_prefix"]
        for p in json.loads(
            next(d for d in build_documents(ir) if d["kind"] == "ConfigMap")["data"]["k8s.json"]
        )["steps"].values()
    ]  # stable
    short = json.loads(
        next(d for d in build_documents(_ir(steps, name="f")) if d["kind"] == "ConfigMap")["data"][
            "k8s.json"
        ]
    )["steps"]
    assert short["condition_is_true"]["name_prefix"] == "f-condition-is-true"  # not truncated
    for job in step_jobs(docs):
        assert all_schema_errors(job) == [], job["metadata"]["name"]
    assert semantic_errors([*docs, *step_jobs(docs)]) == []


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (3600, "0 * * * *"),
        (6 * 3600, "0 */6 * * *"),
        (86400, "0 0 * * *"),
        (7 * 86400, "0 0 * * 0"),
        (30, None),
        (7 * 60, None),
        (5 * 3600, None),
        (2 * 86400, None),
    ],
)
def test_every_to_cron(seconds: int, cron: str | None) -> None:
    assert every_to_cron(seconds) == cron


def test_schedule_refusals_are_located() -> None:
    ir = _ir("  a: {run: flowc_demo.steps:load}", "schedule:\n  every: 7m")
    with pytest.raises(FlowcError) as e:
        K8sTarget().emit(ir)
    assert e.value.render().startswith("flow.yaml:3:1: error: `every: 420s` cannot be expressed")


def test_at_becomes_the_yearly_cron_of_its_minute_guarded_by_the_driver() -> None:
    from datetime import UTC, datetime

    from flowc.runtime.k8s import in_window

    ir = _ir(
        "  a: {run: flowc_demo.steps:load}",
        "schedule:\n  at: 2027-01-01T00:00:00Z\n  timezone: Europe/Berlin",
    )
    cron = build_documents(ir)[-1]
    assert cron["kind"] == "CronJob" and cron["spec"]["schedule"] == "0 1 1 1 *"
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    sched = ir.schedule.to_data()
    assert in_window(sched, datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert not in_window(sched, datetime(2028, 1, 1, 0, 0, 5, tzinfo=UTC))  # next year's firing
    assert not in_window(sched, datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))


def test_cronjob_fields() -> None:
    ir = _ir(
        "  a: {run: flowc_demo.steps:load}",
        "schedule:\n  cron: '*/10 * * * *'\n  timezone: America/New_York\n  catchup: true",
    )
    cron = build_documents(ir)[-1]
    assert cron["kind"] == "CronJob"
    spec = cron["spec"]
    assert spec["schedule"] == "*/10 * * * *" and spec["timeZone"] == "America/New_York"
    assert spec["concurrencyPolicy"] == "Forbid" and spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
    assert (
        spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "drive"
    )


STACK = """\
stacks:
  c:
    orchestrator: {{type: kubernetes, {opts}}}
    artifact_store: {{type: {store}}}
"""


def test_orchestrator_options_are_checked() -> None:
    with pytest.raises(FlowcError) as e:
        K8sTarget().emit(
            _ir(
                "  a: {run: flowc_demo.steps:load}",
                STACK.format(opts="namespce: x", store="local, path: /a"),
                stack="c",
            )
        )
    assert e.value.render().startswith("flow.yaml:5:")  # located (front-end or target)
    assert "'namespce'" in e.value.render() and "did you mean 'namespace'" in e.value.render()
    gcs = STACK.format(opts="namespace: x", store="gcs, bucket: my-bucket")
    docs = build_documents(_ir("  a: {run: flowc_demo.steps:load}", gcs, stack="c"))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert json.loads(cm["data"]["k8s.json"])["store"] == {"type": "gcs", "bucket": "my-bucket"}
    pvc = STACK.format(opts="artifact_pvc: claim", store="gcs, bucket: my-bucket")
    with pytest.raises(FlowcError) as e:
        K8sTarget().emit(_ir("  a: {run: flowc_demo.steps:load}", pvc, stack="c"))
    assert e.value.render().startswith("flow.yaml:6:5: error: `artifact_pvc` needs a local")


def test_bad_quantity_is_a_located_error() -> None:
    # the resources pass refuses it, so no target (and not `flowc validate`) accepts it
    with pytest.raises(FlowcError) as e:
        _ir("  a: {run: flowc_demo.steps:load, resources: {cpu: lots, memory: 2Gigs}}")
    text = e.value.render()
    assert text.count("is not a Kubernetes quantity") == 2
    assert "flow.yaml:5:52: error: step 'a': resources.cpu 'lots'" in text


def test_output_is_deterministic() -> None:
    from flowc.compiler.api import compile_flow

    a = K8sTarget().emit(compile_flow(str(GOLDEN / "foreach" / "flow.yaml")))
    b = K8sTarget().emit(compile_flow(str(GOLDEN / "foreach" / "flow.yaml")))
    assert a == b
    assert "/work/" not in a["manifests.yaml"]


def test_plan_round_trips_through_the_manifest_with_any_text() -> None:
    value = "\u00fcn\u2028c\u00f8d\u00e9 \"q\" 'a' #x: - |y $${ds} {{ ds }} %s \t\nline\r\x85 \U0001f600"

    def quoted(v: str) -> str:  # a YAML double-quoted scalar (JSON, line separators escaped)
        return (
            json.dumps(v, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\x85", "\\x85")
        )

    ir = _ir(
        f"  a: {{run: flowc_demo.steps:echo, with: {{value: '${{params.s}}', other: {quoted(value)}}}}}",
        f"params:\n  s: {{type: str, default: {quoted(value)}}}\ndescription: {quoted(value)}",
        name="rt",
    )
    text = K8sTarget().emit(ir)["manifests.yaml"]
    docs = [d for d in yaml.safe_load_all(text) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert json.loads(cm["data"]["plan.json"]) == ir.to_data()
    assert all(all_schema_errors(d) == [] for d in docs)


def _load(text: str) -> list[dict]:
    """The documents of a big manifest (libyaml's loader: the pure-Python one is slow there)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text, Loader=loader) if d]


def _plan_maps(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "ConfigMap"]


def _data_bytes(cm: dict) -> int:
    """What Kubernetes counts against a ConfigMap's 1 MiB: keys + values, UTF-8."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in cm["data"].items())


def _joined(docs: list[dict], key: str) -> str:
    from flowc.runtime.k8s import join_parts

    data: dict[str, str] = {}
    for cm in _plan_maps(docs):
        data.update(cm["data"])
    text = join_parts(data, key)
    assert text is not None, sorted(data)
    return text


def test_a_plan_too_big_for_one_configmap_is_split_over_several() -> None:
    big = "x" * 30_000
    steps = "\n".join(
        f"  s{i}: {{run: flowc_demo.steps:echo, with: {{value: {big}}}}}" for i in range(40)
    )
    ir = _ir(steps, name="huge")
    text = K8sTarget().emit(ir)["manifests.yaml"]
    docs = _load(text)
    maps = _plan_maps(docs)
    assert [m["metadata"]["name"] for m in maps] == [f"huge-flowc-plan-{i}" for i in range(2)]
    assert all(_data_bytes(m) <= 900 * 1024 for m in maps)
    assert json.loads(_joined(docs, "plan.json")) == ir.to_data()
    assert json.loads(_joined(docs, "k8s.json"))["configmap"] == "huge-flowc-plan"
    assert K8sTarget().emit(ir)["manifests.yaml"] == text  # deterministic


def _generated_ir(n: int):
    import sys

    bench = str(Path(__file__).resolve().parent.parent / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from compile_bench import generate

    return load_text(generate(n), "flow.yaml")


def test_a_1000_step_flow_compiles_to_valid_configmaps_under_1_mib() -> None:
    import time

    ir = _generated_ir(1000)
    t0 = time.process_time()
    text = K8sTarget().emit(ir)["manifests.yaml"]
    print(f"k8s emit, 1,000 generated steps: {time.process_time() - t0:.3f}s CPU")
    docs = _load(text)
    maps = _plan_maps(docs)
    names = [m["metadata"]["name"] for m in maps]
    assert names == [f"bench-1000-flowc-plan-{i}" for i in range(len(maps))] and len(maps) >= 2
    for m in maps:
        assert _data_bytes(m) < 1024 * 1024, (m["metadata"]["name"], _data_bytes(m))
        # the whole object, JSON-escaped as sent to the API: far under etcd's ~1.5 MiB
        assert len(json.dumps(m).encode()) < 1536 * 1024
        assert all(key.rsplit(".", 1)[-1].isdigit() for key in m["data"]), list(m["data"])
    # every document passes the strict schemas (2 versions) and the semantic checks
    errors = [e for d in docs for e in all_schema_errors(d)] + semantic_errors(docs)
    assert errors == []
    assert json.loads(_joined(docs, "plan.json")) == ir.to_data()
    config = json.loads(_joined(docs, "k8s.json"))
    assert len(config["steps"]) == 1000
    projected = {
        "name": "flowc-plan",
        "projected": {"sources": [{"configMap": {"name": n}} for n in names]},
    }
    driver = docs[-1]
    assert driver["kind"] == "Job" and driver["spec"]["template"]["spec"]["volumes"] == [projected]
    assert config["job"]["spec"]["template"]["spec"]["volumes"] == [projected]
    # the step Jobs the driver makes from it (a sample: each kind of step) are valid too
    from flowc.runtime.k8s import step_job

    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "driver", "uid": "u-1"}
    for step in ("s0", "s5", "s7", "s999"):
        job = step_job(config, step, name=f"{config['steps'][step]['name_prefix']}-0123abcd")
        job["metadata"]["ownerReferences"] = [owner]
        assert all_schema_errors(job) + semantic_errors([job]) == []
    assert K8sTarget().emit(ir)["manifests.yaml"] == text  # deterministic


def test_a_plan_that_fits_keeps_the_one_configmap_layout() -> None:
    docs = build_documents(_generated_ir(100))
    maps = _plan_maps(docs)
    assert [m["metadata"]["name"] for m in maps] == ["bench-100-flowc-plan"]
    assert list(maps[0]["data"]) == ["k8s.json", "plan.json"]
    vols = docs[-1]["spec"]["template"]["spec"]["volumes"]
    assert vols == [{"name": "flowc-plan", "configMap": {"name": "bench-100-flowc-plan"}}]


def test_operator_jobs_mount_the_parts_of_a_split_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowc.targets import k8s

    monkeypatch.setattr(k8s, "CONFIGMAP_MAX", 1_000)
    ir = _ir(
        "  w: {run: flowc_streaming.ops:DemoWriter, operator: true, produces: [r], with: {record_count: 1}}\n"
        "  r2: {run: flowc_streaming.ops:DemoReader, operator: true, consumes: [r], with: {out_dir: o}}\n"
        "  a: {run: flowc_demo.steps:load}",
        "channels:\n  r: {schema: {type: record, name: R, fields: []}, transport: kafka, location: 'k:9092'}",
        name="ops",
    )
    docs = build_documents(ir)
    names = [m["metadata"]["name"] for m in _plan_maps(docs)]
    assert names == ["ops-flowc-plan-0"]  # over CONFIGMAP_MAX: parts, in one ConfigMap here
    from flowc.runtime.k8s import join_parts
    from flowc.runtime.k8s_run import operator_job

    data = {k: v for m in _plan_maps(docs) for k, v in m["data"].items()}
    templates = json.loads(join_parts(data, "k8s.json"))["operators"]
    operators = [
        operator_job(t, run_id="r1", namespace="default", owner=None, params=[])
        for t in templates.values()
    ]
    jobs = [d for d in docs if d["kind"] == "Job"] + operators
    assert len(jobs) == 3  # the driver and the two operator Jobs a run starts
    for job in jobs:
        vols = job["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "flowc-plan",
            "projected": {"sources": [{"configMap": {"name": names[0]}}]},
        } in vols
    every = [*docs, *operators]
    assert [e for d in every for e in all_schema_errors(d)] + semantic_errors(every) == []


def test_split_parts_never_cut_a_character_and_join_back() -> None:
    from flowc.runtime.k8s import join_parts
    from flowc.targets.k8s import split_files

    files = {
        "k8s.json": "".join(
            f"  line {i} \u00e9\u20ac\U0001f600 {'y' * (i % 50)}\n" for i in range(400)
        ),
        "plan.json": "\u20ac" * 20_000 + "\n" + "\U0001f600" * 10_000,  # long lines
    }
    for chunk in (5_000, 7_919, 65_536):
        maps = split_files(files, chunk)
        assert len(maps) > 1
        data: dict[str, str] = {}
        for m in maps:
            assert sum(len(k) + len(v.encode()) for k, v in m.items()) <= chunk + 1
            assert not set(m) & set(data)  # distinct keys: they share one projected volume
            data.update(m)
        for key, text in files.items():
            assert join_parts(data, key) == text
        assert all(not v.startswith("\n") for v in data.values())
        assert split_files(files, chunk) == maps  # deterministic
    assert join_parts({"plan.json": "a"}, "plan.json") == "a"
    assert join_parts({"x.0": "a"}, "plan.json") is None


def test_split_json_parts_are_valid_yaml_blocks() -> None:
    """Parts start with indentation and may end mid-line: ``|2``, ``|-`` headers round-trip."""
    from flowc.targets.k8s import Block, dump_documents

    parts = ['  "a": 1,\n  "b": [\n', "    2\n  ]\n}\n", '{\n  "c": "xy', 'z"\n', "   t"]
    doc = {"kind": "ConfigMap", "data": {f"p.{i}": Block(t) for i, t in enumerate(parts)}}
    text = dump_documents([doc], ["h"])
    assert yaml.safe_load(text)["data"] == {f"p.{i}": t for i, t in enumerate(parts)}
    for bad in ("", "\nx", "x\n\n", "\u00e9", "a\tb"):
        with pytest.raises(ValueError):
            Block(bad)


def test_step_env_follows_the_shared_env() -> None:
    stack = STACK.format(opts="artifact_pvc: claim", store="local, path: /x")
    ir = _ir("  a: {run: flowc_demo.steps:load, env: {LOG_LEVEL: debug, N: 3}}", stack, stack="c")
    job = step_jobs(build_documents(ir))[0]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "FLOWC_ARTIFACT_ROOT", "value": "/flowc/artifacts"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "N", "value": "3"},
    ]
    assert job["metadata"]["labels"]["flowc.dev/step"] == "a"
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert list(job["spec"])[-1] == "template"


def test_gpu_type_selects_accelerator_nodes_and_requests_equal_limits() -> None:
    ir = _ir(
        "  a: {run: flowc_demo.steps:load, resources: {cpu: '4', memory: 16Gi, gpu: 2, "
        "gpu_type: NVIDIA_TESLA_T4}}",
        STACK.format(opts="node_selector: {pool: gpu}", store="local, path: /a"),
        stack="c",
    )
    docs = build_documents(ir)
    (job,) = step_jobs(docs)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "pool": "gpu",
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
    }
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert all_schema_errors(job) == []


def test_stack_default_resources_are_accepted_and_checked_like_validate() -> None:
    from flowc.compiler.api import emit

    ok = STACK.format(opts="resources: {cpu: 500m, memory: 1Gi}", store="local, path: /a")
    ir = _ir("  a: {run: flowc_demo.steps:load}", ok, stack="c")
    (job,) = step_jobs(build_documents(ir))
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "1Gi",
    }
    assert "manifests.yaml" in emit(ir, "k8s")
    bad = STACK.format(opts="resources: {cpu: lots}", store="local, path: /a")
    with pytest.raises(FlowcError) as e:  # the front end (validate) refuses it, at the stack
        _ir("  a: {run: flowc_demo.steps:load}", bad, stack="c")
    assert "stack 'c' orchestrator: resources.cpu 'lots' is not a Kubernetes quantity" in str(
        e.value
    )
