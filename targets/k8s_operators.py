"""Kubernetes Job templates for streaming operator steps (pypz), compiled into ``k8s.json``
(key ``operators``) by :mod:`flowc.targets.k8s`.

Every operator step becomes one Indexed Job (``completions = parallelism = replicas``), started by
the run (``python -m flowc.runtime.k8s_run`` in the driver Job's pod) at the start of every run --
each deployment's driver Job and each CronJob firing -- named ``<name_prefix>-<run id>``, labelled
and owned like the step Jobs, with ``FLOWC_RUN_ID`` set to that run's id (it scopes the kafka
end-of-stream markers: every run streams afresh). Each replica gets ``FLOWC_REPLICA`` from the
completion index, and the Job completes when every replica finished its stream (a Deployment
would restart an operator that finished). A pod runs ``python -m flowc.runtime.operators --plan
... --step ...`` on the plan ConfigMap the k8s target already mounts.

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

import json
import math
from typing import TYPE_CHECKING, Any

from flowc.targets.base import pod_node_selector, pod_resources, secret_env_var

if TYPE_CHECKING:
    from flowc.compiler.ir import Channel, Pipeline, Step


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


def operator_templates(ir: Pipeline, configmap: str | list[str]) -> dict[str, dict[str, Any]]:
    """``{step: {"name_prefix", "job"}}`` for every operator step, in the IR's step order: the
    Job the run creates as ``<name_prefix>-<run id>`` (``job`` has no name, no run label and no
    ``FLOWC_RUN_ID`` yet: the run adds them). ``configmap``: the plan ConfigMap, or the parts
    of a split plan (projected into one volume)."""
    from flowc.targets import k8s

    opts = k8s.orchestrator_options(ir)
    base = k8s.flow_base(ir)
    prefixes = k8s.step_job_prefixes(ir)
    sa = opts.get("service_account") or f"{base}-flowc"
    out: dict[str, dict[str, Any]] = {}
    for step in ir.steps:
        if not step.operator:
            continue
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
            # its kafka counters as log lines: `flowc sniff --namespace` reads them
            {"name": "FLOWC_STATS_LOG", "value": "1"},
        ]
        for cname in (*step.produces, *step.consumes):
            env.extend(channel_env(ir, ir.channel(cname)))
        env.extend(k8s.literal_env(step))
        shared = k8s.config_secret_names(ir)  # what stack/plugin configuration references
        for secret in [*shared, *(s for s in step.secrets if s not in shared)]:
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
        md: dict[str, Any] = {
            "labels": labels,
            "annotations": {
                "flowc.dev/produces": ",".join(step.produces),
                "flowc.dev/consumes": ",".join(step.consumes),
            },
        }
        out[step.name] = {
            "name_prefix": prefixes[step.name],
            "job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": spec},
        }
    return out
