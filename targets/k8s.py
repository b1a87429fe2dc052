"""The Kubernetes target: one multi-document ``manifests.yaml`` that runs the whole DAG on any
cluster with nothing but the Kubernetes API.

Documents, in this order: ServiceAccount (unless the stack names an existing one), Role,
RoleBinding (least privilege, namespaced), a ConfigMap holding the plan (``plan.json``) and the
per-step Job templates the driver instantiates (``k8s.json``), then the driver: a Job, or a
CronJob wrapping it when the flow has a schedule. Operator steps (pypz) add the Deployments of
:mod:`flowc.targets.k8s_operators`.

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

import yaml

from flowc import __version__
from flowc.compiler.errors import Collector, FlowcError
from flowc.targets.base import BaseTarget, dns1123

if TYPE_CHECKING:
    from flowc.compiler.ir import ComponentConfig, Pipeline, Step

PLAN_MOUNT = "/etc/flowc"
"""Where the plan ConfigMap is mounted in the driver and step pods."""
PVC_MOUNT = "/flowc/artifacts"
"""Where the ``artifact_pvc`` volume is mounted (the artifact root then)."""
DEFAULT_ARTIFACT_ROOT = ".flowc/artifacts"
ORCHESTRATOR_TYPES = ("kubernetes", "k8s")
OPTIONS = (
    "namespace",
    "service_account",
    "image_pull_secrets",
    "image_pull_policy",
    "node_selector",
    "tolerations",
    "ttl_seconds_after_finished",
    "image",
    "artifact_pvc",
    "starting_deadline_seconds",
    "poll_seconds",
    "operator_image",  # used by flowc.targets.k8s_operators
)
CONFIGMAP_MAX = 1_000_000  # a ConfigMap holds 1 MiB; leave room for its metadata
BASE_MAX = 40  # flow name part: leaves room for "-driver-<11-digit CronJob suffix>"
STEP_JOB_MAX = 44  # step Job name prefix: + "-<run id 8>" + "-<item index up to 9999>"
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def settings_json(settings: dict[str, Any]) -> str:
    """``k8s.json``: readable head, then one compact line per step template (a ConfigMap holds
    1 MiB: the indented form would limit a flow to a few hundred steps)."""
    steps = settings["steps"]
    head = json.dumps({k: v for k, v in settings.items() if k != "steps"}, indent=2)
    lines = [
        f"    {json.dumps(name)}: {json.dumps(tmpl, separators=(',', ':'))}"
        for name, tmpl in steps.items()
    ]
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    return head[:-2] + f',\n  "steps": {body}\n}}\n'


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else its DNS-1123 spelling."""
    return text if len(text) <= 63 and _LABEL_VALUE.match(text) else dns1123(text)


def every_to_cron(seconds: float) -> str | None:
    """The 5-field cron expression that fires every ``seconds``, or None when cron can't say it
    (only periods that divide a minute-hour-day boundary evenly are exact)."""
    if seconds <= 0 or seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60:
        return (
            "* * * * *" if minutes == 1 else (f"*/{minutes} * * * *" if 60 % minutes == 0 else None)
        )
    if minutes % 60:
        return None
    hours = minutes // 60
    if hours < 24:
        return "0 * * * *" if hours == 1 else (f"0 */{hours} * * *" if 24 % hours == 0 else None)
    if hours == 24:
        return "0 0 * * *"
    if hours == 24 * 7:
        return "0 0 * * 0"
    return None


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


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as ``|`` literals, never aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


class Block(str):
    """Multi-line ASCII text (the ConfigMap's JSON) written as a YAML literal block directly:
    PyYAML's scalar analysis is quadratic-ish on large strings and dominated the compile time."""

    def __new__(cls, text: str) -> Block:
        if not (text.isascii() and text.endswith("\n") and not text.endswith("\n\n")):
            raise ValueError("a Block is ASCII text ending with exactly one newline")
        if text[:1] in (" ", "\t", "\n") or "\t" in text or "\r" in text:
            raise ValueError("a Block may not start with whitespace or hold tabs/CR")
        return super().__new__(cls, text)


_BLOCK = re.compile(r"^( *)(.*?)'?__flowc_block_(\d+)__'?$", re.M)


def dump_documents(docs: list[dict[str, Any]], header: list[str]) -> str:
    """A deterministic multi-document YAML stream."""
    blocks: list[Block] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Block):
            blocks.append(v)
            return f"__flowc_block_{len(blocks) - 1}__"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    def unswap(m: re.Match[str]) -> str:
        indent = m.group(1) + "  "
        body = "".join(indent + line for line in blocks[int(m.group(3))].splitlines(True))
        return f"{m.group(1)}{m.group(2)}|\n{body}".rstrip("\n")

    out = [f"# {line}" for line in header]
    for doc in docs:
        out.append("---")
        text = yaml.dump(
            swap(doc),
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=100000,
        ).rstrip("\n")
        out.append(_BLOCK.sub(unswap, text))
    return "\n".join(out) + "\n"


class K8sTarget(BaseTarget):
    name: ClassVar[str] = "k8s"
    description: ClassVar[str] = (
        "Kubernetes manifests: RBAC, plan ConfigMap and a driver Job (CronJob when scheduled)"
    )

    def emit(self, ir: Pipeline) -> dict[str, str]:
        docs = build_documents(ir)
        return {"manifests.yaml": dump_documents(docs, self.header_lines(ir))}


# ---------------------------------------------------------------------------------------------
# Options and names
# ---------------------------------------------------------------------------------------------


def orchestrator_options(ir: Pipeline) -> dict[str, Any]:
    """Settings of the active stack's kubernetes orchestrator (empty for any other type)."""
    orch: ComponentConfig | None = ir.stack.orchestrator if ir.stack else None
    if orch is None or orch.type not in ORCHESTRATOR_TYPES:
        return {}
    opts = dict(orch.settings)
    unknown = sorted(k for k in opts if k not in OPTIONS)
    if unknown:
        from flowc.compiler.errors import did_you_mean

        raise FlowcError.at(
            orch.loc,
            f"unknown kubernetes orchestrator option '{unknown[0]}'",
            did_you_mean(unknown[0], OPTIONS) or f"known options: {', '.join(OPTIONS)}",
        )
    return opts


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
        prefix = dns1123(f"{base}-{step.name}", STEP_JOB_MAX)
        if prefix in seen:
            errors.error(
                step.loc,
                f"step '{step.name}' and step '{seen[prefix]}' both become the Kubernetes name "
                f"'{prefix}'",
                "rename one of them (Kubernetes names turn '_' into '-' and are truncated to "
                f"{STEP_JOB_MAX} characters here)",
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
    _check_steps(ir)
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
    settings = {
        "flow": ir.name,
        "base": base,
        "configmap": configmap,
        "store": store,
        "poll_seconds": float(opts.get("poll_seconds", 2.0)),
        "job": step_job_base(ir, opts, sa_name, configmap),
        "steps": {
            s.name: step_job_patch(ir, s, prefixes[s.name], opts)
            for s in ir.steps
            if not s.operator
        },
    }
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(configmap, common_labels(ir, "plan"), namespace),
            "data": {
                "k8s.json": Block(settings_json(settings)),
                "plan.json": Block(json.dumps(ir.to_data(), indent=2) + "\n"),
            },
        }
    )
    size = sum(len(v) for v in docs[-1]["data"].values())
    if size > CONFIGMAP_MAX:
        raise FlowcError.at(
            ir.loc,
            f"the compiled plan of '{ir.name}' needs {size} bytes, more than a Kubernetes "
            f"ConfigMap holds ({CONFIGMAP_MAX})",
            "split the flow, or run it with another target",
        )
    job_spec = driver_job_spec(ir, opts, sa_name, configmap)
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
    if any(s.operator for s in ir.steps):
        import importlib

        try:
            k8s_operators = importlib.import_module("flowc.targets.k8s_operators")
        except ModuleNotFoundError as e:
            if e.name != "flowc.targets.k8s_operators":
                raise
            first = next(s for s in ir.steps if s.operator)
            raise FlowcError.at(
                first.loc,
                f"step '{first.name}' is a streaming operator, which the k8s target does not "
                "support yet",
                "run it with the local target (`flowc run`) for now",
            ) from None
        docs.extend(k8s_operators.operator_documents(ir))
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


def _check_steps(ir: Pipeline) -> None:
    """Resource quantities Kubernetes would reject, reported all at once."""
    errors = Collector()
    for s in ir.steps:
        for field in ("cpu", "memory"):
            value = getattr(s.resources, field)
            if value is not None and not _QUANTITY.match(str(value)):
                errors.error(
                    s.loc,
                    f"step '{s.name}': resources.{field} '{value}' is not a Kubernetes quantity",
                    'write e.g. cpu: "500m" or "2", memory: 512Mi or 4Gi',
                )
    errors.raise_if_any()


def _pod_common(opts: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if opts.get("image_pull_secrets"):
        spec["imagePullSecrets"] = [{"name": n} for n in opts["image_pull_secrets"]]
    if opts.get("node_selector"):
        spec["nodeSelector"] = dict(opts["node_selector"])
    if opts.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in opts["tolerations"]]
    return spec


def _volumes(configmap: str, opts: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    volumes: list[dict[str, Any]] = [{"name": "flowc-plan", "configMap": {"name": configmap}}]
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
    return str(opts.get("image") or f"flowc/flowc:{__version__}")


def _secret_env(ir: Pipeline, name: str) -> dict[str, Any]:
    """The container env entry that carries secret ``name`` (a reference, never a value). The
    runtime reads ``$ENV`` (the secret's ``env`` source, else its name upper-cased)."""
    ref = ir.secret(name)
    var = ref.env or name.upper()
    if ref.k8s_name:
        key_ref = {"name": ref.k8s_name, "key": ref.k8s_key or name}
    else:  # documented mapping: env-only secrets live in the flow's Secret, keyed by the var
        key_ref = {"name": f"{flow_base(ir)}-secrets", "key": var}
    return {"name": var, "valueFrom": {"secretKeyRef": key_ref}}


def step_job_base(ir: Pipeline, opts: dict[str, Any], sa: str, configmap: str) -> dict[str, Any]:
    """What every step Job shares (``k8s.json["job"]``); :func:`step_job_patch` holds each
    step's own fields and ``flowc.runtime.k8s.step_job`` merges both (stored once: a ConfigMap
    holds 1 MiB)."""
    volumes, mounts = _volumes(configmap, opts)
    container: dict[str, Any] = {
        "name": "step",
        "image": _image(opts),
        "imagePullPolicy": opts.get("image_pull_policy", "IfNotPresent"),
        "command": ["python", "-m", "flowc.runtime.k8s", "step"],
        "args": ["--plan", f"{PLAN_MOUNT}/plan.json", "--config", f"{PLAN_MOUNT}/k8s.json"],
        "volumeMounts": mounts,
    }
    if opts.get("artifact_pvc"):  # the local store's root: the shared volume
        container["env"] = [{"name": "FLOWC_ARTIFACT_ROOT", "value": PVC_MOUNT}]
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


def step_job_patch(ir: Pipeline, step: Step, prefix: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One step's own Job fields: name prefix, step label, retries, timeout, Indexed completions
    for replicas, image, env (literal values, secrets as ``secretKeyRef``), resources."""
    from flowc.compiler.ir import Lit

    env: list[dict[str, Any]] = []
    for key, value in step.env:
        if isinstance(value, Lit) and not isinstance(value.value, (list, dict)):
            v = value.value
            env.append({"name": key, "value": v if isinstance(v, str) else json.dumps(v)})
    for name in step.secrets:
        env.append(_secret_env(ir, name))
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
    if env:
        container["env"] = env
    res = _resources(step)
    if res:
        container["resources"] = res
    patch: dict[str, Any] = {"name_prefix": prefix, "label": label_value(step.name), "spec": spec}
    if pod:
        patch["pod"] = pod
    if container:
        patch["container"] = container
    return patch


def _resources(step: Step) -> dict[str, Any]:
    r = step.resources
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if r.cpu is not None:
        requests["cpu"] = str(r.cpu)
    if r.memory is not None:
        requests["memory"] = str(r.memory)
        limits["memory"] = str(r.memory)
    if r.gpu:
        limits["nvidia.com/gpu"] = str(r.gpu)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def driver_job_spec(ir: Pipeline, opts: dict[str, Any], sa: str, configmap: str) -> dict[str, Any]:
    """The driver Job's spec (also the CronJob's jobTemplate spec)."""
    volumes, mounts = _volumes(configmap, opts)
    container = {
        "name": "driver",
        "image": _image(opts),
        "imagePullPolicy": opts.get("image_pull_policy", "IfNotPresent"),
        "command": ["python", "-m", "flowc.runtime.k8s", "drive"],
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
    pod: dict[str, Any] = {"restartPolicy": "Never", "serviceAccountName": sa}
    pod.update(_pod_common(opts))
    pod["containers"] = [container]
    pod["volumes"] = volumes
    spec: dict[str, Any] = {"backoffLimit": 0}
    if opts.get("ttl_seconds_after_finished") is not None:
        spec["ttlSecondsAfterFinished"] = int(opts["ttl_seconds_after_finished"])
    spec["template"] = {"metadata": {"labels": common_labels(ir, "driver")}, "spec": pod}
    return spec


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
        cron = every_to_cron(float(sched.every_seconds or 0))
        if cron is None:
            raise FlowcError.at(
                sched.loc,
                f"`every: {sched.every_seconds:g}s` cannot be expressed as a Kubernetes CronJob "
                "schedule",
                "use a period that divides an hour or a day evenly (1m, 5m, 15m, 1h, 6h, 1d, "
                "7d), or write `cron:`",
            )
    else:
        cron = str(sched.cron)
    deadline = opts.get("starting_deadline_seconds", 3600 if sched.catchup else 300)
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
