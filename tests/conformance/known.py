"""Cells of the matrix that differ from ``flowc run`` for a reason already named: (case, engine)
-> the reason. ``tests/test_conformance.py`` marks each ``xfail(strict=True)``, so a cell that
starts passing (its fix landed) fails the suite until its entry is removed here.

``found by the matrix: ...`` entries are differences the matrix found in modules outside its own
(targets, runtime glue, engine drivers), each with the difference it records today. Engine
limitations that stop a cell from running at all are ``NOT_RUNNABLE`` in ``cases.py``."""

from __future__ import annotations

RUN_DATE_UNREFERENCED = (
    "found by the matrix: `ctx.run_date` is None in a KFP/Vertex executor whose step does not "
    "use `${run.date}` (the job-time placeholder is bound only into the steps that reference "
    "it; bound into every step, it would make every flow unrunnable on kfp.local, which cannot "
    "resolve it)"
)
ATTEMPT = (
    "found by the matrix: `ctx.attempt` is 1 on every attempt on KFP/Vertex, `retry_delay: 0s` "
    "and `2s` alike (the retryPolicy itself is right: the retries happen, at the delay; but KFP "
    "tells a container nothing of which attempt it is, and the glue has no store to count them "
    "in)"
)
K8S_RETRY_DELAY = (
    "found by the matrix: on Kubernetes a failed attempt is retried by the Job's backoffLimit, "
    "which ignores `retry_delay` (the in-test server retries at once; a real cluster waits its "
    "own 10s, 20s, ... pod backoff)"
)
FUTURE_AT_AIRFLOW = (
    "found by the matrix: a manual dag.test() of a flow scheduled `at:` a future time runs no "
    "task (the DAG's start_date is the schedule's)"
)
FUTURE_AT_K8S = (
    "found by the matrix: the Kubernetes driver runs nothing outside the schedule window, a "
    "manual run included"
)

KNOWN: dict[tuple[str, str], str] = {
    ("f_retries0", "kfp"): ATTEMPT,
    ("f_retries0", "vertex"): ATTEMPT,
    ("f_run_values", "kfp"): RUN_DATE_UNREFERENCED,
    ("f_run_values", "vertex"): RUN_DATE_UNREFERENCED,
    ("f_retries_delay", "kfp"): ATTEMPT,
    ("f_retries_delay", "vertex"): ATTEMPT,
    ("f_retries_delay", "k8s"): K8S_RETRY_DELAY,
    ("schedule_at", "airflow"): FUTURE_AT_AIRFLOW,
    ("schedule_at", "k8s"): FUTURE_AT_K8S,
}
