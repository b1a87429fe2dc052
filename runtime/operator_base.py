"""What the streaming operator parts share: the :class:`Operator` base and its hooks, the errors,
and helpers used by the supervisor and the replicas alike (the channel database and specs of a
run, replica counts, loading an operator class, calling a hook by its flowc or pypz name)."""

from __future__ import annotations

import importlib
import inspect
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import channels as ch
from flowc.runtime.plan import Plan

HOOKS = ("on_init", "on_running", "on_shutdown", "on_interrupt", "on_error")
GRACE_SECONDS = 10.0
"""How long interrupted replicas get to shut down before they are killed."""


class OperatorError(Exception):
    """An operator replica failed; ``step``/``replica`` name it, the message is its error."""

    def __init__(self, step: str, replica: int, message: str):
        self.step = step
        self.replica = replica
        self.message = message
        super().__init__(f"operator '{step}' (replica {replica}) failed: {message}")


class Interrupted(BaseException):
    """Raised inside a replica when it receives SIGTERM / SIGINT."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Operator:
    """An optional base class: every hook is a no-op; ``ports`` is set by the runtime."""

    ports: dict[str, Any]

    def on_init(self) -> bool | None:
        return True

    def on_running(self) -> bool | None:
        return None

    def on_shutdown(self) -> bool | None:
        return True

    def on_interrupt(self, system_signal: int | None = None) -> None:
        return None

    def on_error(self, error: BaseException | None = None) -> None:
        return None


class Parameter:
    """An operator parameter declared on the class, as pypz declares them
    (``record_count = RequiredParameter(int, alt_name="recordCount", description=...)``): ``with:``
    and the pipeline params may name it by its attribute name or its ``alt_name``; the runtime
    sets the attribute after the constructor ran (so ``__init__``'s assignment is the initial
    value of an optional one)."""

    required = False

    def __init__(
        self,
        parameter_type: type | None = None,
        alt_name: str | None = None,
        description: str | None = None,
        on_update: Any = None,
    ):
        self.parameter_type = parameter_type
        self.alt_name = alt_name
        self.description = description
        self.on_update = on_update
        self.name = alt_name or ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value
        if self.on_update is not None:
            self.on_update(obj, value)


class RequiredParameter(Parameter):
    """A parameter the step must give (in ``with:`` or as a pipeline param)."""

    required = True


class OptionalParameter(Parameter):
    """A parameter that keeps its initial value unless given."""


def declared_parameters(cls: type) -> dict[str, Parameter]:
    """The :class:`Parameter` attributes of an operator class (its bases included), by name."""
    out: dict[str, Parameter] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter):
                out[name] = value
    return out


def operator_signature(cls: type) -> tuple[dict[str, inspect.Parameter], dict[str, str], bool]:
    """Every parameter of an operator class: ``({name: inspect.Parameter}, {alt_name: name},
    accepts **kwargs)``; the constructor's parameters (not ``self``/``ctx``/``*args``) and the
    declared :class:`Parameter` attributes (annotated with their type, required ones without a
    default). A class whose constructor signature cannot be read accepts any keyword."""
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):  # no signature to read: accept any keyword
        params, var_kw = [], True
    named = {
        p.name: p
        for p in params
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.POSITIONAL_ONLY) and p.name != "ctx"
    }
    aliases: dict[str, str] = {}
    for name, decl in declared_parameters(cls).items():
        if decl.alt_name:
            aliases[decl.alt_name] = name
        if name not in named:
            named[name] = inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if decl.required else None,
                annotation=decl.parameter_type or inspect.Parameter.empty,
            )
    return named, aliases, var_kw


def _get(run: Any, key: str, default: Any = None) -> Any:
    if isinstance(run, Mapping):
        return run.get(key, default)
    value = getattr(run, key, None)
    if value is None:
        extra = getattr(run, "extra", None) or {}
        value = extra.get(key, default) if isinstance(extra, Mapping) else default
    return default if value is None else value


def run_dir_of(run: Any) -> Path:
    """The run's folder: ``run.run_dir`` (or ``extra["run_dir"]``), else ``ROOT/runs/RUN_ID``."""
    explicit = _get(run, "run_dir")
    if explicit:
        return Path(explicit)
    return Path(_get(run, "root", ".flowc")) / "runs" / str(_get(run, "run_id", "run"))


def channel_db(plan: Plan, run_dir: Path) -> Path:
    """The local transport's database of a run."""
    return run_dir / ch.DB_NAME


def replicas_of(plan: Plan, step: str) -> int:
    return max(1, int(plan["steps"][step].get("replicas") or 1))


def channel_spec(plan: Plan, name: str, location: str | None, run_id: str) -> ch.ChannelSpec:
    data = plan["channels"][name]
    return ch.ChannelSpec(
        name,
        data["schema"],
        transport=data.get("transport") or "local",
        location=location,
        producers={p: replicas_of(plan, p) for p in data.get("producers") or []},
        consumers={c: replicas_of(plan, c) for c in data.get("consumers") or []},
        flow=str(plan.get("name") or "flow"),
        run_id=run_id,
    )


def _call_hook(obj: Any, name: str, *args: Any) -> Any:
    fn = getattr(obj, name, None) or getattr(obj, f"_{name}", None)
    if fn is None:
        return None
    if args:
        try:
            sig = inspect.signature(fn)
            positional = [
                p
                for p in sig.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            ]
            if not positional:
                args = ()
        except (TypeError, ValueError):
            pass
    return fn(*args)


def load_class(ref: str) -> type:
    """``"pkg.mod:Class"`` -> the class."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{ref}' is not a 'module:Class' reference")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"'{ref}' is not a class")
    return obj


def constructor_parameters(cls: type) -> tuple[list[str], list[str], bool]:
    """(required, optional, accepts **kwargs) of an operator class's constructor: the operator's
    own parameters (checked at compile time against ``with:`` and the pipeline params)."""
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return [], [], True
    required: list[str] = []
    optional: list[str] = []
    var_kw = False
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL or p.name == "ctx":
            continue
        elif p.default is p.empty:
            required.append(p.name)
        else:
            optional.append(p.name)
    return required, optional, var_kw


def _inputs(spec: Mapping[str, Any], step: str) -> Any:
    from flowc.runtime.step import Inputs

    return Inputs(
        spec["plan"],
        step,
        params=spec.get("params") or {},
        upstream=spec.get("upstream") or {},
        run_id=spec["run_id"],
        run_date=spec.get("run_date"),
    )
