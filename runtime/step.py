"""ONE attempt of one step instance: resolve inputs, call the callable (or run the command), map
the result to the declared outputs.

No retries, no scheduling, no persistence: that is the executor's job (or Airflow's, KFP's...).
This module is what every target calls inside its task / container, through :func:`execute`.
It owns the inputs of an attempt (:class:`Inputs`), loading callables and mapping results to
outputs; :mod:`.step_common` (errors, secrets), :mod:`.step_log` (log capture) and
:mod:`.step_command` (commands, child processes) hold the rest, re-exported here.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import exprs
from flowc.runtime.context import Context
from flowc.runtime.plan import Plan, StepData
from flowc.runtime.step_command import _applied_env, _kill_group, _run_command
from flowc.runtime.step_common import (
    MISSING,
    SecretResolver,
    Skip,
    StepError,
    env_secret_resolver,
    known_secret_values,
    mask,
    resolve_secret,
)
from flowc.runtime.step_log import _make_logger, capture, log_was_written

__all__ = [
    "MISSING",
    "Inputs",
    "SecretResolver",
    "Skip",
    "StepError",
    "_kill_group",
    "callable_source",
    "env_secret_resolver",
    "execute",
    "known_secret_values",
    "load_callable",
    "log_was_written",
    "map_outputs",
    "mask",
    "resolve_secret",
    "run_values",
]

# ---------------------------------------------------------------------------------------------
# Callables
# ---------------------------------------------------------------------------------------------

_callables: dict[str, tuple[Callable[..., Any], bool]] = {}


def load_callable(ref: str) -> tuple[Callable[..., Any], bool]:
    """``"pkg.mod:func"`` (or ``"pkg.mod:Class.method"``) -> (function, wants_ctx)."""
    hit = _callables.get(ref)
    if hit is not None:
        return hit
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{ref}' is not a 'module:function' reference")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"'{ref}' is not callable")
    _callables[ref] = (obj, _wants_ctx(obj))
    return _callables[ref]


def _wants_ctx(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` declares a ``ctx`` parameter."""
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def callable_source(ref: str) -> str:
    """The source text of a callable (for cache keys); its module file when unavailable."""
    if ref.startswith("integration:"):
        return ref
    fn, _ = load_callable(ref)
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        mod = sys.modules.get(getattr(fn, "__module__", "") or "")
        path = getattr(mod, "__file__", None)
        return Path(path).read_text(encoding="utf-8", errors="replace") if path else ref


# ---------------------------------------------------------------------------------------------
# Input resolution
# ---------------------------------------------------------------------------------------------


class Inputs:
    """Everything a step instance's expressions may refer to, evaluated lazily (secrets are
    read only when referenced)."""

    def __init__(
        self,
        plan: Plan,
        step: str,
        *,
        params: Mapping[str, Any],
        upstream: Mapping[str, Mapping[str, Any]],
        run_id: str,
        run_date: str | None = None,
        item: Any = MISSING,
        secret_resolver: SecretResolver | None = None,
        run_extra: Mapping[str, Any] | None = None,
    ):
        self.plan = plan
        self.step = step
        self.params = params
        self.upstream = upstream
        self.run_id = run_id
        self.run_date = run_date
        self.item = item
        self.secret_resolver = secret_resolver
        self.run_extra = dict(run_extra or {})
        self.secret_values: dict[str, str] = {}

    def lookup(self, path: list[Any], default: Any) -> Any:
        root = path[0]
        if root == "params":
            cur: Any = self.params
            rest = path[1:]
        elif root == "steps":
            if len(path) < 4 or path[1] not in self.upstream:
                raise exprs.ExprError(
                    f"unknown reference ${{{'.'.join(path)}}} (no upstream value)"
                )
            outs = self.upstream[path[1]]
            if path[3] not in outs:
                raise exprs.ExprError(f"step '{path[1]}' has no output '{path[3]}'")
            cur, rest = outs[path[3]], path[4:]
        elif root == "secrets":
            name = path[1]
            if name not in self.secret_values:
                self.secret_values[name] = resolve_secret(
                    self.plan, self.step, name, self.secret_resolver
                )
            return self.secret_values[name]
        elif root == "item":
            if self.item is MISSING:
                raise exprs.ExprError("${item} used outside foreach")
            cur, rest = self.item, path[1:]
        elif root == "run":
            cur = {**run_values(self.run_id, self.run_date), **self.run_extra}
            rest = path[1:]
        elif root == "flow":
            cur, rest = {"name": self.plan.get("name")}, path[1:]
        elif root == "env":
            var = path[1] if len(path) > 1 else ""
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise exprs.ExprError(f"environment variable {var} is not set")
        else:
            raise exprs.ExprError(f"unknown reference root '{root}'")
        return _index(cur, rest, path)

    def eval(self, enc: Any) -> Any:
        if not isinstance(enc, dict):
            return enc
        return exprs.evaluate(enc, self.lookup)

    def kwargs(self, step_data: StepData) -> dict[str, Any]:
        return {k: self.eval(v) for k, v in (step_data.get("with") or {}).items()}

    def env(self, step_data: StepData) -> dict[str, str]:
        return {k: exprs.to_text(self.eval(v)) for k, v in (step_data.get("env") or {}).items()}

    def argv(self, step_data: StepData) -> list[str]:
        return [exprs.to_text(self.eval(a)) for a in step_data.get("command") or []]

    @property
    def secrets(self) -> list[str]:
        return list(self.secret_values.values())


def _index(cur: Any, rest: list[Any], path: list[Any]) -> Any:
    """Follow ``rest`` (keys and list positions) into ``cur``. Indexing into null is null (an
    output an upstream step did not produce); a missing key or position is an error."""
    for i, key in enumerate(rest):
        if cur is None:
            return None
        if isinstance(cur, Mapping):
            if key in cur:
                cur = cur[key]
                continue
            if isinstance(key, int) and str(key) in cur:
                cur = cur[str(key)]
                continue
        elif isinstance(cur, list | tuple):
            pos = (
                None
                if isinstance(key, bool)
                else key if isinstance(key, int) else int(key) if str(key).isdigit() else None
            )
            if pos is not None and -len(cur) <= pos < len(cur):
                cur = cur[pos]
                continue
        shown = path[0] + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}"
            for p in path[1 : len(path) - len(rest) + i + 1]
        )
        raise exprs.ExprError(f"unknown reference ${{{shown}}}")
    return cur


def run_values(run_id: str, run_date: str | None) -> dict[str, Any]:
    """``run.id``, ``run.date`` and the logical date as ``run.ds`` (``YYYY-MM-DD``, UTC) and
    ``run.ds_nodash`` (``YYYYMMDD``)."""
    ds = None
    if run_date:
        from datetime import UTC, datetime

        try:
            when = datetime.fromisoformat(run_date)
            if when.tzinfo is not None:
                when = when.astimezone(UTC)
            ds = when.date().isoformat()
        except ValueError:
            ds = run_date[:10]
    return {
        "id": run_id,
        "date": run_date,
        "ds": ds,
        "ds_nodash": ds.replace("-", "") if ds else None,
    }


def map_outputs(step: str, declared: list[str], value: Any) -> dict[str, Any]:
    """One output -> the value itself; several -> a dict keyed by output name."""
    if not declared:
        return {}
    if len(declared) == 1:
        return {declared[0]: value}
    if not isinstance(value, Mapping):
        raise StepError(
            step,
            f"returned {type(value).__name__}, but declares outputs {declared}: return a dict "
            "keyed by output name",
        )
    missing = [o for o in declared if o not in value]
    if missing:
        raise StepError(
            step,
            f"missing output(s) {missing} in the returned dict (got keys {sorted(map(str, value))})",
        )
    return {o: value[o] for o in declared}


# ---------------------------------------------------------------------------------------------
# The one public entry point
# ---------------------------------------------------------------------------------------------


def execute(
    plan: Plan,
    step: str,
    *,
    params: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, Any]],
    run_id: str,
    run_date: str | None = None,
    item: Any = MISSING,
    replica: int | None = None,
    ctx_extra: Mapping[str, Any] | None = None,
    secret_resolver: SecretResolver | None = None,
    log_path: str | Path | None = None,
    timeout: float | None = None,
    attempt: int = 1,
    index: int | None = None,
    mask_values: tuple[str, ...] | list[str] = (),
    run_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one attempt of one instance of ``step``; return ``{output name: value}``.

    Raises :class:`flowc.runtime.Skip` when the instance is skipped: its callable raised it,
    or its command exited with a code in ``skip_on_exit_code``; callers map it to their
    engine's skip. ``run_extra`` adds run values (``{"status", "failed_steps"}`` for finally
    steps: ``${run.status}``, ``${run.failed_steps}``).

    ``upstream`` is ``{step: {output: value}}`` for the steps this one references. Secrets are
    read at call time (``secret_resolver``, default: the environment). ``log_path``: when given,
    the step's stdout/stderr (this thread's prints, or the command's output) go there, with
    secret values masked; otherwise they go to the process' stdout/stderr. ``timeout`` applies
    to ``command`` steps only (a callable in this process cannot be stopped: the executor runs
    callables with a timeout in a child process). ``ctx_extra`` keys become ``ctx`` attributes
    (``plugins``/``integrations`` fill those fields). ``mask_values``: more strings to mask in
    the log (the executor passes every declared secret it can read).
    """
    data = plan["steps"][step]
    inputs = Inputs(
        plan,
        step,
        params=params,
        upstream=upstream,
        run_id=run_id,
        run_date=run_date,
        item=item,
        secret_resolver=secret_resolver,
        run_extra=run_extra,
    )
    replicas = int(data.get("replicas") or 1)
    try:
        env = inputs.env(data)
        if data.get("kind") == "command":
            argv = inputs.argv(data)
            log = Path(log_path) if log_path is not None else None
            secrets = _to_mask(inputs, mask_values)
            return _run_command(
                step, data, argv, env, inputs.run_id, secrets, replica, replicas, log, timeout
            )
        kwargs = inputs.kwargs(data)
    except exprs.ExprError as e:
        raise StepError(step, str(e)) from None

    ref = data.get("run") or ""
    ctx_factory = lambda: _context(  # noqa: E731
        plan, step, inputs, replica, replicas, ctx_extra, log_path, attempt, index, secret_resolver
    )
    ctx: Context | None
    if ref.startswith("integration:"):
        ctx = ctx_factory()  # its integration tree: the run service's, else built here
        from flowc.runtime import integrations  # lazy: optional part

        try:
            fn = integrations.resolve_callable(ctx, ref)
        except Exception as e:
            raise StepError(step, f"cannot resolve '{ref}': {e}") from None
        wants_ctx = _wants_ctx(fn)
    else:
        try:
            fn, wants_ctx = load_callable(ref)
        except (ImportError, AttributeError, ValueError, TypeError) as e:
            hint = ""
            if isinstance(e, ModuleNotFoundError) and e.name == ref.partition(":")[0].split(".")[0]:
                hint = (
                    " (put its folder on PYTHONPATH, or run from it, or keep it next to the flow)"
                )
            raise StepError(step, f"cannot load callable '{ref}': {e}{hint}") from None
        ctx = ctx_factory() if wants_ctx else None
    if wants_ctx:
        kwargs["ctx"] = ctx
    secrets = _to_mask(inputs, mask_values)
    with _applied_env(env, replica, replicas), capture(log_path, secrets):
        value = fn(**kwargs)
    return map_outputs(step, list(data.get("outputs") or []), value)


def _to_mask(inputs: Inputs, mask_values: tuple[str, ...] | list[str]) -> list[str]:
    """The secret values the step referenced, then ``mask_values`` not among them."""
    secrets = inputs.secrets
    return secrets + [v for v in mask_values if v not in secrets]


def _context(
    plan: Plan,
    step: str,
    inputs: Inputs,
    replica: int | None,
    replicas: int,
    ctx_extra: Mapping[str, Any] | None,
    log: str | Path | None,
    attempt: int,
    index: int | None,
    secret_resolver: SecretResolver | None = None,
) -> Context:
    extra = dict(ctx_extra or {})
    artifact_dir = extra.pop("artifact_dir", None)
    return Context(
        run_id=inputs.run_id,
        step=step,
        flow=str(plan.get("name")),
        params=dict(inputs.params),
        run_date=inputs.run_date,
        logger=_make_logger(step),
        plugins=extra.pop("plugins", None),
        integrations=extra.pop("integrations", None)
        or _integrations(plan, inputs.run_id, secret_resolver),
        artifact_dir=Path(artifact_dir) if artifact_dir else None,
        log_path=Path(log) if log is not None else None,
        replica=replica,
        replicas=replicas,
        item=None if inputs.item is MISSING else inputs.item,
        index=index,
        attempt=attempt,
        extra=extra,
    )


def _integrations(plan: Plan, run_id: str, secret_resolver: SecretResolver | None) -> Any:
    """The integration tree when no run service provided one (a task process on a remote
    target: built once per run id in this process, its config secrets resolved here)."""
    if not plan.get("integrations"):
        return None
    from flowc.runtime import integrations  # lazy: optional part

    return integrations.for_run(plan, run_id, secret_resolver)
