"""The reproducible container build context of ``flowc build`` and the record of built images.

A context is ``{relative path: bytes}``, written by :func:`write_context`:

- ``Dockerfile``: a slim Python base, the flowc wheel and the project's requirements installed
  by one ``pip install``, the project's files in ``/app``, entrypoint ``python -m flowc.runtime``
  (so ``IMAGE step --plan ... --step NAME ...`` runs one step, as the KFP/Vertex launchers and
  Kubernetes Jobs do);
- ``wheels/flowc-<version>-py3-none-any.whl``: the flowc runtime, built here from this checkout
  (``pyproject.toml``'s package directories) or from the installed distribution's files;
- ``requirements.txt``: the project's ``[project].dependencies`` from its ``pyproject.toml``, or
  its ``requirements.txt``, as written, then the requirements of the flowc extras the flow
  needs where it runs (``streaming`` for channels, ``gcp``, ``plugins``);
- ``project/...``: the flow's folder (hidden files, caches and ``build/`` left out).

The bytes depend only on the inputs: files sorted, every archive member dated 1980-01-01, no
clock, no user or host name. The image tag defaults to the first 12 hex digits of the context
digest, so the same sources give the same reference. ``.flowc/images.json`` next to the flow
records the references built; the ``built_image`` pass reads it for ``image: built``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tomllib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_IMAGE = "python:3.11-slim"
"""The default base: Debian slim with the Python the runtime is tested on."""

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
"""The date of every archive member (the earliest a zip can hold)."""

FIXED_MTIME = 315532800
"""1980-01-01T00:00:00Z: the mtime of every file :func:`write_context` writes."""

IMAGES_FILE = Path(".flowc") / "images.json"
"""Where built image references are recorded, relative to the flow's folder."""

BUILDING: ContextVar[bool] = ContextVar("flowc_building_image", default=False)
"""True while ``flowc build`` compiles the flow it builds: ``image: built`` stays unresolved."""


@contextmanager
def building() -> Iterator[None]:
    """Compile inside this block without resolving ``image: built`` (the image is being made)."""
    token = BUILDING.set(True)
    try:
        yield
    finally:
        BUILDING.reset(token)


_SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}
_PACKAGE_SUFFIXES = (".py", ".lark", ".j2", ".typed")


@dataclass(frozen=True)
class BuildContext:
    """A build context: its files, the digest over them and the flowc wheel's file name."""

    files: dict[str, bytes]
    wheel: str

    @property
    def digest(self) -> str:
        """sha256 over every path and content, in sorted order."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(rel.encode("utf-8") + b"\0")
            h.update(hashlib.sha256(self.files[rel]).digest())
        return h.hexdigest()

    @property
    def tag(self) -> str:
        return self.digest[:12]


class BuildError(Exception):
    """A build problem the user can fix (no builder, unreadable pyproject, a failed push)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


# ---------------------------------------------------------------------------------------------
# The flowc wheel
# ---------------------------------------------------------------------------------------------


def source_root() -> Path | None:
    """The checkout flowc is imported from (the folder holding its ``pyproject.toml``), or None
    when flowc runs from an installed distribution."""
    import flowc.compiler

    root = Path(flowc.compiler.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if data.get("project", {}).get("name") == "flowc" else None


def _zip_bytes(members: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever machine builds it
            zf.writestr(info, members[name])
    return buf.getvalue()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _wheel_from_members(
    name: str, version: str, files: dict[str, bytes], metadata: str, entry_points: str
) -> tuple[str, bytes]:
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = metadata.encode("utf-8")
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: flowc build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        members[f"{dist_info}/entry_points.txt"] = entry_points.encode("utf-8")
    record = [f"{p},{_record_hash(members[p])},{len(members[p])}" for p in sorted(members)]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode("utf-8")
    return f"{name}-{version}-py3-none-any.whl", _zip_bytes(members)


def _entry_points_text(groups: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for group in sorted(groups):
        out.append(f"[{group}]")
        out += [f"{k} = {v}" for k, v in sorted(groups[group].items())]
        out.append("")
    return "\n".join(out)


def wheel_from_checkout(root: Path) -> tuple[str, bytes]:
    """``(file name, bytes)`` of a pure wheel of the checkout at ``root``: every package of
    ``[tool.setuptools]`` mapped through ``package-dir``, its ``.py`` files and package data."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    setup = data.get("tool", {}).get("setuptools", {})
    package_dir: dict[str, str] = setup.get("package-dir", {})
    files: dict[str, bytes] = {}
    for package in setup.get("packages", []):
        parts = package.split(".")
        # the longest mapped prefix decides the folder (``flowc.compiler.passes`` -> compiler/passes)
        for i in range(len(parts), 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in package_dir:
                folder = Path(package_dir[prefix], *parts[i:])
                break
        else:
            folder = Path(*parts)
        src = root / folder
        if not src.is_dir():
            continue
        for path in sorted(src.iterdir()):
            if path.is_file() and path.name.endswith(_PACKAGE_SUFFIXES):
                files["/".join(parts) + "/" + path.name] = path.read_bytes()
        for sub in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = sub.relative_to(src)
            if (
                len(rel.parts) > 1
                and sub.suffix in (".j2", ".lark")
                and "__pycache__" not in rel.parts
            ):
                files["/".join(parts) + "/" + rel.as_posix()] = sub.read_bytes()
    name, version = project["name"], project["version"]
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
    ]
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    groups: dict[str, dict[str, str]] = {}
    if project.get("scripts"):
        groups["console_scripts"] = dict(project["scripts"])
    for group, eps in project.get("entry-points", {}).items():
        groups[group] = dict(eps)
    return _wheel_from_members(
        name, version, files, "\n".join(lines) + "\n", _entry_points_text(groups)
    )


def wheel_from_installed() -> tuple[str, bytes]:
    """``(file name, bytes)`` of a wheel rebuilt from the installed ``flowc`` distribution's
    package files and metadata."""
    from importlib import metadata

    dist = metadata.distribution("flowc")
    files: dict[str, bytes] = {}
    for f in dist.files or ():
        posix = f.as_posix()
        if posix.startswith("flowc/") and posix.endswith(_PACKAGE_SUFFIXES):
            files[posix] = Path(str(f.locate())).read_bytes()
    eps = dist.read_text("entry_points.txt") or ""
    return _wheel_from_members(
        "flowc", dist.version, files, dist.read_text("METADATA") or "", eps.strip() + "\n"
    )


def flowc_extra_requirements(extras: Sequence[str]) -> list[str]:
    """The requirements of flowc's optional ``extras`` (``streaming`` -> fastavro, ...), from
    this checkout's ``pyproject.toml`` or the installed distribution's metadata."""
    if not extras:
        return []
    root = source_root()
    out: list[str] = []
    if root is not None:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        optional = data["project"].get("optional-dependencies", {})
        for extra in extras:
            out += optional.get(extra, [])
        return out
    from importlib import metadata

    for req in metadata.distribution("flowc").requires or ():
        spec, _, marker = req.partition(";")
        if any(f'extra == "{e}"' in marker for e in extras):
            out.append(spec.strip())
    return out


def needed_extras(ir: Any) -> list[str]:
    """The flowc extras a flow needs where its steps run: ``streaming`` for channels, ``gcp``
    for a gcs artifact store, ``plugins`` for enabled plugins."""
    extras = []
    if getattr(ir, "channels", ()):
        extras.append("streaming")
    store = ir.stack.artifact_store if getattr(ir, "stack", None) is not None else None
    if store is not None and store.type == "gcs":
        extras.append("gcp")
    if any(getattr(p, "enabled", True) for p in getattr(ir, "plugins", ())):
        extras.append("plugins")
    return extras


def flowc_wheel() -> tuple[str, bytes]:
    """The flowc wheel of this checkout, else of the installed distribution."""
    root = source_root()
    return wheel_from_checkout(root) if root is not None else wheel_from_installed()


# ---------------------------------------------------------------------------------------------
# The project
# ---------------------------------------------------------------------------------------------


def project_files(project: Path, exclude: Path | None = None) -> dict[str, bytes]:
    """The files of the flow's folder, by posix path: hidden entries, ``__pycache__``,
    ``build``, ``dist``, compiled Python and the folder ``exclude`` (the context itself) left
    out."""
    out: dict[str, bytes] = {}
    skip = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and Path(dirpath, d).resolve() != skip
        )
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            out[path.relative_to(project).as_posix()] = path.read_bytes()
    return out


def project_requirements(project: Path) -> str:
    """The project's requirements, one a line: ``pyproject.toml``'s
    ``[project].dependencies``, else ``requirements.txt`` as written, else nothing."""
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise BuildError(f"{pyproject}: cannot read: {e}") from None
        deps = data.get("project", {}).get("dependencies", [])
        return "".join(f"{d}\n" for d in deps)
    req = project / "requirements.txt"
    if req.is_file():
        text = req.read_text(encoding="utf-8")
        return text if text.endswith("\n") or not text else text + "\n"
    return ""


def dockerfile(wheel: str, base: str = BASE_IMAGE) -> str:
    """The Dockerfile of a context whose flowc wheel is ``wheels/<wheel>``."""
    return f"""\
# Written by `flowc build`: the flowc runtime, the project's requirements and its step code.
FROM {base}
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY wheels/ /opt/flowc/wheels/
COPY requirements.txt /opt/flowc/requirements.txt
RUN {pip_install_command("/opt/flowc", wheel)}
COPY project/ /app/
ENV PYTHONPATH=/app
ENTRYPOINT ["python", "-m", "flowc.runtime"]
"""


def pip_install_command(prefix: str, wheel: str, pip: str = "pip") -> str:
    """The one ``pip install`` of the Dockerfile, with the context copied to ``prefix``."""
    return (
        f"{pip} install --no-cache-dir --find-links {prefix}/wheels "
        f"-r {prefix}/requirements.txt {prefix}/wheels/{wheel}"
    )


def make_context(
    flow_file: str | Path,
    base: str = BASE_IMAGE,
    exclude: str | Path | None = None,
    extras: Sequence[str] = (),
) -> BuildContext:
    """The build context of the flow at ``flow_file`` (its folder is the project; ``exclude``,
    the folder the context is written to, is not part of it). The requirements of flowc's
    ``extras`` (see :func:`needed_extras`) follow the project's in ``requirements.txt``."""
    project = Path(flow_file).resolve().parent
    wheel, wheel_bytes = flowc_wheel()
    skip = Path(exclude) if exclude is not None else None
    files: dict[str, bytes] = {f"project/{k}": v for k, v in project_files(project, skip).items()}
    files[f"wheels/{wheel}"] = wheel_bytes
    extra_reqs = "".join(f"{r}\n" for r in flowc_extra_requirements(extras))
    files["requirements.txt"] = (project_requirements(project) + extra_reqs).encode("utf-8")
    files["Dockerfile"] = dockerfile(wheel, base).encode("utf-8")
    files[".dockerignore"] = b"**/__pycache__\n**/*.pyc\n"
    return BuildContext(files=dict(sorted(files.items())), wheel=wheel)


def write_context(ctx: BuildContext, out_dir: str | Path) -> Path:
    """Write the context into ``out_dir`` (emptied of files it does not hold), every file and
    folder dated :data:`FIXED_MTIME`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = set(ctx.files)
    for path in sorted(out.rglob("*"), reverse=True):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for rel, data in ctx.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    for path in [*sorted(out.rglob("*"), reverse=True), out]:
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return out


# ---------------------------------------------------------------------------------------------
# Built images
# ---------------------------------------------------------------------------------------------


def images_path(flow_file: str | Path) -> Path:
    return Path(flow_file).resolve().parent / IMAGES_FILE


def read_images(flow_file: str | Path) -> dict[str, Any]:
    """``{flow name: {"image": ref, "digest": ..., "pushed": bool}}`` recorded next to the flow
    (empty when nothing was built or the file is unreadable)."""
    path = images_path(flow_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_image(flow_file: str | Path, flow: str, entry: Mapping[str, Any]) -> Path:
    """Record ``entry`` as the image of ``flow`` (sorted keys, atomically replaced)."""
    path = images_path(flow_file)
    data = read_images(flow_file)
    data[flow] = dict(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
