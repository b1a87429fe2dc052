"""The plan's types: what ``Pipeline.to_data()`` (compiler/ir.py) produces and every target
embeds, as TypedDicts a reader and a type checker can follow (docs/plan.md is the prose).

The runtime reads plans from JSON (``json.loads``) or from generated code; these types add no
check at run time. They say which keys each entry holds and what their values are, so that
``data["retry_delay"]`` is known to be a float and a misspelt key is a type error. Keys the
compiler writes only sometimes are ``NotRequired``.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

PLAN_VERSION = 1
"""The ``plan_version`` this runtime reads (the compiler's ``ir.PLAN_VERSION``)."""

Encoded: TypeAlias = Any
"""An encoded expression (docs/plan.md, "Expression encoding"): a JSON scalar, or a one-key
``{"$lit" | "$ref" | "$fmt" | "$list" | "$dict" | "$op": ...}`` dict (``$ref`` may carry a
``default``); evaluated by :func:`flowc.runtime.exprs.evaluate`."""

StepKind: TypeAlias = Literal["run", "command"]
Trigger: TypeAlias = Literal[
    "all_success",
    "all_done",
    "one_failed",
    "one_success",
    "none_failed",
    "none_failed_min_one_success",
    "all_failed",
]
StepState: TypeAlias = Literal[
    "running", "success", "cached", "skipped", "failed", "upstream_failed"
]


class Source(TypedDict):
    path: str  # relative to the flow's repository (or the file name): never absolute
    sha256: str


class ParamData(TypedDict):
    type: str  # str | int | float | bool | list | dict
    required: bool
    default: NotRequired[Any]
    description: NotRequired[str]
    min: NotRequired[float]
    max: NotRequired[float]
    enum: NotRequired[list[Any]]


class K8sSecretData(TypedDict):
    name: str
    key: str | None


class AirflowSecretData(TypedDict, total=False):
    variable: str
    connection: str


class VertexSecretData(TypedDict):
    secret: str  # projects/P/secrets/S/versions/V


class SecretData(TypedDict, total=False):
    """Where a secret lives, per target: never a value."""

    env: str
    k8s: K8sSecretData
    airflow: AirflowSecretData
    vertex: VertexSecretData


class ResourcesData(TypedDict, total=False):
    cpu: str  # Kubernetes quantities
    memory: str
    gpu: int
    gpu_type: str


StepData = TypedDict(
    "StepData",
    {
        "kind": StepKind,
        "run": NotRequired[str],  # "module:function" | "integration:obj.method" (kind run)
        "command": NotRequired[list[Encoded]],  # argv (kind command)
        "with": dict[str, Encoded],
        "outputs": list[str],
        "upstream": list[str],  # every direct dependency (data + order), sorted
        "after": list[str],
        "foreach": Encoded | None,
        "when": Encoded | None,
        "retries": int,
        "retry_delay": float,  # seconds
        "timeout": float | None,  # seconds
        "cache": bool,
        "replicas": int,
        "image": str | None,
        "env": dict[str, Encoded],
        "resources": ResourcesData,
        "secrets": list[str],  # names of the plan's secrets the step reads
        # streaming operators (pypz) only
        "operator": NotRequired[bool],
        "produces": NotRequired[list[str]],
        "consumes": NotRequired[list[str]],
        "log_level": NotRequired[str],  # DEBUG | INFO | WARNING | ERROR | CRITICAL
        # control flow (docs/control-flow.md): present only when not the default
        "trigger": NotRequired[Trigger],  # absent: "all_success"
        "skip_on_exit_code": NotRequired[list[int]],  # command steps
        "retry_backoff": NotRequired[float],  # absent: 1.0
        "retry_max_delay": NotRequired[float],  # seconds; absent: no cap
        "group": NotRequired[str],  # the innermost group (qualified) holding the step
        "finally": NotRequired[bool],  # a ``finally:`` step (always true when present)
        "matrix": NotRequired[list[str]],  # foreach written as a mapping: its keys
        # pip requirements a container target installs first, and pip's --index-url for them
        "packages": NotRequired[list[str]],
        "package_index": NotRequired[str],
    },
)
"""One step, every default cascaded in."""


class ScheduleData(TypedDict):
    kind: Literal["cron", "every", "at"]
    timezone: str
    catchup: bool
    cron: NotRequired[str]
    every_seconds: NotRequired[float]
    at: NotRequired[str]
    start: NotRequired[str]
    end: NotRequired[str]


ComponentData: TypeAlias = dict[str, Any]
"""One stack component: ``{"type": NAME, **settings}`` (settings are the type's own)."""


class StackData(TypedDict):
    name: str
    components: dict[str, ComponentData]  # kind -> component


class PluginData(TypedDict):
    type: str
    enabled: bool
    config: dict[str, Any]


class LayerNodeData(TypedDict):
    layer: str
    children: list["LayerNodeData"]


IntegrationData = TypedDict(
    "IntegrationData",
    {
        "key": str,
        "class": str,  # module:Class or a bare class name found on the search paths
        "config": dict[str, Any],
        "layers": NotRequired[dict[str, "LayerData"]],
    },
)


class LayerData(TypedDict):
    integrations: list[IntegrationData]
    config: dict[str, Any]
    pass_integration_to_siblings: bool
    update_peer_integrations: bool
    search_paths: list[str]


class IntegrationsData(TypedDict):
    root: LayerNodeData
    layers: dict[str, LayerData]
    config: dict[str, Any]
    search_paths: list[str]


class ChannelData(TypedDict):
    schema: Any  # an Avro schema (JSON data, or a type name)
    transport: Literal["local", "kafka"]
    location: Encoded | None
    producers: list[str]
    consumers: list[str]


class GroupData(TypedDict):
    """A group (``steps:`` or ``uses:``); its members are ordinary entries of ``steps``."""

    parent: str | None  # the enclosing group (qualified), None at the top level
    foreach: Encoded | None  # evaluated in the parent scope; every member runs once per item
    matrix: list[str]  # foreach written as a mapping: its keys (cross product)
    steps: list[str]  # direct member steps (qualified), topological order
    groups: list[str]  # direct child groups (qualified)
    outputs: dict[str, Encoded]  # the group's exports over qualified member refs
    upstream: list[str]  # sibling-level steps/groups the group waits for, sorted
    leaves: list[str]  # member steps (recursive) with no in-group downstream
    after: list[str]
    uses: str | None  # the sub-flow file (relative to the repository) for ``uses:``


class Plan(TypedDict):
    """The whole plan (``Pipeline.to_data()``)."""

    plan_version: int
    name: str
    description: str | None
    tags: list[str]
    owner: str | None
    source: Source
    environment: str | None
    params: dict[str, ParamData]
    secrets: dict[str, SecretData]
    steps: dict[str, StepData]
    order: list[str]  # a topological order of ``steps``
    schedule: ScheduleData | None
    stack: StackData | None
    plugins: dict[str, PluginData]
    integrations: IntegrationsData | None
    channels: dict[str, ChannelData]
    groups: NotRequired[dict[str, GroupData]]  # control flow: present only with groups
    outputs: NotRequired[dict[str, Encoded]]  # flow outputs: present only when declared
