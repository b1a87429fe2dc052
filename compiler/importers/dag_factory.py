"""dag-factory YAML (1.x) -> the shared Airflow task model (:mod:`.airflow_common`), no Airflow.

A file maps DAG ids to DAG configs; the ``default`` key (and a ``defaults.yml`` next to the file,
as dag-factory reads it) is merged under every DAG, tasks by ``task_id``. Read here: ``default_args``
(owner, start_date, end_date, retries, retry_delay_sec, execution_timeout_secs), ``schedule`` /
``schedule_interval``, ``catchup``, ``tags``, ``description``, ``params``, ``task_groups``
(``group_name``, ``parent_group_name``, ``dependencies``, ``tooltip``) and ``tasks`` (list or
mapping) with ``operator`` / ``decorator``, ``bash_command``, ``python_callable`` (dotted path),
``python_callable_name`` + ``python_callable_file`` (``$CONFIG_ROOT_DIR`` is the file's folder),
``op_kwargs`` / ``op_args``, extra decorator arguments, ``+task`` / ``task.output`` references,
``expand`` / ``partial``, ``dependencies``, ``trigger_rule``, ``task_group_name``, retries.
Every other key is kept as a comment and warned about.
"""

from __future__ import annotations

import os
from typing import Any

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.importers import Imported
from flowc.compiler.importers.airflow_common import convert, signature_of
from flowc.compiler.loader import Doc, load_text

_BASH = ("BashOperator",)
_PYTHON = ("PythonOperator", "PythonVirtualenvOperator", "ExternalPythonOperator")
_DAG_KEYS_DONE = {
    "default_args",
    "schedule",
    "schedule_interval",
    "catchup",
    "tags",
    "description",
    "params",
    "task_groups",
    "tasks",
}
_TASK_KEYS_DONE = {
    "task_id",
    "operator",
    "decorator",
    "bash_command",
    "python_callable",
    "python_callable_name",
    "python_callable_file",
    "op_kwargs",
    "op_args",
    "dependencies",
    "task_group_name",
    "expand",
    "partial",
    "trigger_rule",
    "retries",
    "retry_delay_sec",
    "retry_exponential_backoff",
    "max_retry_delay_sec",
    "execution_timeout_secs",
    "params",
    "env",
    "skip_on_exit_code",
    "doc_md",
    "multiple_outputs",
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k == "tasks":
            tasks = {t.get("task_id"): t for t in _task_list(out.get("tasks"))}
            for t in _task_list(v):
                tasks[t.get("task_id")] = {**tasks.get(t.get("task_id"), {}), **t}
            out["tasks"] = list(tasks.values())
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _task_list(tasks: Any) -> list[dict[str, Any]]:
    if isinstance(tasks, dict):  # the dict format: task_id -> config
        return [{"task_id": k, **(v or {})} for k, v in tasks.items()]
    return [t for t in tasks or [] if isinstance(t, dict)]


def _ref(v: Any) -> Any:
    """``+task`` and ``task.output`` (dag-factory's task references) -> {"$task": id}."""
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("+") and s[1:].replace("_", "").replace(".", "").isalnum():
            return {"$task": s[1:]}
        if s.endswith(".output") and s[: -len(".output")].replace("_", "").isalnum():
            return {"$task": s[: -len(".output")]}
        return v
    if isinstance(v, dict):
        return {k: _ref(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_ref(x) for x in v]
    return v


def _seconds(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _date(v: Any) -> tuple[str | None, str | None]:
    """A start/end date: ISO text, or a note when relative (``2 days``) or unreadable."""
    if v is None:
        return None, None
    s = str(v).strip()
    import re

    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?", s):
        return s.replace(" ", "T"), None
    return None, f"start_date {s!r} (relative to the parse time) has no flowc equivalent; dropped"


def load(path: str, name: str | None = None) -> list[Imported]:
    """Every DAG of the dag-factory file ``path``, converted."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise FlowcError.at(Loc(path, 1, 1), f"cannot read {path}: {e.strerror}") from None
    doc = load_text(text, path)
    data = doc.data
    if not isinstance(data, dict) or not data:
        raise FlowcError.at(
            Loc(path, 1, 1),
            "not a dag-factory file: expected a mapping of DAG ids",
            "a dag-factory file maps each DAG id to its config (default_args, schedule, tasks)",
        )
    base: dict[str, Any] = {}
    defaults_file = os.path.join(os.path.dirname(path) or ".", "defaults.yml")
    if os.path.isfile(defaults_file) and os.path.abspath(defaults_file) != os.path.abspath(path):
        base = load_text(open(defaults_file, encoding="utf-8").read(), defaults_file).data or {}
    base = _merge(base, data.get("default") or {})
    dags = [k for k in data if k != "default"]
    if not dags:
        raise FlowcError.at(
            doc.key_loc(("default",)) if "default" in data else Loc(path, 1, 1),
            "no DAG in this dag-factory file (only 'default')",
        )
    problems = []
    for d in dags:
        if not isinstance(data[d], dict) or not (data[d].get("tasks") or base.get("tasks")):
            problems.append(
                FlowcError.at(
                    doc.loc((d,)),
                    f"DAG '{d}' has no tasks",
                    "a dag-factory DAG needs a 'tasks' list",
                )
            )
        else:
            for i, t in enumerate(_task_list(data[d].get("tasks"))):
                if not t.get("task_id"):
                    problems.append(
                        FlowcError.at(
                            doc.loc((d, "tasks", i)), f"DAG '{d}': task {i + 1} has no task_id"
                        )
                    )
    if problems:
        raise FlowcError([x for p in problems for x in p.diagnostics])
    if name and len(dags) > 1:
        raise FlowcError.at(
            Loc(path, 1, 1),
            f"--name needs a source with one DAG; this file has {len(dags)} ({', '.join(dags)})",
            "drop --name: each DAG becomes a flow named after its DAG id",
        )
    out = []
    for d in dags:
        dag = _dag(d, _merge(base, data[d]), doc, path)
        imp = convert(dag, path, name)
        for f in dag["files"]:
            copy_module(imp, f, path)
        out.append(imp)
    return out


def copy_module(imp: Imported, file: str, source: str) -> None:
    """Copy the Python file holding a callable next to the flow (the flow's project is the only
    place flowc imports step code from, docs/trust.md)."""
    text = open(file, encoding="utf-8").read()
    imp.modules[os.path.basename(file)] = text
    if "import airflow" in text or "from airflow" in text:
        imp.warn(
            source,
            f"step module {os.path.basename(file)} imports airflow: its steps run only where "
            "Airflow is installed",
        )


def _line(doc: Doc, path: tuple[Any, ...]) -> int | None:
    return doc.key_loc(path).line if doc.has(path) else None


def _dag(dag_id: str, cfg: dict[str, Any], doc: Doc, path: str) -> dict[str, Any]:
    root = os.path.dirname(os.path.abspath(path))
    da = dict(cfg.get("default_args") or {})
    start, note = _date(da.pop("start_date", None))
    end, _ = _date(da.pop("end_date", None))
    owner = da.pop("owner", None)
    dargs: dict[str, Any] = {
        "retries": da.pop("retries", None),
        "retry_delay": _seconds(da.pop("retry_delay_sec", None)),
        "execution_timeout": _seconds(da.pop("execution_timeout_secs", None)),
    }
    tz = da.pop("timezone", None)
    dargs["extra"] = {k: v for k, v in da.items()}
    params = {}
    for k, v in (cfg.get("params") or {}).items():
        if isinstance(v, dict) and ("default" in v or "type" in v):
            schema = {x: y for x, y in v.items() if x not in ("default", "description")}
            params[k] = {
                "default": v.get("default"),
                "schema": schema,
                "description": v.get("description"),
                "line": _line(doc, (dag_id, "params", k)),
            }
        else:
            params[k] = {"default": v, "schema": {}, "line": _line(doc, (dag_id, "params", k))}
    groups = []
    for g in cfg.get("task_groups") or []:
        if isinstance(cfg.get("task_groups"), dict):
            break
        gid = g["group_name"]
        groups.append(
            {
                "group_id": gid,
                "parent": g.get("parent_group_name"),
                "tooltip": g.get("tooltip"),
                "upstream": list(g.get("dependencies") or []),
            }
        )
    if isinstance(cfg.get("task_groups"), dict):
        for gid, g in cfg["task_groups"].items():
            groups.append(
                {
                    "group_id": gid,
                    "parent": (g or {}).get("parent_group_name"),
                    "tooltip": (g or {}).get("tooltip"),
                    "upstream": list((g or {}).get("dependencies") or []),
                }
            )
    group_ids = {g["group_id"] for g in groups}
    raw_tasks = _task_list(cfg.get("tasks"))
    index = {
        t["task_id"]: i for i, t in enumerate(_task_list(doc.data.get(dag_id, {}).get("tasks")))
    }
    tasks = []
    for t in raw_tasks:
        tid = t["task_id"]
        tpath = (
            (dag_id, "tasks", index[tid])
            if tid in index and isinstance(doc.data[dag_id].get("tasks"), list)
            else (dag_id, "tasks", tid)
        )
        line = _line(doc, tpath) or doc.loc(tpath).line
        op = str(t.get("operator") or "")
        deco = t.get("decorator")
        task: dict[str, Any] = {"task_id": tid, "line": line, "operator": op or deco}
        if t.get("task_group_name") in group_ids:
            task["group"] = t["task_group_name"]
        ups = [u for u in t.get("dependencies") or []]
        task["upstream"] = list(ups)  # a group id here: the task waits for the whole group
        extra = {}
        if op.endswith(_BASH) or ("bash_command" in t and not deco and not op):
            task["kind"] = "bash"
            task["bash_command"] = t.get("bash_command")
            if "env" in t:
                task["env"] = t["env"]
            if "skip_on_exit_code" in t:
                sc = t["skip_on_exit_code"]
                task["skip_on_exit_code"] = sc if isinstance(sc, list) else [sc]
        elif op.endswith(_PYTHON) or deco or "python_callable" in t or "python_callable_name" in t:
            task["kind"] = (
                "short_circuit"
                if op.endswith("ShortCircuitOperator")
                else ("branch" if "Branch" in op or str(deco).endswith("branch") else "python")
            )
            cb: dict[str, Any] = {}
            file = None
            if t.get("python_callable_name"):
                cb["function"] = t["python_callable_name"]
                f = str(t.get("python_callable_file") or "").replace("$CONFIG_ROOT_DIR", root)
                file = f if os.path.isabs(f) else os.path.join(root, f)
                cb["module"] = os.path.splitext(os.path.basename(file))[0]
            elif isinstance(t.get("python_callable"), str):
                mod, _, fn = t["python_callable"].rpartition(".")
                cb["module"], cb["function"] = mod, fn
                cand = os.path.join(root, *mod.split(".")) + ".py"
                file = cand if os.path.isfile(cand) else None
            cb["repr"] = t.get("python_callable") or t.get("python_callable_name")
            if file and os.path.isfile(file):
                cb["params"], cb["var_keyword"] = signature_of(file, cb.get("function", ""))
                cb["file"] = file
            task["callable"] = cb
            kwargs = dict(t.get("op_kwargs") or {})
            for k, v in (t.get("partial") or {}).items():
                if k == "op_kwargs":
                    kwargs.update(v or {})
                else:
                    kwargs[k] = v
            if deco:  # extra keys of a @task are the function's arguments
                for k, v in t.items():
                    if k not in _TASK_KEYS_DONE and k not in ("retries",):
                        kwargs[k] = v
            task["kwargs"] = _ref(kwargs)
            task["args"] = _ref(list(t.get("op_args") or []))
            if t.get("params"):
                task["task_params"] = t["params"]
        else:
            task["kind"] = "other"
            task["operator_args"] = {
                k: v
                for k, v in t.items()
                if k not in ("task_id", "operator", "dependencies", "task_group_name")
            }
        if t.get("expand"):
            task["expand"] = _ref(t["expand"])
        for k in ("retries", "trigger_rule", "retry_exponential_backoff"):
            if k in t:
                task[k] = t[k]
        task["retry_delay"] = _seconds(t.get("retry_delay_sec", dargs["retry_delay"]))
        task["max_retry_delay"] = _seconds(t.get("max_retry_delay_sec"))
        task["execution_timeout"] = _seconds(t.get("execution_timeout_secs"))
        if "retries" not in t and dargs.get("retries"):
            task.pop("retry_delay")
        if t.get("doc_md"):
            task["doc"] = t["doc_md"]
        if t.get("multiple_outputs"):
            extra["multiple_outputs"] = t["multiple_outputs"]
        if task["kind"] != "other" and not deco:
            for k, v in t.items():
                if k not in _TASK_KEYS_DONE:
                    extra[k] = v
        # referenced tasks (+task) are dependencies too
        task["extra"] = extra
        tasks.append(task)
    sched = cfg.get("schedule", cfg.get("schedule_interval"))
    if isinstance(sched, dict):
        sched = repr(sched)
    extra = {
        k: repr(v)
        for k, v in cfg.items()
        if k not in _DAG_KEYS_DONE and not k.startswith("on_") and k != "default"
    }
    for k, v in cfg.items():
        if k.startswith("on_"):
            extra[k] = repr(v)
    out = {
        "dag_id": dag_id,
        "line": _line(doc, (dag_id,)),
        "schedule_line": _line(doc, (dag_id, "schedule")),
        "description": cfg.get("description"),
        "tags": cfg.get("tags") or [],
        "owner": owner,
        "schedule": None if sched in (None, "None", "null") else str(sched),
        "start_date": start,
        "start_date_note": note,
        "end_date": end,
        "catchup": cfg.get("catchup"),
        "timezone": tz,
        "params": params,
        "default_args": dargs,
        "groups": groups,
        "tasks": tasks,
        "extra": extra,
        "files": sorted(
            {t["callable"]["file"] for t in tasks if t.get("callable", {}).get("file")}
        ),
    }
    return out
