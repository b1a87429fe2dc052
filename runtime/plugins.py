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
- the run service (``services.SERVICES["plugins"]``): enabled plugins are built and initialized
  once per run (and process) before the first step, handed to steps as ``ctx.plugins``, and shut
  down after the last step (in reverse order) even when the run fails. Only plugins with
  ``enabled: true`` run (a plugin without the key is disabled, as in ExperimentHub); the others
  are never imported.

Stdlib only; each plugin imports its own library lazily.
"""

from __future__ import annotations

import importlib
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

    ``on_run_start(run)`` is called after ``initialize()`` with the run's
    :class:`flowc.runtime.services.RunInfo`; ``on_run_end(status=None)`` before ``shutdown()``
    (``status`` is ``"success"``/``"failed"`` when the runtime passes it, else None).
    """

    plugin_type: ClassVar[str] = ""

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

    def __repr__(self) -> str:
        return f"Plugins({', '.join(self._plugins)})"


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
        try:
            for name, spec in self.specs.items():
                try:
                    plugin = self.registry.create(spec["type"], spec.get("config") or {})
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


def health(
    plugins: Mapping[str, Mapping[str, Any]], registry: PluginRegistry | None = None
) -> dict[str, dict[str, Any]]:
    """Initialize each enabled plugin, run its health check, shut it down:
    ``{name: {"type", "family", "enabled", "healthy", "details"}}``. Never raises; a disabled
    plugin is reported without being imported."""
    reg = registry or _REGISTRY
    out: dict[str, dict[str, Any]] = {}
    for name, spec in plugins.items():
        row: dict[str, Any] = {"type": spec["type"], "enabled": is_enabled(spec)}
        if not row["enabled"]:
            out[name] = {**row, "family": None, "healthy": None, "details": {"status": "disabled"}}
            continue
        plugin = None
        try:
            plugin = reg.create(spec["type"], spec.get("config") or {})
            row["family"] = family_of(plugin)
            plugin.initialize()
            ok, details = plugin.health_check()
            row.update(healthy=bool(ok), details=dict(details))
        except Exception as e:  # noqa: BLE001 - reported, not raised
            row.setdefault("family", None)
            row.update(
                healthy=False, details={"status": "error", "message": f"{type(e).__name__}: {e}"}
            )
        finally:
            if plugin is not None:
                try:
                    plugin.shutdown()
                except Exception:  # noqa: BLE001
                    pass
        out[name] = row
    return out
