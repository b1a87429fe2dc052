"""The flowc IR: one typed, frozen, fully resolved, target-neutral description of a pipeline.

Passes build it from the validated model; targets read only this (never YAML). Every node is a
frozen dataclass with tuples instead of lists, so an IR can be compared and shared and no target
can change what a pass decided. It is not hashable: literal values (``Lit.value``, parameter
defaults, component settings, plugin config) are JSON data, lists and dicts included, kept as the
plan embeds them; nothing keys a dict or set by an IR node.

Every target-facing fact is decided here by a pass, once: resources as validated quantities with
the request/limit policy (:class:`Resources`), retry count and delay (0 included), the active
stack's settings with the registry's defaults applied (:attr:`ComponentConfig.resolved`).

:meth:`Pipeline.to_data` turns the IR into the *plan*: plain JSON-able data that generated code
embeds and :mod:`flowc.runtime` executes (the runtime never imports the compiler). Expressions in
the plan use the encoding documented in ``docs/plan.md`` and evaluated by
:mod:`flowc.runtime.exprs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from flowc import __version__
from flowc.compiler.errors import Loc

if TYPE_CHECKING:
    from fractions import Fraction

PLAN_VERSION = 1

# --------------------------------------------------------------------------------------------
# Expressions (the AST of ``${...}``; parsed by flowc.compiler.expr from grammar/expr.lark)
# --------------------------------------------------------------------------------------------

RefRoot = Literal["params", "steps", "secrets", "env", "item", "run", "flow"]


@dataclass(frozen=True, slots=True)
class Expr:
    """Base of every expression node."""

    def refs(self) -> tuple[Ref, ...]:
        """Every reference inside this expression, in source order."""
        out: list[Ref] = []
        _collect_refs(self, out)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Lit(Expr):
    """A literal JSON value (scalar, or a list/dict holding no expression)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Ref(Expr):
    """``${root.a.b}``: ``Ref("params", ("epochs",))``, ``Ref("steps", ("load", "outputs",
    "frame"))``, ``Ref("item", ())``, ``Ref("env", ("HOME",), default="x")``."""

    root: str
    path: tuple[str, ...] = ()  # names: ("x", "outputs", "y"), ("epochs",), item keys ("lr",)
    default: str | None = None  # only for env: ${env.X:-default}
    loc: Loc | None = field(default=None, compare=False)
    index: tuple[str | int, ...] = ()
    """What follows ``steps.X.outputs.Y`` (or an item's ``[0]``): keys (str) and list positions
    (int) of ``${steps.x.outputs.y.key}`` / ``${steps.x.outputs.y[0]}`` / ``${item[0]}``. The plan
    encodes it appended to the path: ``{"$ref": ["steps", "x", "outputs", "y", 0, "k"]}``."""

    @property
    def dotted(self) -> str:
        """The reference as written: ``steps.x.outputs.y.k[0]``."""
        out = ".".join((self.root, *self.path))
        for p in self.index:
            out += f"[{p}]" if isinstance(p, int) else f".{p}"
        return out

    @property
    def step(self) -> str | None:
        """The (qualified) step or group name of a ``steps.X...`` reference."""
        return self.path[0] if self.root == "steps" and self.path else None

    @property
    def output(self) -> str | None:
        return self.path[2] if self.root == "steps" and len(self.path) >= 3 else None


@dataclass(frozen=True, slots=True)
class Format(Expr):
    """A string with interpolations: ``"gs://b/${params.day}/x"`` -> parts ``("gs://b/",
    Ref(...), "/x")``. Evaluates to a string (each part converted with ``str``, JSON for
    lists/dicts, ``true``/``false``/``null`` for JSON scalars)."""

    parts: tuple[str | Expr, ...]


@dataclass(frozen=True, slots=True)
class ListOf(Expr):
    """A list that holds at least one expression."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class DictOf(Expr):
    """A mapping that holds at least one expression (keys in written order)."""

    items: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    """``left op right``; op in ``== != < <= > >= and or in``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not(Expr):
    operand: Expr


def _collect_refs(e: Any, out: list[Ref]) -> None:
    if isinstance(e, Ref):
        out.append(e)
    elif isinstance(e, Format):
        for p in e.parts:
            if isinstance(p, Expr):
                _collect_refs(p, out)
    elif isinstance(e, ListOf):
        for i in e.items:
            _collect_refs(i, out)
    elif isinstance(e, DictOf):
        for _, v in e.items:
            _collect_refs(v, out)
    elif isinstance(e, BinOp):
        _collect_refs(e.left, out)
        _collect_refs(e.right, out)
    elif isinstance(e, Not):
        _collect_refs(e.operand, out)


def encode_expr(e: Expr) -> Any:
    """Encode an expression as plan data (see docs/plan.md).

    Scalars stay raw; every other node is a one-key dict whose key starts with ``$``:
    ``{"$lit": [..]}``, ``{"$ref": ["params", "x"]}`` (+ ``{"$ref": [...], "default": "d"}``
    for env), ``{"$fmt": ["a", {...}]}``, ``{"$list": [...]}``, ``{"$dict": {...}}``,
    ``{"$op": ["and", l, r]}``, ``{"$op": ["not", x]}``.
    """
    if isinstance(e, Lit):
        v = e.value
        return v if v is None or isinstance(v, (str, int, float, bool)) else {"$lit": v}
    if isinstance(e, Ref):
        enc: dict[str, Any] = {"$ref": [e.root, *e.path, *e.index]}
        if e.default is not None:
            enc["default"] = e.default
        return enc
    if isinstance(e, Format):
        return {"$fmt": [p if isinstance(p, str) else encode_expr(p) for p in e.parts]}
    if isinstance(e, ListOf):
        return {"$list": [encode_expr(i) for i in e.items]}
    if isinstance(e, DictOf):
        return {"$dict": {k: encode_expr(v) for k, v in e.items}}
    if isinstance(e, BinOp):
        return {"$op": [e.op, encode_expr(e.left), encode_expr(e.right)]}
    if isinstance(e, Not):
        return {"$op": ["not", encode_expr(e.operand)]}
    raise TypeError(f"not an expression: {e!r}")


def encode_opt(e: Expr | None) -> Any:
    return None if e is None else encode_expr(e)


# --------------------------------------------------------------------------------------------
# Pipeline parts
# --------------------------------------------------------------------------------------------

ParamType = Literal["str", "int", "float", "bool", "list", "dict"]


@dataclass(frozen=True, slots=True)
class Param:
    """A typed pipeline parameter. ``default`` is the effective default after environment
    overlay and compile-time ``--param`` overrides; ``has_default`` tells a null default from none.
    """

    name: str
    type: ParamType
    default: Any = None
    has_default: bool = False
    required: bool = False
    description: str | None = None
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    loc: Loc | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.has_default:
            d["default"] = self.default
        for k in ("description", "min", "max"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.enum is not None:
            d["enum"] = list(self.enum)
        return d


QUANTITY_RE = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?\Z")
"""A non-negative Kubernetes resource quantity (``500m``, ``4``, ``16Gi``, ``1e3``)."""
_SUFFIX: dict[str, tuple[int, int]] = {  # suffix -> (numerator, denominator)
    "": (1, 1),
    "n": (1, 10**9),
    "u": (1, 10**6),
    "m": (1, 1000),
    "k": (10**3, 1),
    "M": (10**6, 1),
    "G": (10**9, 1),
    "T": (10**12, 1),
    "P": (10**15, 1),
    "E": (10**18, 1),
    "Ki": (2**10, 1),
    "Mi": (2**20, 1),
    "Gi": (2**30, 1),
    "Ti": (2**40, 1),
    "Pi": (2**50, 1),
    "Ei": (2**60, 1),
}
GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource a GPU count is requested as on Kubernetes (and KFP's default
accelerator type)."""
GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"
"""The node label a ``gpu_type`` selects on Kubernetes (GKE's, as kfp-kubernetes users set it)."""


@cache
def quantity_value(text: str) -> Fraction | None:
    """The value of a Kubernetes quantity (``"500m"`` -> 1/2, ``"1Gi"`` -> 2**30); None if
    ``text`` is not a non-negative quantity."""
    from fractions import Fraction  # exact arithmetic, imported only when a flow has resources

    m = QUANTITY_RE.match(text)
    if m is None:
        return None
    number = Fraction(m.group(1))
    suffix = m.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    num, den = _SUFFIX[suffix]
    return number * num / den


@dataclass(frozen=True, slots=True)
class Resources:
    """A step's resources, validated by the ``resources`` pass: ``cpu``/``memory`` are
    Kubernetes quantities as written (a number ``cpu: 1`` becomes ``"1"``), ``gpu`` a count,
    ``gpu_type`` an accelerator name (``NVIDIA_TESLA_T4``).

    The one request/limit policy of every target (docs/dsl.md, "Resources"): a value is both the
    request and the limit (Kubernetes' Guaranteed QoS, KFP's ``set_cpu_request`` +
    ``set_cpu_limit``); a GPU count is the ``nvidia.com/gpu`` limit (Kubernetes sets the request
    to it); ``gpu_type`` selects nodes by :data:`GPU_NODE_LABEL` on Kubernetes and is the
    accelerator type on KFP/Vertex."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None

    def is_empty(self) -> bool:
        return self.cpu is None and self.memory is None and self.gpu is None

    @property
    def cpu_cores(self) -> float | None:
        """``cpu`` in cores (``"500m"`` -> 0.5)."""
        v = quantity_value(self.cpu) if self.cpu is not None else None
        return None if v is None else float(v)

    @property
    def memory_bytes(self) -> int | None:
        """``memory`` in bytes (``"1Gi"`` -> 1073741824)."""
        v = quantity_value(self.memory) if self.memory is not None else None
        return None if v is None else int(v)

    def requests(self) -> dict[str, str]:
        """Kubernetes ``resources.requests`` under the policy."""
        out: dict[str, str] = {}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory is not None:
            out["memory"] = self.memory
        return out

    def limits(self) -> dict[str, str]:
        """Kubernetes ``resources.limits`` under the policy (requests plus the GPU count)."""
        out = self.requests()
        if self.gpu:
            out[GPU_RESOURCE] = str(self.gpu)
        return out

    def node_selector(self) -> dict[str, str]:
        """The Kubernetes node labels a ``gpu_type`` needs (``NVIDIA_TESLA_T4`` ->
        ``{GPU_NODE_LABEL: "nvidia-tesla-t4"}``), only for steps that ask for a GPU."""
        if not self.gpu or not self.gpu_type:
            return {}
        return {GPU_NODE_LABEL: self.gpu_type.lower().replace("_", "-")}

    def to_data(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("cpu", "memory", "gpu", "gpu_type")
            if getattr(self, k) is not None
        }


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives, per target. Never a value."""

    name: str
    env: str | None = None
    k8s_name: str | None = None
    k8s_key: str | None = None
    airflow_variable: str | None = None
    airflow_connection: str | None = None
    vertex: str | None = None  # projects/p/secrets/s/versions/v
    loc: Loc | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.env:
            d["env"] = self.env
        if self.k8s_name:
            d["k8s"] = {"name": self.k8s_name, "key": self.k8s_key}
        if self.airflow_variable:
            d["airflow"] = {"variable": self.airflow_variable}
        elif self.airflow_connection:
            d["airflow"] = {"connection": self.airflow_connection}
        if self.vertex:
            d["vertex"] = {"secret": self.vertex}
        return d


@dataclass(frozen=True, slots=True)
class Schedule:
    """Exactly one of cron / every / at. ``start``/``end``/``at`` are ISO-8601 strings;
    ``start``/``end`` are naive local times in ``timezone`` (``at`` carries its offset)."""

    kind: Literal["cron", "every", "at"]
    cron: str | None = None
    every_seconds: float | None = None
    at: str | None = None
    timezone: str = "UTC"
    start: str | None = None
    end: str | None = None
    catchup: bool = False
    loc: Loc | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "timezone": self.timezone, "catchup": self.catchup}
        for k in ("cron", "every_seconds", "at", "start", "end"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


StepKind = Literal["run", "command"]
Trigger = Literal[
    "all_success",
    "all_done",
    "one_failed",
    "one_success",
    "none_failed",
    "none_failed_min_one_success",
    "all_failed",
]
TRIGGERS: tuple[str, ...] = (
    "all_success",
    "all_done",
    "one_failed",
    "one_success",
    "none_failed",
    "none_failed_min_one_success",
    "all_failed",
)
"""Every trigger rule, the default first (docs/control-flow.md, "Trigger rules")."""


@dataclass(frozen=True, slots=True)
class Step:
    """One node of the DAG, with every default cascaded in."""

    name: str
    kind: StepKind  # "run": python callable (or "integration:obj.method"); "command": argv
    run: str | None = None
    command: tuple[Expr, ...] | None = None
    with_: tuple[tuple[str, Expr], ...] = ()
    outputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # explicit ordering edges, as written
    upstream: tuple[str, ...] = ()  # every direct dependency (data + ordering), sorted
    foreach: Expr | None = None
    when: Expr | None = None
    retries: int = 0
    retry_delay: float = 0.0  # seconds
    timeout: float | None = None  # seconds
    cache: bool = False
    replicas: int = 1
    image: str | None = None
    # pip requirements a container target installs before the step starts (with a pinned
    # flowc), from ``package_index`` when set; empty: the image has what the step needs
    packages: tuple[str, ...] = ()
    package_index: str | None = None
    env: tuple[tuple[str, Expr], ...] = ()
    resources: Resources = Resources()
    secrets: tuple[str, ...] = ()  # names of secrets this step references (sorted)
    run_refs: tuple[Ref, ...] = ()  # its ${run.X} references, in source order (refs pass)
    description: str | None = None
    # streaming operators (pypz)
    operator: bool = False
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    # (output, "str" | "int" | "float" | "bool" | "list" | "dict"): from the callable's return
    # annotation (compiler/passes/output_types.py); outputs without one are absent
    output_types: tuple[tuple[str, str], ...] = ()
    # (output, what it is: "a DataFrame", ...): annotated as a value that is not JSON
    non_json_outputs: tuple[tuple[str, str], ...] = ()
    log_level: str | None = None  # the operator's logger level (else $LOG_LEVEL, else INFO)
    # control flow (docs/control-flow.md); the defaults keep the plan as before
    trigger: Trigger = "all_success"
    skip_on_exit_code: tuple[int, ...] = ()  # command steps only
    retry_backoff: float = 1.0  # delay before attempt n>=2: retry_delay * backoff**(n-2)
    retry_max_delay: float | None = None  # seconds; caps the delay
    group: str | None = None  # qualified name of the innermost group holding the step
    is_finally: bool = False  # a ``finally:`` step
    matrix: tuple[str, ...] = ()  # foreach written as a mapping: its keys in written order
    loc: Loc | None = field(default=None, compare=False)

    @property
    def local_name(self) -> str:
        """The last dotted part of the (qualified) name: ``per_shard.prep`` -> ``prep``."""
        return self.name.rpartition(".")[2]

    def retry_delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        delay = self.retry_delay * self.retry_backoff ** max(attempt - 2, 0)
        return delay if self.retry_max_delay is None else min(delay, self.retry_max_delay)

    @property
    def is_integration(self) -> bool:
        return bool(self.run and self.run.startswith("integration:"))

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.run is not None:
            d["run"] = self.run
        if self.command is not None:
            d["command"] = [encode_expr(a) for a in self.command]
        d["with"] = {k: encode_expr(v) for k, v in self.with_}
        d["outputs"] = list(self.outputs)
        d["upstream"] = list(self.upstream)
        d["after"] = list(self.after)
        d["foreach"] = encode_opt(self.foreach)
        d["when"] = encode_opt(self.when)
        d["retries"] = self.retries
        d["retry_delay"] = self.retry_delay
        d["timeout"] = self.timeout
        d["cache"] = self.cache
        d["replicas"] = self.replicas
        d["image"] = self.image
        d["env"] = {k: encode_expr(v) for k, v in self.env}
        d["resources"] = self.resources.to_data()
        d["secrets"] = list(self.secrets)
        if self.operator:
            d["operator"] = True
            d["produces"] = list(self.produces)
            d["consumes"] = list(self.consumes)
            if self.log_level:
                d["log_level"] = self.log_level
        # control flow: keys only when not the default (plans without it stay byte-identical)
        if self.trigger != "all_success":
            d["trigger"] = self.trigger
        if self.skip_on_exit_code:
            d["skip_on_exit_code"] = list(self.skip_on_exit_code)
        if self.retry_backoff != 1.0:
            d["retry_backoff"] = self.retry_backoff
        if self.retry_max_delay is not None:
            d["retry_max_delay"] = self.retry_max_delay
        if self.group is not None:
            d["group"] = self.group
        if self.is_finally:
            d["finally"] = True
        if self.matrix:
            d["matrix"] = list(self.matrix)
        if self.packages:
            d["packages"] = list(self.packages)
        if self.package_index is not None:
            d["package_index"] = self.package_index
        return d


@dataclass(frozen=True, slots=True)
class Group:
    """A step that holds steps (``steps:``, or a ``uses:`` sub-flow): its members are ordinary
    :class:`Step` entries of :attr:`Pipeline.steps` with qualified names (``per_shard.prep``).

    ``foreach`` is evaluated in the parent scope (a mapping = the cross product, ``matrix`` its
    keys); every member then runs once per item. ``outputs`` are the group's only exports
    (expressions over qualified member references). ``upstream`` are the sibling-level nodes
    (steps or groups with the same ``parent``) the group waits for, lifted from its members'
    dependencies outside it; ``leaves`` the member steps (recursive) no other member depends on.
    """

    name: str  # qualified
    parent: str | None = None
    foreach: Expr | None = None
    matrix: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()  # direct member steps, topological order
    groups: tuple[str, ...] = ()  # direct child groups
    outputs: tuple[tuple[str, Expr], ...] = ()
    upstream: tuple[str, ...] = ()  # sorted
    leaves: tuple[str, ...] = ()  # topological order
    after: tuple[str, ...] = ()
    uses: str | None = None  # the sub-flow file, relative to the repository
    description: str | None = None
    loc: Loc | None = field(default=None, compare=False)

    @property
    def local_name(self) -> str:
        return self.name.rpartition(".")[2]

    def to_data(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "foreach": encode_opt(self.foreach),
            "matrix": list(self.matrix),
            "steps": list(self.steps),
            "groups": list(self.groups),
            "outputs": {k: encode_expr(v) for k, v in self.outputs},
            "upstream": list(self.upstream),
            "leaves": list(self.leaves),
            "after": list(self.after),
            "uses": self.uses,
        }


@dataclass(frozen=True, slots=True)
class Edge:
    """``src -> dst``. kind "data" carries ``output`` (the src output read by dst); "order" comes
    from ``after:``; "when" from a reference in dst's ``when`` only."""

    src: str
    dst: str
    kind: Literal["data", "order", "when"]
    output: str | None = None


# --------------------------------------------------------------------------------------------
# Stacks, components, plugins (flowyml / ExperimentHub)
# --------------------------------------------------------------------------------------------

SETTING_DEFAULTS: dict[str, dict[str, Any]] = {
    "k8s": {
        "image": f"flowc/flowc:{__version__}",  # the driver's (and step pods' default) image
        "image_pull_policy": "IfNotPresent",
        "poll_seconds": 2.0,
    },
    "airflow": {"namespace": "default"},
}
"""Per target, defaults of orchestrator settings the runtime registry declares without one, as
the target applies them. The ``stack_settings`` pass applies them to an orchestrator compiling
to that target; :meth:`Pipeline.orchestrator_settings` gives them for a flow without one."""

ComponentKind = (
    str  # "orchestrator" | "artifact_store" | "metadata_store" | "container_registry" | custom
)


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """One stack component as configured: its kind (the stack key), registered type and settings
    (``${env.X}`` already interpolated; JSON-able values, keys in written order)."""

    kind: ComponentKind
    type: str
    settings: tuple[tuple[str, Any], ...] = ()
    loc: Loc | None = field(default=None, compare=False)
    resolved: tuple[tuple[str, Any], ...] = ()
    """Every setting of the registered type with the registry's defaults applied (set by the
    ``stack_settings`` pass; the plan keeps ``settings`` as written). Targets read these through
    :meth:`setting`, so no target keeps its own defaults or option list."""

    def setting(self, key: str, default: Any = None) -> Any:
        for k, v in self.resolved or self.settings:
            if k == key:
                return v
        return default

    def resolved_dict(self) -> dict[str, Any]:
        """The resolved settings as a dict (a fresh copy)."""
        return dict(self.resolved or self.settings)

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, **dict(self.settings)}


@dataclass(frozen=True, slots=True)
class Stack:
    """The active stack (chosen by ``--stack`` or the environment); None in IR means no stack."""

    name: str
    components: tuple[ComponentConfig, ...] = ()
    loc: Loc | None = field(default=None, compare=False)
    target: str | None = None
    """The flowc target its orchestrator compiles to (``kubernetes`` -> ``k8s``; set by the
    ``stack_settings`` pass); None without an orchestrator."""

    def component(self, kind: str) -> ComponentConfig | None:
        for c in self.components:
            if c.kind == kind:
                return c
        return None

    @property
    def orchestrator(self) -> ComponentConfig | None:
        return self.component("orchestrator")

    @property
    def artifact_store(self) -> ComponentConfig | None:
        return self.component("artifact_store")

    @property
    def metadata_store(self) -> ComponentConfig | None:
        return self.component("metadata_store")

    @property
    def container_registry(self) -> ComponentConfig | None:
        return self.component("container_registry")

    def to_data(self) -> dict[str, Any]:
        return {"name": self.name, "components": {c.kind: c.to_data() for c in self.components}}


@dataclass(frozen=True, slots=True)
class CustomComponent:
    """An extra stack component type declared in ``components:`` (``module:Class`` or
    ``path/to/file.py:Class``; file paths are relative to the flow file)."""

    name: str
    kind: str
    class_ref: str
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Plugin:
    """An ExperimentHub-style plugin (``plugins:``); ``name`` is its key (mlops, datastream, ...)."""

    name: str
    type: str
    enabled: bool = False
    config: tuple[tuple[str, Any], ...] = ()
    loc: Loc | None = field(default=None, compare=False)
    health_timeout: float | None = None  # seconds; None: the runtime's default (5 s)

    def to_data(self) -> dict[str, Any]:
        data = {"type": self.type, "enabled": self.enabled, "config": dict(self.config)}
        if self.health_timeout is not None:
            data["health_timeout"] = self.health_timeout
        return data


# --------------------------------------------------------------------------------------------
# Integration framework (lolpop)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameworkNode:
    """A node of the layer tree in ``integration_framework`` (layer names may repeat at
    different depths, e.g. ``component`` under ``runner`` and under ``pipeline``)."""

    layer: str
    children: tuple[FrameworkNode, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {"layer": self.layer, "children": [c.to_data() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Integration:
    """One object of a layer: attribute ``key``, class reference (``module:Class`` or a bare
    name looked up along the search paths), and its own config.

    ``layers`` are this integration's own sections for the layers below it in the framework
    (lolpop's per-integration config: ``pipeline: {train: {class: X, component: {...}}}`` gives
    the ``train`` pipeline its own components); the root's children use the top-level sections.
    """

    key: str
    class_ref: str
    config: tuple[tuple[str, Any], ...] = ()
    loc: Loc | None = field(default=None, compare=False)
    layers: tuple[Layer, ...] = ()

    def to_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "class": self.class_ref, "config": dict(self.config)}
        if self.layers:
            d["layers"] = {layer.name: layer.to_data() for layer in self.layers}
        return d


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer section (e.g. ``pipeline:``) with its integrations and layer-level options."""

    name: str
    integrations: tuple[Integration, ...] = ()
    config: tuple[tuple[str, Any], ...] = ()
    pass_integration_to_siblings: bool = True
    update_peer_integrations: bool | None = None  # None: default (True only for leaf layers)
    search_paths: tuple[str, ...] = ()
    loc: Loc | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        return {
            "integrations": [i.to_data() for i in self.integrations],
            "config": dict(self.config),
            "pass_integration_to_siblings": self.pass_integration_to_siblings,
            "update_peer_integrations": self.update_peer_integrations,
            "search_paths": list(self.search_paths),
        }


@dataclass(frozen=True, slots=True)
class IntegrationFramework:
    root: FrameworkNode
    layers: tuple[Layer, ...] = ()
    config: tuple[tuple[str, Any], ...] = ()  # global ``config:``
    search_paths: tuple[str, ...] = ()
    explicit: bool = True  # False when the default framework was implied
    loc: Loc | None = field(default=None, compare=False)

    def layer(self, name: str) -> Layer | None:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    def to_data(self) -> dict[str, Any]:
        return {
            "root": self.root.to_data(),
            "layers": {layer.name: layer.to_data() for layer in self.layers},
            "config": dict(self.config),
            "search_paths": list(self.search_paths),
        }


# --------------------------------------------------------------------------------------------
# Streaming channels (pypz)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    schema: Any  # Avro schema as JSON data
    transport: Literal["local", "kafka"] = "local"
    location: Expr | None = None
    producers: tuple[str, ...] = ()  # step names, sorted
    consumers: tuple[str, ...] = ()
    loc: Loc | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "transport": self.transport,
            "location": encode_opt(self.location),
            "producers": list(self.producers),
            "consumers": list(self.consumers),
        }


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where the flow came from: a path relative to its repository (or its file name when it is
    outside one) and the sha256 of its bytes. Never an absolute path. ``output_dir``: where the
    compiled files go, relative to the repository, when the caller knows it (for the
    regenerate command of the provenance header; not part of the plan)."""

    path: str
    sha256: str
    output_dir: str | None = None


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    source: Source
    description: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    params: tuple[Param, ...] = ()
    steps: tuple[Step, ...] = ()  # topological order; ties broken by written order
    edges: tuple[Edge, ...] = ()  # sorted by (dst, src, kind, output)
    schedule: Schedule | None = None
    secrets: tuple[SecretRef, ...] = ()
    environment: str | None = None
    stack: Stack | None = None
    components: tuple[CustomComponent, ...] = ()
    plugins: tuple[Plugin, ...] = ()
    integrations: IntegrationFramework | None = None
    channels: tuple[Channel, ...] = ()
    functions: tuple[str, ...] = ()  # modules steps were generated from (FlowerPower)
    final: tuple[str, ...] = ()
    dsl_version: int = 1
    groups: tuple[Group, ...] = ()  # parents before children, written order
    outputs: tuple[tuple[str, Expr], ...] = ()  # flow outputs
    loc: Loc | None = field(default=None, compare=False)
    _by_name: dict[str, Step] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _groups: dict[str, Group] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {s.name: s for s in self.steps})
        object.__setattr__(self, "_groups", {g.name: g for g in self.groups})

    def step(self, name: str) -> Step:
        """The step called ``name`` (KeyError if none); O(1)."""
        return self._by_name[name]

    def group(self, name: str) -> Group:
        """The group called ``name`` (qualified; KeyError if none)."""
        return self._groups[name]

    def is_group(self, name: str) -> bool:
        return name in self._groups

    def members(self, group_name: str) -> tuple[str, ...]:
        """Every step inside the group (recursively), in topological (plan) order."""
        prefix = group_name + "."
        return tuple(s.name for s in self.steps if s.name.startswith(prefix))

    def node_at(self, name: str, level: str | None) -> str | None:
        """The ancestor of step or group ``name`` (itself included) whose parent group is
        ``level`` (None: the top level); None when ``name`` is not inside ``level``."""
        node: str | None = name
        while node is not None:
            parent = self._parent_of(node)
            if parent == level:
                return node
            node = parent
        return None

    def _parent_of(self, name: str) -> str | None:
        if name in self._groups:
            return self._groups[name].parent
        return self._by_name[name].group

    def finally_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.is_finally)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def secret(self, name: str) -> SecretRef:
        for s in self.secrets:
            if s.name == name:
                return s
        raise KeyError(name)

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def orchestrator_settings(self, target: str) -> dict[str, Any]:
        """The orchestrator settings ``target`` compiles with: the active stack's orchestrator's
        resolved settings when it is of that target's type, else only the defaults of
        :data:`SETTING_DEFAULTS` (no stack: nothing the stack would know)."""
        orch = self.stack.orchestrator if self.stack is not None else None
        if orch is not None and self.stack is not None and self.stack.target == target:
            settings = orch.resolved_dict()
        else:
            settings = dict(SETTING_DEFAULTS.get(target, {}))
        if target == "k8s" and self.schedule is not None:
            # a CronJob may start a missed run this late: an hour when catching up, else 5 min
            settings.setdefault("starting_deadline_seconds", 3600 if self.schedule.catchup else 300)
        return settings

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if name in s.upstream)

    def to_data(self) -> dict[str, Any]:
        """The plan: JSON-able, deterministic, what generated code embeds for flowc.runtime."""
        return {
            "plan_version": PLAN_VERSION,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "owner": self.owner,
            "source": {"path": self.source.path, "sha256": self.source.sha256},
            "environment": self.environment,
            "params": {p.name: p.to_data() for p in self.params},
            "secrets": {s.name: s.to_data() for s in self.secrets},
            "steps": {s.name: s.to_data() for s in self.steps},
            "order": [s.name for s in self.steps],
            "schedule": self.schedule.to_data() if self.schedule else None,
            "stack": self.stack.to_data() if self.stack else None,
            "plugins": {p.name: p.to_data() for p in self.plugins},
            "integrations": self.integrations.to_data() if self.integrations else None,
            "channels": {c.name: c.to_data() for c in self.channels},
            # control flow: keys only when present (plans without it stay byte-identical)
            **({"groups": {g.name: g.to_data() for g in self.groups}} if self.groups else {}),
            **({"outputs": {k: encode_expr(v) for k, v in self.outputs}} if self.outputs else {}),
        }
