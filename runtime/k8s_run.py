"""One run of a deployed flow with streaming operator steps: ``python -m flowc.runtime.k8s_run
--plan P --config C [the options of drive]``, the driver Job's command when the flow has
operator steps (``flowc.targets.k8s``; a flow without them runs ``flowc.runtime.k8s drive``).

1. The run id: ``--run-id``/``$FLOWC_RUN_ID``, else the driver Job's uid (its first 8 hex
   digits, as ``drive`` derives it), else a random one. The driver Job of every deployment and
   of every CronJob firing is a new object with a new uid: every run has its own id, nothing
   of it is in the manifests.
2. One Job per operator step from ``k8s.json["operators"]`` (compiled by
   :mod:`flowc.targets.k8s_operators`), named ``<name_prefix>-<run id>``, labelled with the run
   (``flowc.dev/run``) like the step Jobs, owned by the driver Job (deleting it deletes them),
   ``FLOWC_RUN_ID`` set to the run id (the kafka end-of-stream markers are per run).
3. The driver (``python -m flowc.runtime.k8s drive ... --run-id ID``) runs the batch steps as
   a child process (it dies with this process) while the operator Jobs are watched.
4. It ends when the driver and every operator Job ended: exit 0 when all succeeded. When one
   fails -- an operator Job (a replica over its retries, a deadline) or the driver -- the rest
   is stopped: the driver is terminated and every still-running Job of the run (operators and
   steps) is deleted; exit 1. ``flowc attach`` / ``status`` report it from the driver Job and
   the run's Jobs.

Outside a scheduled flow's window nothing starts (``flowc.runtime.k8s.in_window``). The
``kubernetes`` client is imported lazily.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flowc.runtime.k8s_jobs import (
    RUN_LABEL,
    DriverError,
    _api_reason,
    api_client,
    current_namespace,
    job_state,
    read_configmap_files,
    read_mounted_data,
)

COMPONENT = "app.kubernetes.io/component"
STOP_GRACE = 10.0  # seconds the driver gets to end after SIGTERM


def operator_job(
    template: Mapping[str, Any],
    *,
    run_id: str,
    namespace: str,
    owner: dict[str, Any] | None,
    params: list[str],
) -> dict[str, Any]:
    """The Job of one operator step in run ``run_id``, from its ``k8s.json`` template."""
    job = copy.deepcopy(dict(template["job"]))
    md = job["metadata"]
    labels = {**md.get("labels", {}), RUN_LABEL: run_id}
    out_md: dict[str, Any] = {
        "name": f"{template['name_prefix']}-{run_id}",
        "namespace": namespace,
        "labels": labels,
    }
    if md.get("annotations"):
        out_md["annotations"] = md["annotations"]
    if owner:
        out_md["ownerReferences"] = [owner]
    job["metadata"] = out_md
    pod_template = job["spec"]["template"]
    pod_template["metadata"] = {**pod_template.get("metadata", {}), "labels": dict(labels)}
    container = pod_template["spec"]["containers"][0]
    container["env"] = [
        *[e for e in container.get("env", []) if e.get("name") != "FLOWC_RUN_ID"],
        {"name": "FLOWC_RUN_ID", "value": run_id},
    ]
    for p in params:  # the run's --param values reach the operators as the driver's
        container["args"] = [*container.get("args", []), "--param", p]
    return job


class Run:
    """The operator Jobs and the driver child of one run."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        batch: Any,
        namespace: str,
        run_id: str,
        owner: dict[str, Any] | None,
        params: list[str],
        out: Any = None,
    ):
        self.config = config
        self.batch = batch
        self.namespace = namespace
        self.run_id = run_id
        self.owner = owner
        self.params = params
        self.out = out or sys.stdout
        self.poll = float(os.environ.get("FLOWC_K8S_POLL") or config.get("poll_seconds") or 2.0)
        self.jobs: dict[str, str] = {}  # operator step -> Job name
        self.succeeded: set[str] = set()  # operator steps seen completed
        self.child: subprocess.Popen[bytes] | None = None

    def say(self, text: str) -> None:
        self.out.write(f"flowc[{self.run_id}]: {text}\n")
        self.out.flush()

    def start_operators(self) -> None:
        for step, template in (self.config.get("operators") or {}).items():
            job = operator_job(
                template,
                run_id=self.run_id,
                namespace=self.namespace,
                owner=self.owner,
                params=self.params,
            )
            name = job["metadata"]["name"]
            try:
                self.batch.create_namespaced_job(self.namespace, job)
            except Exception as e:
                raise DriverError(
                    f"operator {step}: cannot create Job {name}: {_api_reason(e)}"
                ) from None
            self.jobs[step] = name
            replicas = job["spec"].get("completions", 1)
            self.say(f"operator {step} started: job {name} ({replicas} replicas)")

    def start_driver(self, argv: list[str]) -> None:
        from flowc.runtime.step_command import die_with_runner

        cmd = [sys.executable, "-m", "flowc.runtime.k8s", "drive", *argv, "--run-id", self.run_id]
        self.child = subprocess.Popen(cmd, preexec_fn=die_with_runner())  # noqa: S603, PLW1509

    def _operator_states(self) -> dict[str, tuple[str, Any]]:
        """``{step: (state, job)}``; ``missing`` for a Job that is gone."""
        for attempt in range(5):  # ride out a transient API error
            try:
                listed = self.batch.list_namespaced_job(
                    self.namespace, label_selector=f"{RUN_LABEL}={self.run_id},{COMPONENT}=operator"
                ).items
                break
            except Exception as e:
                status = getattr(e, "status", None)
                if attempt == 4 or (isinstance(status, int) and 400 <= status < 500):
                    raise DriverError(f"cannot list the operator Jobs: {_api_reason(e)}") from None
                time.sleep(self.poll * (attempt + 1))
        by_name = {j.metadata.name: j for j in listed}
        out: dict[str, tuple[str, Any]] = {}
        for step, name in self.jobs.items():
            if name in by_name:
                out[step] = (job_state(by_name[name]), by_name[name])
                if out[step][0] == "succeeded":
                    self.succeeded.add(step)
            elif step in self.succeeded:  # deleted after it completed (ttlSecondsAfterFinished)
                out[step] = ("succeeded", None)
            else:
                out[step] = ("missing", None)
        return out

    def watch(self) -> int:
        """Until the driver and every operator Job ended; the exit code of the run."""
        assert self.child is not None
        while True:
            rc = self.child.poll()
            states = self._operator_states()
            for step, (state, job) in states.items():
                if state in ("failed", "missing"):
                    self.say(f"operator {step} failed: {_failure(self.jobs[step], job)}")
                    self.stop()
                    return 1
            if rc is not None and rc != 0:
                self.say("the driver failed: stopping the operators")
                self.stop()
                return 1
            if rc == 0 and all(s == "succeeded" for s, _ in states.values()):
                for step in states:
                    self.say(f"operator {step} succeeded")
                self.say("run succeeded (steps and operators)")
                return 0
            time.sleep(self.poll)

    def stop(self) -> None:
        """Terminate the driver, then delete every running Job of the run."""
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        try:
            jobs = self.batch.list_namespaced_job(
                self.namespace, label_selector=f"{RUN_LABEL}={self.run_id}"
            ).items
        except Exception as e:
            self.say(f"cannot list the run's Jobs to stop them: {_api_reason(e)}")
            return
        for job in jobs:
            if job_state(job) != "running":
                continue
            try:
                self.batch.delete_namespaced_job(
                    job.metadata.name, self.namespace, propagation_policy="Background"
                )
                self.say(f"stopped job {job.metadata.name}")
            except Exception:  # already gone
                pass


def _failure(name: str, job: Any) -> str:
    if job is None:
        return f"job {name} disappeared"
    conds = [
        f"{c.reason}: {c.message}" if c.message else str(c.reason)
        for c in (job.status.conditions or [])
        if c.type == "Failed" and c.status == "True"
    ]
    failed = job.status.failed or 0
    detail = conds[0] if conds else "job failed"
    return f"job {name}: {detail} ({failed} failed pod{'s' if failed != 1 else ''})"


def main(argv: list[str] | None = None) -> int:
    """The driver Job's command for a flow with operator steps; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m flowc.runtime.k8s_run")
    p.add_argument("--plan")
    p.add_argument("--config")
    p.add_argument("--configmap")
    p.add_argument("--namespace", default=os.environ.get("FLOWC_NAMESPACE"))
    p.add_argument("--run-id", default=os.environ.get("FLOWC_RUN_ID"))
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--kubeconfig", default=None)
    args = p.parse_args(argv)
    from kubernetes import client

    from flowc.runtime.k8s import in_window

    api = api_client(args.kubeconfig)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    namespace = args.namespace or current_namespace(args.kubeconfig)
    try:
        if args.configmap:
            files = read_configmap_files(core, args.configmap, namespace)
            plan, config = json.loads(files["plan.json"]), json.loads(files["k8s.json"])
        elif args.plan and args.config:
            plan, config = read_mounted_data(args.plan), read_mounted_data(args.config)
        else:
            p.error("give --plan and --config, or --configmap")
    except DriverError as e:
        print(f"flowc: error: {e}", file=sys.stderr)
        return 1
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
    run = Run(
        config,
        batch=batch,
        namespace=namespace,
        run_id=run_id,
        owner=owner,
        params=list(args.param),
    )

    def terminated(signum: int, frame: Any) -> None:  # the pod is being deleted
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        run.start_operators()
        run.start_driver(argv)
        return run.watch()
    except DriverError as e:
        print(f"flowc[{run_id}]: error: {e}", file=sys.stderr)
        run.stop()
        return 1
    finally:
        if run.child is not None and run.child.poll() is None:
            run.child.kill()
            run.child.wait()


if __name__ == "__main__":
    sys.exit(main())
