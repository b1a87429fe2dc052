"""The Kubernetes driver and step entry: ``python -m flowc.runtime.k8s drive|step``.

``drive`` runs inside the driver Job (or locally against any cluster): :class:`Driver`
(:mod:`flowc.runtime.k8s_driver`) walks the plan's DAG with the local executor's semantics
(trigger rules, skips, foreach / matrix / foreach groups item-wise, finally steps, flow
outputs) and creates one Kubernetes Job per step instance from the templates the k8s target
compiled into ``k8s.json`` (names, labels, images, resources, env, secrets, retries, timeouts
are decided there); runs ``replicas`` as an Indexed Job with parallel completions; passes
values through the stack's artifact store (``local`` on a shared volume, ``gcs``...); owns
every step Job (``ownerReferences`` -> the driver Job, so deleting the driver garbage-collects
them). A failed step does not stop the steps that do not depend on it nor the finally steps;
the driver exits 1 at the end.

``step`` runs in each step pod: inputs from the store, one attempt with
:func:`flowc.runtime.entry.run_step` (the code of ``python -m flowc.runtime step``), the result
back into the store (``{"$skip": reason}`` for a skipped instance, which succeeds).

Kubernetes owns retries through ``backoffLimit`` and timeouts through
``activeDeadlineSeconds``. The ``kubernetes`` client is imported lazily (extra ``k8s``). This
module owns the command line; :mod:`flowc.runtime.k8s_jobs` holds the pieces the driver shares
with the step pods and ``flowc k8s`` (re-exported here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import params as params_mod
from flowc.runtime.entry import read_data, write_data
from flowc.runtime.k8s_driver import Driver, Instance, StepRun
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

__all__ = [
    "ATTEMPT_PREFIX",
    "IN_PREFIX",
    "OUT_PREFIX",
    "PLAN_FILES",
    "RUN_LABEL",
    "STEP_LABEL",
    "Driver",
    "DriverError",
    "Instance",
    "StepRun",
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
