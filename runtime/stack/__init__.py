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

Both the compiler (to check a stack; its compile-time tables, such as which target an
orchestrator compiles to, are in :mod:`flowc.compiler.stacks`) and the runtime (to open the
stack's artifact and metadata stores) use this package: it is stdlib only and imports optional
SDKs lazily. One module per seam: :mod:`.framework` (the base classes and settings),
:mod:`.registry` (registering, loading and building components) and :mod:`.builtin` (the
built-in types). Every public name is re-exported here.
"""

from __future__ import annotations

from flowc.runtime.stack import builtin as _builtin  # noqa: F401 - registers the built-ins
from flowc.runtime.stack.framework import (
    KINDS,
    REQUIRED,
    RESOURCE_KEYS,
    ArtifactStore,
    ComponentError,
    ContainerRegistry,
    MetadataStore,
    Orchestrator,
    Setting,
    StackComponent,
    has_registry_host,
    setting,
)
from flowc.runtime.stack.registry import (
    ComponentRegistry,
    Entry,
    build_component,
    get_component_registry,
    image_with_registry,
    load_component,
    metadata_path,
    open_artifact_store,
    register_component,
    split_ref,
    validate_component,
)

__all__ = [
    "KINDS",
    "REQUIRED",
    "RESOURCE_KEYS",
    "ArtifactStore",
    "ComponentError",
    "ComponentRegistry",
    "ContainerRegistry",
    "Entry",
    "MetadataStore",
    "Orchestrator",
    "Setting",
    "StackComponent",
    "build_component",
    "get_component_registry",
    "has_registry_host",
    "image_with_registry",
    "load_component",
    "metadata_path",
    "open_artifact_store",
    "register_component",
    "setting",
    "split_ref",
    "validate_component",
]
