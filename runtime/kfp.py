"""Runtime glue for KFP / Vertex executors (stdlib only; never imports kfp).

``python -m flowc.runtime.kfp`` is also a stand-in for ``kfp.dsl.executor_main`` (same arguments,
same executor output file), which the generated launcher uses in images without kfp.

The KFP target compiles every ``run:`` step to a lightweight Python component whose generated
function is one line: ``return run_component(SPEC, locals())``. KFP's executor reads the executor
input and hands the component's input parameters to that function; this module turns them into
the ``params`` / ``upstream`` / ``item`` / ``replica`` of :func:`flowc.runtime.step.execute`, runs
the step once, and returns its outputs encoded the way the component's output definitions say.

``SPEC`` (written by ``flowc.targets.kfp``)::

    {"plan": {...sub-plan holding this step...}, "step": "train",
     "inputs": [[input name, ref path, decode], ...],
     "outputs": [[output name, kfp output key, encoding], ...]}

Ref paths: ``["params", X]``, ``["steps", S, "outputs", O]``, ``["item"]``, ``["items"]`` (the
whole foreach list, for ``ctx.index``), ``["replica"]``,
``["run", "id"]``, ``["run", "date"]`` (job-time placeholders; ``${run.ds}`` and
``${run.ds_nodash}`` are spelled from the same date), ``["run", "status"]`` (a finally step's
``TASK_FINAL_STATUS`` input, see :func:`final_status`), ``["with", KEY]`` (a literal
argument passed as a KFP constant). Decodes:
``"raw"``, ``"int"``, ``"ints"`` (a LIST/STRUCT whose integral doubles become ints: protobuf
Values have no ints), ``["json", depth]`` (a JSON text, or lists nested ``depth`` deep of JSON
texts). Encodings: ``"json"`` (STRING holding JSON), ``"json-list"`` (a LIST of JSON texts: foreach items),
``"text"`` (STRING, strings verbatim and
other values as compact JSON, as a command line sees them), or a KFP parameter type for values
KFP itself must understand (numbers, strings, booleans compared in conditions) and for outputs
whose callable declares their type (its return annotation): the value itself, which the KFP UI
and plain-KFP consumers read as such.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flowc.runtime import exprs, services
from flowc.runtime.step import MISSING, StepError, env_secret_resolver, execute


def decode(value: Any, how: Any) -> Any:
    """Turn a KFP input parameter value back into the flowc value it carries."""
    if how == "int":
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if how == "ints":
        return _ints(value)
    if isinstance(how, list) and how and how[0] == "json":
        return _json_decode(value, int(how[1]))
    return value


def _ints(value: Any) -> Any:
    """A LIST/STRUCT value with its integral doubles made ints again: KFP carries these as
    protobuf Values, whose only number is a double (so a nested ``1.0`` arrives as ``1``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    return value


def _json_decode(value: Any, depth: int) -> Any:
    if depth > 0:
        if not isinstance(value, list):
            value = json.loads(value) if isinstance(value, str) else value
        return [_json_decode(v, depth - 1) for v in value]
    return json.loads(value) if isinstance(value, str) else value


_KFP_TYPE_CHECKS: dict[str, Any] = {
    "LIST": lambda v: isinstance(v, list),
    "STRUCT": lambda v: isinstance(v, dict),
    "STRING": lambda v: isinstance(v, str),
    "BOOLEAN": lambda v: isinstance(v, bool),
    "NUMBER_INTEGER": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "NUMBER_DOUBLE": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
"""KFP parameter type -> whether a value may be passed as one."""


def encode(step: str, name: str, value: Any, how: str) -> Any:
    """A flowc output value as the KFP output parameter declared for it."""
    if how == "json":
        return json.dumps(value, ensure_ascii=False)
    if how == "text":
        return exprs.to_text(value)
    if how == "json-list":
        if not isinstance(value, list):
            raise StepError(
                step,
                f"output '{name}' is foreach items and must be a list, got {type(value).__name__}",
            )
        return [json.dumps(v, ensure_ascii=False) for v in value]
    if how == "LIST" and isinstance(value, tuple):
        value = list(value)  # what JSON makes of it everywhere else
    if not _KFP_TYPE_CHECKS[how](value):
        raise StepError(
            step,
            f"output '{name}' must be {how} on KFP (the type its step's return annotation "
            f"declares, or a condition or foreach using it needs), got {type(value).__name__}",
        )
    return float(value) if how == "NUMBER_DOUBLE" else value


def secret_resolver(name: str, spec: Mapping[str, Any]) -> str | None:
    """The environment first (KFP injects Kubernetes secrets as env vars); then, for a secret
    with a ``vertex`` source, Google Secret Manager (``google-cloud-secret-manager``, imported
    only then)."""
    value = env_secret_resolver(name, spec)
    if value is not None or not spec.get("vertex"):
        return value
    try:
        from google.cloud import secretmanager  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - depends on the image
        return None
    client = secretmanager.SecretManagerServiceClient()
    resp = client.access_secret_version(name=spec["vertex"]["secret"])
    return str(resp.payload.data.decode("utf-8"))


def _job_time(value: Any) -> str:
    """``${run.date}`` from the job-time placeholder KFP filled in (RFC 3339 UTC), spelled as
    ``flowc run`` spells it (ISO 8601, seconds, ``+00:00``); a runner that left the placeholder
    as it was (kfp.local) gives the time the step started."""
    from datetime import UTC, datetime

    text = str(value or "")
    if text and not text.startswith("{{$"):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        return when.astimezone(UTC).isoformat(timespec="seconds")
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_params(plan: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's params as a step sees them (``ctx.params``), as under ``flowc run``: every
    declared param with a default, overlaid with the values this component received (the KFP
    target binds every param into every executor, with its run-time value)."""
    out: dict[str, Any] = {}
    for name, spec in (plan.get("params") or {}).items():
        if name in given:
            out[name] = given[name]
        elif "default" in spec:
            out[name] = spec["default"]
    return out


def item_index(items: Any, item: Any) -> int | None:
    """``ctx.index`` of a foreach iteration: KFP's ParallelFor hands a task its item, not its
    position, so the position is found in the whole list (also an input); an item that occurs
    more than once has no single position and gives None."""
    if item is MISSING or not isinstance(items, list):
        return None
    hits = [n for n, v in enumerate(items) if v == item]
    return hits[0] if len(hits) == 1 else None


def final_status(value: Any) -> str:
    """``${run.status}`` of a finally step from KFP's ``PipelineTaskFinalStatus`` of the
    ExitHandler (a struct whose ``state`` is SUCCEEDED, FAILED, CANCELED...): ``success`` only
    when the ExitHandler's body succeeded, else ``failed``."""
    state = value.get("state") if isinstance(value, Mapping) else getattr(value, "state", None)
    return "success" if str(state or "").upper() == "SUCCEEDED" else "failed"


def _is_skip(exc: BaseException) -> bool:
    """Whether ``exc`` is ``flowc.runtime.Skip`` (imported only here: older runtimes lack it)."""
    try:
        from flowc.runtime import Skip  # type: ignore[attr-defined]
    except ImportError:
        return False
    return isinstance(exc, Skip)


def run_component(spec: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """Run one instance of ``spec["step"]`` with the component's input ``values``; return the
    outputs as KFP's executor expects them (one value, or a tuple in declared order)."""
    plan: Any = spec["plan"]
    step = spec["step"]
    params: dict[str, Any] = {}
    upstream: dict[str, dict[str, Any]] = {}
    item: Any = MISSING
    items: Any = None
    replica: int | None = None
    run_id = os.environ.get("FLOWC_RUN_ID") or "kfp"
    run_date: str | None = None
    overrides: dict[str, Any] = {}
    run_extra: dict[str, Any] = {}
    for name, path, how in spec["inputs"]:
        if name not in values:
            continue
        value = decode(values[name], how)
        root = path[0]
        if root == "params":
            params[path[1]] = value
        elif root == "steps":
            upstream.setdefault(path[1], {})[path[3]] = value
        elif root == "item":
            item = value
        elif root == "items":
            items = value
        elif root == "replica":
            replica = int(value)
        elif root == "run" and path[1:2] == ["date"]:
            run_date = _job_time(value)
        elif root == "run" and path[1:2] == ["status"]:
            run_extra["status"] = final_status(values[name])
        elif root == "run":
            run_id = str(value)
        elif root == "with":
            overrides[path[1]] = value
    if overrides:
        data = dict(plan["steps"][step])
        data["with"] = {**data.get("with", {}), **{k: {"$lit": v} for k, v in overrides.items()}}
        plan = {**plan, "steps": {**plan["steps"], step: data}}
    params = run_params(plan, params)
    index = item_index(items, item)
    run = services.RunInfo(  # config secrets: the executor's env, else Secret Manager
        run_id=run_id,
        flow=str(plan.get("name")),
        params=params,
        extra={"secret_resolver": secret_resolver},
    )
    extra: dict[str, Any] = {"run_extra": run_extra} if run_extra else {}
    with services.running(plan, run) as values:  # plugins, integration tree (when used)
        try:
            outs = execute(
                plan,
                step,
                params=params,
                upstream=upstream,
                run_id=run_id,
                run_date=run_date,
                item=item,
                index=index,
                replica=replica,
                ctx_extra=values,
                secret_resolver=secret_resolver,
                **extra,
            )
        except Exception as exc:
            if _is_skip(exc):
                raise StepError(
                    step,
                    "the step skipped itself (flowc.runtime.Skip), but a KFP task has no skipped "
                    "state: it fails instead (skip with `when:` on KFP and Vertex)",
                ) from exc
            raise
    encoded = [encode(step, name, outs[name], how) for name, _key, how in spec["outputs"]]
    if not encoded:
        return None
    return encoded[0] if len(encoded) == 1 else tuple(encoded)


# ---------------------------------------------------------------------------------------------
# A stdlib stand-in for kfp.dsl.executor_main (used when the image has no kfp)
# ---------------------------------------------------------------------------------------------


def execute_component(executor_input: Mapping[str, Any], module_path: str, function: str) -> str:
    """Run ``function`` of the generated module at ``module_path`` the way kfp's executor does:
    input parameter values as keyword arguments, the return value written as
    ``{"parameterValues": {...}}`` to the executor output file. Returns that file's path."""
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("ephemeral_component", module_path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {module_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, function)
    values = (executor_input.get("inputs") or {}).get("parameterValues") or {}
    signature = inspect.signature(fn)
    result = fn(**{k: v for k, v in values.items() if k in signature.parameters})
    returns = signature.return_annotation
    out: dict[str, Any] = {}
    if result is not None:
        fields = getattr(returns, "_fields", None)
        if fields:
            out = dict(zip(fields, result, strict=True))
        else:
            out = {"Output": result}
    path = executor_input["outputs"]["outputFile"]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"parameterValues": out} if out else {}))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m flowc.runtime.kfp --component_module_path P --executor_input J
    --function_to_execute F`` (the arguments kfp's launcher passes)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m flowc.runtime.kfp")
    ap.add_argument("--component_module_path", required=True)
    ap.add_argument("--executor_input", required=True)
    ap.add_argument("--function_to_execute", required=True)
    args, _ = ap.parse_known_args(argv)
    execute_component(
        json.loads(args.executor_input), args.component_module_path, args.function_to_execute
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
