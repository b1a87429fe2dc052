"""Kubernetes documents for streaming operator steps (pypz), appended by :mod:`flowc.targets.k8s`.

Every operator step becomes one Indexed Job (``completions = parallelism = replicas``): its pods
start together with the rest of the flow, each replica gets ``FLOWC_REPLICA`` from the completion
index, and the Job completes when every replica finished its stream (a Deployment would restart
an operator that finished). A pod runs ``python -m flowc.runtime.operators --plan ... --step
...`` on the plan ConfigMap the k8s target already mounts.

The channel configuration reaches every pod in its environment: ``FLOWC_CHANNEL_<NAME>_TRANSPORT``,
``..._LOCATION`` (literal locations, and params references resolved with the param's default;
the runtime reads this variable before evaluating the plan's expression, so it can be changed on
the cluster) and ``..._SCHEMA`` (the Avro schema as JSON). Channels between pods must use the
``kafka`` transport: ``local`` is one machine's SQLite file, a located error here.

Image: the orchestrator setting ``operator_image`` (pypz ``operatorImageName``), else the step's
``image``, else the orchestrator ``image``, else ``flowc/flowc:<version>``. Pure and
deterministic: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from flowc.targets.base import pod_node_selector, pod_resources, secret_env_var

if TYPE_CHECKING:
    from flowc.compiler.ir import Channel, Pipeline, Step

OPERATOR_JOB_MAX = 52


def channel_env_prefix(name: str) -> str:
    """``records`` -> ``FLOWC_CHANNEL_RECORDS`` (the runtime reads the same names)."""
    from flowc.runtime.channels import env_prefix

    return env_prefix(name)


def _literal_location(ir: Pipeline, channel: Channel) -> str | None:
    from flowc.compiler.ir import Lit, Ref

    loc = channel.location
    if isinstance(loc, Lit) and loc.value is not None:
        return str(loc.value)
    if isinstance(loc, Ref) and loc.root == "params" and len(loc.path) == 1:
        try:
            param = ir.param(loc.path[0])
        except KeyError:
            return None
        if param.has_default and param.default is not None:
            return str(param.default)
    return None


def channel_env(ir: Pipeline, channel: Channel) -> list[dict[str, Any]]:
    """The environment entries describing one channel to an operator pod."""
    prefix = channel_env_prefix(channel.name)
    env = [{"name": f"{prefix}_TRANSPORT", "value": channel.transport}]
    location = _literal_location(ir, channel)
    if location is not None:
        env.append({"name": f"{prefix}_LOCATION", "value": location})
    env.append(
        {
            "name": f"{prefix}_SCHEMA",
            "value": json.dumps(channel.schema, sort_keys=True, separators=(",", ":")),
        }
    )
    return env


def operator_image(step: Step, opts: dict[str, Any]) -> str:
    from flowc.targets import k8s

    return str(opts.get("operator_image") or step.image or k8s._image(opts))


def operator_documents(ir: Pipeline) -> list[dict[str, Any]]:
    """One Indexed Job per operator step, in the IR's step order."""
    from flowc.targets import k8s
    from flowc.targets.base import dns1123_unique

    opts = k8s.orchestrator_options(ir)
    namespace = opts.get("namespace")
    base = k8s.flow_base(ir)
    configmap = f"{base}-flowc-plan"
    sa = opts.get("service_account") or f"{base}-flowc"
    # one id shared by every operator pod of this compiled plan: it scopes the kafka
    # end-of-stream markers, so a changed flow or param value starts a fresh stream
    digest = hashlib.sha256(json.dumps(ir.to_data(), sort_keys=True).encode()).hexdigest()
    run_id = f"{base}-{digest[:12]}"
    docs: list[dict[str, Any]] = []
    for step in ir.steps:
        if not step.operator:
            continue
        name = dns1123_unique(f"{base}-{step.name}", OPERATOR_JOB_MAX)
        labels = {
            **k8s.common_labels(ir, "operator"),
            "flowc.dev/step": k8s.label_value(step.name),
        }
        env: list[dict[str, Any]] = [
            {
                "name": "FLOWC_REPLICA",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    }
                },
            },
            {"name": "FLOWC_REPLICAS", "value": str(step.replicas)},
            {"name": "FLOWC_RUN_ID", "value": run_id},
        ]
        for cname in (*step.produces, *step.consumes):
            env.extend(channel_env(ir, ir.channel(cname)))
        env.extend(k8s.literal_env(step))
        for secret in step.secrets:
            env.append(secret_env_var(ir, secret))
        volumes, mounts = k8s._volumes(configmap, opts)
        container: dict[str, Any] = {
            "name": "operator",
            "image": operator_image(step, opts),
            "imagePullPolicy": opts["image_pull_policy"],
            "command": ["python", "-m", "flowc.runtime.operators"],
            "args": ["--plan", f"{k8s.PLAN_MOUNT}/plan.json", "--step", step.name],
            "env": env,
        }
        res = pod_resources(step.resources)
        if res:
            container["resources"] = res
        container["volumeMounts"] = mounts
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "serviceAccountName": sa,
            "automountServiceAccountToken": False,
        }
        if step.timeout is not None:
            pod["activeDeadlineSeconds"] = max(1, math.ceil(step.timeout))
        pod.update(k8s._pod_common(opts))
        if step.resources.node_selector():
            pod["nodeSelector"] = pod_node_selector(step.resources, opts.get("node_selector"))
        pod["containers"] = [container]
        pod["volumes"] = volumes
        spec: dict[str, Any] = {
            "completionMode": "Indexed",
            "completions": step.replicas,
            "parallelism": step.replicas,
            "backoffLimit": step.retries,
        }
        if opts.get("ttl_seconds_after_finished") is not None:
            spec["ttlSecondsAfterFinished"] = int(opts["ttl_seconds_after_finished"])
        spec["template"] = {"metadata": {"labels": labels}, "spec": pod}
        md = k8s._metadata(name, labels, namespace)
        md["annotations"] = {
            "flowc.dev/produces": ",".join(step.produces),
            "flowc.dev/consumes": ",".join(step.consumes),
        }
        docs.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": spec})
    return docs
