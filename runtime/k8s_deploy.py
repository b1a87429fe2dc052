"""The Kubernetes deployer (pypz's deployer, on the ``kubernetes`` client): apply a compiled
``manifests.yaml``, report status, follow a run with its step logs, destroy everything a
deployment created, read a deployed flow back from its ConfigMap.

A deployment is found by its labels (``app.kubernetes.io/instance=<flow as DNS-1123>``,
``app.kubernetes.io/managed-by=flowc``), so every command works from the flow name alone. A run
is its driver Job and the step and operator Jobs labelled with its run id (``flowc.dev/run``):
``status`` reports each of them, ``attach`` follows them all. Used by
``flowc deploy/status/attach/destroy/retrieve`` (:mod:`flowc.compiler.commands.k8s`); never
imports the compiler. The ``kubernetes`` client is imported lazily.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from flowc.runtime.k8s import RUN_LABEL, STEP_LABEL, job_state, join_parts
from flowc.runtime.k8s import _api_reason as _reason  # also used by flowc.compiler.commands.k8s

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
MANAGED = "app.kubernetes.io/managed-by=flowc"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def run_id_of(driver: Any) -> str:
    """The run id of a driver Job: the first 8 hex digits of its uid (as the driver and
    ``flowc.runtime.k8s_run`` derive it)."""
    return str(driver.metadata.uid or "").replace("-", "")[:8]


def _pod_counts(job: Any) -> dict[str, int]:
    status = job.status
    return {
        "active": int(getattr(status, "active", None) or 0),
        "succeeded": int(getattr(status, "succeeded", None) or 0),
        "failed": int(getattr(status, "failed", None) or 0),
    }


class DeployError(Exception):
    """A deployment problem the user can fix (already deployed, not deployed, API refused)."""


def instance_name(flow: str) -> str:
    """The flow's DNS-1123 instance name (same rule as ``flowc.targets.base.dns1123``, 40 max)."""
    out = re.sub(r"[^a-z0-9-]+", "-", flow.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)[:40].rstrip("-")
    return out or "x"


class Deployer:
    """Operations on one namespace through an ``ApiClient``."""

    def __init__(self, api: Any, namespace: str):
        from kubernetes import client

        self.api = api
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.apps = client.AppsV1Api(api)

    def _selector(self, flow: str, extra: str = "") -> str:
        sel = f"{INSTANCE}={instance_name(flow)},{MANAGED}"
        return f"{sel},{extra}" if extra else sel

    # -- deploy ---------------------------------------------------------------------------------

    def deployed_plan_maps(self, flow: str) -> list[Any]:
        """The flow's plan ConfigMap(s): one, or the parts of a split plan."""
        items = self.core.list_namespaced_config_map(
            self.namespace, label_selector=self._selector(flow, f"{COMPONENT}=plan")
        ).items
        return sorted(items, key=lambda cm: cm.metadata.name)

    def deployed_plan_map(self, flow: str) -> Any | None:
        items = self.deployed_plan_maps(flow)
        return items[0] if items else None

    def deploy(self, docs: list[dict[str, Any]], flow: str) -> list[str]:
        """Create every document; refuse when the flow is already deployed here. On a failure,
        what was created is deleted again and DeployError is raised."""
        from kubernetes import utils

        if self.deployed_plan_map(flow) is not None:
            raise DeployError(
                f"flow '{flow}' is already deployed in namespace '{self.namespace}'",
            )
        created: list[dict[str, Any]] = []
        for doc in docs:
            ns = (doc.get("metadata") or {}).get("namespace") or self.namespace
            try:
                utils.create_from_dict(self.api, doc, namespace=ns)
            except Exception as e:
                errors = getattr(e, "api_exceptions", None) or [e]
                self._delete_docs(created)
                kind, name = doc.get("kind"), doc["metadata"]["name"]
                raise DeployError(
                    f"cannot create {kind} {name}: " + "; ".join(_reason(x) for x in errors)
                ) from None
            created.append(doc)
        return [f"{d['kind']}/{d['metadata']['name']}" for d in created]

    def _delete_docs(self, docs: list[dict[str, Any]]) -> None:
        for doc in reversed(docs):
            try:
                self._delete(doc["kind"], doc["metadata"]["name"])
            except Exception:  # best effort rollback
                pass

    def _delete(self, kind: str, name: str) -> None:
        ns = self.namespace
        body = {"propagationPolicy": "Background"}
        if kind == "Job":
            self.batch.delete_namespaced_job(name, ns, body=body)
        elif kind == "CronJob":
            self.batch.delete_namespaced_cron_job(name, ns, body=body)
        elif kind == "ConfigMap":
            self.core.delete_namespaced_config_map(name, ns)
        elif kind == "ServiceAccount":
            self.core.delete_namespaced_service_account(name, ns)
        elif kind == "Pod":
            self.core.delete_namespaced_pod(name, ns)
        elif kind == "Role":
            self.rbac.delete_namespaced_role(name, ns)
        elif kind == "RoleBinding":
            self.rbac.delete_namespaced_role_binding(name, ns)
        elif kind == "Deployment":
            self.apps.delete_namespaced_deployment(name, ns, body=body)
        else:  # pragma: no cover - flowc emits no other kind
            raise DeployError(f"cannot delete a {kind}")

    # -- read back ------------------------------------------------------------------------------

    def _require(self, flow: str) -> Any:
        cm = self.deployed_plan_map(flow)
        if cm is None:
            raise DeployError(f"flow '{flow}' is not deployed in namespace '{self.namespace}'")
        return cm

    def retrieve(self, flow: str) -> dict[str, Any]:
        """The deployed plan: the ConfigMap's ``plan.json``, or the parts ``plan.json.0``, ...
        of a split plan's ConfigMaps joined in order."""
        self._require(flow)
        data: dict[str, str] = {}
        for cm in self.deployed_plan_maps(flow):
            data.update(cm.data or {})
        text = join_parts(data, "plan.json")
        if text is None:
            raise DeployError(f"the plan ConfigMaps of flow '{flow}' hold no plan.json")
        return json.loads(text)

    def _jobs(self, flow: str, component: str) -> list[Any]:
        items = self.batch.list_namespaced_job(
            self.namespace, label_selector=self._selector(flow, f"{COMPONENT}={component}")
        ).items
        return sorted(items, key=lambda j: (str(j.metadata.creation_timestamp), j.metadata.name))

    def _run_jobs(self, flow: str, run_id: str | None = None) -> list[Any]:
        """The step and operator Jobs of the flow's runs (of run ``run_id`` when given)."""
        extra = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
        items = self.batch.list_namespaced_job(
            self.namespace, label_selector=self._selector(flow, extra)
        ).items
        return sorted(items, key=lambda j: (str(j.metadata.creation_timestamp), j.metadata.name))

    def status(self, flow: str) -> dict[str, Any]:
        """``{"flow", "namespace", "schedule", "steps", "drivers": [{job, run, state}], "runs":
        {run id: {"state", "steps": {step: [{job, kind, state, replicas}]}}}}``: every run's step
        and operator Jobs as the API reports them (``replicas``: the pod counts ``active``,
        ``succeeded``, ``failed`` of the Job's status). A run is ``failed`` when its driver or any
        of its Jobs failed, ``running`` while any of them runs, else ``succeeded``."""
        plan = self.retrieve(flow)
        drivers = [
            {"job": j.metadata.name, "run": run_id_of(j), "state": job_state(j)}
            for j in self._jobs(flow, "driver")
        ]
        runs: dict[str, dict[str, Any]] = {}
        for d in drivers:
            runs[d["run"]] = {"state": d["state"], "steps": {}}
        for j in self._run_jobs(flow):
            labels = j.metadata.labels or {}
            run = labels.get(RUN_LABEL, "?")
            step = labels.get(STEP_LABEL, "?")
            state = job_state(j)
            entry = runs.setdefault(run, {"state": "succeeded", "steps": {}})
            entry["steps"].setdefault(step, []).append(
                {
                    "job": j.metadata.name,
                    "kind": labels.get(COMPONENT, "step"),
                    "state": state,
                    "replicas": _pod_counts(j),
                }
            )
            if state == "failed" or entry["state"] == "failed":
                entry["state"] = "failed"
            elif state == "running":
                entry["state"] = "running"
        cron = self.batch.list_namespaced_cron_job(
            self.namespace, label_selector=self._selector(flow)
        ).items
        return {
            "flow": plan["name"],
            "namespace": self.namespace,
            "schedule": cron[0].spec.schedule if cron else None,
            "steps": list(plan["order"]),
            "drivers": drivers,
            "runs": runs,
        }

    # -- attach ---------------------------------------------------------------------------------

    def follow(
        self,
        flow: str,
        write: Callable[[str], None],
        *,
        poll: float = 1.0,
        timeout: float | None = None,
    ) -> bool:
        """Follow the newest driver run until the driver and every step and operator Job of its
        run ended, streaming their pods' logs as they grow (each line prefixed with
        ``[step]``, ``[step/replica]`` for a replica, ``[driver]``). True when the driver and
        every Job of the run succeeded. A failed driver ends it at once (the driver of a flow
        with operators stops the rest of its run before it fails)."""
        self._require(flow)
        start = time.monotonic()
        offsets: dict[str, int] = {}
        done: set[str] = set()
        driver = None
        while True:
            drivers = self._jobs(flow, "driver")
            if drivers:
                driver = drivers[-1]
            elif driver is not None:
                raise DeployError(f"the driver Job {driver.metadata.name} was deleted")
            state = job_state(driver) if driver is not None else "waiting"
            jobs = self._run_jobs(flow, run_id_of(driver)) if driver is not None else []
            if driver is not None:
                self._stream(flow, driver, offsets, done, write)
            running = [j for j in jobs if job_state(j) == "running"]
            if driver is not None and (state == "failed" or (state != "running" and not running)):
                self._stream(flow, driver, offsets, done, write, final=True)
                failed = []
                for j in jobs:
                    labels = j.metadata.labels or {}
                    if labels.get(COMPONENT) == "operator" or job_state(j) != "succeeded":
                        what = labels.get(COMPONENT, "step")
                        write(
                            f"=== {what} {labels.get(STEP_LABEL, '?')} (job {j.metadata.name}):"
                            f" {job_state(j)}\n"
                        )
                    if job_state(j) == "failed":
                        failed.append(j)
                write(f"=== driver {driver.metadata.name}: {state}\n")
                return state == "succeeded" and not failed
            if timeout is not None and time.monotonic() - start > timeout:
                raise DeployError(f"flow '{flow}' still running after {timeout:g}s")
            time.sleep(poll)

    def _stream(
        self,
        flow: str,
        driver: Any,
        offsets: dict[str, int],
        done: set[str],
        write: Callable[[str], None],
        final: bool = False,
    ) -> None:
        """Write what each pod of this driver's run logged since the last call."""
        run_id = run_id_of(driver)
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self._selector(flow))
        mine = []
        for p in pods.items:
            labels = p.metadata.labels or {}
            if labels.get(COMPONENT) == "driver":
                if labels.get("job-name") != driver.metadata.name:
                    continue
            elif labels.get(COMPONENT) in ("step", "operator") and labels.get(RUN_LABEL) != run_id:
                continue
            mine.append(p)
        mine.sort(key=lambda p: (str(p.metadata.creation_timestamp), p.metadata.name))
        for pod in mine:
            name = pod.metadata.name
            phase = pod.status.phase if pod.status else None
            if name in done or phase not in ("Running", "Succeeded", "Failed"):
                continue
            labels = pod.metadata.labels or {}
            what = labels.get(STEP_LABEL) or labels.get(COMPONENT, "pod")
            if labels.get(COMPONENT) == "operator" and INDEX_LABEL in labels:
                what += f"/{labels[INDEX_LABEL]}"
            if name not in offsets:
                write(f"--- {what} (pod {name}) started\n")
                offsets[name] = 0
            ended = phase in ("Succeeded", "Failed")
            try:
                log = self.core.read_namespaced_pod_log(name, self.namespace) or ""
            except Exception as e:
                log = f"(no log: {_reason(e)})\n" if ended or final else ""
            new = log[offsets[name] :]
            if not (ended or final):  # only whole lines while the pod is running
                new = new[: new.rfind("\n") + 1]
            for line in new.splitlines():
                write(f"[{what}] {line}\n")
            offsets[name] += len(new)
            if ended:
                write(f"--- {what} (pod {name}): {phase}\n")
                done.add(name)

    # -- sniff ----------------------------------------------------------------------------------

    def sniff(self, flow: str, run_id: str | None = None) -> dict[str, Any]:
        """The sniffer's view of a deployed run's operators, through the API server (``run_id``:
        else the newest run with operator Jobs): each operator pod's state, and the counters of
        the last ``flowc-stats`` line it logged (``flowc.runtime.operator_replica``), in the
        shape :func:`flowc.runtime.channels.format_stats` prints, plus ``run_id``."""
        from flowc.runtime.operator_replica import STATS_LINE

        self._require(flow)
        jobs = [
            j
            for j in self._run_jobs(flow, run_id)
            if (j.metadata.labels or {}).get(COMPONENT) == "operator"
        ]
        if not jobs:
            which = f"run {run_id}" if run_id else "any run"
            raise DeployError(f"flow {flow}: {which} has no operator Jobs in {self.namespace}")
        run = run_id or (jobs[-1].metadata.labels or {}).get(RUN_LABEL, "")
        pods = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=self._selector(flow, f"{COMPONENT}=operator,{RUN_LABEL}={run}"),
        ).items
        ports: dict[tuple[str, str, int, str], int] = {}
        instances: dict[tuple[str, int], dict[str, Any]] = {}
        pod_state = {"Pending": "starting", "Running": "running", "Succeeded": "succeeded"}
        for pod in sorted(
            pods, key=lambda p: (str(p.metadata.creation_timestamp), p.metadata.name)
        ):
            labels = pod.metadata.labels or {}
            phase = pod.status.phase if pod.status else None
            step = labels.get(STEP_LABEL, "?")
            replica = int(labels.get(INDEX_LABEL, 0))
            instances[(step, replica)] = {  # a retried replica: its newest pod
                "step": step,
                "replica": replica,
                "state": pod_state.get(phase or "", "failed"),
                "error": None,
            }
            try:
                log = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace) or ""
            except Exception:  # not started yet, or gone: its state says enough
                continue
            last = None
            for line in log.splitlines():
                if line.startswith(STATS_LINE):
                    last = line[len(STATS_LINE) :]
            if last is None:
                continue
            data = json.loads(last)
            for channel, direction, n in data["ports"]:
                ports[(data["step"], channel, int(data["replica"]), direction)] = int(n)
        produced: dict[str, int] = {}
        acked: dict[tuple[str, str], int] = {}
        for (step, channel, _replica, direction), n in ports.items():
            if direction == "out":
                produced[channel] = produced.get(channel, 0) + n
            else:
                acked[(channel, step)] = acked.get((channel, step), 0) + n
        return {
            "run_id": run,
            "ports": [
                {"step": s, "channel": c, "replica": r, "direction": d, "count": n}
                for (s, c, r, d), n in sorted(
                    ports.items(), key=lambda kv: (kv[0][1], kv[0][3] != "out", kv[0][0], kv[0][2])
                )
            ],
            "produced": dict(sorted(produced.items())),
            "groups": [
                {
                    "channel": c,
                    "consumer": g,
                    "acked": n,
                    "in_flight": 0,
                    "lag": produced.get(c, 0) - n,
                }
                for (c, g), n in sorted(acked.items())
            ],
            "instances": [instances[k] for k in sorted(instances)],
        }

    # -- destroy --------------------------------------------------------------------------------

    def destroy(self, flow: str) -> list[str]:
        """Delete everything the deployment created (and every run's Jobs and pods)."""
        self._require(flow)
        sel = self._selector(flow)
        ns = self.namespace
        listings = [
            ("CronJob", self.batch.list_namespaced_cron_job),
            ("Job", self.batch.list_namespaced_job),
            ("Deployment", self.apps.list_namespaced_deployment),
            ("RoleBinding", self.rbac.list_namespaced_role_binding),
            ("Role", self.rbac.list_namespaced_role),
            ("ServiceAccount", self.core.list_namespaced_service_account),
            ("ConfigMap", self.core.list_namespaced_config_map),
        ]
        found = [
            (kind, o.metadata.name)
            for kind, list_objects in listings
            for o in list_objects(ns, label_selector=sel).items
        ]
        deleted = []
        for kind, name in found:
            try:
                self._delete(kind, name)
                deleted.append(f"{kind}/{name}")
            except Exception as e:
                if getattr(e, "status", None) != 404:  # already garbage-collected
                    raise DeployError(f"cannot delete {kind} {name}: {_reason(e)}") from None
        for pod in self.core.list_namespaced_pod(ns, label_selector=sel).items:
            try:  # pods of Jobs are garbage-collected; delete leftovers right away
                self._delete("Pod", pod.metadata.name)
            except Exception:
                pass
        return deleted
