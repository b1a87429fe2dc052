"""Artifact stores: where step outputs live between steps and across runs (and the step cache).

:class:`ArtifactStore` is the small interface (``put``/``get``/``exists`` by run, step, output)
every store implements; :class:`LocalArtifactStore` keeps values under
``<root>/runs/<run_id>/<step>/<output>.json`` (JSON when the value round-trips through JSON) or
``.pkl`` (pickle otherwise): the file suffix records the format. Writes are atomic (temporary file
+ rename), so a killed run never leaves a half-written output. Other store types (``gcs``...) are
looked up by the stack component ``type`` in :data:`ARTIFACT_STORES` (``"module:Class"``, imported
lazily; the class is built as ``Class(settings, root)``), then among the stack component types:
a component's ``open(root)``, or :class:`ComponentArtifactStore` over flowyml's
``save``/``load``/``exists``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ARTIFACT_STORES: dict[str, str] = {
    "local": "flowc.runtime.store:LocalArtifactStore",
    "gcs": "flowc.runtime.gcs_store:GcsArtifactStore",  # google-cloud-storage (extra gcp)
}
"""Stack ``artifact_store.type`` -> ``"module:Class"``; ``Class(settings: dict, root: Path)``."""

_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class StoreError(ValueError):
    """An artifact is missing, unreadable, or a name would escape the store."""


def encode(value: Any) -> tuple[str, bytes]:
    """``("json", bytes)`` when ``value`` survives a JSON round trip unchanged, else
    ``("pickle", bytes)``."""
    t = type(value)
    if t is str or t is int or t is bool or value is None or (t is float and math.isfinite(value)):
        return "json", json.dumps(value, ensure_ascii=False).encode("utf-8")  # the hot path
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if json.loads(text) == value:
            return "json", text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        pass
    return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode(fmt: str, data: bytes) -> Any:
    if fmt == "json":
        return json.loads(data.decode("utf-8"))
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - our own artifacts
    raise StoreError(f"unknown artifact format {fmt!r}")


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one (a
    temporary file unique to this process and thread, then ``os.replace``). Safe against the
    process being killed; not fsync'ed (a power loss may lose the latest writes)."""
    target = os.fspath(path)
    parent = os.path.dirname(target)
    tmp = os.path.join(
        parent, f".{os.path.basename(target)}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        os.makedirs(parent, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


FLOW_OUTPUTS = ("_flow", "outputs")
"""Where a run's flow outputs (the flow's ``outputs:``, one dict) are stored: (step, name)."""


def safe_name(name: str) -> str:
    """Refuse names that could escape a folder (``..``, separators)."""
    if not _SAFE.match(name) or name in (".", ".."):
        raise StoreError(f"unsafe artifact name {name!r}")
    return name


class ArtifactStore:
    """The interface. Implementations must make ``put`` atomic (a reader never sees half a
    value) and return a URI describing where the value went."""

    def put(self, run_id: str, step: str, output: str, value: Any) -> str:
        raise NotImplementedError

    def get(self, run_id: str, step: str, output: str) -> Any:
        raise NotImplementedError

    def exists(self, run_id: str, step: str, output: str) -> bool:
        raise NotImplementedError

    def step_dir(self, run_id: str, step: str) -> Path | None:
        """A local folder for the step's own files, when the store has one (else None)."""
        return None


class LocalArtifactStore(ArtifactStore):
    """Files under ``<root>/runs/<run_id>/<step>/``."""

    def __init__(self, settings: Mapping[str, Any] | None = None, root: str | Path = ".flowc"):
        path = (settings or {}).get("path")
        self.root = Path(path if path else root).absolute()
        self._root = str(self.root)
        self._made: dict[str, bool] = {}  # folder -> created empty by this store

    def step_dir(self, run_id: str, step: str) -> Path:
        return Path(self._dir(run_id, step))

    def _dir(self, run_id: str, step: str) -> str:
        return os.path.join(self._root, "runs", safe_name(run_id), safe_name(step))

    def _path(self, run_id: str, step: str, output: str, fmt: str) -> Path:
        return Path(self._file(run_id, step, output, fmt))

    def _file(self, run_id: str, step: str, output: str, fmt: str) -> str:
        suffix = ".json" if fmt == "json" else ".pkl"
        return os.path.join(self._dir(run_id, step), safe_name(output) + suffix)

    def _check_inside(self, folder: str) -> None:
        """Refuse a folder that resolves outside the store's root (a symlink planted in it)."""
        real_root = os.path.realpath(self._root)
        real = os.path.realpath(folder)
        if os.path.commonpath([real_root, real]) != real_root:
            raise StoreError(f"artifact folder {folder} resolves outside {real_root} (symlink?)")

    def put(self, run_id: str, step: str, output: str, value: Any) -> str:
        return self.put_encoded(run_id, step, output, *encode(value))

    def put_encoded(self, run_id: str, step: str, output: str, fmt: str, data: bytes) -> str:
        """``put`` for a value already serialized by :func:`encode` (optional fast path)."""
        path = self._file(run_id, step, output, fmt)
        folder = os.path.dirname(path)
        fresh = self._made.get(folder)
        if fresh is None:
            try:
                os.mkdir(folder)
                fresh = True
            except FileExistsError:
                fresh = False
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fresh = False
            self._check_inside(folder)
            self._made[folder] = fresh
        atomic_write(path, data)
        if not fresh:  # a re-run may have changed the format: drop the stale file
            other = self._file(run_id, step, output, "pickle" if fmt == "json" else "json")
            if os.path.exists(other):
                os.unlink(other)
        return "file://" + path

    def get(self, run_id: str, step: str, output: str) -> Any:
        for fmt in ("json", "pickle"):
            path = self._path(run_id, step, output, fmt)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            return decode(fmt, data)
        raise StoreError(f"no artifact for {run_id}/{step}/{output} under {self.root}")

    def exists(self, run_id: str, step: str, output: str) -> bool:
        return any(self._path(run_id, step, output, f).exists() for f in ("json", "pickle"))


class Cache:
    """The step cache: ``<root>/cache/<key[:2]>/<key>.{json,pkl}`` holding ``{output: value}``.
    Persisted across runs in the project folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute() / "cache"

    def _path(self, key: str, fmt: str) -> Path:
        return self.root / key[:2] / (safe_name(key) + (".json" if fmt == "json" else ".pkl"))

    def get(self, key: str) -> dict[str, Any] | None:
        for fmt in ("json", "pickle"):
            try:
                data = self._path(key, fmt).read_bytes()
            except FileNotFoundError:
                continue
            try:
                value = decode(fmt, data)
            except Exception:  # a corrupt entry is a miss
                return None
            return value if isinstance(value, dict) else None
        return None

    def put(self, key: str, outputs: Mapping[str, Any]) -> None:
        fmt, data = encode(dict(outputs))
        atomic_write(self._path(key, fmt), data)


class ComponentArtifactStore(ArtifactStore):
    """A stack artifact store component written flowyml's way, without ``open(root)``:
    ``save(artifact, path) -> uri``, ``load(path)``, ``exists(path)``, used as the runtime store
    with outputs at ``runs/<run_id>/<step>/<output>`` (the component serializes them)."""

    def __init__(self, component: Any) -> None:
        self.component = component

    @staticmethod
    def _path(run_id: str, step: str, output: str) -> str:
        return "/".join(("runs", safe_name(run_id), safe_name(step), safe_name(output)))

    def put(self, run_id: str, step: str, output: str, value: Any) -> str:
        path = self._path(run_id, step, output)
        return str(self.component.save(value, path) or path)

    def get(self, run_id: str, step: str, output: str) -> Any:
        path = self._path(run_id, step, output)
        if not self.component.exists(path):
            raise StoreError(f"no artifact for {run_id}/{step}/{output} at {path}")
        return self.component.load(path)

    def exists(self, run_id: str, step: str, output: str) -> bool:
        return bool(self.component.exists(self._path(run_id, step, output)))


def open_artifact_store(
    settings: Mapping[str, Any] | None, root: str | Path = ".flowc"
) -> ArtifactStore:
    """Build the store named by a stack ``artifact_store`` component (``None``: local). Types
    in :data:`ARTIFACT_STORES` first, then the stack component registry
    (:mod:`flowc.runtime.stack`: ``gcs``, ``components:`` and entry-point types)."""
    kind = (settings or {}).get("type", "local")
    target = ARTIFACT_STORES.get(kind)
    if target is None:
        from flowc.runtime import stack as stack_mod  # lazy: only types not in ARTIFACT_STORES

        try:
            comp = stack_mod.build_component("artifact_store", dict(settings or {}))
        except stack_mod.ComponentError as e:
            raise StoreError(f"artifact store {kind!r}: {e}") from None
        if (
            isinstance(comp, stack_mod.ArtifactStore)
            and type(comp).open is not stack_mod.ArtifactStore.open
        ):
            opened: ArtifactStore = comp.open(root)
            return opened
        if all(callable(getattr(comp, m, None)) for m in ("save", "load", "exists")):
            return ComponentArtifactStore(comp)
        raise StoreError(
            f"artifact store {kind!r} ({type(comp).__qualname__}) implements neither "
            "open(root) nor save(artifact, path) / load(path) / exists(path)"
        )
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(dict(settings or {}), Path(root))
