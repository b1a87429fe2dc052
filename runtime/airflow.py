"""Airflow glue: what the tasks of a flowc-generated DAG call at run time.

Imported only inside task callables (never while Airflow parses the DAG file); imports Airflow
lazily too. Each task runs one step instance through :func:`flowc.runtime.step.execute`, the code
``flowc run`` uses, with upstream outputs read from XCom, params from the DAG run (so a trigger
with other values is honoured) and secrets from Airflow Variables/Connections (or the
environment).

XCom shapes: a ``run:`` task returns ``{output: value}``; a ``command:`` task's last stdout line
is the JSON object its process wrote to ``$FLOWC_OUTPUTS``; a mapped task (``foreach`` or
``replicas``) has one such value per map index and its outputs are lists in item order. That
``return_value`` is what flowc's own tasks read. Besides it, every task pushes one XCom per
output, keyed by the output's name (as ``multiple_outputs=True`` does), so other DAGs, sensors
and hand-written tasks read ``ti.xcom_pull(task_ids=STEP, key=OUTPUT)`` (an output named
``return_value`` is only in the dict: the key is Airflow's own).

Control flow: a member of a foreach group is one task of a mapped task group (its map index is
the group item's position; it reads same-index XComs of the members it references); a reference
to a group is its exports, evaluated here from the members' XComs (a list over items for a
foreach group, null for a skipped instance); outputs of a step that did not succeed are null; a
``flowc.runtime.Skip`` becomes ``AirflowSkipException``; a finally step gets ``run.status`` and
``run.failed_steps`` from the DAG run's task instance states (the task SDK's breadcrumbs).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import json
import shlex
from collections.abc import Mapping
from typing import Any

from flowc.runtime import exprs, services
from flowc.runtime.step import MISSING, Inputs, StepError, env_secret_resolver, execute

NO_ITEMS: dict[str, Any] = {"$flowc": "no items"}
"""XCom of the one placeholder instance a foreach over an empty list maps to (Airflow would skip
a task mapped over nothing, and everything downstream; flowc gives downstream an empty list)."""


@functools.lru_cache(maxsize=4)
def _parse_plan(text: str) -> dict[str, Any]:
    return json.loads(text)


def load_plan(plan: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The plan a generated DAG embeds: JSON text (parsed once per process) or data."""
    return _parse_plan(plan) if isinstance(plan, str) else plan


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------


def secret_resolver(name: str, spec: Mapping[str, Any]) -> str | None:
    """Airflow Variable / Connection named in ``spec["airflow"]``, else the environment. The value
    is registered with Airflow's secrets masker so it never shows in task logs."""
    source = spec.get("airflow") or {}
    value: str | None = None
    if "variable" in source:
        from airflow.sdk import Variable

        got = Variable.get(source["variable"], default=None)
        value = None if got is None else str(got)
    elif "connection" in source:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.sdk import Connection

        try:
            conn = Connection.get(source["connection"])
        except AirflowNotFoundException:
            conn = None
        if conn is not None:
            value = conn.password if conn.password else conn.get_uri()
    if value is None:
        value = env_secret_resolver(name, spec)
    if value:
        try:
            from airflow.sdk.log import mask_secret

            mask_secret(value, name)
        except ImportError:  # pragma: no cover - older task SDKs
            pass
    return value


# ---------------------------------------------------------------------------------------------
# Context -> execute() arguments
# ---------------------------------------------------------------------------------------------


def _is_mapped(data: Mapping[str, Any]) -> bool:
    return data.get("foreach") is not None or int(data.get("replicas") or 1) > 1


def foreach_group(plan: Mapping[str, Any], group: str | None) -> str | None:
    """The nearest foreach group holding ``group`` (itself included), or None."""
    groups = plan.get("groups") or {}
    while group is not None:
        if groups[group].get("foreach") is not None:
            return group
        group = groups[group].get("parent")
    return None


def _step_foreach_group(plan: Mapping[str, Any], step: str) -> str | None:
    return foreach_group(plan, plan["steps"][step].get("group"))


def foreach_values(value: Any, matrix: list[str] | None, what: str) -> list[Any]:
    """The items a foreach runs over: a list as is; for a ``matrix`` (foreach written as a
    mapping of lists), the cross product in the keys' written order (the first key varies
    slowest), each item a ``{key: value}`` mapping (the executor's
    ``flowc.runtime.expansion.foreach_items`` when the runtime has it)."""
    try:
        shared: Any = importlib.import_module("flowc.runtime.expansion")
    except ImportError:
        pass
    else:
        try:
            return list(shared.foreach_items(value, matrix or ()))
        except shared.ForeachError as e:
            raise StepError(what, str(e)) from None
    if matrix:
        if not isinstance(value, Mapping):
            raise StepError(what, f"foreach must evaluate to a mapping, got {type(value).__name__}")
        lists = []
        for k in matrix:
            v = value.get(k)
            if not isinstance(v, list):
                raise StepError(what, f"foreach key '{k}' must evaluate to a list")
            lists.append(v)
        return [dict(zip(matrix, combo, strict=True)) for combo in itertools.product(*lists)]
    if not isinstance(value, list):
        raise StepError(what, f"foreach must evaluate to a list, got {type(value).__name__}")
    return value


def _referenced_steps(data: Mapping[str, Any]) -> list[str]:
    encs: list[Any] = [data.get("foreach"), data.get("when")]
    encs += list((data.get("with") or {}).values())
    encs += list((data.get("env") or {}).values())
    encs += list(data.get("command") or [])
    seen: list[str] = []
    for enc in encs:
        for path in exprs.refs(enc):
            if path[0] == "steps" and len(path) > 1 and path[1] not in seen:
                seen.append(path[1])
    return seen


def _outputs_of(plan: Mapping[str, Any], step: str, value: Any) -> dict[str, Any]:
    """One instance's XCom value -> ``{output: value}`` (every output null when the instance
    pushed none: it was skipped, failed or did not run)."""
    data = plan["steps"][step]
    if value is None or value == "" or value == NO_ITEMS:
        return {o: None for o in data.get("outputs") or []}
    if data.get("kind") == "command":
        if not data.get("outputs"):
            return {}
        if isinstance(value, Mapping):  # KubernetesPodOperator: /airflow/xcom/return.json
            return {o: value.get(o) for o in data["outputs"]}
        if not isinstance(value, str):
            raise StepError(step, f"expected its outputs as JSON text in XCom, got {value!r}")
        return dict(json.loads(value))
    return dict(value or {})


XCOM_RETURN_KEY = "return_value"
"""Airflow's key of a task's returned value."""


def push_outputs(ti: Any, outputs: Mapping[str, Any]) -> None:
    """One XCom per output name (what ``multiple_outputs=True`` pushes), besides the
    ``return_value`` dict; ``return_value`` itself is Airflow's key and stays the dict."""
    for name, value in outputs.items():
        if name != XCOM_RETURN_KEY:
            ti.xcom_push(key=name, value=value)


def push_command_outputs(
    plan_in: str | Mapping[str, Any], step: str, context: Mapping[str, Any], result: Any
) -> None:
    """A command task's ``post_execute``: its outputs (the JSON its process wrote, which the
    operator returned as ``return_value``) pushed one XCom per name too (:func:`push_outputs`)."""
    plan = load_plan(plan_in)
    if result in (NO_ITEMS, "", None) or not plan["steps"][step].get("outputs"):
        return  # the placeholder instance of a foreach over no items
    push_outputs(context["ti"], _outputs_of(plan, step, result))


def upstream_values(
    plan: Mapping[str, Any],
    step: str,
    context: Mapping[str, Any],
    refs: list[str] | None = None,
    index: int | None = None,
) -> dict:
    """``{upstream step or group: {output: value}}`` for what ``step`` references (``refs``:
    these names instead), from XCom. ``index``: the item position of ``step``'s instance in its
    foreach group (members of that group are read at the same index)."""
    ti = context["ti"]
    out: dict[str, dict[str, Any]] = {}
    here = _step_foreach_group(plan, step) if step in plan["steps"] else None
    if here is not None and index is None:
        index = int(ti.map_index)
    for up in refs if refs is not None else _referenced_steps(plan["steps"][step]):
        if up in (plan.get("groups") or {}):
            out[up] = group_exports(plan, up, step, context, index)
            continue
        up_data = plan["steps"][up]
        if here is not None and _step_foreach_group(plan, up) == here:
            out[up] = _outputs_of(plan, up, ti.xcom_pull(task_ids=up, map_indexes=index))
        elif _is_mapped(up_data):
            values = [v for v in ti.xcom_pull(task_ids=[up]) or [] if v not in (NO_ITEMS, "", None)]
            count = _instance_count(plan, up, context)
            if len(values) < count:  # an instance pushed nothing (skipped): null in its place
                values = list(ti.xcom_pull(task_ids=up, map_indexes=list(range(count))))
            instances = [_outputs_of(plan, up, v) for v in values]
            out[up] = {o: [i.get(o) for i in instances] for o in up_data.get("outputs") or []}
        else:
            out[up] = _outputs_of(plan, up, ti.xcom_pull(task_ids=up))
    return out


def _instance_count(plan: Mapping[str, Any], step: str, context: Mapping[str, Any]) -> int:
    """How many instances a mapped step has (0 for a foreach over no items)."""
    data = plan["steps"][step]
    if data.get("foreach") is None:
        return int(data.get("replicas") or 1)
    got = list(context["ti"].xcom_pull(task_ids=f"{step}__items") or [])
    first = got[0] if got else None
    if isinstance(first, Mapping) and str(first.get("index", first.get("FLOWC_INDEX"))) == "-1":
        return 0
    return len(got)


def _group_size(plan: Mapping[str, Any], group: str, context: Mapping[str, Any]) -> int:
    """How many items a foreach group ran over (its ``__items`` task's XCom)."""
    got = context["ti"].xcom_pull(task_ids=f"{group}__items")
    return 0 if not got or list(got) == ["-1"] else len(got)


def group_exports(
    plan: Mapping[str, Any],
    group: str,
    step: str,
    context: Mapping[str, Any],
    index: int | None = None,
) -> dict[str, Any]:
    """``{export: value}`` of ``group`` as ``step`` sees it: each export evaluated over its
    members' outputs; for a foreach group (read from outside it) the list over its items."""
    g = plan["groups"][group]
    encs = dict(g.get("outputs") or {})
    names: list[str] = []
    for enc in encs.values():
        for path in exprs.refs(enc):
            if path[0] == "steps" and len(path) > 1 and path[1] not in names:
                names.append(path[1])

    def evaluate(upstream: dict[str, Any]) -> dict[str, Any]:
        inputs = _make_inputs(plan, step, context, upstream)
        try:
            return {k: inputs.eval(enc) for k, enc in encs.items()}
        except exprs.ExprError as e:
            raise StepError(step, f"outputs of group '{group}': {e}") from None

    member = next((m for m in g.get("steps") or [] if m in plan["steps"]), step)
    if g.get("foreach") is None or _step_foreach_group(plan, step) == group:
        return evaluate(upstream_values(plan, member, context, names, index))
    per_item = [
        evaluate(upstream_values(plan, member, context, names, i))
        for i in range(_group_size(plan, group, context))
    ]
    return {k: [v[k] for v in per_item] for k in encs}


def _run_date(context: Mapping[str, Any]) -> str | None:
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None)
    return None if when is None else when.isoformat()


def _make_inputs(
    plan: Mapping[str, Any], step: str, context: Mapping[str, Any], upstream: dict
) -> Inputs:
    return Inputs(
        plan,
        step,
        params=dict(context.get("params") or {}),
        upstream=upstream,
        run_id=str(context.get("run_id")),
        run_date=_run_date(context),
        secret_resolver=secret_resolver,
    )


def _inputs(
    plan: Mapping[str, Any], step: str, context: Mapping[str, Any], index: int | None = None
) -> Inputs:
    """What ``step``'s expressions see in this task (upstream outputs pulled from XCom once);
    the item is not set."""
    return _make_inputs(plan, step, context, upstream_values(plan, step, context, index=index))


def _items(inputs: Inputs) -> list[Any]:
    """The list a foreach step maps over."""
    step = inputs.step
    data = inputs.plan["steps"][step]
    try:
        value = inputs.eval(data["foreach"])
    except exprs.ExprError as e:
        raise StepError(step, str(e)) from None
    return foreach_values(value, data.get("matrix"), step)


def _group_items(plan: Mapping[str, Any], group: str, context: Mapping[str, Any]) -> list[Any]:
    """The items of a foreach group, its ``foreach`` evaluated in the parent scope."""
    g = plan["groups"][group]
    names = []
    for path in exprs.refs(g["foreach"]):
        if path[0] == "steps" and len(path) > 1 and path[1] not in names:
            names.append(path[1])
    owner = next(m for m in plan["steps"] if m.startswith(group + "."))
    index = -1  # outside the group: nothing is read item-wise
    upstream = upstream_values(plan, owner, context, names, index)
    try:
        value = _make_inputs(plan, owner, context, upstream).eval(g["foreach"])
    except exprs.ExprError as e:
        raise StepError(group, str(e)) from None
    return foreach_values(value, g.get("matrix"), group)


# ---------------------------------------------------------------------------------------------
# What the generated task callables call
# ---------------------------------------------------------------------------------------------


def _skip_class() -> type[BaseException] | None:
    """``flowc.runtime.Skip`` (None with a runtime that has none)."""
    import flowc.runtime as rt

    return getattr(rt, "Skip", None)


def _is_skip(exc: BaseException) -> bool:
    cls = _skip_class()
    if cls is not None:
        return isinstance(exc, cls)
    return any(  # defensively by name, for a runtime that defines it elsewhere
        c.__name__ == "Skip" and c.__module__.startswith("flowc.runtime") for c in type(exc).__mro__
    )


def _task_states(context: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{task id: [state of each instance]}`` of this DAG run's finished task instances."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or ti.dag_id
    crumbs = ti.get_task_breadcrumbs(dag_id=dag_id, run_id=str(context.get("run_id")))
    out: dict[str, list[str]] = {}
    for c in crumbs:
        out.setdefault(str(c["task_id"]), []).append(str(c["state"]))
    return out


FAILED_STATES = ("failed", "upstream_failed")


def run_status(plan: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """``run.status`` and ``run.failed_steps`` for a finally step: from the states of every
    step's task instances (its gate and items helper count as the step)."""
    states = _task_states(context)
    failed: list[str] = []
    status = "success"
    for name in plan["steps"]:
        got = [x for suffix in ("", "__when", "__items") for x in states.get(name + suffix, [])]
        if any(x in FAILED_STATES for x in got):
            status = "failed"
        if "failed" in got:
            failed.append(name)
    return {"status": status, "failed_steps": failed}


def fail_run(plan_in: str | Mapping[str, Any], context: Mapping[str, Any]) -> None:
    """The watcher task (trigger ``one_failed``): fails, so the DAG run is failed when a step
    failed even where a trigger rule or a finally step let the run go on."""
    from airflow.sdk.exceptions import AirflowFailException

    failed = run_status(load_plan(plan_in), context)["failed_steps"]
    names = ", ".join(failed) if failed else "an upstream task"
    raise AirflowFailException(f"the flow failed: {names} failed")


def flow_outputs(plan_in: str | Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The flow's ``outputs:`` evaluated after every step (null where not produced)."""
    plan = load_plan(plan_in)
    encs = dict(plan.get("outputs") or {})
    names: list[str] = []
    for enc in encs.values():
        for path in exprs.refs(enc):
            if path[0] == "steps" and len(path) > 1 and path[1] not in names:
                names.append(path[1])
    owner = next(iter(plan["steps"]))
    inputs = _make_inputs(plan, owner, context, upstream_values(plan, owner, context, names, -1))
    try:
        return {k: inputs.eval(enc) for k, enc in encs.items()}
    except exprs.ExprError as e:
        raise StepError("outputs", str(e)) from None


def run_step(
    plan_in: str | Mapping[str, Any],
    step: str,
    context: Mapping[str, Any],
    index: int | str | None = None,
) -> dict[str, Any]:
    """Run one instance of a ``run:`` step; the returned ``{output: value}`` becomes its XCom.
    ``index``: the foreach item / replica (mapped task), or the foreach group item's position."""
    plan = load_plan(plan_in)
    data = plan["steps"][step]
    foreach = data.get("foreach") is not None
    group = _step_foreach_group(plan, step)
    position: int | None = None  # the foreach index or the replica
    if _is_mapped(data) or group is not None:
        position = int(index if index is not None else context["ti"].map_index)
    if (foreach or group is not None) and position < 0:
        return NO_ITEMS
    inputs = _inputs(plan, step, context, position if group is not None else None)
    item: Any = MISSING
    if foreach:
        item = _items(inputs)[position]
    elif group is not None:
        item = _group_items(plan, group, context)[position]
    ti = context.get("ti")
    run = services.RunInfo(  # config secrets of plugins/integrations: Variables, Connections
        run_id=inputs.run_id,
        flow=str(plan.get("name")),
        params=inputs.params,
        run_date=inputs.run_date,
        extra={"secret_resolver": secret_resolver},
    )
    extra: dict[str, Any] = {}
    if data.get("finally") and "run_extra" in _execute_params():
        extra["run_extra"] = run_status(plan, context)
    try:
        with services.running(
            plan, run
        ) as values:  # plugins, integration tree (when the flow has them)
            outputs = execute(
                plan,
                step,
                params=inputs.params,
                upstream=inputs.upstream,
                run_id=inputs.run_id,
                run_date=inputs.run_date,
                item=item,
                replica=None if foreach or group is not None else position,
                ctx_extra={**values, "ti": ti, "airflow_context": context},
                secret_resolver=secret_resolver,
                attempt=int(getattr(ti, "try_number", 1) or 1),
                index=position if foreach or group is not None else None,
                **extra,
            )
    except Exception as e:
        if _is_skip(e):
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(str(e) or f"step {step} skipped") from None
        raise
    if ti is not None:
        push_outputs(ti, outputs)
    return outputs


@functools.lru_cache(maxsize=1)
def _execute_params() -> frozenset[str]:
    return frozenset(inspect.signature(execute).parameters)


def foreach_items(
    plan_in: str | Mapping[str, Any], step: str, context: Mapping[str, Any]
) -> list[Any]:
    """The expansion list of a foreach step: ``[{"index": i}, ...]`` for a ``run:`` step,
    ``[{"FLOWC_INDEX": "i", ...}, ...]`` (its ``env``) for a command step; of a foreach group
    (``step`` names a group): the item positions as text, ``["0", "1", ...]``. An empty list
    maps to one placeholder instance, position ``-1``."""
    plan = load_plan(plan_in)
    if step in (plan.get("groups") or {}):
        return [str(i) for i in range(len(_group_items(plan, step, context)))] or ["-1"]
    data = plan["steps"][step]
    indexes = list(range(len(_items(_inputs(plan, step, context))))) or [-1]  # -1: no items
    if data.get("kind") == "command":
        extra = {"FLOWC_RUN_ID": str(context.get("run_id"))}
        if data.get("outputs"):  # for pods; a BashOperator command exports its own
            extra["FLOWC_OUTPUTS"] = "/airflow/xcom/return.json"
        return [_command_env_base(plan, step, {"FLOWC_INDEX": str(i), **extra}) for i in indexes]
    return [{"index": i} for i in indexes]


def _command_env_base(plan: Mapping[str, Any], step: str, extra: dict[str, str]) -> dict:
    """The env a mapped command task gets (BashOperator/KPO ``env`` is replaced, not merged,
    by the expanded value, so it carries the step's static env too)."""
    data = plan["steps"][step]
    env = {k: v for k, v in (data.get("env") or {}).items() if isinstance(v, str)}
    return {**env, "FLOWC_STEP": step, **extra}


def evaluate_when(plan_in: str | Mapping[str, Any], step: str, context: Mapping[str, Any]) -> bool:
    """The truth of ``step``'s ``when:`` for this run."""
    plan = load_plan(plan_in)
    enc = plan["steps"][step]["when"]
    group = _step_foreach_group(plan, step)
    inputs = _inputs(plan, step, context)
    if group is not None:  # a member of a foreach group: this instance's item
        items = _group_items(plan, group, context)
        index = int(context["ti"].map_index)
        if not 0 <= index < len(items):
            return True  # the placeholder instance of no items: the step itself does nothing
        inputs.item = items[index]
    try:
        return bool(inputs.eval(enc))
    except exprs.ExprError as e:
        raise StepError(step, f"when: {e}") from None


def _current_context() -> Any:
    from airflow.sdk import get_current_context

    return get_current_context()


def _command_text(plan_in: str | Mapping[str, Any], step: str, field: str, key: Any) -> str:
    """``plan.steps[step][field][key]`` evaluated as text for the current (mapped) task; the
    item of a foreach instance is the one at its map index (None: the no-items placeholder)."""
    plan = load_plan(plan_in)
    context = _current_context()
    inputs = _inputs(plan, step, context)
    group = _step_foreach_group(plan, step)
    if plan["steps"][step].get("foreach") is not None or group is not None:
        items = _items(inputs) if group is None else _group_items(plan, group, context)
        index = int(context["ti"].map_index)
        inputs.item = items[index] if 0 <= index < len(items) else None
    try:
        return exprs.to_text(inputs.eval(plan["steps"][step][field][key]))
    except exprs.ExprError as e:
        raise StepError(step, str(e)) from None


def command_arg(plan_in: str | Mapping[str, Any], step: str, index: int, quote: bool = True) -> str:
    """Macro: ``argv[index]`` of a command step, evaluated now (``quote``: shell-quoted)."""
    text = _command_text(plan_in, step, "command", index)
    return shlex.quote(text) if quote else text


def command_env(plan_in: str | Mapping[str, Any], step: str, name: str) -> str:
    """Macro: the value of a command step's ``env`` variable ``name``, evaluated now."""
    return _command_text(plan_in, step, "env", name)
