"""Plugins (ExperimentHub): services a flow's steps use at run time, as ``ctx.plugins.<name>``.

A flow's ``plugins:`` section maps a name (``mlops``, ``datastream``, ``taskqueue``, or any) to a
registered plugin ``type`` with ``enabled`` and ``config``. This module owns:

- the :class:`Plugin` protocol (``initialize()``, ``shutdown()``, ``health_check() -> (bool,
  dict)``) and the typed families :class:`MLOpsPlugin` (params/metrics/artifacts, runs),
  :class:`DataStreamPlugin` (publish/subscribe) and :class:`TaskQueuePlugin` (submit/result);
- the registry: built-in types (``mlflow``, ``rabbitmq``, ``celery``, ``local``, imported only
  when used), the ``flowc.plugins`` entry point group, ``@register_plugin``,
  ``get_plugin_registry().register(cls_or_"module:Class", name)``, and a ``type`` written as
  ``"module:Class"`` in the flow itself;
- :class:`ExperimentHub`: ExperimentHub's instance API (``register_plugin(plugin)``,
  ``get_plugin(plugin_type)``, ``check_plugin_health()``, ``_init_plugins_from_config``);
- health checks, each bounded by a timeout (:func:`health`, :func:`check_health`);
- the run service (``services.SERVICES["plugins"]``): enabled plugins are built and initialized
  once per run (and process) before the first step, handed to steps as ``ctx.plugins``, and shut
  down after the last step (in reverse order) even when the run fails. Only plugins with
  ``enabled: true`` run (a plugin without the key is disabled, as in ExperimentHub); the others
  are never imported.

Stdlib only; each plugin imports its own library lazily.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

FAMILIES: tuple[str, ...] = ("mlops", "datastream", "taskqueue")

BUILTIN_PLUGINS: dict[str, str] = {
    "mlflow": "flowc.runtime.plugins_builtin.mlflow_plugin:MLflowPlugin",
    "rabbitmq": "flowc.runtime.plugins_builtin.rabbitmq_plugin:RabbitMQPlugin",
    "celery": "flowc.runtime.plugins_builtin.celery_plugin:CeleryPlugin",
    "local": "flowc.runtime.plugins_builtin.local_stream:LocalStreamPlugin",
}
"""Built-in plugin type -> ``"module:Class"`` (imported on first use)."""

DEFAULT_HEALTH_TIMEOUT = 5.0
"""Seconds a health check may take unless the plugin's spec sets ``health_timeout``."""


class PluginError(Exception):
    """A plugin type is unknown, cannot be loaded or built, or failed to initialize."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message} ({hint})")
        self.message = message
        self.hint = hint


@runtime_checkable
class Plugin(Protocol):
    """What every plugin implements (ExperimentHub's base interface)."""

    plugin_type: str

    def initialize(self) -> None:
        """Connect / set up. Called once per run before the first step."""
        ...

    def shutdown(self) -> None:
        """Release resources. Called once after the last step, even when the run failed."""
        ...

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, details)``; never raises."""
        ...


class BasePlugin:
    """Convenience base: keeps ``config``; no-op lifecycle; optional run hooks.

    ``health_timeout`` (seconds, or None for the default) is set by whoever runs the health
    check; a plugin that talks to a server bounds its own health-check calls by it.

    ``on_run_start(run)`` is called after ``initialize()`` with the run's
    :class:`flowc.runtime.services.RunInfo`; ``on_run_end(status=None)`` before ``shutdown()``
    (``status`` is ``"success"``/``"failed"`` when the runtime passes it, else None).
    """

    plugin_type: ClassVar[str] = ""
    health_timeout: float | None = None
    health_imports: ClassVar[tuple[str, ...]] = ()
    """Modules (the plugin's client library) imported before a health check's clock starts:
    the timeout bounds talking to the service, not importing its client."""

    def __init__(self, **config: Any) -> None:
        self.config = dict(config)

    def initialize(self) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok"}

    def on_run_start(self, run: Any) -> None:
        return None

    def on_run_end(self, status: str | None = None) -> None:
        return None


class MLOpsPlugin(BasePlugin):
    """Experiment tracking: one tracking run per flowc run (``on_run_start``)."""

    plugin_type = "mlops"

    def set_tracking_uri(self, uri: str) -> None:
        raise NotImplementedError

    def create_experiment(self, name: str) -> str:
        raise NotImplementedError

    def get_experiment_by_name(self, name: str) -> Any:
        raise NotImplementedError

    def start_run(self, experiment_id: str | None = None, run_name: str | None = None) -> str:
        raise NotImplementedError

    def end_run(self, status: str = "FINISHED") -> None:
        raise NotImplementedError

    def get_run(self, run_id: str) -> Any:
        raise NotImplementedError

    def log_params(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        raise NotImplementedError

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        raise NotImplementedError

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)


class DataStreamPlugin(BasePlugin):
    """Messaging: named queues of JSON-able messages."""

    plugin_type = "datastream"

    def connect(self) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

    def create_queue(self, queue: str) -> None:
        raise NotImplementedError

    def publish(self, queue: str, data: Any) -> None:
        raise NotImplementedError

    def pull_data(self, queue: str) -> Any:
        """One message, or None when the queue is empty."""
        raise NotImplementedError

    def subscribe(
        self, queue: str, max_messages: int | None = None, timeout: float = 1.0
    ) -> Iterator[Any]:
        """Messages as they arrive; stops after ``max_messages`` or ``timeout`` seconds of
        silence."""
        raise NotImplementedError

    def flush_queue(self, queue: str) -> None:
        raise NotImplementedError

    def send_data(self, queue: str, data: Any) -> None:
        """ExperimentHub spelling of :meth:`publish`."""
        self.publish(queue, data)


class TaskQueuePlugin(BasePlugin):
    """Asynchronous tasks run by workers."""

    plugin_type = "taskqueue"

    def register_tasks(self, tasks_module: str) -> None:
        raise NotImplementedError

    def submit(self, task: str, *args: Any, **kwargs: Any) -> str:
        """Queue ``task`` (a registered task name or ``"module:function"``); returns its id."""
        raise NotImplementedError

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def status(self, task_id: str) -> str:
        raise NotImplementedError

    def submit_task(self, task_name: str, *args: Any, **kwargs: Any) -> str:
        return self.submit(task_name, *args, **kwargs)

    def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        return self.result(task_id, timeout)

    def get_status(self, task_id: str) -> str:
        return self.status(task_id)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``: for health details and logs."""
    from urllib.parse import urlparse

    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@")
    return url


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginEntry:
    name: str
    target: str  # "module:Class" (or a class's qualified name once loaded)
    source: str
    cls: type | None = None


class PluginRegistry:
    """Plugin classes by type name. Built-ins and entry points are ``"module:Class"`` strings
    imported only when that type is used."""

    def __init__(self, entry_point_group: str | None = "flowc.plugins") -> None:
        self._entries: dict[str, PluginEntry] = {
            name: PluginEntry(name, target, "builtin") for name, target in BUILTIN_PLUGINS.items()
        }
        self._group = entry_point_group
        self._eps_read = False

    def _read_entry_points(self) -> None:
        if self._eps_read or not self._group:
            return
        self._eps_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self._group):
            if ep.name in self._entries and self._entries[ep.name].source != "builtin":
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            self._entries[ep.name] = PluginEntry(ep.name, ep.value, f"entry point ({dist})")

    def register(self, cls: Any, name: str | None = None, *, source: str | None = None) -> Any:
        """Register a plugin class under ``name`` (default: its lowercase class name), or a
        ``"module:Class"`` string (imported only when the type is used; ``name`` required)."""
        if isinstance(cls, str):
            if not name or ":" not in cls:
                raise PluginError("register('module:Class', name) needs both")
            self._entries[name] = PluginEntry(name, cls, source or "call")
            return cls
        if not isinstance(cls, type):
            raise PluginError(f"{cls!r} is not a class")
        key = name or getattr(cls, "plugin_name", None) or cls.__name__.lower()
        target = f"{cls.__module__}:{cls.__qualname__}"
        self._entries[key] = PluginEntry(key, target, source or f"call ({cls.__module__})", cls)
        return cls

    def entry(self, name: str) -> PluginEntry:
        """The registration of type ``name`` (nothing is imported). A ``"module:Class"`` type
        names its class directly."""
        if name not in self._entries and _is_ref(name):
            return PluginEntry(name, name, "reference")
        if name not in self._entries:
            self._read_entry_points()
        if name not in self._entries:
            import difflib

            close = difflib.get_close_matches(name, sorted(self._entries), n=1, cutoff=0.6)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"known types: {', '.join(self.names())}, or write 'module:Class'"
            )
            raise PluginError(f"unknown plugin type '{name}'", hint)
        return self._entries[name]

    def get(self, name: str) -> type:
        """The class of plugin type ``name`` (imports it)."""
        e = self.entry(name)
        if e.cls is not None:
            return e.cls
        module, _, attr = e.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ImportError as err:
            raise PluginError(
                f"plugin type '{name}' needs a package that is not installed: {err} "
                "(pip install 'flowc[plugins]')"
            ) from err
        except AttributeError as err:
            raise PluginError(f"plugin type '{name}': {e.target} not found") from err
        self._entries[name] = PluginEntry(name, e.target, e.source, cls)
        return cls

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[PluginEntry]:
        self._read_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def create(self, type_name: str, config: Mapping[str, Any] | None = None) -> Any:
        """Build (not initialize) a plugin from its config."""
        cls = self.get(type_name)
        try:
            return cls(**dict(config or {}))
        except TypeError as e:
            raise PluginError(f"plugin type '{type_name}': bad config: {e}") from e


def _is_ref(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and all(
        part.isidentifier() for part in (*module.split("."), *attr.split("."))
    )


_REGISTRY = PluginRegistry()


def get_plugin_registry() -> PluginRegistry:
    return _REGISTRY


def register_plugin(cls: type | None = None, *, name: str | None = None) -> Any:
    """Decorator: ``@register_plugin`` or ``@register_plugin(name="wandb")``."""

    def deco(c: type) -> type:
        return _REGISTRY.register(c, name, source=f"decorator ({c.__module__})")

    return deco(cls) if cls is not None else deco


def family_of(plugin: Any) -> str | None:
    return getattr(plugin, "plugin_type", None) or None


# ---------------------------------------------------------------------------------------------
# The run service
# ---------------------------------------------------------------------------------------------


class Plugins:
    """``ctx.plugins``: the initialized plugins by name (attribute or item access).
    ``disabled`` names the flow's plugins that are not enabled, so that using one says why."""

    def __init__(self, plugins: Mapping[str, Any], disabled: Iterable[str] = ()) -> None:
        self._plugins = dict(plugins)
        self._disabled = tuple(disabled)

    def __getattr__(self, name: str) -> Any:
        plugins = self.__dict__.get("_plugins", {})
        if name in plugins:
            return plugins[name]
        if name.startswith("__"):
            raise AttributeError(name)
        enabled = f"(enabled: {', '.join(plugins) or 'none'})"
        if name in self.__dict__.get("_disabled", ()):
            raise AttributeError(
                f"plugin '{name}' is disabled {enabled}: a plugin runs only with "
                f"'enabled: true' (the default is false); add it to plugins.{name}"
            )
        raise AttributeError(f"no enabled plugin '{name}' {enabled}")

    def __getitem__(self, name: str) -> Any:
        return self._plugins[name]

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins)

    def __len__(self) -> int:
        return len(self._plugins)

    def get(self, name: str, default: Any = None) -> Any:
        return self._plugins.get(name, default)

    def family(self, family: str) -> Any:
        """The first enabled plugin of a family (``mlops``...), or None."""
        for p in self._plugins.values():
            if family_of(p) == family:
                return p
        return None

    def get_plugin(self, plugin_type: str) -> Any:
        """ExperimentHub's spelling of :meth:`family`: the plugin of that type, or None."""
        return self.family(plugin_type)

    def __repr__(self) -> str:
        return f"Plugins({', '.join(self._plugins)})"


def resolve_config(
    config: Any,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
    resolver: Any = None,
) -> Any:
    """A plugin's compiled config with its ``${secrets.NAME}`` references resolved here, where
    the plugin runs (:func:`flowc.runtime.config_secrets.resolve_config`); a secret that does
    not resolve is a :class:`PluginError` naming it and its source."""
    from flowc.runtime.config_secrets import SecretMissing
    from flowc.runtime.config_secrets import resolve_config as resolve

    try:
        return resolve(config, secrets, resolver)
    except SecretMissing as e:
        raise PluginError(str(e)) from None


def is_enabled(spec: Mapping[str, Any]) -> bool:
    """A plugin runs only when its spec says ``enabled: true`` (ExperimentHub's
    ``.get("enabled", False)``): a spec without the key is disabled."""
    return bool(spec.get("enabled", False))


def enabled_specs(plan: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{name: spec}`` of the plan's enabled plugins, in written order."""
    return {name: spec for name, spec in (plan.get("plugins") or {}).items() if is_enabled(spec)}


class PluginService:
    """Builds and initializes the enabled plugins; shuts them down in reverse order."""

    def __init__(
        self,
        specs: Mapping[str, Mapping[str, Any]],
        registry: PluginRegistry | None = None,
        disabled: Iterable[str] = (),
    ):
        self.specs = dict(specs)
        self.registry = registry or _REGISTRY
        self.disabled = tuple(disabled)
        self.started: list[tuple[str, Any]] = []

    def start(self, plan: Mapping[str, Any], run: Any) -> Plugins:
        extra = getattr(run, "extra", None) or {}
        resolver = extra.get("secret_resolver") if isinstance(extra, Mapping) else None
        try:
            for name, spec in self.specs.items():
                try:
                    config = resolve_config(spec.get("config") or {}, plan.get("secrets"), resolver)
                    plugin = self.registry.create(spec["type"], config)
                except PluginError as e:
                    raise PluginError(f"plugin '{name}': {e}") from e
                try:
                    plugin.initialize()
                except Exception as e:
                    raise PluginError(
                        f"plugin '{name}' ({spec['type']}) failed to initialize: "
                        f"{type(e).__name__}: {e}"
                    ) from e
                self.started.append((name, plugin))
                hook = getattr(plugin, "on_run_start", None)
                if hook is not None:
                    hook(run)
        except BaseException:
            self.stop()
            raise
        return Plugins(dict(self.started), self.disabled)

    def stop(self, status: str | None = None) -> None:
        """Shut every started plugin down (reverse order). ``status`` (``success``/``failed``,
        when the caller knows it) goes to ``on_run_end(status)`` of plugins that take it."""
        errors: list[BaseException] = []
        while self.started:
            name, plugin = self.started.pop()
            for method in ("on_run_end", "shutdown"):
                fn = getattr(plugin, method, None)
                if fn is None:
                    continue
                try:
                    if method == "on_run_end" and status is not None and _takes_arg(fn):
                        fn(status)
                    else:
                        fn()
                except Exception as e:  # keep shutting the others down
                    errors.append(PluginError(f"plugin '{name}' {method}() failed: {e}"))
        if errors:
            raise errors[0]


def _takes_arg(fn: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


def service(plan: Mapping[str, Any]) -> PluginService | None:
    """The ``plugins`` run service factory (see :mod:`flowc.runtime.services`): None for a plan
    without ``plugins:``; with only disabled plugins, ``ctx.plugins`` is an empty namespace whose
    errors name what is enabled."""
    if not plan.get("plugins"):
        return None
    specs = enabled_specs(plan)
    return PluginService(specs, disabled=[n for n in plan["plugins"] if n not in specs])


# ---------------------------------------------------------------------------------------------
# Health checks, each bounded by a timeout
# ---------------------------------------------------------------------------------------------


def health_timeout_of(spec: Mapping[str, Any]) -> float:
    """A plugin spec's ``health_timeout`` in seconds (default :data:`DEFAULT_HEALTH_TIMEOUT`)."""
    value = spec.get("health_timeout")
    return float(value) if value else DEFAULT_HEALTH_TIMEOUT


def plugin_health_timeout(plugin: Any, default: float = DEFAULT_HEALTH_TIMEOUT) -> float:
    """The seconds a plugin's own health check may take: its ``health_timeout`` attribute
    (set from the spec by :func:`health` and :class:`ExperimentHub`) or ``default``."""
    value = getattr(plugin, "health_timeout", None)
    return float(value) if value else default


def _set_health_timeout(plugin: Any, timeout: float) -> None:
    try:
        plugin.health_timeout = timeout
    except (AttributeError, TypeError):  # __slots__ or a read-only property: the watchdog bounds it
        pass


def _timed_out(timeout: float, stage: str) -> dict[str, Any]:
    return {
        "status": "timeout",
        "message": f"{stage}() gave no answer within {timeout:g}s (health_timeout)",
        "timeout": timeout,
    }


def _error_details(e: BaseException) -> dict[str, Any]:
    return {"status": "error", "message": f"{type(e).__name__}: {e}"}


def _health_result(value: Any) -> tuple[bool, dict[str, Any]]:
    try:
        ok, details = value
        return bool(ok), dict(details)
    except (TypeError, ValueError):
        return False, {
            "status": "error",
            "message": f"health_check() returned {value!r}, not (healthy, details)",
        }


class _Probe:
    """Runs named steps in order in a daemon thread, then the cleanup steps (their errors are
    ignored), so that the caller can stop waiting: ``checked`` is set once the steps returned or
    one raised (``error``; ``value`` is the last step's result), ``finished`` after cleanup,
    ``stage`` names the step running. A hung step keeps its thread, never the caller."""

    def __init__(self, steps: list[tuple[str, Any]], cleanup: list[Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.stage = steps[0][0] if steps else ""
        self.checked = threading.Event()
        self.finished = threading.Event()
        self._steps, self._cleanup = steps, cleanup
        threading.Thread(target=self._run, name="flowc-plugin-health", daemon=True).start()

    def _run(self) -> None:
        try:
            for stage, step in self._steps:
                self.stage = stage
                self.value = step()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
            self.error = e
        finally:
            self.checked.set()
            for step in self._cleanup:
                try:
                    step()
                except Exception:  # noqa: BLE001 - a failing shutdown does not change health
                    pass
            self.finished.set()


def check_health(plugin: Any, timeout: float | None = None) -> tuple[bool, dict[str, Any]]:
    """``plugin.health_check()`` bounded by ``timeout`` seconds (default: the plugin's
    ``health_timeout``, else 5 s): ``(False, {"status": "timeout", ...})`` when it does not
    answer in time, ``(False, {"status": "error", ...})`` when it raises. Never raises."""
    limit = plugin_health_timeout(plugin) if timeout is None else float(timeout)
    probe = _Probe([("health_check", plugin.health_check)], [])
    if not probe.checked.wait(limit):
        return False, _timed_out(limit, probe.stage)
    if probe.error is not None:
        return False, _error_details(probe.error)
    return _health_result(probe.value)


def health(
    plugins: Mapping[str, Mapping[str, Any]],
    registry: PluginRegistry | None = None,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Build and initialize each enabled plugin, run its health check, shut it down, one plugin
    after the other: ``{name: {"type", "family", "enabled", "healthy", "details"}}``.

    After the plugin's class and its ``health_imports`` are imported, building,
    ``initialize()`` and ``health_check()`` together get the spec's ``health_timeout`` (default 5 s; the plugin sees it as ``plugin.health_timeout`` to bound
    its own calls); past it the plugin is reported unhealthy with ``status: timeout`` and left
    to finish in a daemon thread. ``shutdown()`` gets as long again. Never raises; a disabled
    plugin is reported without being imported. ``secrets``: the plan's declarations, for
    ``${secrets.NAME}`` in a config (:func:`resolve_config`)."""
    reg = registry or _REGISTRY
    out: dict[str, dict[str, Any]] = {}
    for name, spec in plugins.items():
        row: dict[str, Any] = {"type": spec["type"], "enabled": is_enabled(spec)}
        if not row["enabled"]:
            out[name] = {**row, "family": None, "healthy": None, "details": {"status": "disabled"}}
            continue
        out[name] = {**row, **_probe_spec(spec, reg, secrets)}
    return out


def _probe_spec(
    spec: Mapping[str, Any],
    reg: PluginRegistry,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"family", "healthy", "details"}`` of one enabled plugin (see :func:`health`)."""
    timeout = health_timeout_of(spec)
    built: list[Any] = []
    try:  # importing is not part of the check: a fresh process may take seconds for mlflow
        cls = reg.get(spec["type"])
        for module in getattr(cls, "health_imports", ()):
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise PluginError(
                    f"plugin type '{spec['type']}' needs {module}: {e}",
                    "pip install 'flowc[plugins]'",
                ) from e
    except Exception as e:  # noqa: BLE001 - reported
        return {"family": None, "healthy": False, "details": _error_details(e)}

    def build() -> None:
        plugin = reg.create(spec["type"], resolve_config(spec.get("config") or {}, secrets))
        _set_health_timeout(plugin, timeout)
        built.append(plugin)

    def initialize() -> None:
        built[0].initialize()

    def check() -> Any:
        return built[0].health_check()

    def shutdown() -> None:
        if built:
            built[0].shutdown()

    steps = [("build", build), ("initialize", initialize), ("health_check", check)]
    probe = _Probe(steps, [shutdown])
    in_time = probe.checked.wait(timeout)
    family = family_of(built[0]) if built else None
    if not in_time:
        return {"family": family, "healthy": False, "details": _timed_out(timeout, probe.stage)}
    if probe.error is not None:
        return {"family": family, "healthy": False, "details": _error_details(probe.error)}
    probe.finished.wait(timeout)
    ok, details = _health_result(probe.value)
    return {"family": family, "healthy": ok, "details": details}


# ---------------------------------------------------------------------------------------------
# The hub (ExperimentHub's API)
# ---------------------------------------------------------------------------------------------


class ExperimentHub:
    """Plugin instances by type, as ExperimentHub keeps them: ``register_plugin(plugin)``
    stores ``plugins[plugin.plugin_type]`` and initializes it, ``get_plugin(plugin_type)``
    returns it (or None), ``check_plugin_health()`` gives ``{plugin_type: {"healthy",
    "details"}}``. For code written against ExperimentHub, and for steps or scripts that hold
    plugins outside a flow run (inside one, ``ctx.plugins`` serves them, keyed by name).

    ``plugin_config`` is ExperimentHub's ``plugins:`` mapping (``{key: {"enabled", "type",
    "config"}}``): each entry with ``enabled: true`` is built through the plugin registry
    (``type`` is a registered name such as ``mlflow``, or ``"module:Class"``) and registered.
    Unlike ExperimentHub, a plugin replaced by another of its type is shut down, ``shutdown()``
    shuts every registered plugin down (newest first), and the hub is a context manager that
    does so on exit. Each health check is bounded: the plugin's ``health_timeout`` (a spec's
    ``health_timeout``, in seconds, sets it), else the hub's ``health_timeout`` (5 s)."""

    def __init__(
        self,
        plugin_config: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        registry: PluginRegistry | None = None,
        health_timeout: float = DEFAULT_HEALTH_TIMEOUT,
    ) -> None:
        self.plugins: dict[str, Any] = {}
        self.registry = registry or _REGISTRY
        self.health_timeout = health_timeout
        if plugin_config:
            self.init_plugins_from_config(plugin_config)

    def register_plugin(self, plugin: Any) -> None:
        """Register ``plugin`` under its ``plugin_type`` and initialize it. When initialize()
        raises, the hub is left as it was and the error propagates."""
        plugin_type = family_of(plugin)
        if not isinstance(plugin_type, str):
            raise PluginError(
                f"{type(plugin).__name__} has no plugin_type",
                "set the class attribute plugin_type = 'mlops' (or 'datastream', 'taskqueue')",
            )
        previous = self.plugins.get(plugin_type)
        self.plugins[plugin_type] = plugin
        try:
            plugin.initialize()
        except BaseException:
            if previous is None:
                del self.plugins[plugin_type]
            else:
                self.plugins[plugin_type] = previous
            raise
        if previous is not None and previous is not plugin:
            previous.shutdown()

    def get_plugin(self, plugin_type: str) -> Any | None:
        """The plugin registered for ``plugin_type``, or None."""
        return self.plugins.get(plugin_type)

    def check_plugin_health(self) -> dict[str, dict[str, Any]]:
        """``{plugin_type: {"healthy": bool, "details": dict}}`` of every registered plugin,
        each check bounded by its timeout (see :func:`check_health`)."""
        health_info: dict[str, dict[str, Any]] = {}
        for plugin_type, plugin in self.plugins.items():
            is_healthy, details = check_health(
                plugin, plugin_health_timeout(plugin, self.health_timeout)
            )
            health_info[plugin_type] = {"healthy": is_healthy, "details": details}
        return health_info

    def init_plugins_from_config(self, plugin_config: Mapping[str, Mapping[str, Any]]) -> None:
        """Build and register each enabled plugin of an ExperimentHub ``plugins:`` mapping
        (a spec without ``enabled`` is disabled, as in ExperimentHub)."""
        for key, spec in plugin_config.items():
            if not is_enabled(spec):
                continue
            try:
                plugin = self.registry.create(spec["type"], spec.get("config") or {})
            except PluginError as e:
                raise PluginError(f"plugin '{key}': {e.message}", e.hint) from e
            except KeyError as e:
                raise PluginError(f"plugin '{key}' has no 'type'") from e
            if spec.get("health_timeout"):
                _set_health_timeout(plugin, float(spec["health_timeout"]))
            self.register_plugin(plugin)

    _init_plugins_from_config = init_plugins_from_config  # ExperimentHub's own spelling

    def shutdown(self) -> None:
        """Shut every registered plugin down, newest first, and forget them; the first error is
        raised after all were tried."""
        errors: list[BaseException] = []
        for plugin_type in reversed(list(self.plugins)):
            plugin = self.plugins.pop(plugin_type)
            try:
                plugin.shutdown()
            except Exception as e:  # keep shutting the others down
                errors.append(PluginError(f"plugin '{plugin_type}' shutdown() failed: {e}"))
        if errors:
            raise errors[0]

    def __enter__(self) -> ExperimentHub:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
