"""Runs inside the Airflow virtualenv: ``airflow_runner.py JOBS.json`` dag.test()s many DAGs in
ONE process against one SQLite metadata database (migrated once), for the conformance matrix.

A job is ``{"file", "retry_delays": {task: seconds}, "runs": [{"conf", "env"}]}``. Before any run,
each task's ``retry_delay`` is compared with the flow's (``retry_delays``): a DAG whose delays
differ is not run (``dag.test()`` would wait out Airflow's default delay) and the job reports the
difference. Each run sets ``env`` in this process first (dag.test() runs tasks in-process), so
the recording callables write where the matrix reads. Prints ``FLOWC_HARNESS_RESULT <json>``.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "airflow_harness")
)

from harness import _bag, _one_run  # noqa: E402  (the shared dag.test() driver)


def _delay_drift(dag, want: dict[str, float]) -> list[str]:
    out = []
    for task in dag.tasks:
        if task.task_id not in want:
            continue
        partial = getattr(task, "partial_kwargs", None)
        delay = (partial or {}).get("retry_delay") if partial else task.retry_delay
        seconds = delay.total_seconds() if hasattr(delay, "total_seconds") else delay
        if seconds is None or abs(float(seconds) - want[task.task_id]) > 1e-6:
            out.append(
                f"task {task.task_id}: retry_delay {seconds}s, the flow says {want[task.task_id]}s"
            )
    return out


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        jobs = json.load(fh)
    folders = {os.path.dirname(os.path.abspath(j["file"])) for j in jobs}
    assert len(folders) == 1, folders
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = folders.pop()
    if not os.path.exists(os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")):
        from airflow.utils import db

        db.initdb()
    results = []
    for job in jobs:
        bag = _bag(job["file"])
        if bag.import_errors:
            results.append({"errors": {k: str(v) for k, v in bag.import_errors.items()}})
            continue
        (dag,) = bag.dags.values()
        drift = _delay_drift(dag, job.get("retry_delays") or {})
        if drift:
            results.append({"not_run": "; ".join(drift)})
            continue
        runs = []
        for run in job["runs"]:
            os.environ.update(run.get("env") or {})
            try:
                runs.append(_one_run(dag, run.get("conf"), job.get("variables")))
            except Exception as e:  # reported in the cell, not a crash of the whole batch
                runs.append({"state": "error", "error": f"{type(e).__name__}: {e}"})
        results.append({"runs": runs})
    sys.stdout.flush()
    print("FLOWC_HARNESS_RESULT " + json.dumps(results, sort_keys=True, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
