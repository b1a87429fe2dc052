"""The component registry: component classes by ``(kind, type name)`` from built-ins,
``@register_component``, the ``flowc.components`` and ``flowyml.stack_components`` entry points and :func:`load_component`
(``module``, ``module:Class``, ``file.py``, ``file.py:Class``); building a component from its
settings (:meth:`ComponentRegistry.create`, :func:`build_component`), and what the runtime
opens from a stack's data (:func:`open_artifact_store`, :func:`metadata_path`)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from flowc.runtime.stack.framework import (
    KINDS,
    ArtifactStore,
    ComponentError,
    ContainerRegistry,
    MetadataStore,
    Orchestrator,
    StackComponent,
    _a,
    _did_you_mean,
)

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class Entry:
    """One registered component type."""

    kind: str
    name: str
    cls: type
    source: str


ENTRY_POINT_GROUPS: tuple[str, ...] = ("flowc.components", "flowyml.stack_components")
"""The entry point groups read for components: flowc's own, then flowyml's (a package written for
flowyml registers its components there). A name in both: the ``flowc.components`` one wins."""


class ComponentRegistry:
    """Component classes by ``(kind, type name)``; entry points are read on first lookup."""

    def __init__(
        self, entry_point_group: str | tuple[str, ...] | None = ENTRY_POINT_GROUPS
    ) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        groups = (entry_point_group,) if isinstance(entry_point_group, str) else entry_point_group
        self._groups: tuple[str, ...] = tuple(groups or ())
        self._entry_points_loaded = False
        self.entry_point_errors: list[str] = []

    # -- registering ------------------------------------------------------------------------

    def register(self, cls: type, name: str | None = None, *, source: str | None = None) -> type:
        """Register ``cls`` (a StackComponent subclass) under ``name`` (default: its
        ``type_name``, else its lowercase class name). Returns ``cls``."""
        if not (isinstance(cls, type) and issubclass(cls, StackComponent)):
            raise ComponentError(f"{cls!r} is not a StackComponent subclass")
        kind = cls.kind
        if not kind:
            raise ComponentError(
                f"{cls.__qualname__} has no kind",
                hint="subclass Orchestrator, ArtifactStore, MetadataStore or ContainerRegistry, "
                "or set the class attribute `kind`",
            )
        type_name = name or cls.type_name or cls.__name__.lower()
        if name and cls.type_name != name and "type_name" not in cls.__dict__:
            # give the class its registered name so to_dict() reports it
            cls.type_name = name
        elif not cls.type_name:
            cls.type_name = type_name
        src = source or f"call ({cls.__module__})"
        self._entries[(kind, type_name)] = Entry(kind, type_name, cls, src)
        return cls

    def unregister(self, kind: str, name: str) -> None:
        self._entries.pop((kind, name), None)

    def load_entry_points(self) -> None:
        """Load every entry point of :data:`ENTRY_POINT_GROUPS` (once). A broken one is recorded
        in :attr:`entry_point_errors` and skipped."""
        if self._entry_points_loaded or not self._groups:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        taken: set[str] = set()
        for group in self._groups:
            for ep in sorted(entry_points(group=group), key=lambda e: e.name):
                if ep.name in taken:
                    continue
                taken.add(ep.name)
                dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
                where = dist if group == self._groups[0] else f"{dist}, {group}"
                try:
                    cls = ep.load()
                    self.register(cls, ep.name, source=f"entry point ({where})")
                except Exception as e:  # noqa: BLE001 - a third party's problem, reported
                    self.entry_point_errors.append(f"{ep.name} = {ep.value} ({where}): {e}")

    # -- looking up -------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` for ``kind``; ComponentError when there is none."""
        entry = self._entries.get((kind, name))
        if entry is None:
            self.load_entry_points()
            entry = self._entries.get((kind, name))
        if entry is None:
            other = [e.kind for e in self._entries.values() if e.name == name]
            if other:
                raise ComponentError(
                    f"'{name}' is {_a(other[0])} type, not {_a(kind)}",
                    key="type",
                    hint=f"{kind} types: {', '.join(self.names(kind))}",
                )
            names = self.names(kind)
            raise ComponentError(
                f"unknown {kind} type '{name}'",
                key="type",
                hint=_did_you_mean(name, names)
                or (f"known {kind} types: {', '.join(names)}" if names else None)
                or "declare it under `components:` or install a package that registers it",
            )
        return entry.cls

    def entries(self) -> list[Entry]:
        """Every registered component, sorted by kind (standard kinds first) then name."""
        self.load_entry_points()
        order = {k: i for i, k in enumerate(KINDS)}
        return sorted(self._entries.values(), key=lambda e: (order.get(e.kind, 99), e.kind, e.name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._entries if k == kind)

    def list_all(self) -> dict[str, list[str]]:
        """flowyml's ``list_all``: ``{kind: [names]}``."""
        out: dict[str, list[str]] = {}
        for e in self.entries():
            out.setdefault(e.kind, []).append(e.name)
        return out

    # -- building ---------------------------------------------------------------------------

    def create(
        self, kind: str, type_name: str, settings: Mapping[str, Any] | None = None, name: str = ""
    ) -> StackComponent:
        """Build and validate a component. Any problem is a ComponentError (with ``key`` when
        one setting is to blame)."""
        cls = self.get(kind, type_name)
        settings = dict(settings or {})
        settings.pop("type", None)
        if "SETTINGS" not in _mro_dicts(cls) or _custom_init(cls):
            _check_signature(cls, settings, kind, type_name)
        try:
            comp = cls(name=name or type_name, **settings)
        except ComponentError:
            raise
        except Exception as e:  # noqa: BLE001 - a constructor's own complaint
            raise ComponentError(f"{kind} type '{type_name}' could not be built: {e}") from e
        validate_component(comp)
        return comp

    # -- loading ----------------------------------------------------------------------------

    def load(
        self,
        ref: str,
        name: str | None = None,
        *,
        kind: str | None = None,
        base_dir: str | Path | None = None,
    ) -> list[type]:
        """Load components from ``module``, ``module:Class``, ``file.py`` or ``file.py:Class``
        (a relative file is read from ``base_dir``). With a class, it is registered as ``name``
        (default: its own name); without one, every StackComponent subclass defined in the
        module is registered. ``kind`` checks the class is of that kind. ``zenml:a.b.Class``
        wraps that ZenML component class (:meth:`wrap_zenml_component`)."""
        if ref.startswith(ZENML_PREFIX):
            return [self.load_zenml(ref[len(ZENML_PREFIX) :], name, kind=kind)]
        target, cls_name = split_ref(ref)
        is_file = target.endswith(".py") or "/" in target or "\\" in target
        if is_file:
            path = Path(target)
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            module = _import_file(path, ref)
            source = f"file {target}"
        else:
            try:
                module = importlib.import_module(target)
            except ImportError as e:
                raise ComponentError(
                    f"cannot import module '{target}': {e}",
                    hint="is the package installed, or its folder on PYTHONPATH?",
                ) from e
            except Exception as e:  # noqa: BLE001 - the module's own error at import
                raise ComponentError(f"importing '{target}' failed: {type(e).__name__}: {e}") from e
            source = f"module {target}"
        if cls_name:
            cls = getattr(module, cls_name, None)
            if cls is None:
                found = [n for n, _ in _components_in(module)]
                raise ComponentError(
                    f"'{target}' has no class '{cls_name}'",
                    hint=_did_you_mean(cls_name, found)
                    or (f"components defined there: {', '.join(found)}" if found else None),
                )
            if not (isinstance(cls, type) and issubclass(cls, StackComponent)):
                raise ComponentError(
                    f"'{ref}' is not a stack component class",
                    hint="subclass flowc.runtime.stack.Orchestrator / ArtifactStore / "
                    "MetadataStore / ContainerRegistry",
                )
            if kind and cls.kind != kind:
                raise ComponentError(
                    f"'{ref}' is {_a(cls.kind) if cls.kind else 'a component without a kind'}, "
                    f"not {_a(kind)}",
                    key="kind",
                )
            self.register(cls, name, source=source)
            return [cls]
        classes = [c for _, c in _components_in(module)]
        if not classes:
            raise ComponentError(f"'{target}' defines no stack component class")
        for c in classes:
            if not any(e.cls is c for e in self._entries.values()):
                self.register(c, source=source)
        return classes

    # -- ZenML ------------------------------------------------------------------------------

    def load_zenml(self, path: str, name: str | None = None, *, kind: str | None = None) -> type:
        """Import the ZenML component class ``a.b.Class`` and register its wrapper (as ``name``,
        default: the class name lowercased). Without the ``zenml`` package: ComponentError
        naming it."""
        if importlib.util.find_spec("zenml") is None:
            raise ComponentError(
                "zenml: needs the 'zenml' package, which is not installed",
                key="class",
                hint="pip install zenml, or declare a flowc component class",
            )
        module_name, _, cls_name = path.rpartition(".")
        try:
            zcls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ComponentError(f"zenml: cannot import '{path}': {e}", key="class") from e
        return self.wrap_zenml_component(zcls, name or cls_name.lower(), kind=kind)

    def wrap_zenml_component(
        self, zenml_component: Any, name: str, *, kind: str | None = None
    ) -> type:
        """flowyml's ``wrap_zenml_component``: register a flowc component type ``name`` standing
        for a ZenML component class (or instance, e.g. ``Client().active_stack.orchestrator``).
        Its kind comes from the ZenML base class (BaseOrchestrator, BaseArtifactStore,
        BaseContainerRegistry) unless given. Returns the wrapper class."""
        zcls = zenml_component if isinstance(zenml_component, type) else type(zenml_component)
        found = _zenml_kind(zcls)
        if kind and found and kind != found:
            raise ComponentError(f"{zcls.__qualname__} is a ZenML {found}, not {_a(kind)}")
        kind = kind or found
        if not kind:
            raise ComponentError(
                f"cannot tell which kind of component {zcls.__qualname__} is",
                key="kind",
                hint="give its kind (orchestrator, artifact_store, container_registry)",
            )
        base = {
            "orchestrator": Orchestrator,
            "artifact_store": ArtifactStore,
            "metadata_store": MetadataStore,
            "container_registry": ContainerRegistry,
        }.get(kind, StackComponent)
        instance = None if isinstance(zenml_component, type) else zenml_component
        attrs = {"kind": kind, "zenml_class": zcls, "zenml_instance": instance}
        attrs["__module__"] = __name__
        if base is Orchestrator:
            attrs["target"] = None  # no flowc target: flowc run says so
        wrapper = type(f"ZenML{zcls.__name__}", (ZenMLComponent, base), attrs)
        self.register(wrapper, name, source=f"zenml ({zcls.__module__}.{zcls.__qualname__})")
        return wrapper


ZENML_PREFIX = "zenml:"

_ZENML_BASES = {
    "BaseOrchestrator": "orchestrator",
    "BaseArtifactStore": "artifact_store",
    "BaseContainerRegistry": "container_registry",
}


def _zenml_kind(zcls: type) -> str | None:
    for klass in zcls.__mro__:
        if klass.__name__ in _ZENML_BASES:
            return _ZENML_BASES[klass.__name__]
    return None


class ZenMLComponent(StackComponent):
    """A ZenML component wrapped as a flowc one: its settings are kept as given (ZenML checks
    them), ``component`` is the ZenML object (the wrapped instance, else
    ``zenml_class(**settings)`` built on first use). As an artifact store it saves, loads and
    checks artifacts through ZenML's ``open(path, mode)`` / ``exists(path)`` (pickled)."""

    zenml_class: ClassVar[type]
    zenml_instance: ClassVar[Any] = None

    def __init__(self, name: str = "", **settings: Any) -> None:
        super().__init__(name)
        self.settings = dict(settings)
        self._component = type(self).zenml_instance

    @property
    def component(self) -> Any:
        if self._component is None:
            self._component = type(self).zenml_class(**self.settings)
        return self._component

    def save(self, artifact: Any, path: str) -> str:
        import pickle

        with self.component.open(path, "wb") as fh:
            pickle.dump(artifact, fh)
        return path

    def load(self, path: str) -> Any:
        import pickle

        with self.component.open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the store's own artifacts

    def exists(self, path: str) -> bool:
        return bool(self.component.exists(path))


@functools.cache
def _mro_dicts(cls: type) -> frozenset[str]:
    keys: set[str] = set()
    for k in cls.__mro__:
        if k is StackComponent:
            break
        keys.update(k.__dict__)
    return frozenset(keys)


@functools.cache
def _custom_init(cls: type) -> bool:
    for k in cls.__mro__:
        if k is StackComponent:
            return False
        if "__init__" in k.__dict__:
            return True
    return False


def _check_signature(cls: type, settings: Mapping[str, Any], kind: str, type_name: str) -> None:
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n, p in params.items() if n != "name" and p.kind is not p.VAR_POSITIONAL]
    for key in settings:
        if key not in params:
            raise ComponentError(
                f"unknown setting '{key}' for {kind} type '{type_name}'",
                key=key,
                hint=_did_you_mean(key, known)
                or (f"settings: {', '.join(known)}" if known else None),
            )
    for n, p in params.items():
        if n == "name" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty and n not in settings:
            raise ComponentError(f"{kind} type '{type_name}' needs setting '{n}'", key=n)


def validate_component(comp: StackComponent) -> None:
    """Run ``comp.validate()``; a False result or any exception becomes a ComponentError."""
    try:
        ok = comp.validate()
    except ComponentError:
        raise
    except Exception as e:  # noqa: BLE001 - third-party validate() may raise anything
        raise ComponentError(f"{comp.kind} '{comp.type_name}' is invalid: {e}") from e
    if ok is False:
        raise ComponentError(f"{comp.kind} '{comp.type_name}' failed validation")
    if isinstance(comp, Orchestrator):
        comp.default_resources()


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"a.b:C"`` -> ``("a.b", "C")``; ``"x/y.py:C"`` -> ``("x/y.py", "C")``; ``"a.b"`` ->
    ``("a.b", None)``. A Windows drive letter (``C:\\``) is not a separator."""
    head, sep, tail = ref.rpartition(":")
    if not sep or not tail or "/" in tail or "\\" in tail or tail.endswith(".py"):
        return ref, None
    return head, tail


def _import_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise ComponentError(
            f"no such file: {path}", hint="a relative path is read from the flow file's folder"
        )
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    mod_name = f"flowc_component_{re.sub(r'[^0-9A-Za-z_]', '_', resolved.stem)}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise ComponentError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the file's own error
        del sys.modules[mod_name]
        raise ComponentError(f"loading {path} failed: {type(e).__name__}: {e}") from e
    return module


def _components_in(module: Any) -> list[tuple[str, type]]:
    out = []
    for n, obj in vars(module).items():
        if (
            isinstance(obj, type)
            and issubclass(obj, StackComponent)
            and obj.__module__ == module.__name__
            and obj.kind
        ):
            out.append((n, obj))
    return out


_REGISTRY = ComponentRegistry()


def get_component_registry() -> ComponentRegistry:
    """The process-wide registry (built-ins, decorators, entry points, loaded modules)."""
    return _REGISTRY


def register_component(cls: type | None = None, *, name: str | None = None) -> Any:
    """Decorator: ``@register_component`` or ``@register_component(name="minio")``."""

    def deco(c: C) -> C:
        _REGISTRY.register(c, name, source=f"decorator ({c.__module__})")
        return c

    if cls is not None:
        return deco(cls)
    return deco


def load_component(
    ref: str, name: str | None = None, *, base_dir: str | Path | None = None
) -> list[type]:
    """flowyml's dynamic loading into the process-wide registry (see ComponentRegistry.load)."""
    return _REGISTRY.load(ref, name, base_dir=base_dir)


def _stack_components(stack: Any) -> dict[str, dict[str, Any]]:
    """``{kind: {"type": ..., **settings}}`` from an IR Stack, an IR ComponentConfig (a stack of
    one), the plan's ``stack`` data or its ``components`` mapping."""
    if stack is None:
        return {}
    if isinstance(stack, Mapping):
        comps = stack.get("components", stack)
        return {k: dict(v) for k, v in comps.items() if isinstance(v, Mapping)}
    if hasattr(stack, "kind") and hasattr(stack, "to_data"):  # one ComponentConfig
        return {stack.kind: stack.to_data()}
    return {c.kind: c.to_data() for c in stack.components}


def build_component(
    kind: str, data: Mapping[str, Any], registry: ComponentRegistry | None = None
) -> StackComponent:
    """Build (and validate) the component ``{"type": ..., **settings}`` of ``kind``. Settings
    written ``${secrets.NAME}`` are resolved now, in this process (the environment:
    :mod:`flowc.runtime.config_secrets`); one that does not resolve is a ComponentError."""
    from flowc.runtime.config_secrets import SecretMissing, resolve_config

    reg = registry or _REGISTRY
    try:
        data = dict(resolve_config(dict(data)))
    except SecretMissing as e:
        raise ComponentError(f"{kind}: {e}") from None
    type_name = data.pop("type", None)
    if not type_name:
        raise ComponentError(f"{kind} has no 'type'", key="type")
    return reg.create(kind, type_name, data)


def open_artifact_store(stack: Any, root: str | Path = ".flowc") -> Any:
    """The runtime artifact store of a stack (plan data or IR); local under ``root`` when the
    stack has no artifact store."""
    data = _stack_components(stack).get("artifact_store") or {"type": "local"}
    comp = build_component("artifact_store", data)
    if not isinstance(comp, ArtifactStore):  # pragma: no cover - guarded by kind
        raise ComponentError("not an artifact store")
    return comp.open(root)


def metadata_path(stack: Any, root: str | Path = ".flowc") -> Path:
    """Where the stack's SQLite metadata store lives (``<root>/metadata.db`` by default)."""
    data = _stack_components(stack).get("metadata_store") or {"type": "sqlite"}
    comp = build_component("metadata_store", data)
    if not isinstance(comp, MetadataStore):  # pragma: no cover - guarded by kind
        raise ComponentError("not a metadata store")
    return comp.location(root)


def image_with_registry(
    image: str | None, stack: Any, registry: ComponentRegistry | None = None
) -> str | None:
    """``image`` prefixed by the stack's container registry (unchanged without one)."""
    data = _stack_components(stack).get("container_registry")
    if image is None or not data:
        return image
    comp = build_component("container_registry", data, registry)
    return comp.image_uri(image) if isinstance(comp, ContainerRegistry) else image
