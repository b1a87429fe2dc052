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
"""

from __future__ import annotations

import functools
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
    """One instance's XCom value -> ``{output: value}``."""
    data = plan["steps"][step]
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


def upstream_values(plan: Mapping[str, Any], step: str, context: Mapping[str, Any]) -> dict:
    """``{upstream step: {output: value}}`` for the steps ``step`` references, from XCom."""
    ti = context["ti"]
    out: dict[str, dict[str, Any]] = {}
    for up in _referenced_steps(plan["steps"][step]):
        up_data = plan["steps"][up]
        if _is_mapped(up_data):
            values = [v for v in ti.xcom_pull(task_ids=[up]) or [] if v not in (NO_ITEMS, "", None)]
            instances = [_outputs_of(plan, up, v) for v in values]
            out[up] = {o: [i.get(o) for i in instances] for o in up_data.get("outputs") or []}
        else:
            out[up] = _outputs_of(plan, up, ti.xcom_pull(task_ids=up))
    return out


def _run_date(context: Mapping[str, Any]) -> str | None:
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None)
    return None if when is None else when.isoformat()


def _inputs(plan: Mapping[str, Any], step: str, context: Mapping[str, Any]) -> Inputs:
    """What ``step``'s expressions see in this task (upstream outputs pulled from XCom once);
    the item is not set."""
    return Inputs(
        plan,
        step,
        params=dict(context.get("params") or {}),
        upstream=upstream_values(plan, step, context),
        run_id=str(context.get("run_id")),
        run_date=_run_date(context),
        secret_resolver=secret_resolver,
    )


def _items(inputs: Inputs) -> list[Any]:
    """The list a foreach step maps over."""
    step = inputs.step
    try:
        items = inputs.eval(inputs.plan["steps"][step]["foreach"])
    except exprs.ExprError as e:
        raise StepError(step, str(e)) from None
    if not isinstance(items, list):
        raise StepError(step, f"foreach must evaluate to a list, got {type(items).__name__}")
    return items


# ---------------------------------------------------------------------------------------------
# What the generated task callables call
# ---------------------------------------------------------------------------------------------


def run_step(
    plan_in: str | Mapping[str, Any],
    step: str,
    context: Mapping[str, Any],
    index: int | None = None,
) -> dict[str, Any]:
    """Run one instance of a ``run:`` step; the returned ``{output: value}`` becomes its XCom."""
    plan = load_plan(plan_in)
    data = plan["steps"][step]
    foreach = data.get("foreach") is not None
    position: int | None = None  # the foreach index or the replica
    if _is_mapped(data):
        position = int(index if index is not None else context["ti"].map_index)
    if foreach and position < 0:
        return NO_ITEMS
    inputs = _inputs(plan, step, context)
    item = _items(inputs)[position] if foreach else MISSING
    ti = context.get("ti")
    run = services.RunInfo(
        run_id=inputs.run_id,
        flow=str(plan.get("name")),
        params=inputs.params,
        run_date=inputs.run_date,
    )
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
            replica=None if foreach else position,
            ctx_extra={**values, "ti": ti, "airflow_context": context},
            secret_resolver=secret_resolver,
            attempt=int(getattr(ti, "try_number", 1) or 1),
            index=position if foreach else None,
        )
    if ti is not None:
        push_outputs(ti, outputs)
    return outputs


def foreach_items(
    plan_in: str | Mapping[str, Any], step: str, context: Mapping[str, Any]
) -> list[dict]:
    """The expansion list of a foreach step: ``[{"index": i}, ...]`` for a ``run:`` step,
    ``[{"FLOWC_INDEX": "i", ...}, ...]`` (its ``env``) for a command step."""
    plan = load_plan(plan_in)
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
    try:
        return bool(_inputs(plan, step, context).eval(enc))
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
    if plan["steps"][step].get("foreach") is not None:
        items = _items(inputs)
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
