"""Cells of the matrix that differ from ``flowc run`` for a reason already named: (case, engine)
-> the reason. ``tests/test_conformance.py`` marks each ``xfail(strict=True)``, so a cell that
starts passing (its fix landed) fails the suite until its entry is removed here.

``issue 16: ...`` entries are bullets of issue 16 being fixed on other branches; ``found by the
matrix: ...`` entries are differences the matrix found in modules outside its own (targets,
compiler), reported for a fix there."""

from __future__ import annotations

RETRY_DELAY_AIRFLOW = (
    "issue 16: `retry_delay: 0s` is dropped by the Airflow target (Airflow's 5-minute default)"
)
RETRY_DELAY_KFP = "issue 16: `retry_delay: 0s` gives a KFP retryPolicy without `backoffDuration`"
RUN_DATE = (
    "issue 16: `${run.date}` is a compile error for KFP and Vertex (and `ctx.run_date` is None "
    "in their executors: no job-time placeholder reaches them)"
)
K8S_NAMES = "issue 16: Kubernetes names truncated at 44 characters collide for realistic step names"
UNREFERENCED_PARAMS = (
    "found by the matrix: a KFP/Vertex component receives only the params its step references, "
    "so the run-time value of any other param (a trigger-time override, a required param) never "
    "reaches `ctx.params` (targets/kfp.py would have to bind every param into every executor)"
)
FOREACH_INDEX = (
    "found by the matrix: `ctx.index` is None in KFP/Vertex foreach iterations (the target "
    "passes the item, not its position)"
)
ATTEMPT = (
    "found by the matrix: `ctx.attempt` is 1 on every attempt on KFP/Vertex (the container is "
    "not told which attempt it is, and has no store to count them in)"
)
K8S_RETRY_DELAY = (
    "found by the matrix: on Kubernetes a failed attempt is retried by the Job's backoffLimit, "
    "which ignores `retry_delay` (the in-test server retries at once; a real cluster waits its "
    "own 10s, 20s, ... pod backoff)"
)
NULL_LITERAL = (
    "found by the matrix: a `null` in a `with:` literal is written as a KFP constant that "
    "kfp.local rejects ('Value must be one of ... Got: None')"
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
    ("f_retries0", "kfp"): RETRY_DELAY_KFP,
    ("f_retries0", "vertex"): RETRY_DELAY_KFP,
    ("f_run_date", "kfp"): RUN_DATE,
    ("f_run_date", "vertex"): RUN_DATE,
    ("f_run_values", "kfp"): RUN_DATE,
    ("f_run_values", "vertex"): RUN_DATE,
    ("f_params", "kfp"): UNREFERENCED_PARAMS,
    ("f_params", "vertex"): UNREFERENCED_PARAMS,
    ("f_when", "kfp"): UNREFERENCED_PARAMS,
    ("f_when", "vertex"): UNREFERENCED_PARAMS,
    ("f_foreach", "kfp"): FOREACH_INDEX,
    ("f_foreach", "vertex"): FOREACH_INDEX,
    ("f_retries_delay", "kfp"): ATTEMPT,
    ("f_retries_delay", "vertex"): ATTEMPT,
    ("f_retries_delay", "k8s"): K8S_RETRY_DELAY,
    ("f_literals", "kfp"): NULL_LITERAL,
    ("f_literals", "vertex"): NULL_LITERAL,
    ("schedule_at", "airflow"): FUTURE_AT_AIRFLOW,
    ("schedule_at", "k8s"): FUTURE_AT_K8S,
}
