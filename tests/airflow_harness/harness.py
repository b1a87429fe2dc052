"""Runs inside the Airflow virtualenv (``$FLOWC_AIRFLOW_PYTHON``); driven by tests/test_airflow_*.py.

``harness.py import FILE...``: parse each DAG file with a real ``DagBag`` and print, as JSON,
its import errors and every DAG's tasks (operator, upstream ids, mapped or not), params and
schedule facts.

``harness.py test JOBS.json``: for each job ``{"file", "confs", "variables"}``, ``dag.test()`` the
file's DAG once per conf (creating the SQLite metadata database in ``$AIRFLOW_HOME`` first if
needed) and print each run's state, every task instance's state and every ``return_value`` XCom
(read from the metadata database). One process for many runs: Airflow's start-up is the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys


def _bag(path: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=path, safe_mode=False)


def describe(dag) -> dict:
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "operator": (
                type(t).__name__
                if not hasattr(t, "operator_class")
                else getattr(t.operator_class, "__name__", str(t.operator_class))
            ),
            "upstream": sorted(t.upstream_task_ids),
            "mapped": type(t).__name__ == "MappedOperator",
            "executor_config": {
                k: type(v).__name__ for k, v in (getattr(t, "executor_config", None) or {}).items()
            },
            "retries": (
                getattr(t, "retries", None)
                if not type(t).__name__ == "MappedOperator"
                else t.partial_kwargs.get("retries")
            ),
            "retry_delay": (
                getattr(t, "retry_delay", None)
                if not type(t).__name__ == "MappedOperator"
                else t.partial_kwargs.get("retry_delay")
            ).total_seconds(),
        }
    params = {}
    for k in dag.params:
        p = dag.params.get_param(k)
        params[k] = {"default": None if not p.has_value else p.value, "schema": p.schema}
        if p.description:
            params[k]["description"] = p.description
    return {
        "tasks": tasks,
        "params": params,
        "description": dag.description,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "catchup": dag.catchup,
        "timetable": type(dag.timetable).__name__,
        "timetable_repr": repr(dag.timetable),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "end_date": dag.end_date.isoformat() if dag.end_date else None,
        "timezone": str(dag.timezone),
    }


def cmd_import(files: list[str]) -> dict:
    out = {}
    for f in files:
        bag = _bag(f)
        out[f] = {
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {d: describe(bag.dags[d]) for d in sorted(bag.dags)},
        }
    return out


def cmd_test(jobs: list[dict]) -> list[dict]:
    """Run each job ``{"file", "confs": [conf...], "variables": path|null}`` with dag.test()."""
    # dag.test() serializes the DAG through the "dags-folder" bundle: it must hold the files
    folders = {os.path.dirname(os.path.abspath(j["file"])) for j in jobs}
    assert len(folders) == 1, folders
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = folders.pop()
    if not os.path.exists(os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")):
        from airflow.utils import db

        db.initdb()  # a fresh SQLite metadata database (what `airflow db migrate` does)
    out = []
    for job in jobs:
        bag = _bag(job["file"])
        if bag.import_errors:
            out.append({"errors": {k: str(v) for k, v in bag.import_errors.items()}})
            continue
        (dag,) = bag.dags.values()
        runs = [_one_run(dag, conf, job.get("variables")) for conf in job.get("confs") or [None]]
        out.append({"runs": runs})
    return out


def _one_run(dag, conf: dict | None, variables: str | None) -> dict:
    dr = dag.test(run_conf=conf, variable_file_path=variables)
    db = os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")
    con = sqlite3.connect(db)
    tis = {}
    for task_id, map_index, state in con.execute(
        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=?",
        (dag.dag_id, dr.run_id),
    ):
        tis[f"{task_id}[{map_index}]" if map_index >= 0 else task_id] = state
    xcom = {}
    for task_id, map_index, value in con.execute(
        "SELECT task_id, map_index, value FROM xcom WHERE dag_id=? AND run_id=? "
        "AND key='return_value' ORDER BY task_id, map_index",
        (dag.dag_id, dr.run_id),
    ):
        if isinstance(value, bytes):
            value = value.decode()
        try:
            value = json.loads(value)
        except (TypeError, ValueError):
            pass
        xcom[f"{task_id}[{map_index}]" if map_index >= 0 else task_id] = value
    con.close()
    return {"state": str(dr.state), "run_id": dr.run_id, "tis": tis, "xcom": xcom}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("files", nargs="+")
    tst = sub.add_parser("test")
    tst.add_argument("jobs", help="JSON file: a list of {file, confs, variables}")
    a = ap.parse_args()
    if a.cmd == "import":
        result: object = cmd_import(a.files)
    else:
        with open(a.jobs, encoding="utf-8") as fh:
            result = cmd_test(json.load(fh))
    sys.stdout.flush()
    print("FLOWC_HARNESS_RESULT " + json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
