"""The Kubernetes target: one multi-document ``manifests.yaml`` that runs the whole DAG on any
cluster with nothing but the Kubernetes API.

Documents, in this order: ServiceAccount (unless the stack names an existing one), Role,
RoleBinding (least privilege, namespaced), a ConfigMap holding the plan (``plan.json``) and the
per-step Job templates the driver instantiates (``k8s.json``) -- or, for a plan too big for one
ConfigMap, as many ConfigMaps as needed holding numbered parts of both files (see
:func:`split_files`) -- then the driver: a Job, or a CronJob wrapping it when the flow has a
schedule. Operator steps (pypz) add their Job templates to ``k8s.json`` (key ``operators``,
:mod:`flowc.targets.k8s_operators`): every run starts them (the driver Job then runs
``python -m flowc.runtime.k8s_run``, which starts them and runs the driver).

The driver (``python -m flowc.runtime.k8s drive``) creates one Job per step instance from the
templates in ``k8s.json``; every Kubernetes decision (names, labels, images, resources, env,
secrets as ``secretKeyRef``, retries, timeouts) is made here, at compile time, so it is visible
in the golden files. Pure: no I/O, no clock, no Kubernetes SDK. See ``docs/k8s.md``.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, ClassVar

from flowc.compiler.errors import Collector, Diagnostic, FlowcError
from flowc.targets.base import (
    BaseTarget,
    Capabilities,
    config_secret_names,
    dns1123,
    dns1123_unique,
    json_text,
    pod_node_selector,
    pod_resources,
    secret_env_var,
    with_pip_install,
)
from flowc.targets.base import every_to_cron as base_every_to_cron
from flowc.targets.k8s_operators import operator_templates
from flowc.targets.yaml_writer import Block, dump_documents

if TYPE_CHECKING:
    from flowc.compiler.ir import Pipeline, Step

PLAN_MOUNT = "/etc/flowc"
"""Where the plan ConfigMap is mounted in the driver and step pods."""
PVC_MOUNT = "/flowc/artifacts"
"""Where the ``artifact_pvc`` volume is mounted (the artifact root then)."""
DEFAULT_ARTIFACT_ROOT = ".flowc/artifacts"
CONFIGMAP_MAX = 1_000_000
"""Data bytes (keys + values) up to which the plan goes into ONE ConfigMap ``<flow>-flowc-plan``
(data keys ``k8s.json``, ``plan.json``): a ConfigMap holds 1 MiB, this leaves room for keys."""
CHUNK_BYTES = 900 * 1024
"""Data bytes (keys + values) of each ConfigMap ``<flow>-flowc-plan-<i>`` of a bigger plan.
Kubernetes limits a ConfigMap's data to 1 MiB (etcd an object to ~1.5 MiB): this leaves margin."""
MIN_PART = 4096
"""A part of a file starts in a ConfigMap only when at least this much room (or the whole rest of
the file) is left in it; else it starts the next ConfigMap."""
BASE_MAX = 40  # flow name part: leaves room for "-driver-<11-digit CronJob suffix>"
STEP_JOB_MAX = 44  # step Job name prefix: + "-<run id 8>" + "-<item index up to 9999>"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def step_lines(steps: dict[str, Any]) -> list[str]:
    """The lines of ``k8s.json["steps"]``: one compact line per step template."""
    return [
        f"    {json.dumps(name)}: {json.dumps(tmpl, separators=(',', ':'))}"
        for name, tmpl in steps.items()
    ]


def settings_json(settings: dict[str, Any], lines: list[str] | None = None) -> str:
    """``k8s.json``: readable head, then one compact line per step template (a ConfigMap holds
    1 MiB: the indented form would limit a flow to a few hundred steps). ``lines``: the
    :func:`step_lines` of ``settings["steps"]``, when already made."""
    if lines is None:
        lines = step_lines(settings["steps"])
    head = json.dumps({k: v for k, v in settings.items() if k != "steps"}, indent=2)
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    return head[:-2] + f',\n  "steps": {body}\n}}\n'


def fits_one_configmap(files: dict[str, str]) -> bool:
    """Whether ``files`` go into one ConfigMap (the layout of every plan up to
    :data:`CONFIGMAP_MAX` bytes, unchanged since flowc had only that one)."""
    return sum(len(text.encode("utf-8")) for text in files.values()) <= CONFIGMAP_MAX


def _cut(data: bytes, start: int, room: int) -> int:
    """Where the part of ``data`` starting at ``start`` ends, holding at most ``room`` bytes (one
    more when a mid-line cut falls right before a newline): after the last newline in the second
    half of the room (``k8s.json`` has one line per step, ``plan.json`` one per JSON value), else
    at the last UTF-8 character boundary: never inside a multi-byte character."""
    end = start + room
    if end >= len(data):
        return len(data)
    newline = data.rfind(b"\n", start + room // 2, end)
    if newline >= 0:
        return newline + 1
    while end > start and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        end -= 1
    if data[end : end + 1] == b"\n":  # the next part must not start with a newline
        end += 1
    if end <= start:
        raise ValueError(f"no room for a part: {room} bytes")
    return end


def split_files(files: dict[str, str], chunk: int | None = None) -> list[dict[str, str]]:
    """The data of the ConfigMaps of a plan too big for one: each file cut into parts
    ``<key>.0``, ``<key>.1``, ... (see :func:`_cut`), filling ConfigMaps of at most ``chunk``
    data bytes (keys + values, UTF-8; default :data:`CHUNK_BYTES`) in order; a part starts a
    new ConfigMap when less than :data:`MIN_PART` bytes are left. Deterministic: it depends on
    the text only. Readers concatenate ``<key>.0``, ``<key>.1``, ... until one is missing
    (``flowc.runtime.k8s.join_parts``)."""
    chunk = CHUNK_BYTES if chunk is None else chunk
    maps: list[dict[str, str]] = [{}]
    used = 0
    for key, text in files.items():
        data = text.encode("utf-8")
        pos = index = 0
        while pos < len(data):
            part = f"{key}.{index}"
            room = chunk - used - len(part)
            if room < min(MIN_PART, len(data) - pos):
                maps.append({})
                used, room = 0, chunk - len(part)
            end = _cut(data, pos, room)
            maps[-1][part] = data[pos:end].decode("utf-8")
            used += len(part) + end - pos
            pos, index = end, index + 1
    return [m for m in maps if m]


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else its DNS-1123 spelling."""
    return text if len(text) <= 63 and _LABEL_VALUE.match(text) else dns1123(text)


def every_to_cron(seconds: float) -> str | None:
    """The 5-field cron expression that fires every ``seconds``, or None when cron can't say it
    (:func:`flowc.targets.base.every_to_cron`, and one week)."""
    return "0 0 * * 0" if seconds == 7 * 86400 else base_every_to_cron(seconds)


def at_to_cron(at: str, timezone: str) -> str:
    """The yearly cron expression of the minute of ``at`` in ``timezone`` (``at`` with an offset
    is converted; a naive one is read in ``timezone``). A CronJob only repeats, so the driver
    checks the year and exits without running in any other (``flowc.runtime.k8s.in_window``)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    when = datetime.fromisoformat(at)
    if when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(timezone))
    return f"{when.minute} {when.hour} {when.day} {when.month} *"


class K8sTarget(BaseTarget):
    name: ClassVar[str] = "k8s"
    description: ClassVar[str] = (
        "Kubernetes manifests: RBAC, plan ConfigMap and a driver Job (CronJob when scheduled)"
    )
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        operators=True,  # Deployments/Jobs of flowc.targets.k8s_operators
        channel_transports=frozenset({"kafka"}),  # pods on many nodes: no local transport
        store_in_pods=True,  # the driver and step pods exchange values through the store
        retry_delay=False,  # a new pod per attempt, after Kubernetes' own back-off
    )

    def check(self, ir: Pipeline) -> list[Diagnostic]:
        problem = _every_problem(ir)
        return [] if problem is None else [problem]

    def emit(self, ir: Pipeline) -> dict[str, str]:
        docs = build_documents(ir)
        return {"manifests.yaml": dump_documents(docs, self.header_lines(ir))}


# ---------------------------------------------------------------------------------------------
# Options and names
# ---------------------------------------------------------------------------------------------


def orchestrator_options(ir: Pipeline) -> dict[str, Any]:
    """The kubernetes orchestrator settings this flow compiles with, as the ``stack_settings``
    pass resolved them (:meth:`flowc.compiler.ir.Pipeline.orchestrator_settings`)."""
    return ir.orchestrator_settings("k8s")


def flow_base(ir: Pipeline) -> str:
    return dns1123(ir.name, BASE_MAX)


def step_job_prefixes(ir: Pipeline) -> dict[str, str]:
    """``{step: Job name prefix}``: DNS-1123, deterministic, unique (a collision after
    sanitizing or truncating is a located error at the later step)."""
    base = flow_base(ir)
    seen: dict[str, str] = {}
    out: dict[str, str] = {}
    errors = Collector()
    for step in ir.steps:
        prefix = dns1123_unique(f"{base}-{step.name}", STEP_JOB_MAX)
        if prefix in seen:
            errors.error(
                step.loc,
                f"step '{step.name}' and step '{seen[prefix]}' both become the Kubernetes name "
                f"'{prefix}'",
                "rename one of them (Kubernetes names turn '_' into '-'; a longer name is "
                f"cut to {STEP_JOB_MAX} characters ending in a hash of the step's name)",
            )
        else:
            seen[prefix] = step.name
        out[step.name] = prefix
    errors.raise_if_any()
    return out


def common_labels(ir: Pipeline, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "flowc",
        "app.kubernetes.io/instance": flow_base(ir),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": flow_base(ir),
        "app.kubernetes.io/managed-by": "flowc",
        "flowc.dev/flow": label_value(ir.name),
    }


def _metadata(name: str, labels: dict[str, str], namespace: str | None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    md["labels"] = labels
    return md


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------


def build_documents(ir: Pipeline) -> list[dict[str, Any]]:
    """Every manifest, in a stable order, as plain data."""
    opts = orchestrator_options(ir)
    base = flow_base(ir)
    namespace = opts.get("namespace")
    prefixes = step_job_prefixes(ir)
    sa_name = opts.get("service_account") or f"{base}-flowc"
    rbac_name = f"{base}-flowc-driver"
    configmap = f"{base}-flowc-plan"
    driver = f"{base}-driver"
    store = _store_settings(ir, opts)

    docs: list[dict[str, Any]] = []
    if not opts.get("service_account"):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": _metadata(sa_name, common_labels(ir, "rbac"), namespace),
            }
        )
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(rbac_name, common_labels(ir, "rbac"), namespace),
            "rules": [
                {
                    "apiGroups": ["batch"],
                    "resources": ["jobs"],
                    "verbs": ["create", "get", "list", "watch", "delete"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["pods", "pods/log"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        }
    )
    subject: dict[str, Any] = {"kind": "ServiceAccount", "name": sa_name}
    if namespace:
        subject["namespace"] = namespace
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(rbac_name, common_labels(ir, "rbac"), namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rbac_name},
            "subjects": [subject],
        }
    )
    steps = {
        s.name: step_job_patch(ir, s, prefixes[s.name], opts) for s in ir.steps if not s.operator
    }
    lines = step_lines(steps)
    plan_text = json_text(ir.to_data()) + "\n"
    # One ConfigMap when the plan fits, else <configmap>-0, -1, ... projected into one volume.
    # k8s.json names them (the step Jobs' volume), so its size depends on their number: repeat
    # while more are needed than named (each round names more, so this ends; a second round is
    # the rule, a third rare). Should fewer be needed, the last ones stay empty.
    maps: list[str] = [configmap]
    has_operators = any(s.operator for s in ir.steps)

    def plan_maps(names: list[str]) -> str | list[str]:
        return configmap if names == [configmap] else names

    while True:
        settings = {
            "flow": ir.name,
            "base": base,
            "configmap": configmap,
            "store": store,
            "poll_seconds": float(opts["poll_seconds"]),
            "job": step_job_base(ir, opts, sa_name, plan_maps(maps)),
            "steps": steps,
        }
        if has_operators:  # started by every run (flowc.runtime.k8s_run), not at deploy
            settings["operators"] = operator_templates(ir, plan_maps(maps))
        files = {"k8s.json": settings_json(settings, lines), "plan.json": plan_text}
        parts = [files] if fits_one_configmap(files) else split_files(files)
        names = (
            [configmap] if parts[0] is files else [f"{configmap}-{i}" for i in range(len(parts))]
        )
        if names == maps or (maps != [configmap] and len(names) <= len(maps)):
            parts += [{} for _ in range(len(maps) - len(parts))]
            break
        maps = names
    for name, data in zip(maps, parts, strict=True):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _metadata(name, common_labels(ir, "plan"), namespace),
                "data": {key: Block(text) for key, text in data.items()},
            }
        )
    job_spec = driver_job_spec(ir, opts, sa_name, plan_maps(maps))
    if ir.schedule is None:
        docs.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": _metadata(driver, common_labels(ir, "driver"), namespace),
                "spec": job_spec,
            }
        )
    else:
        docs.append(driver_cronjob(ir, opts, driver, namespace, job_spec))
    return docs


def _store_settings(ir: Pipeline, opts: dict[str, Any]) -> dict[str, Any]:
    """The artifact store the driver and the step pods exchange values through: the stack's
    (any type the runtime knows: ``local`` on a shared filesystem, ``gcs``...), a ``local``
    store on the ``artifact_pvc`` volume, else ``local`` at ``.flowc/artifacts``."""
    store = ir.stack.artifact_store if ir.stack else None
    if opts.get("artifact_pvc"):
        if store is not None and store.type != "local":
            raise FlowcError.at(
                store.loc,
                f"`artifact_pvc` needs a local artifact store, not '{store.type}'",
                "drop `artifact_pvc`, or use `artifact_store: {type: local}`",
            )
        return {"type": "local", "path": PVC_MOUNT}
    if store is None:
        return {"type": "local", "path": DEFAULT_ARTIFACT_ROOT}
    return store.to_data()


def _pod_common(opts: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if opts.get("image_pull_secrets"):
        spec["imagePullSecrets"] = [{"name": n} for n in opts["image_pull_secrets"]]
    if opts.get("node_selector"):
        spec["nodeSelector"] = dict(opts["node_selector"])
    if opts.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in opts["tolerations"]]
    return spec


def _plan_volume(configmap: str | list[str]) -> dict[str, Any]:
    """The volume of the plan: one ConfigMap, or all parts of a split plan projected into one
    directory (their keys are distinct: ``plan.json.0``, ``k8s.json.0``, ...)."""
    if isinstance(configmap, str):
        return {"name": "flowc-plan", "configMap": {"name": configmap}}
    return {
        "name": "flowc-plan",
        "projected": {"sources": [{"configMap": {"name": n}} for n in configmap]},
    }


def _volumes(configmap: str | list[str], opts: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    volumes: list[dict[str, Any]] = [_plan_volume(configmap)]
    mounts: list[dict[str, Any]] = [
        {"name": "flowc-plan", "mountPath": PLAN_MOUNT, "readOnly": True}
    ]
    if opts.get("artifact_pvc"):
        volumes.append(
            {
                "name": "flowc-artifacts",
                "persistentVolumeClaim": {"claimName": opts["artifact_pvc"]},
            }
        )
        mounts.append({"name": "flowc-artifacts", "mountPath": PVC_MOUNT})
    return volumes, mounts


def _image(opts: dict[str, Any]) -> str:
    return str(opts["image"])  # the stack's, else flowc/flowc:<version> (SETTING_DEFAULTS)


def step_job_base(
    ir: Pipeline, opts: dict[str, Any], sa: str, configmap: str | list[str]
) -> dict[str, Any]:
    """What every step Job shares (``k8s.json["job"]``); :func:`step_job_patch` holds each
    step's own fields and ``flowc.runtime.k8s.step_job`` merges both (stored once: a ConfigMap
    holds 1 MiB)."""
    volumes, mounts = _volumes(configmap, opts)
    container: dict[str, Any] = {
        "name": "step",
        "image": _image(opts),
        "imagePullPolicy": opts["image_pull_policy"],
        "command": list(STEP_COMMAND),
        "args": ["--plan", f"{PLAN_MOUNT}/plan.json", "--config", f"{PLAN_MOUNT}/k8s.json"],
        "volumeMounts": mounts,
    }
    if opts.get("artifact_pvc"):  # the local store's root: the shared volume
        container["env"] = [{"name": "FLOWC_ARTIFACT_ROOT", "value": PVC_MOUNT}]
    for name in config_secret_names(ir):  # what plugin/stack configuration references
        container.setdefault("env", []).append(secret_env_var(ir, name))
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": sa,
        "automountServiceAccountToken": False,
    }
    pod.update(_pod_common(opts))
    pod["containers"] = [container]
    pod["volumes"] = volumes
    spec: dict[str, Any] = {"backoffLimit": 0}
    if opts.get("ttl_seconds_after_finished") is not None:
        spec["ttlSecondsAfterFinished"] = int(opts["ttl_seconds_after_finished"])
    labels = common_labels(ir, "step")
    spec["template"] = {"metadata": {"labels": labels}, "spec": pod}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": labels}, "spec": spec}


def literal_env(step: Step) -> list[dict[str, Any]]:
    """The container env entries of the step's literal scalar ``env`` values (JSON for
    non-strings); other values are evaluated by the runtime in the pod."""
    from flowc.compiler.ir import Lit

    env: list[dict[str, Any]] = []
    for key, value in step.env:
        if isinstance(value, Lit) and not isinstance(value.value, (list, dict)):
            v = value.value
            env.append({"name": key, "value": v if isinstance(v, str) else json.dumps(v)})
    return env


STEP_COMMAND = ("python", "-m", "flowc.runtime.k8s", "step")
"""What a step pod runs (its arguments: the plan and the config)."""


def step_job_patch(ir: Pipeline, step: Step, prefix: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One step's own Job fields: name prefix, step label, retries, timeout, Indexed completions
    for replicas, image, env (literal values, secrets as ``secretKeyRef``), resources."""
    env = literal_env(step)
    shared = set(config_secret_names(ir))  # already in every step pod (step_job_base)
    for name in step.secrets:
        if name not in shared:
            env.append(secret_env_var(ir, name))
    if step.replicas > 1:
        env.append(
            {
                "name": "FLOWC_REPLICA",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    }
                },
            }
        )
        env.append({"name": "FLOWC_REPLICAS", "value": str(step.replicas)})
    spec: dict[str, Any] = {"backoffLimit": step.retries}
    if step.replicas > 1:
        spec["completionMode"] = "Indexed"
        spec["completions"] = step.replicas
        spec["parallelism"] = step.replicas
    pod: dict[str, Any] = {}
    if step.timeout is not None:
        pod["activeDeadlineSeconds"] = max(1, math.ceil(step.timeout))
    container: dict[str, Any] = {}
    if step.image and step.image != _image(opts):
        container["image"] = step.image
    if step.packages:  # installed before the step's runtime starts (a stock image has neither)
        container["command"] = with_pip_install(step, list(STEP_COMMAND), python="python")
    if env:
        container["env"] = env
    res = pod_resources(step.resources)
    if res:
        container["resources"] = res
    selector = step.resources.node_selector()
    if selector:  # the pod's nodeSelector replaces the shared one: carry the stack's too
        pod["nodeSelector"] = pod_node_selector(step.resources, opts.get("node_selector"))
    patch: dict[str, Any] = {"name_prefix": prefix, "label": label_value(step.name), "spec": spec}
    if pod:
        patch["pod"] = pod
    if container:
        patch["container"] = container
    return patch


def driver_job_spec(
    ir: Pipeline, opts: dict[str, Any], sa: str, configmap: str | list[str]
) -> dict[str, Any]:
    """The driver Job's spec (also the CronJob's jobTemplate spec)."""
    volumes, mounts = _volumes(configmap, opts)
    command = ["python", "-m", "flowc.runtime.k8s", "drive"]
    if any(s.operator for s in ir.steps):  # the run starts the operator Jobs, then drives
        command = ["python", "-m", "flowc.runtime.k8s_run"]
    container = {
        "name": "driver",
        "image": _image(opts),
        "imagePullPolicy": opts["image_pull_policy"],
        "command": command,
        "args": ["--plan", f"{PLAN_MOUNT}/plan.json", "--config", f"{PLAN_MOUNT}/k8s.json"],
        "env": [
            {
                "name": "FLOWC_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "FLOWC_DRIVER_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "FLOWC_DRIVER_JOB",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
            },
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "volumeMounts": mounts,
    }
    if opts.get("artifact_pvc"):  # the local store's root: the shared volume
        container["env"].append({"name": "FLOWC_ARTIFACT_ROOT", "value": PVC_MOUNT})
    for name in config_secret_names(ir):  # the driver opens the stack's artifact store too
        container["env"].append(secret_env_var(ir, name))
    pod: dict[str, Any] = {"restartPolicy": "Never", "serviceAccountName": sa}
    pod.update(_pod_common(opts))
    pod["containers"] = [container]
    pod["volumes"] = volumes
    spec: dict[str, Any] = {"backoffLimit": 0}
    if opts.get("ttl_seconds_after_finished") is not None:
        spec["ttlSecondsAfterFinished"] = int(opts["ttl_seconds_after_finished"])
    spec["template"] = {"metadata": {"labels": common_labels(ir, "driver")}, "spec": pod}
    return spec


def _every_problem(ir: Pipeline) -> Diagnostic | None:
    """An ``every`` schedule a CronJob cannot say, as a located diagnostic (else None)."""
    sched = ir.schedule
    if sched is None or sched.kind != "every" or every_to_cron(sched.every_seconds or 0):
        return None
    return Diagnostic(
        sched.loc,
        f"`every: {sched.every_seconds:g}s` cannot be expressed as a Kubernetes CronJob schedule",
        "use a period that divides an hour or a day evenly (1m, 5m, 15m, 1h, 6h, 1d, 7d), or "
        "write `cron:`",
    )


def driver_cronjob(
    ir: Pipeline, opts: dict[str, Any], name: str, namespace: str | None, job_spec: dict[str, Any]
) -> dict[str, Any]:
    """A CronJob wrapping the driver. ``every`` becomes cron when cron can say it exactly (other
    periods are located errors); ``at`` becomes the yearly cron of that minute, and the driver
    runs only in that year's slot (see :func:`at_to_cron`). ``start``/``end`` are enforced by
    the driver (it exits without running outside the window)."""
    sched = ir.schedule
    assert sched is not None
    if sched.kind == "at":
        try:
            cron = at_to_cron(str(sched.at), sched.timezone)
        except ValueError as e:
            raise FlowcError.at(sched.loc, f"schedule at: {e}") from None
    elif sched.kind == "every":
        problem = _every_problem(ir)
        if problem is not None:
            raise FlowcError(problem)
        cron = str(every_to_cron(float(sched.every_seconds or 0)))
    else:
        cron = str(sched.cron)
    deadline = opts["starting_deadline_seconds"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(name, common_labels(ir, "driver"), namespace),
        "spec": {
            "schedule": cron,
            "timeZone": sched.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": int(deadline),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": common_labels(ir, "driver")}, "spec": job_spec},
        },
    }
