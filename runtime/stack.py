"""Stack components (flowyml): the classes behind a stack's ``type:`` names, and their registry.

A stack (``stacks:`` in a flow) is a named set of components, one per kind: ``orchestrator``,
``artifact_store``, ``metadata_store``, ``container_registry`` (custom kinds are allowed too).
Every component is a :class:`StackComponent` subclass registered under a type name per kind:

- built-ins, registered here (orchestrators ``local``/``airflow``/``kubeflow``/``vertex``/
  ``kubernetes``, artifact stores ``local``/``gcs``, metadata store ``sqlite``, container
  registries ``gcr``/``artifact_registry``/``docker``);
- ``@register_component`` (decorator) or ``get_component_registry().register(cls, name)``;
- the ``flowc.components`` entry point group (``name = "module:Class"``), loaded on first use;
- :func:`load_component` with ``module``, ``module:Class``, ``path/to/file.py`` or
  ``path/to/file.py:Class`` (a flow's ``components:`` section, ``flowc components load``).

Both the compiler (to check a stack and learn its target) and the runtime (to open the stack's
artifact and metadata stores) use this module: it is stdlib only and imports optional SDKs lazily.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

KINDS: tuple[str, ...] = ("orchestrator", "artifact_store", "metadata_store", "container_registry")

ORCHESTRATOR_TARGETS: dict[str, str] = {
    "local": "local",
    "airflow": "airflow",
    "kubeflow": "kfp",
    "vertex": "vertex",
    "kubernetes": "k8s",
    "kfp": "kfp",
    "k8s": "k8s",
}
"""Built-in orchestrator type -> the flowc target it compiles to."""


class ComponentError(ValueError):
    """A component cannot be found, loaded, built or validated. ``key`` names the offending
    setting when there is one; ``hint`` says how to fix it."""

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.hint = hint


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Setting:
    """One declared setting of a component: accepted types, default (or REQUIRED), help."""

    types: tuple[type, ...]
    default: Any = None
    help: str = ""


def setting(*types: type, default: Any = None, help: str = "") -> Setting:
    return Setting(tuple(types), default, help)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if value is None:
        return True
    for t in types:
        if t is int and isinstance(value, bool):
            continue
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if isinstance(value, t):
            return True
    return False


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list"}
    names[dict] = "mapping"
    return " or ".join(names.get(t, t.__name__) for t in types)


class StackComponent:
    """Base class of every stack component.

    Built-in style: declare ``SETTINGS = {"key": setting(str, default=...)}`` and let the base
    ``__init__`` check and store them (unknown keys, missing required keys and wrong types are
    :class:`ComponentError` naming the key). flowyml style: write your own ``__init__(self,
    name=..., **your_settings)`` calling ``super().__init__(name)`` and override ``to_dict``.
    ``validate()`` raises :class:`ComponentError` (or returns False) when the configuration is
    unusable; it must not need the network.
    """

    kind: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    SETTINGS: ClassVar[dict[str, Setting]] = {}

    def __init__(self, name: str = "", **settings: Any) -> None:
        self.name = name or self.type_name
        self.settings: dict[str, Any] = {}
        spec = type(self).SETTINGS
        for key, value in settings.items():
            if key not in spec:
                raise ComponentError(
                    f"unknown setting '{key}' for {self.kind} type '{self.type_name}'",
                    key=key,
                    hint=_did_you_mean(key, spec) or _known_settings(spec),
                )
            if not _type_ok(value, spec[key].types):
                raise ComponentError(
                    f"setting '{key}' must be a {_type_names(spec[key].types)}, "
                    f"got {type(value).__name__} {value!r}",
                    key=key,
                )
        for key, s in spec.items():
            if key in settings:
                value = settings[key]
            elif s.default is REQUIRED:
                raise ComponentError(
                    f"{self.kind} type '{self.type_name}' needs setting '{key}'",
                    key=key,
                    hint=s.help or None,
                )
            else:
                value = copy.deepcopy(s.default)
            self.settings[key] = value
            if not isinstance(getattr(type(self), key, None), property):
                setattr(self, key, value)

    def validate(self) -> bool | None:
        """Check the configuration; raise :class:`ComponentError` when it is unusable."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-able data (``type`` first, unset settings left out)."""
        return {"type": self.type_name, **{k: v for k, v in self.settings.items() if v is not None}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"


RESOURCE_KEYS: tuple[str, ...] = ("cpu", "memory", "gpu", "gpu_type")


class Orchestrator(StackComponent):
    """Where the pipeline runs. ``target`` is the flowc target it compiles to.

    Every orchestrator declaring ``SETTINGS`` also takes ``resources: {cpu, memory, gpu,
    gpu_type}``: the stack's default step resources (below the flow's ``defaults:``)."""

    kind = "orchestrator"
    target: ClassVar[str] = "local"
    COMMON_SETTINGS: ClassVar[dict[str, Setting]] = {
        "resources": Setting((dict,), None, "default step resources on this stack")
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "SETTINGS" in cls.__dict__:
            cls.SETTINGS = {**cls.SETTINGS, **Orchestrator.COMMON_SETTINGS}

    def default_output(self) -> str | None:
        """Where ``flowc compile`` writes when ``-o`` is not given (None: the command's default)."""
        return None

    def default_resources(self) -> dict[str, Any]:
        """The stack's default step resources, checked (ComponentError naming ``resources``):
        ``cpu``/``memory`` as Kubernetes quantity strings, ``gpu`` a count."""
        res = (getattr(self, "settings", None) or {}).get("resources") or {}
        out: dict[str, Any] = {}
        for k, v in res.items():
            if k not in RESOURCE_KEYS:
                raise ComponentError(
                    f"resources: unknown key '{k}'",
                    key="resources",
                    hint=_did_you_mean(k, RESOURCE_KEYS) or f"keys: {', '.join(RESOURCE_KEYS)}",
                )
            if k == "gpu":
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ComponentError("resources: gpu must be a count >= 0", key="resources")
                out[k] = v
            elif isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise ComponentError(f"resources: {k} must be a string or number", key="resources")
            else:
                out[k] = (
                    v if isinstance(v, str) else (str(int(v)) if float(v).is_integer() else str(v))
                )
        return out


class ArtifactStore(StackComponent):
    """Where step outputs live. ``open(root)`` gives the runtime store
    (:class:`flowc.runtime.store.ArtifactStore`: put/get/exists by run, step, output)."""

    kind = "artifact_store"

    def open(self, root: str | Path = ".flowc") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class MetadataStore(StackComponent):
    """Where run/step records live (SQLite for the local runtime)."""

    kind = "metadata_store"

    def location(self, root: str | Path = ".flowc") -> Path:  # pragma: no cover - abstract
        raise NotImplementedError


class ContainerRegistry(StackComponent):
    """Where step images are pulled from: :meth:`image_uri` prefixes an image name."""

    kind = "container_registry"

    @property
    def uri(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def image_uri(self, image: str) -> str:
        """``trainer:1`` -> ``<registry uri>/trainer:1``. An image that already names a registry
        host (``gcr.io/x/y``, ``localhost:5000/y``) or already starts with this registry's uri
        is left as written."""
        base = self.uri.rstrip("/")
        if image.startswith(base + "/") or has_registry_host(image):
            return image
        return f"{base}/{image}"

    def get_image_uri(self, image_name: str, tag: str = "latest") -> str:
        """flowyml spelling: ``get_image_uri("trainer", "1")``."""
        return self.image_uri(f"{image_name}:{tag}")


def has_registry_host(image: str) -> bool:
    """True when the image reference starts with a registry host (Docker's rule: the first path
    component contains ``.`` or ``:`` or is ``localhost``)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


C = TypeVar("C", bound=type)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One registered component type."""

    kind: str
    name: str
    cls: type
    source: str


class ComponentRegistry:
    """Component classes by ``(kind, type name)``; entry points are read on first lookup."""

    def __init__(self, entry_point_group: str | None = "flowc.components") -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._group = entry_point_group
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
        """Load every ``flowc.components`` entry point (once). A broken one is recorded in
        :attr:`entry_point_errors` and skipped."""
        if self._entry_points_loaded or not self._group:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=self._group), key=lambda e: e.name):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            try:
                cls = ep.load()
                self.register(cls, ep.name, source=f"entry point ({dist})")
            except Exception as e:  # noqa: BLE001 - a third party's problem, reported
                self.entry_point_errors.append(f"{ep.name} = {ep.value} ({dist}): {e}")

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

    def get_orchestrator(self, name: str) -> type:
        return self.get("orchestrator", name)

    def get_artifact_store(self, name: str) -> type:
        return self.get("artifact_store", name)

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
        module is registered. ``kind`` checks the class is of that kind."""
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


def _a(kind: str) -> str:
    """``"an orchestrator"``, ``"a metadata_store"``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _known_settings(spec: Mapping[str, Setting]) -> str | None:
    return f"settings: {', '.join(spec)}" if spec else "this type takes no settings"


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


# ---------------------------------------------------------------------------------------------
# Built-in components
# ---------------------------------------------------------------------------------------------

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# lowercase letters, digits, hyphens; starts with a letter; optional legacy "domain.com:" scope
_GCP_PROJECT = re.compile(r"^([a-z0-9][-a-z0-9.]*[a-z0-9]:)?[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9]$")


def _builtin(cls: C) -> C:
    _REGISTRY.register(cls, source="builtin")
    return cls


@_builtin
class LocalOrchestrator(Orchestrator):
    """``flowc run`` on this machine (the local target)."""

    type_name = "local"
    target = "local"
    SETTINGS = {"max_workers": setting(int, help="parallel steps (default: CPU count)")}

    def validate(self) -> bool:
        if self.max_workers is not None and self.max_workers < 1:
            raise ComponentError("max_workers must be at least 1", key="max_workers")
        return True


@_builtin
class AirflowOrchestrator(Orchestrator):
    """Airflow 3 DAG files; ``dag_folder`` is where ``flowc compile`` writes by default."""

    type_name = "airflow"
    target = "airflow"
    SETTINGS = {
        "dag_folder": setting(str, help="where the DAG file goes (default output folder)"),
        "pod_operator": setting(bool, default=False, help="run steps as KubernetesPodOperator"),
        "namespace": setting(str, help="pod namespace when pod_operator is true"),
    }

    def default_output(self) -> str | None:
        return self.dag_folder

    def validate(self) -> bool:
        if self.dag_folder is not None and not self.dag_folder.strip():
            raise ComponentError("dag_folder must not be empty", key="dag_folder")
        if self.namespace is not None and not _DNS1123.match(self.namespace):
            raise ComponentError(
                f"namespace '{self.namespace}' is not a DNS-1123 label", key="namespace"
            )
        return True


@_builtin
class KubeflowOrchestrator(Orchestrator):
    """A KFP v2 pipeline package (``host``: the KFP API endpoint used to submit it)."""

    type_name = "kubeflow"
    target = "kfp"
    SETTINGS = {
        "host": setting(str, help="KFP API endpoint, e.g. http://localhost:8080"),
        "namespace": setting(str),
    }

    def validate(self) -> bool:
        if self.host is not None and not re.match(r"^https?://[^\s/]+", self.host):
            raise ComponentError(
                f"host '{self.host}' is not an http(s) URL",
                key="host",
                hint="e.g. http://localhost:8080",
            )
        return True


_REGISTRY.register(KubeflowOrchestrator, "kfp", source="builtin (alias of kubeflow)")


@_builtin
class VertexOrchestrator(Orchestrator):
    """Vertex AI Pipelines (project, region, pipeline_root, service_account, network)."""

    type_name = "vertex"
    target = "vertex"
    SETTINGS = {
        "project": setting(str, default=REQUIRED, help="the GCP project id"),
        "region": setting(str, default="us-central1"),
        "pipeline_root": setting(str, help="gs://bucket/path for pipeline outputs"),
        "service_account": setting(str),
        "network": setting(str, help="projects/NUMBER/global/networks/NAME"),
        "experiment": setting(str),
    }

    def validate(self) -> bool:
        if not _GCP_PROJECT.match(self.project):
            raise ComponentError(
                f"project '{self.project}' is not a valid GCP project id",
                key="project",
                hint="lowercase letters, digits and hyphens (at most 30), starting with a letter",
            )
        if not _GCP_REGION.match(self.region):
            raise ComponentError(
                f"region '{self.region}' is not a GCP region", key="region", hint="e.g. us-central1"
            )
        if self.pipeline_root is not None and not self.pipeline_root.startswith("gs://"):
            raise ComponentError(
                f"pipeline_root '{self.pipeline_root}' must be a gs:// URI", key="pipeline_root"
            )
        if self.service_account is not None and "@" not in self.service_account:
            raise ComponentError(
                f"service_account '{self.service_account}' is not an email address",
                key="service_account",
            )
        if self.network is not None and not re.match(
            r"^projects/[^/]+/global/networks/[^/]+$", self.network
        ):
            raise ComponentError(
                f"network '{self.network}' must be projects/NUMBER/global/networks/NAME",
                key="network",
            )
        return True


@_builtin
class KubernetesOrchestrator(Orchestrator):
    """Plain Kubernetes manifests (a driver Job running the DAG, or one Job per step)."""

    type_name = "kubernetes"
    target = "k8s"
    SETTINGS = {
        "namespace": setting(str, default="default"),
        "service_account": setting(str),
        "image": setting(str, help="image of the driver (default: the flow's default image)"),
        "operator_image": setting(str, help="image of streaming operator pods (pypz)"),
        "image_pull_secrets": setting(list, default=[]),
        "node_selector": setting(dict, default={}),
        "tolerations": setting(list, default=[]),
        "ttl_seconds_after_finished": setting(int),
        # read by flowc.targets.k8s: see docs/k8s.md
        "image_pull_policy": setting(str, help="Always | IfNotPresent (default) | Never"),
        "artifact_pvc": setting(str, help="PersistentVolumeClaim shared by the driver and steps"),
        "starting_deadline_seconds": setting(int, help="CronJob startingDeadlineSeconds"),
        "poll_seconds": setting(float, help="how often the driver polls its step Jobs"),
    }

    def validate(self) -> bool:
        ns, sa = self.namespace, self.service_account
        if ns is not None and not (_DNS1123.match(ns) and len(ns) <= 63):
            raise ComponentError(f"namespace '{ns}' is not a DNS-1123 label", key="namespace")
        if sa is not None and not (_DNS1123_SUBDOMAIN.match(sa) and len(sa) <= 253):
            raise ComponentError(
                f"service_account '{sa}' is not a DNS-1123 subdomain", key="service_account"
            )
        for s in self.image_pull_secrets:
            if not isinstance(s, str):
                raise ComponentError(
                    "image_pull_secrets must be a list of names", key="image_pull_secrets"
                )
        for k, v in self.node_selector.items():
            if not isinstance(v, str):
                raise ComponentError(
                    f"node_selector '{k}' must map to a string", key="node_selector"
                )
        for t in self.tolerations:
            if not isinstance(t, dict):
                raise ComponentError("each toleration must be a mapping", key="tolerations")
        ttl = self.ttl_seconds_after_finished
        if ttl is not None and ttl < 0:
            raise ComponentError(
                "ttl_seconds_after_finished must be >= 0", key="ttl_seconds_after_finished"
            )
        return True


_REGISTRY.register(KubernetesOrchestrator, "k8s", source="builtin (alias of kubernetes)")


@_builtin
class LocalArtifactStoreComponent(ArtifactStore):
    """Files on this machine: ``<path>/runs/<run>/<step>/<output>.{json,pkl}`` (the runtime's
    :class:`flowc.runtime.store.LocalArtifactStore`)."""

    type_name = "local"
    SETTINGS = {"path": setting(str, help="folder (relative to the working directory)")}

    def validate(self) -> bool:
        if self.path is not None and not self.path.strip():
            raise ComponentError("path must not be empty", key="path")
        return True

    def open(self, root: str | Path = ".flowc") -> Any:
        from flowc.runtime.store import LocalArtifactStore

        return LocalArtifactStore(self.to_dict(), root)


@_builtin
class GcsArtifactStoreComponent(ArtifactStore):
    """A Google Cloud Storage bucket (``google-cloud-storage``, extra ``gcp``)."""

    type_name = "gcs"
    SETTINGS = {
        "bucket": setting(str, default=REQUIRED),
        "prefix": setting(str, default=""),
        "project": setting(str),
    }

    def validate(self) -> bool:
        bucket = self.bucket
        if bucket.startswith("gs://"):
            raise ComponentError(
                f"bucket '{bucket}' must be a bucket name, not a URI",
                key="bucket",
                hint=f"write bucket: {bucket[5:].split('/')[0]}",
            )
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ComponentError(f"'{bucket}' is not a valid bucket name", key="bucket")
        return True

    def open(self, root: str | Path = ".flowc") -> Any:
        from flowc.runtime.gcs_store import GcsArtifactStore

        return GcsArtifactStore(self.to_dict(), root)


@_builtin
class SqliteMetadataStore(MetadataStore):
    """The local runtime's SQLite database of runs and steps."""

    type_name = "sqlite"
    SETTINGS = {"path": setting(str, help="database file (default .flowc/metadata.db)")}

    def validate(self) -> bool:
        if self.path is not None and not self.path.strip():
            raise ComponentError("path must not be empty", key="path")
        return True

    def location(self, root: str | Path = ".flowc") -> Path:
        return Path(self.path) if self.path else Path(root) / "metadata.db"


class _UriRegistry(ContainerRegistry):
    SETTINGS = {"uri": setting(str, default=REQUIRED)}

    @property
    def uri(self) -> str:
        return self.settings["uri"]

    def validate(self) -> bool:
        uri = self.uri
        if "://" in uri:
            raise ComponentError(
                f"uri '{uri}' must not have a scheme",
                key="uri",
                hint=f"write {uri.split('://', 1)[1]}",
            )
        if not uri.strip("/") or " " in uri:
            raise ComponentError(f"uri '{uri}' is not a registry path", key="uri")
        return True


@_builtin
class GcrRegistry(_UriRegistry):
    """Google Container Registry: ``uri: gcr.io/PROJECT`` (or eu./us./asia.gcr.io)."""

    type_name = "gcr"

    def validate(self) -> bool:
        super().validate()
        if not re.match(r"^([a-z]+\.)?gcr\.io/[^/]+", self.uri):
            raise ComponentError(
                f"uri '{self.uri}' is not a gcr.io path", key="uri", hint="e.g. gcr.io/my-project"
            )
        return True


@_builtin
class ArtifactRegistry(ContainerRegistry):
    """Google Artifact Registry: ``uri`` or ``location`` + ``project`` + ``repository``."""

    type_name = "artifact_registry"
    SETTINGS = {
        "uri": setting(str),
        "location": setting(str),
        "project": setting(str),
        "repository": setting(str),
    }

    @property
    def uri(self) -> str:
        if self.settings["uri"]:
            return self.settings["uri"]
        s = self.settings
        return f"{s['location']}-docker.pkg.dev/{s['project']}/{s['repository']}"

    def validate(self) -> bool:
        s = self.settings
        if s["uri"]:
            if not re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+", s["uri"]):
                raise ComponentError(
                    f"uri '{s['uri']}' is not an Artifact Registry path",
                    key="uri",
                    hint="LOCATION-docker.pkg.dev/PROJECT/REPOSITORY",
                )
            return True
        for key in ("location", "project", "repository"):
            if not s[key]:
                raise ComponentError(
                    f"artifact_registry needs 'uri' or 'location', 'project' and 'repository' "
                    f"('{key}' is missing)",
                    key=key,
                )
        return True


@_builtin
class DockerRegistry(_UriRegistry):
    """Any Docker registry: ``uri: docker.io/acme``, ``localhost:5000``, ``registry.example/x``."""

    type_name = "docker"


# ---------------------------------------------------------------------------------------------
# Helpers for the compiler and the runtime
# ---------------------------------------------------------------------------------------------


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
    """Build (and validate) the component ``{"type": ..., **settings}`` of ``kind``."""
    reg = registry or _REGISTRY
    data = dict(data)
    type_name = data.pop("type", None)
    if not type_name:
        raise ComponentError(f"{kind} has no 'type'", key="type")
    return reg.create(kind, type_name, data)


def target_for(stack: Any, registry: ComponentRegistry | None = None) -> str | None:
    """The flowc target a stack compiles to (its orchestrator's ``target``), or None when the
    stack has no orchestrator. Accepts an IR ``Stack``, its orchestrator ``ComponentConfig`` or
    the plan's ``stack`` data. An unknown orchestrator type raises ComponentError (a
    ValueError)."""
    orch = _stack_components(stack).get("orchestrator")
    if not orch:
        return None
    type_name = orch.get("type")
    if type_name in ORCHESTRATOR_TARGETS:
        return ORCHESTRATOR_TARGETS[type_name]
    cls = (registry or _REGISTRY).get("orchestrator", type_name)
    return getattr(cls, "target", None)


def default_output_for(stack: Any, registry: ComponentRegistry | None = None) -> str | None:
    """Where the stack's orchestrator wants compiled files by default (Airflow: ``dag_folder``)."""
    orch = _stack_components(stack).get("orchestrator")
    if not orch:
        return None
    comp = build_component("orchestrator", orch, registry)
    return comp.default_output() if isinstance(comp, Orchestrator) else None


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


__all__ = [
    "KINDS",
    "ArtifactStore",
    "ComponentError",
    "ComponentRegistry",
    "ContainerRegistry",
    "Entry",
    "MetadataStore",
    "Orchestrator",
    "REQUIRED",
    "Setting",
    "StackComponent",
    "build_component",
    "default_output_for",
    "get_component_registry",
    "image_with_registry",
    "load_component",
    "metadata_path",
    "open_artifact_store",
    "register_component",
    "setting",
    "target_for",
]
