"""Runs in the Airflow interpreter for tests/test_import_airflow.py: ``run_dags.py JOBS.json`` with
jobs ``[{"file", "dag_id"}]`` (files in one folder) runs each DAG once with ``dag.test()`` and prints
``FLOWC_HARNESS_RESULT <json>``: per job the run state, task-instance states and return_value XComs
(read by tests/airflow_harness/harness.py's own ``_one_run``, so both sides are read the same way).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "airflow_harness")
)

import harness  # noqa: E402


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        jobs = json.load(fh)
    folders = {os.path.dirname(os.path.abspath(j["file"])) for j in jobs}
    assert len(folders) == 1, folders
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = folders.pop()
    if not os.path.exists(os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")):
        from airflow.utils import db

        db.initdb()
    out = []
    for job in jobs:
        bag = harness._bag(job["file"])
        if bag.import_errors:
            out.append({"errors": {k: str(v) for k, v in bag.import_errors.items()}})
            continue
        out.append(harness._one_run(bag.dags[job["dag_id"]], job.get("conf"), None))
    sys.stdout.flush()
    print("FLOWC_HARNESS_RESULT " + json.dumps(out, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
