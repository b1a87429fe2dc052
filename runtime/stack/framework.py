"""The stack component framework: the :class:`StackComponent` base with declared settings
(checked and stored by its ``__init__``), the four standard kinds (:class:`Orchestrator`,
:class:`ArtifactStore`, :class:`MetadataStore`, :class:`ContainerRegistry`) and
:class:`ComponentError`."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

KINDS: tuple[str, ...] = ("orchestrator", "artifact_store", "metadata_store", "container_registry")


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


def has_registry_host(image: str) -> bool:
    """True when the image reference starts with a registry host (Docker's rule: the first path
    component contains ``.`` or ``:`` or is ``localhost``)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _a(kind: str) -> str:
    """``"an orchestrator"``, ``"a metadata_store"``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _known_settings(spec: Mapping[str, Setting]) -> str | None:
    return f"settings: {', '.join(spec)}" if spec else "this type takes no settings"
