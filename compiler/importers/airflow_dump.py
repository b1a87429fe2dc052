"""Runs in the Airflow interpreter (``$FLOWC_AIRFLOW_PYTHON`` or this one under the airflow extra).

``python airflow_dump.py DAG_FILE``: load the file with a real ``DagBag`` and print one line
``FLOWC_AIRFLOW_DUMP <json>``: the import errors, and for every DAG the task model of
:mod:`flowc.compiler.importers.airflow_common` (tasks, groups, params, schedule), each Python
callable with its source moved out of the DAG file (a step-module function: decorators removed,
lambdas turned into ``def``) and the module-level names it uses. Standalone on purpose: it
imports nothing of flowc, so it runs in any Airflow 3 environment.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import types

_JSONABLE = (str, int, float, bool, type(None), list, dict, tuple)


def _jsonable(v):
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _line_of(text, task_id, fn=None):
    if fn is not None:
        try:
            return inspect.getsourcelines(fn)[1]
        except (OSError, TypeError):
            pass
    for pat in (
        rf"task_id\s*=\s*[\"']{re.escape(task_id)}[\"']",
        rf"def\s+{re.escape(task_id)}\s*\(",
    ):
        m = re.search(pat, text)
        if m:
            return text.count("\n", 0, m.start()) + 1
    return None


def _value(v):
    from airflow.sdk.definitions.xcom_arg import PlainXComArg, XComArg

    if isinstance(v, PlainXComArg):
        if v.key != "return_value":
            return {"$task": v.operator.task_id, "key": v.key}
        return {"$task": v.operator.task_id}
    if isinstance(v, XComArg):
        return {"$unsupported": f"derived XComArg {type(v).__name__}"}
    if type(v).__name__ == "MappedArgument":
        return {"$item": True}
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if _jsonable(v):
        return v
    return {"$unsupported": f"value {v!r} is not JSON"}


def _function_source(fn, name):
    """(source of ``def name(...)``, problems): the callable moved into a step module."""
    problems = []
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None, ["its source is not available"]
    if fn.__name__ == "<lambda>":
        try:
            with open(inspect.getsourcefile(fn), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
        except (OSError, TypeError, SyntaxError):
            return None, ["its source is not available"]
        first = fn.__code__.co_firstlineno
        lams = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == first]
        if len(lams) != 1:
            return None, ["a lambda that cannot be told apart on its line"]
        lam = lams[0]
        code = f"def {name}({ast.unparse(lam.args)}):\n    return {ast.unparse(lam.body)}\n"
    else:
        tree = ast.parse(src)
        node = tree.body[0]
        node.decorator_list = []
        node.name = name
        code = ast.unparse(node) + "\n"
    # names the function reads from its module or enclosing scope
    needed = {}
    co = fn.__code__
    cells = dict(zip(co.co_freevars, [c.cell_contents for c in fn.__closure__ or ()], strict=False))
    names = set(co.co_names) | set(co.co_freevars)
    for const in co.co_consts:  # nested code objects (comprehensions, inner functions)
        if isinstance(const, types.CodeType):
            names |= set(const.co_names) | set(const.co_freevars)
    import builtins

    for n in sorted(names):
        if n in cells:
            v = cells[n]
        elif n in fn.__globals__:
            v = fn.__globals__[n]
        else:
            continue
        if hasattr(builtins, n) and n not in fn.__globals__:
            continue
        if isinstance(v, types.ModuleType):
            mod = v.__name__
            if mod.split(".")[0] == "airflow":
                problems.append(f"uses the airflow module '{n}'")
            needed[n] = (
                f"import {mod}"
                if mod == n
                else (
                    f"from {mod.rpartition('.')[0]} import {mod.rpartition('.')[2]}"
                    + (f" as {n}" if n != mod.rpartition(".")[2] else "")
                    if "." in mod
                    else f"import {mod} as {n}"
                )
            )
        elif isinstance(v, _JSONABLE) and _jsonable(v):
            needed[n] = f"{n} = {v!r}"
        elif (
            callable(v)
            and getattr(v, "__module__", None)
            and not getattr(v, "__module__", "").startswith("unusual_prefix")
        ):
            mod = v.__module__
            if mod.split(".")[0] == "airflow":
                problems.append(f"uses '{n}' from airflow")
            if mod != "builtins" and not mod.startswith("unusual_prefix"):
                needed[n] = f"from {mod} import {v.__name__}" + (
                    f" as {n}" if n != v.__name__ else ""
                )
            else:
                problems.append(f"uses '{n}' defined in the DAG file")
        elif n not in ("print",):
            problems.append(f"uses '{n}' ({type(v).__name__}) from the DAG file")
    return {"code": code, "needs": needed}, problems


def _callable(fn, name):
    info = {"function": name, "repr": getattr(fn, "__qualname__", repr(fn))}
    try:
        sig = inspect.signature(fn)
        info["params"] = [
            p.name
            for p in sig.parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        info["var_keyword"] = next(
            (p.name for p in sig.parameters.values() if p.kind == p.VAR_KEYWORD), None
        )
    except (TypeError, ValueError):
        info["params"] = None
    moved, problems = _function_source(fn, name)
    info["moved"] = moved
    info["problems"] = problems
    return info


_DEFAULTS = {
    "pool": "default_pool",
    "queue": "default",
    "priority_weight": 1,
    "weight_rule": "downstream",
}


def _task(t, text):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    mapped = isinstance(t, MappedOperator)
    cls = t.operator_class if mapped else type(t)
    opname = getattr(cls, "__name__", str(cls))
    kw = t.partial_kwargs if mapped else {}

    def attr(name, default=None):
        if mapped:
            return kw.get(name, getattr(t, name, default))
        return getattr(t, name, default)

    g = t.task_group
    out = {"task_id": t.task_id, "operator": opname}
    if g is not None and g.group_id:
        out["group"] = g.group_id
    out["upstream"] = sorted(t.upstream_task_ids)
    fn = attr("python_callable")
    out["line"] = _line_of(text, t.task_id.rsplit(".", 1)[-1], fn)
    if opname in ("BashOperator", "_BashDecoratedOperator"):
        out["kind"] = "bash"
        out["bash_command"] = attr("bash_command")
        out["env"] = attr("env")
        sc = attr("skip_on_exit_code")
        out["skip_on_exit_code"] = [sc] if isinstance(sc, int) else list(sc or [])
    elif opname == "EmptyOperator":
        out["kind"] = "empty"
    elif fn is not None:
        low = opname.lower()
        out["kind"] = (
            "branch"
            if "branch" in low
            else ("short_circuit" if "shortcircuit" in low else "python")
        )
        if (
            opname in ("ExternalPythonOperator", "PythonVirtualenvOperator")
            or "External" in opname
            or "Virtualenv" in opname
        ):
            out["runs_elsewhere"] = opname
        out["callable"] = _callable(fn, re.sub(r"\W", "_", t.task_id))
        out["kwargs"] = _value(dict(attr("op_kwargs") or {}))
        out["args"] = _value(list(attr("op_args") or []))
        out["do_xcom_push"] = bool(attr("do_xcom_push", True))
        if attr("multiple_outputs"):
            out["multiple_outputs"] = True
        if out["kind"] == "short_circuit" and not attr("ignore_downstream_trigger_rules", True):
            out["ignore_downstream_trigger_rules"] = False
    else:
        out["kind"] = "other"
        args = {}
        for name in getattr(cls, "template_fields", ()):
            v = attr(name)
            if v not in (None, "", [], {}):
                args[name] = repr(v)
        out["operator_args"] = args
    if mapped:
        ei = getattr(t, "op_kwargs_expand_input", None) or t.expand_input
        val = getattr(ei, "value", None)
        if isinstance(val, dict):
            exp = {k: _value(v) for k, v in val.items()}
            if (
                "op_kwargs" in exp
                and isinstance(exp["op_kwargs"], dict)
                and out.get("kind") == "python"
            ):
                exp = exp["op_kwargs"]
            # a member of a mapped task group reads the group's item: an argument, not a mapping
            for k in [k for k, v in exp.items() if v == {"$item": True}]:
                out.setdefault("kwargs", {})[k] = exp.pop(k)
            if exp:
                out["expand"] = exp
        else:
            out["expand"] = {"$unsupported": f"expand input {type(ei).__name__}"}
    out["trigger_rule"] = str(getattr(attr("trigger_rule"), "value", attr("trigger_rule")))
    out["retries"] = attr("retries") or 0
    rd = attr("retry_delay")
    out["retry_delay"] = (
        rd.total_seconds() if rd is not None and hasattr(rd, "total_seconds") else rd
    )
    out["retry_exponential_backoff"] = bool(attr("retry_exponential_backoff"))
    mrd = attr("max_retry_delay")
    out["max_retry_delay"] = mrd.total_seconds() if hasattr(mrd, "total_seconds") else None
    et = attr("execution_timeout")
    out["execution_timeout"] = et.total_seconds() if hasattr(et, "total_seconds") else None
    extra = out.setdefault("extra", {})
    for k, d in _DEFAULTS.items():
        v = attr(k)
        v = getattr(v, "value", v)
        if v is not None and v != d:
            extra[k] = repr(v)
    for k in (
        "sla",
        "on_failure_callback",
        "on_success_callback",
        "on_retry_callback",
        "outlets",
        "inlets",
        "depends_on_past",
        "wait_for_downstream",
        "task_display_name",
    ):
        v = attr(k)
        if v not in (None, False, [], {}) and not (k == "task_display_name" and v == t.task_id):
            extra[k] = repr(v) if not callable(v) else getattr(v, "__qualname__", repr(v))
    return out


def _groups(dag):
    out = []
    for gid, g in sorted(dag.task_group.get_task_group_dict().items(), key=lambda kv: kv[0] or ""):
        if not gid:
            continue
        parent = g.parent_group.group_id if g.parent_group is not None else None
        item = {
            "group_id": gid,
            "parent": parent or None,
            "tooltip": g.tooltip or None,
            "upstream": sorted(
                getattr(g, "upstream_group_ids", set()) | getattr(g, "upstream_task_ids", set())
            ),
        }
        ei = getattr(g, "_expand_input", None)
        if ei is not None:
            val = getattr(ei, "value", None)
            item["expand"] = (
                {k: _value(v) for k, v in val.items()}
                if isinstance(val, dict)
                else {"$unsupported": type(ei).__name__}
            )
        out.append(item)
    return out


def _schedule(dag):
    tt = dag.timetable
    name = type(tt).__name__
    if name == "NullTimetable":
        return None
    if name == "OnceTimetable":
        return "@once"
    expr = getattr(tt, "_expression", None) or getattr(tt, "expression", None)
    if not expr and "Cron" in name and len(str(getattr(tt, "summary", "")).split()) == 5:
        expr = tt.summary
    if expr and name in ("CronDataIntervalTimetable", "CronTriggerTimetable"):
        return expr
    delta = getattr(tt, "_delta", None)
    if delta is not None and hasattr(delta, "total_seconds"):
        return {"every": delta.total_seconds()}
    return f"{name} {getattr(tt, 'summary', '')}".strip()


def _iso(d):
    if d is None:
        return None
    if (d.hour, d.minute, d.second, d.microsecond) == (0, 0, 0, 0):
        return d.date().isoformat()
    return d.isoformat()


def describe(dag, text):
    params = {}
    for k in dag.params:
        p = dag.params.get_param(k)
        params[k] = {
            "default": p.value if p.has_value else None,
            "schema": _value(dict(p.schema)),
            "description": p.description,
            "line": _line_of(text, k) if False else None,
        }
    extra = {}
    if dag.dagrun_timeout is not None:
        extra["dagrun_timeout"] = str(dag.dagrun_timeout)
    if dag.max_active_runs not in (None, 16):
        extra["max_active_runs"] = repr(dag.max_active_runs)
    m = re.search(
        rf"dag_id\s*=\s*[\"']{re.escape(dag.dag_id)}[\"']|def\s+{re.escape(dag.dag_id)}\s*\(", text
    )
    line = text.count("\n", 0, m.start()) + 1 if m else None
    tasks = [_task(t, text) for t in dag.tasks]
    order = {t["task_id"]: i for i, t in enumerate(tasks)}
    tasks.sort(key=lambda t: (t.get("line") or 10**9, order[t["task_id"]]))
    return {
        "dag_id": dag.dag_id,
        "line": line,
        "description": dag.description,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "schedule": _schedule(dag),
        "start_date": _iso(dag.start_date),
        "end_date": _iso(dag.end_date),
        "catchup": bool(dag.catchup),
        "timezone": str(dag.timezone.name) if hasattr(dag.timezone, "name") else str(dag.timezone),
        "params": params,
        "default_args": {"extra": {}},
        "groups": _groups(dag),
        "tasks": tasks,
        "extra": extra,
    }


def main():
    path = sys.argv[1]
    from airflow.dag_processing.dagbag import DagBag

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    bag = DagBag(dag_folder=path, safe_mode=False)
    out = {
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "dags": [
            describe(bag.dags[d], text) for d in sorted(bag.dags, key=lambda d: (text.find(d), d))
        ],
    }
    sys.stdout.flush()
    print("FLOWC_AIRFLOW_DUMP " + json.dumps(out, default=repr))


if __name__ == "__main__":
    main()
