"""The Kubernetes driver and step entry: ``python -m flowc.runtime.k8s drive|step``.

``drive`` runs inside the driver Job (or locally against any cluster). It walks the plan's DAG
and creates one Kubernetes Job per step instance from the templates the k8s target compiled into
``k8s.json`` (names, labels, images, resources, env, secrets, retries, timeouts are decided
there), as soon as the step's upstream steps are done; evaluates ``when``; fans ``foreach`` out as
one Job per item; runs ``replicas`` as an Indexed Job with parallel completions; passes values
through the stack's artifact store (``local`` on a shared volume, ``gcs``...); owns every step
Job (``ownerReferences`` -> the driver Job, so deleting the driver garbage-collects them) and
exits 1 as soon as a step fails.

``step`` runs in each step pod: inputs from the store, one attempt with
:func:`flowc.runtime.entry.run_step` (the code of ``python -m flowc.runtime step``), the result
back into the store.

This is a small scheduling loop of its own (the local executor runs attempts in-process and owns
retries; here Kubernetes owns retries through ``backoffLimit`` and timeouts through
``activeDeadlineSeconds``); the step semantics are the runtime's: :class:`flowc.runtime.step.Inputs`
evaluates ``when``/``foreach``.

The ``kubernetes`` client is imported lazily (extra ``k8s``). This module owns the driver's
scheduling loop and the command line; :mod:`flowc.runtime.k8s_jobs` holds the pieces it shares
with the step pods and ``flowc k8s`` (re-exported here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowc.runtime import params as params_mod
from flowc.runtime.entry import read_data, write_data
from flowc.runtime.k8s_jobs import (
    ATTEMPT_PREFIX,
    IN_PREFIX,
    OUT_PREFIX,
    PLAN_FILES,
    RUN_LABEL,
    STEP_LABEL,
    DriverError,
    _api_reason,
    api_client,
    current_namespace,
    job_state,
    join_parts,
    open_store,
    read_configmap_files,
    read_mounted,
    read_mounted_data,
    step_job,
)
from flowc.runtime.plan import Plan
from flowc.runtime.step import MISSING, Inputs

__all__ = [
    "ATTEMPT_PREFIX",
    "IN_PREFIX",
    "OUT_PREFIX",
    "PLAN_FILES",
    "RUN_LABEL",
    "STEP_LABEL",
    "Driver",
    "DriverError",
    "_api_reason",
    "api_client",
    "current_namespace",
    "drive",
    "in_window",
    "job_state",
    "join_parts",
    "main",
    "open_store",
    "read_configmap_files",
    "read_mounted",
    "read_mounted_data",
    "step",
    "step_job",
]


@dataclass
class Instance:
    """One Job: a step, or one foreach item of it."""

    step: str
    index: int | None
    job_name: str
    replicas: int
    state: str = "running"


@dataclass
class StepRun:
    name: str
    state: str = "pending"  # pending | running | succeeded | skipped | failed
    items: list[Any] | None = None
    instances: list[Instance] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


class Driver:
    """One run of the plan on a cluster. ``batch``/``core`` are kubernetes API objects."""

    def __init__(
        self,
        plan: Plan,
        config: Mapping[str, Any],
        *,
        batch: Any,
        core: Any,
        namespace: str,
        run_id: str,
        owner: dict[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        run_date: str | None = None,
        out: Any = None,
    ):
        self.plan = plan
        self.config = config
        self.batch = batch
        self.core = core
        self.namespace = namespace
        self.run_id = run_id
        self.owner = owner
        self.params = params_mod.resolve(plan, params or {})
        self.run_date = run_date
        self.out = out or sys.stdout
        self.poll = float(os.environ.get("FLOWC_K8S_POLL") or config.get("poll_seconds") or 2.0)
        self.steps = {
            name: StepRun(name) for name in plan["order"] if not plan["steps"][name].get("operator")
        }
        self.store = open_store(config)

    # -- logging --------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out.write(f"flowc[{self.run_id}]: {text}\n")
        self.out.flush()

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> dict[str, dict[str, Any]]:
        """Run every step; return ``{step: outputs}`` of the steps that ran. Raises DriverError
        when a step fails (its running siblings are deleted first)."""
        self.say(f"run {self.run_id} of flow {self.plan['name']} in namespace {self.namespace}")
        try:
            while True:
                self._start_ready()
                if all(s.state in ("succeeded", "skipped") for s in self.steps.values()):
                    break
                self._observe()
                if any(s.state == "running" for s in self.steps.values()):
                    time.sleep(self.poll)
        except DriverError:
            self._stop_running()
            raise
        self.say("run succeeded")
        return {n: s.outputs for n, s in self.steps.items() if s.state == "succeeded"}

    def _upstream_of(self, name: str) -> list[str]:
        return [u for u in self.plan["steps"][name].get("upstream") or [] if u in self.steps]

    def _start_ready(self) -> None:
        progressed = True
        while progressed:
            progressed = False
            for name, sr in self.steps.items():
                if sr.state != "pending":
                    continue
                ups = [self.steps[u] for u in self._upstream_of(name)]
                if any(u.state in ("pending", "running") for u in ups):
                    continue
                progressed = True
                if any(u.state == "skipped" for u in ups):
                    sr.state = "skipped"
                    self.say(f"step {name} skipped (an upstream step was skipped)")
                    continue
                self._start(sr)

    def _inputs(self, name: str, item: Any = MISSING) -> Inputs:
        upstream = {u: self.steps[u].outputs for u in self._upstream_of(name)}
        return Inputs(
            self.plan,
            name,
            params=self.params,
            upstream=upstream,
            run_id=self.run_id,
            run_date=self.run_date,
            item=item,
        )

    def _start(self, sr: StepRun) -> None:
        from flowc.runtime import exprs

        data = self.plan["steps"][sr.name]
        try:
            if data.get("when") is not None and not self._inputs(sr.name).eval(data["when"]):
                sr.state = "skipped"
                self.say(f"step {sr.name} skipped (when is false)")
                return
            if data.get("foreach") is not None:
                items = self._inputs(sr.name).eval(data["foreach"])
                if not isinstance(items, list):
                    raise DriverError(
                        f"step {sr.name}: foreach must be a list, got {type(items).__name__}"
                    )
                sr.items = items
        except exprs.ExprError as e:
            raise DriverError(f"step {sr.name}: {e}") from None
        sr.state = "running"
        if sr.items is None:
            sr.instances.append(self._create(sr.name, None, MISSING))
        else:
            for i, item in enumerate(sr.items):
                sr.instances.append(self._create(sr.name, i, item))
            if not sr.items:
                self._finish(sr)

    def _create(self, step: str, index: int | None, item: Any) -> Instance:
        data = self.plan["steps"][step]
        key = 0 if index is None else index
        upstream = {u: self.steps[u].outputs for u in self._upstream_of(step)}
        inputs: dict[str, Any] = {
            "params": self.params,
            "upstream": upstream,
            "run_id": self.run_id,
            "run_date": self.run_date,
        }
        if index is not None:
            inputs["item"] = item
            inputs["index"] = index
        try:
            self.store.put(self.run_id, step, f"{IN_PREFIX}{key}", inputs)
        except Exception as e:
            raise DriverError(f"step {step}: cannot store its inputs: {e}") from None
        replicas = int(data.get("replicas") or 1)
        name = self.config["steps"][step]["name_prefix"] + f"-{self.run_id}"
        if index is not None:
            name += f"-{index}"
        args = ["--run", self.run_id, "--index", str(key)]
        if replicas > 1:
            args += ["--replica", "$(FLOWC_REPLICA)"]
        job = step_job(
            self.config,
            step,
            name=name,
            namespace=self.namespace,
            run_id=self.run_id,
            owner=self.owner,
            args=args,
        )
        try:
            self.batch.create_namespaced_job(self.namespace, job)
        except Exception as e:  # kubernetes.client.ApiException and transport errors
            raise DriverError(f"step {step}: cannot create Job {name}: {_api_reason(e)}") from None
        self.say(f"step {step} started: job {name}")
        return Instance(step, index, name, replicas)

    def _observe(self) -> None:
        jobs = None
        for attempt in range(5):  # ride out a transient API error (apiserver restart...)
            try:
                jobs = self.batch.list_namespaced_job(
                    self.namespace, label_selector=f"{RUN_LABEL}={self.run_id}"
                )
                break
            except Exception as e:
                status = getattr(e, "status", None)
                if attempt == 4 or (isinstance(status, int) and 400 <= status < 500):
                    raise DriverError(f"cannot list the run's Jobs: {_api_reason(e)}") from None
                time.sleep(self.poll * (attempt + 1))
        assert jobs is not None
        by_name = {j.metadata.name: j for j in jobs.items}
        for sr in self.steps.values():
            if sr.state != "running":
                continue
            for inst in sr.instances:
                if inst.state != "running":
                    continue
                job = by_name.get(inst.job_name)
                if job is None:
                    raise DriverError(f"step {sr.name}: job {inst.job_name} disappeared")
                inst.state = job_state(job)
                if inst.state == "failed":
                    raise DriverError(f"step {sr.name} failed: {self._failure(inst, job)}")
            if all(i.state == "succeeded" for i in sr.instances):
                self._finish(sr)

    def _failure(self, inst: Instance, job: Any) -> str:
        reasons = [
            f"{c.reason}: {c.message}" if c.message else str(c.reason)
            for c in (job.status.conditions or [])
            if c.type == "Failed" and c.status == "True"
        ]
        detail = reasons[0] if reasons else "job failed"
        for r in range(inst.replicas):
            try:
                err = self._result(inst, r).get("$error")
            except Exception:  # the attempt wrote nothing (killed, deadline)
                continue
            if err:
                detail += f" ({err.get('type')}: {err.get('message')})"
                break
        return f"job {inst.job_name}: {detail}"

    def _result(self, inst: Instance, replica: int) -> dict[str, Any]:
        key = 0 if inst.index is None else inst.index
        return dict(self.store.get(self.run_id, inst.step, f"{OUT_PREFIX}{key}_{replica}"))

    def _read_outputs(self, inst: Instance) -> dict[str, Any]:
        if inst.replicas == 1:
            return self._result(inst, 0)
        # like the local executor: each output is the list of the replicas' values, in order
        declared = list(self.plan["steps"][inst.step].get("outputs") or [])
        per = [self._result(inst, r) for r in range(inst.replicas)]
        return {o: [r[o] for r in per] for o in declared}

    def _finish(self, sr: StepRun) -> None:
        declared = list(self.plan["steps"][sr.name].get("outputs") or [])
        try:
            if sr.items is None:
                sr.outputs = self._read_outputs(sr.instances[0])
            else:
                per_item = [self._read_outputs(i) for i in sr.instances]
                sr.outputs = {o: [p.get(o) for p in per_item] for o in declared}
        except Exception as e:  # StoreError, KeyError, transport errors
            raise DriverError(f"step {sr.name}: cannot read its outputs: {e}") from None
        for name, value in sr.outputs.items():
            self.store.put(self.run_id, sr.name, name, value)
        sr.state = "succeeded"
        self.say(f"step {sr.name} succeeded")

    def _stop_running(self) -> None:
        for sr in self.steps.values():
            for inst in sr.instances:
                if inst.state == "running":
                    try:
                        self.batch.delete_namespaced_job(
                            inst.job_name, self.namespace, propagation_policy="Background"
                        )
                    except Exception:  # already gone
                        pass


def in_window(schedule: Mapping[str, Any] | None, now: Any = None) -> bool:
    """False when a scheduled firing must not run: outside the schedule's ``start``/``end``
    (read in the schedule's timezone; a CronJob has no such bounds), or, for a one-off ``at``
    (compiled to the yearly cron of its minute), in any firing but the one at that instant
    (within a day after it)."""
    if not schedule:
        return True
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(schedule.get("timezone") or "UTC")
    now = now or datetime.now(tz)

    def parse(text: str) -> datetime:
        d = datetime.fromisoformat(text)
        return d if d.tzinfo else d.replace(tzinfo=tz)

    if schedule.get("kind") == "at" and schedule.get("at"):
        at = parse(schedule["at"]).replace(second=0, microsecond=0)
        if not at - timedelta(minutes=1) <= now < at + timedelta(days=1):
            return False
    if schedule.get("start") and now < parse(schedule["start"]):
        return False
    return not (schedule.get("end") and now >= parse(schedule["end"]))


def drive(argv: list[str] | None = None) -> int:
    """The ``drive`` command; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m flowc.runtime.k8s drive")
    p.add_argument("--plan", help="plan JSON file (the ConfigMap's plan.json)")
    p.add_argument("--config", help="k8s.json file (the ConfigMap's k8s.json)")
    p.add_argument("--configmap", help="read plan.json and k8s.json from this ConfigMap instead")
    p.add_argument("--namespace", default=os.environ.get("FLOWC_NAMESPACE"))
    p.add_argument("--run-id", default=os.environ.get("FLOWC_RUN_ID"))
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--kubeconfig", default=None)
    args = p.parse_args(argv)
    from kubernetes import client

    api = api_client(args.kubeconfig)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    namespace = args.namespace or current_namespace(args.kubeconfig)
    if args.configmap:
        try:
            files = read_configmap_files(core, args.configmap, namespace)
        except DriverError as e:
            print(f"flowc: error: {e}", file=sys.stderr)
            return 1
        plan, config = json.loads(files["plan.json"]), json.loads(files["k8s.json"])
    elif args.plan and args.config:
        plan, config = read_mounted_data(args.plan), read_mounted_data(args.config)
    else:
        p.error("give --plan and --config, or --configmap")
    if not in_window(plan.get("schedule")):
        print("flowc: outside the schedule's start/end window: nothing to run")
        return 0
    owner = None
    run_id = args.run_id
    job_name = os.environ.get("FLOWC_DRIVER_JOB")
    if job_name:
        job = batch.read_namespaced_job(job_name, namespace)
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job.metadata.name,
            "uid": job.metadata.uid,
        }
        run_id = run_id or job.metadata.uid.replace("-", "")[:8]
    run_id = run_id or uuid.uuid4().hex[:8]
    from datetime import UTC, datetime

    try:
        given = params_mod.parse_cli(plan, args.param)
        driver = Driver(
            plan,
            config,
            batch=batch,
            core=core,
            namespace=namespace,
            run_id=run_id,
            owner=owner,
            params=given,
            run_date=datetime.now(UTC).isoformat(timespec="seconds"),  # as `flowc run`: ISO time
        )
        driver.run()
    except (DriverError, params_mod.ParamError) as e:
        print(f"flowc[{run_id}]: error: {e}", file=sys.stderr)
        return 1
    return 0


def step(argv: list[str] | None = None) -> int:
    """The ``step`` command, run by every step pod: read the instance's inputs from the artifact
    store, run one attempt with ``flowc.runtime.entry.run_step`` (what ``python -m
    flowc.runtime step`` runs), put the result (outputs, or ``{"$error": ...}``) back into the
    store for the driver; exit 1 when the attempt failed (Kubernetes then retries the pod)."""
    import tempfile

    from flowc.runtime.entry import run_step

    p = argparse.ArgumentParser(prog="python -m flowc.runtime.k8s step")
    p.add_argument("--plan", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--step", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--replica", type=int, default=None)
    args = p.parse_args(argv)
    store = open_store(read_mounted_data(args.config))
    inputs = dict(store.get(args.run, args.step, f"{IN_PREFIX}{args.index}"))
    if args.replica is not None:
        inputs["replica"] = args.replica
    replica = 0 if args.replica is None else args.replica
    # Kubernetes retries a failed pod without telling it which attempt it is: count them
    # (the pods of one instance run one after another)
    counter = f"{ATTEMPT_PREFIX}{args.index}_{replica}"
    attempt = (
        int(store.get(args.run, args.step, counter)) + 1
        if store.exists(args.run, args.step, counter)
        else 1
    )
    store.put(args.run, args.step, counter, attempt)
    inputs["attempt"] = attempt
    with tempfile.TemporaryDirectory(prefix="flowc-step-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.pkl", Path(tmp) / "outputs.pkl"
        write_data(in_path, inputs)
        plan_path = Path(args.plan)
        if not plan_path.exists():  # a split plan: its parts, joined
            plan_path = Path(tmp) / "plan.json"
            plan_path.write_text(read_mounted(args.plan), encoding="utf-8")
        rc = run_step(str(plan_path), args.step, str(in_path), str(out_path))
        result = read_data(out_path)
    store.put(args.run, args.step, f"{OUT_PREFIX}{args.index}_{replica}", result)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "drive":
        return drive(argv[1:])
    if argv and argv[0] == "step":
        return step(argv[1:])
    print(
        "usage: python -m flowc.runtime.k8s drive [--plan P --config C | --configmap NAME]\n"
        "       python -m flowc.runtime.k8s step --plan P --config C --step S --run R [--index I]"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
