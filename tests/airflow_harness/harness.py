"""Runs inside the Airflow virtualenv (``$FLOWC_AIRFLOW_PYTHON``); driven by tests/test_airflow_*.py.

``harness.py import FILE...``: parse each DAG file with a real ``DagBag`` and print, as JSON,
its import errors and every DAG's tasks (operator, upstream ids, mapped or not), params and
schedule facts.

``harness.py test FILE [--conf JSON] [--variables FILE]``: ``dag.test()`` the file's DAG (needs
``airflow db migrate`` done in ``$AIRFLOW_HOME``) and print the run's state, every task
instance's state and every ``return_value`` XCom (read from the SQLite metadata database).
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
            "retries": (
                getattr(t, "retries", None)
                if not type(t).__name__ == "MappedOperator"
                else t.partial_kwargs.get("retries")
            ),
        }
    params = {}
    for k in dag.params:
        p = dag.params.get_param(k)
        params[k] = {"default": None if not p.has_value else p.value, "schema": p.schema}
    return {
        "tasks": tasks,
        "params": params,
        "description": dag.description,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "catchup": dag.catchup,
        "timetable": type(dag.timetable).__name__,
        "timetable_summary": getattr(dag.timetable, "summary", None)
        or getattr(dag.timetable, "_expression", None)
        or repr(getattr(dag.timetable, "_delta", "")),
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


def cmd_test(path: str, conf: dict | None, variables: str | None) -> dict:
    # dag.test() serializes the DAG through the "dags-folder" bundle: it must hold the file
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.dirname(os.path.abspath(path))
    bag = _bag(path)
    if bag.import_errors:
        return {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
    (dag,) = bag.dags.values()
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
    return {"state": str(dr.state), "tis": tis, "xcom": xcom}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("files", nargs="+")
    tst = sub.add_parser("test")
    tst.add_argument("file")
    tst.add_argument("--conf", default=None)
    tst.add_argument("--variables", default=None)
    a = ap.parse_args()
    if a.cmd == "import":
        result = cmd_import(a.files)
    else:
        result = cmd_test(a.file, json.loads(a.conf) if a.conf else None, a.variables)
    sys.stdout.flush()
    print("FLOWC_HARNESS_RESULT " + json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
