"""Integration frameworks (lolpop) at run time: build the object tree from a plan. Stdlib only.

The plan's ``integrations`` section (``IntegrationFramework.to_data()``, see docs/integrations.md)
names a layer tree (``root``), the layer sections (``layers``), a global ``config`` and
``search_paths``. :func:`build` turns it into objects following lolpop's rules:

* one root layer; its section holds at most one integration (none: a plain :class:`Integration`
  stands in for the root, as lolpop's user-built runner does);
* the root's children take their integrations from the top-level layer sections; a deeper
  node takes them from its parent integration's own nested sections (``integration.layers``);
* siblings are processed in the written order; after a layer is processed its integrations are
  handed to its *later* siblings (and everything below them) unless that layer sets
  ``pass_integration_to_siblings: false``;
* the integrations of one layer become peers (attributes of each other, never of themselves)
  when ``update_peer_integrations`` is true; it defaults to true for leaf layers only;
* classes are ``module:Class`` (or ``module.Class``) or a bare name looked up along the layer's
  ``search_paths`` then the global ones (``<path>.<layer>`` first, then ``<path>``, like lolpop);
* every integration is built with no arguments, then receives the handed-down integrations, its
  children (attributes named by their keys) and ``_get_config(key, default=None)``: integration
  config, then its layer's config, then its parent's chain, ending at the global ``config``.

Each object also gets ``_flowc_key``, ``_flowc_layer`` and ``_flowc_parent``. :func:`for_run`
builds a tree once per run id and process; :func:`resolve_callable` serves
``run: "integration:train.fit"`` steps.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowc.runtime.plan import Plan

__all__ = [
    "Integration",
    "IntegrationError",
    "IntegrationTree",
    "build",
    "candidate_modules",
    "for_run",
    "load_class",
    "resolve_callable",
    "search_path_order",
    "service",
]

_MISSING = object()


class IntegrationError(Exception):
    """The integration framework could not be built or a reference did not resolve."""


class Integration:
    """An optional base class for integrations (and the stand-in root object).

    Any class that can be built with no arguments works; this one only documents what flowc
    sets on every integration and gives a readable ``repr``.
    """

    _flowc_key: str | None = None
    _flowc_layer: str | None = None
    _flowc_parent: Any = None

    def _get_config(self, key: str, default: Any = None) -> Any:
        chain = self.__dict__.get("_flowc_config")
        return default if chain is None else chain.get(key, default)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._flowc_layer}:{self._flowc_key}>"


class _ConfigChain:
    """``_get_config`` lookup: the first mapping holding the key wins, then the parent chain."""

    __slots__ = ("maps", "parent")

    def __init__(self, maps: Sequence[Mapping[str, Any]], parent: _ConfigChain | None) -> None:
        self.maps = tuple(m for m in maps if m)
        self.parent = parent

    def get(self, key: str, default: Any = None) -> Any:
        chain: _ConfigChain | None = self
        while chain is not None:
            for m in chain.maps:
                if key in m:
                    return m[key]
            chain = chain.parent
        return default


# --------------------------------------------------------------------------------------------
# Class lookup
# --------------------------------------------------------------------------------------------


def candidate_modules(
    class_ref: str, layer: str, search_paths: Sequence[str]
) -> list[tuple[str, str]]:
    """Every ``(module, attribute)`` tried for ``class_ref`` in order (used for error messages
    at compile time too). ``module:Class`` and ``a.b.Class`` name one place; a bare ``Class``
    is tried in ``<path>.<layer>`` then ``<path>`` for each search path."""
    if ":" in class_ref:
        mod, _, attr = class_ref.partition(":")
        return [(mod, attr)]
    if "." in class_ref:
        mod, _, attr = class_ref.rpartition(".")
        return [(mod, attr)]
    out: list[tuple[str, str]] = []
    for path in search_paths:
        for mod in (f"{path}.{layer}", path):
            if (mod, class_ref) not in out:
                out.append((mod, class_ref))
    return out


def search_path_order(
    section: Sequence[str], layer: Sequence[str], global_: Sequence[str]
) -> tuple[str, ...]:
    """Where bare class names are looked up: the section's own search paths, then its layer's
    (top-level section), then the global ones; duplicates dropped."""
    return tuple(dict.fromkeys([*section, *layer, *global_]))


def _getattr_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def load_class(class_ref: str, layer: str, search_paths: Sequence[str]) -> type:
    """Import the class named by ``class_ref``; :class:`IntegrationError` lists what was tried."""
    tried: list[str] = []
    for mod_name, attr in candidate_modules(class_ref, layer, search_paths):
        tried.append(f"{mod_name}:{attr}")
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            # a missing dependency *inside* the module is a real error, not a miss
            if e.name is None or not (mod_name == e.name or mod_name.startswith(e.name + ".")):
                raise IntegrationError(f"importing {mod_name} for {class_ref!r}: {e}") from e
            continue
        try:
            cls = _getattr_path(module, attr)
        except AttributeError:
            continue
        if not callable(cls):
            raise IntegrationError(f"{mod_name}:{attr} is not a class")
        return cls
    if not tried:
        raise IntegrationError(
            f"class {class_ref!r} of layer '{layer}' is a bare name but no search_paths are set"
        )
    raise IntegrationError(
        f"class {class_ref!r} of layer '{layer}' not found; tried: {', '.join(tried)}"
    )


# --------------------------------------------------------------------------------------------
# Building the tree
# --------------------------------------------------------------------------------------------


def _set(obj: Any, name: str, value: Any) -> None:
    try:
        setattr(obj, name, value)
    except (AttributeError, TypeError) as e:
        raise IntegrationError(
            f"cannot set attribute {name!r} on {type(obj).__name__} ({e}); integrations need a "
            "__dict__ (no __slots__)"
        ) from e


def _instantiate(cls: type, key: str, layer: str) -> Any:
    try:
        return cls()
    except Exception as e:  # the user's constructor: report which integration failed
        raise IntegrationError(
            f"building integration '{key}' ({cls.__module__}.{cls.__qualname__}) of layer "
            f"'{layer}' with no arguments failed: {type(e).__name__}: {e}"
        ) from e


Loader = Callable[[str, str, Sequence[str]], type]
"""``loader(class_ref, layer, search_paths) -> class`` (default :func:`load_class`)."""


class _Builder:
    def __init__(self, fw: Mapping[str, Any], loader: Loader | None = None) -> None:
        self.global_config: Mapping[str, Any] = fw.get("config") or {}
        self.global_paths: list[str] = list(fw.get("search_paths") or ())
        # a layer's search paths (its top-level section) apply to its nested sections too
        self.layer_paths: dict[str, list[str]] = {
            name: list(sec.get("search_paths") or ())
            for name, sec in (fw.get("layers") or {}).items()
        }
        self.classes: dict[tuple[str, str, tuple[str, ...]], type] = {}
        self.objects: list[Any] = []
        self.loader = loader or load_class

    def cls(self, ref: str, layer: str, layer_paths: Sequence[str]) -> type:
        paths = search_path_order(layer_paths, self.layer_paths.get(layer, ()), self.global_paths)
        k = (ref, layer, paths)
        if k not in self.classes:
            self.classes[k] = self.loader(ref, layer, paths)
        return self.classes[k]

    def attach(
        self,
        obj: Any,
        key: str,
        layer: str,
        parent: Any,
        chain: _ConfigChain,
    ) -> None:
        _set(obj, "_flowc_key", key)
        _set(obj, "_flowc_layer", layer)
        _set(obj, "_flowc_parent", parent)
        _set(obj, "_flowc_config", chain)
        if not callable(getattr(type(obj), "_get_config", None)):
            _set(obj, "_get_config", chain.get)
        self.objects.append(obj)

    def children(
        self,
        obj: Any,
        node: Mapping[str, Any],
        sections: Mapping[str, Any],
        handed: dict[str, dict[str, Any]],
        chain: _ConfigChain,
    ) -> None:
        """Process ``node``'s child layers for ``obj`` (lolpop's loop over framework children)."""
        handed = {k: dict(v) for k, v in handed.items()}  # siblings below see their own copy
        for child in node.get("children") or ():
            layer = child["layer"]
            section = sections.get(layer) or {}
            layer_config = section.get("config") or {}
            layer_paths = section.get("search_paths") or ()
            processed: dict[str, Any] = {}
            for integ in section.get("integrations") or ():
                key = integ["key"]
                cls = self.cls(integ["class"], layer, layer_paths)
                o = _instantiate(cls, key, layer)
                o_chain = _ConfigChain([integ.get("config") or {}, layer_config], chain)
                self.attach(o, key, layer, obj, o_chain)
                for objs in handed.values():
                    for k, v in objs.items():
                        _set(o, k, v)
                _set(obj, key, o)
                self.children(o, child, integ.get("layers") or {}, handed, o_chain)
                processed[key] = o
            if section.get("pass_integration_to_siblings", True):
                handed.setdefault(layer, {}).update(processed)
            peers = section.get("update_peer_integrations")
            if peers is None:
                peers = not child.get("children")
            if peers:
                for o in processed.values():
                    for k, v in processed.items():
                        if v is not o:
                            _set(o, k, v)


class IntegrationTree:
    """The built objects. ``tree.root`` is the root integration; other names are looked up on
    it (``tree.train`` is ``tree.root.train``), and the root's own key names the root."""

    def __init__(self, root: Any, root_key: str | None, objects: Sequence[Any]) -> None:
        self.root = root
        self.root_key = root_key
        self.objects = tuple(objects)

    def get(self, dotted: str) -> Any:
        """``"train"``, ``"train.metadata_tracker"``, ``"main"`` (the root's key) -> object."""
        parts = dotted.split(".")
        obj: Any = self.root
        if self.root_key is not None and parts[0] == self.root_key:
            parts = parts[1:]
        for i, part in enumerate(parts):
            if part.startswith("_"):
                raise IntegrationError(f"'{dotted}': private attribute '{part}'")
            nxt = getattr(obj, part, _MISSING)
            if nxt is _MISSING:
                where = ".".join(parts[:i]) or (self.root_key or "the root integration")
                raise IntegrationError(f"integration '{dotted}': {where} has no attribute '{part}'")
            obj = nxt
        return obj

    def method(self, ref: str) -> Callable[..., Any]:
        """``"train.fit"`` -> the bound method ``fit`` of the ``train`` object."""
        if "." not in ref:
            obj = self.get(ref)
            if callable(obj):
                return obj
            raise IntegrationError(f"integration '{ref}' is not callable; write object.method")
        owner, _, name = ref.rpartition(".")
        obj = self.get(owner)
        fn = getattr(obj, name, _MISSING)
        if fn is _MISSING or name.startswith("_"):
            raise IntegrationError(
                f"integration '{owner}' ({type(obj).__name__}) has no method '{name}'"
            )
        if not callable(fn):
            raise IntegrationError(f"integration '{ref}' is not callable")
        return fn

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except IntegrationError as e:
            raise AttributeError(str(e)) from None

    def __repr__(self) -> str:
        return f"<IntegrationTree root={self.root!r} objects={len(self.objects)}>"


def build(fw: Mapping[str, Any] | None, loader: Loader | None = None) -> IntegrationTree | None:
    """Build the object tree of a plan's ``integrations`` section (None -> None). ``loader``
    replaces class lookup (the compiler wires placeholder classes to check steps statically)."""
    if not fw:
        return None
    root = fw.get("root")
    if not root or "layer" not in root:
        raise IntegrationError("integration framework has no root layer")
    layers: Mapping[str, Any] = fw.get("layers") or {}
    b = _Builder(fw, loader)
    root_layer = root["layer"]
    section = layers.get(root_layer) or {}
    integs = list(section.get("integrations") or ())
    if len(integs) > 1:
        keys = ", ".join(i["key"] for i in integs)
        raise IntegrationError(f"root layer '{root_layer}' holds one integration, found: {keys}")
    global_chain = _ConfigChain([b.global_config], None)
    if integs:
        integ = integs[0]
        root_key: str | None = integ["key"]
        cls = b.cls(integ["class"], root_layer, section.get("search_paths") or ())
        obj = _instantiate(cls, integ["key"], root_layer)
        maps = [integ.get("config") or {}, section.get("config") or {}]
    else:
        root_key, obj, maps = None, Integration(), [section.get("config") or {}]
    chain = _ConfigChain(maps, global_chain)
    b.attach(obj, root_key or root_layer, root_layer, None, chain)
    # the root's children come from the top-level sections (and the root integration's own)
    sections = dict(layers)
    if integs:
        sections.update(integs[0].get("layers") or {})
    b.children(obj, root, sections, {}, chain)
    return IntegrationTree(obj, root_key, b.objects)


# --------------------------------------------------------------------------------------------
# Once per run and process; the executor hook
# --------------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str], IntegrationTree | None] = {}
_USERS: dict[tuple[str, str], int] = {}
_LOCK = threading.Lock()


def _cache_key(fw: Any, run_id: str | None) -> tuple[str, str]:
    return (str(run_id), json.dumps(fw, sort_keys=True, default=str))


def resolved(plan: Plan, resolver: Any = None) -> Mapping[str, Any] | None:
    """The plan's ``integrations`` with the ``${secrets.NAME}`` references of their config
    replaced by the values, here where the objects are built
    (:func:`flowc.runtime.config_secrets.resolve_config`; ``resolver`` as there); a secret that
    does not resolve is an :class:`IntegrationError` naming it and its source."""
    from flowc.runtime.config_secrets import SecretMissing, resolve_config

    try:
        return resolve_config(plan.get("integrations"), plan.get("secrets"), resolver)
    except SecretMissing as e:
        raise IntegrationError(f"integration config: {e}") from None


def for_run(plan: Plan, run_id: str | None = None, resolver: Any = None) -> IntegrationTree | None:
    """The tree for this plan and run, built on first use in this process and reused after
    (while a :func:`service` holds it, or, without one, among the 16 most recent runs). The
    cache is keyed by the config as compiled (secret references, never their values)."""
    fw = plan.get("integrations")
    if not fw:
        return None
    key = _cache_key(fw, run_id)
    with _LOCK:
        if key not in _CACHE:
            unused = [k for k in _CACHE if not _USERS.get(k)]
            if len(unused) >= 16:  # a long-lived worker: keep only recent runs
                _CACHE.pop(unused[0])
            _CACHE[key] = build(resolved(plan, resolver))
        return _CACHE[key]


class _Service:
    """The run service behind ``ctx.integrations`` (see flowc.runtime.services)."""

    def __init__(self, plan: Plan) -> None:
        self.key: tuple[str, str] | None = None
        self.fw = plan.get("integrations")

    def start(self, plan: Plan, run: Any) -> IntegrationTree | None:
        run_id = getattr(run, "run_id", None)
        self.key = _cache_key(self.fw, run_id)
        with _LOCK:
            _USERS[self.key] = _USERS.get(self.key, 0) + 1
        extra = getattr(run, "extra", None) or {}
        resolver = extra.get("secret_resolver") if isinstance(extra, Mapping) else None
        try:
            return for_run(plan, run_id, resolver)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.key is None:
            return
        with _LOCK:
            n = _USERS.get(self.key, 0) - 1
            if n <= 0:
                _USERS.pop(self.key, None)
                _CACHE.pop(self.key, None)
            else:
                _USERS[self.key] = n
        self.key = None


def service(plan: Plan) -> _Service | None:
    """Run-service factory (``flowc.runtime.services.SERVICES["integrations"]``): None when
    the plan declares no integration framework."""
    return _Service(plan) if plan.get("integrations") else None


def resolve_callable(ctx: Any, ref: str) -> Callable[..., Any]:
    """``"integration:train.fit"`` -> the bound method, looked up in ``ctx.integrations`` (an
    :class:`IntegrationTree`; ``ctx`` may also be the tree itself)."""
    name = ref.removeprefix("integration:")
    tree = ctx if isinstance(ctx, IntegrationTree) else getattr(ctx, "integrations", None)
    if tree is None:
        raise IntegrationError(f"step runs {ref!r} but the flow declares no integration framework")
    return tree.method(name)
