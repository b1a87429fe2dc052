"""Pydantic v2 models of every section of the flowc DSL (version 1), strict, unknown keys
forbidden; :func:`validate` maps pydantic errors back to ``FILE:LINE:COL`` with "did you mean".

The models check shapes and scalar types only; meaning (names, references, durations, cron,
defaults cascade) is checked by the passes. Integration-framework layer sections are top-level
keys named by ``integration_framework`` (default ``runner``/``pipeline``/``component``): they are
split off before validation and kept raw in :class:`FlowModel.layers`.
"""

# No ``from __future__ import annotations`` here: pydantic would have to evaluate every field's
# annotation from a string, a measurable part of ``flowc validate``'s start-up.
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from flowc.compiler.errors import Collector, Loc, did_you_mean

if TYPE_CHECKING:
    from flowc.compiler.loader import Doc

Scalar = str | int | float | bool | None
Duration = str | int | float
ParamTypeName = Literal["str", "int", "float", "bool", "list", "dict"]

DEFAULT_LAYERS = {"runner": {"component": None, "pipeline": {"component": None}}}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


class ParamModel(_Model):
    type: ParamTypeName = Field(description="str int float bool list dict")
    default: Any = None
    required: bool = False
    description: str | None = None
    enum: list[Any] | None = None
    min: int | float | None = None
    max: int | float | None = None


class ResourcesModel(_Model):
    cpu: str | int | float | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None


class DefaultsModel(_Model):
    image: str | None = None
    packages: list[str] | None = None
    package_index: str | None = None
    retries: int | None = None
    retry_delay: Duration | None = None
    timeout: Duration | None = None
    resources: ResourcesModel | None = None
    env: dict[str, Scalar] | None = None
    cache: bool | None = None
    replicas: int | None = None
    retry_backoff: int | float | None = None
    retry_max_delay: Duration | None = None


class ScheduleModel(_Model):
    cron: str | None = None
    every: Duration | None = None
    at: str | None = None
    timezone: str = "UTC"
    start: str | None = None
    end: str | None = None
    catchup: bool = False


class K8sSecretModel(_Model):
    name: str
    key: str


class AirflowSecretModel(_Model):
    variable: str | None = None
    connection: str | None = None


class VertexSecretModel(_Model):
    secret: str


class SecretModel(_Model):
    env: str | None = None
    k8s: K8sSecretModel | None = None
    airflow: AirflowSecretModel | None = None
    vertex: VertexSecretModel | None = None


class FunctionsModel(_Model):
    """``functions: {modules: [...], config: {...}}``: Hamilton modules and driver config."""

    modules: list[str] = []
    config: dict[str, Any] = {}


class EnvFunctionsModel(_Model):
    """``environments.E.functions``: Hamilton config merged per key over the flow's."""

    config: dict[str, Any] = {}


class EnvironmentModel(_Model):
    description: str | None = None
    params: dict[str, Any] | None = None
    defaults: DefaultsModel | None = None
    stack: str | None = None
    schedule: ScheduleModel | None = None
    functions: EnvFunctionsModel | None = None


class ComponentSettingsModel(BaseModel):
    """A stack component: ``type`` plus free-form settings."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str


class CustomComponentModel(_Model):
    kind: str
    class_: str = Field(alias="class")


class PluginModel(_Model):
    type: str
    enabled: bool = False  # as ExperimentHub's registry: only `enabled: true` plugins run
    health_timeout: Duration | None = None
    config: dict[str, Any] = {}


class StepModel(_Model):
    run: str | None = None
    command: list[str | int | float | bool] | None = None
    with_: dict[str, Any] = Field(default={}, alias="with")
    outputs: list[str] | dict[str, Any] = []  # a mapping only for a group (its exports)
    after: list[str] = []
    foreach: str | list[Any] | dict[str, Any] | None = None
    when: str | bool | None = None
    retries: int | None = None
    retry_delay: Duration | None = None
    timeout: Duration | None = None
    resources: ResourcesModel | None = None
    cache: bool | None = None
    replicas: int | None = None
    image: str | None = None
    packages: list[str] | None = None
    package_index: str | None = None
    env: dict[str, Scalar] | None = None
    description: str | None = None
    operator: bool = False
    produces: list[str] = []
    consumes: list[str] = []
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    # control flow (docs/control-flow.md)
    trigger: str | None = None
    skip_on_exit_code: list[int] | int | None = None
    retry_backoff: int | float | None = None
    retry_max_delay: Duration | None = None
    steps: "dict[str, StepModel] | None" = None  # a group
    uses: str | None = None  # a sub-flow file (relative to this flow file)


StepModel.model_rebuild()  # resolve the recursive ``steps:`` annotation


class ChannelModel(_Model):
    schema_: dict[str, Any] | str | None = Field(default=None, alias="schema")
    transport: Literal["local", "kafka"] = "local"
    location: str | None = None


class FlowModel(_Model):
    flowc: int
    name: str
    description: str | None = None
    tags: list[str] = []
    owner: str | None = None
    params: dict[str, ParamModel] = {}
    defaults: DefaultsModel = DefaultsModel()
    schedule: ScheduleModel | None = None
    secrets: dict[str, SecretModel] = {}
    environments: dict[str, EnvironmentModel] = {}
    stacks: dict[str, dict[str, ComponentSettingsModel]] = {}
    components: dict[str, CustomComponentModel] = {}
    plugins: dict[str, PluginModel] = {}
    steps: dict[str, StepModel] = {}
    integration_framework: dict[str, Any] | None = None
    config: dict[str, Any] = {}
    search_paths: list[str] = []
    functions: list[str] | FunctionsModel = []
    final: list[str] = []
    channels: dict[str, ChannelModel] = {}
    finally_: dict[str, StepModel] = Field(default={}, alias="finally")
    outputs: dict[str, Any] = {}
    # layer sections of the integration framework (raw data, keyed by layer name); private so
    # that a ``layers:`` key in a flow file is an unknown key like any other
    _layers: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def layers(self) -> dict[str, Any]:
        return self._layers


TOP_KEYS = tuple(f.alias or n for n, f in FlowModel.model_fields.items())


def layer_names(tree: Any) -> list[str]:
    """Every layer name in an ``integration_framework`` tree (depth-first, written order)."""
    out: list[str] = []

    def walk(t: Any) -> None:
        if isinstance(t, dict):
            for k, v in t.items():
                if k not in out:
                    out.append(k)
                walk(v)

    walk(tree)
    return out


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validate(doc: "Doc") -> FlowModel:
    """Validate ``doc.data`` against the models; raise FlowcError with every located problem."""
    from pydantic import ValidationError

    data = dict(doc.data)
    tree = data.get("integration_framework")
    names = layer_names(tree if isinstance(tree, dict) else DEFAULT_LAYERS)
    layers = {k: data.pop(k) for k in list(data) if k in names and k not in TOP_KEYS}
    col = Collector()
    if isinstance(data.get("components"), list):
        data["components"] = _components_from_list(doc, data["components"], col)
    try:
        model = FlowModel.model_validate(data)
    except ValidationError as e:
        _report(e, doc, col, names)
        col.raise_if_any()
        raise  # pragma: no cover
    col.raise_if_any()
    model._layers = layers
    return model


def _components_from_list(doc: "Doc", items: list[Any], col: Collector) -> dict[str, Any]:
    """flowyml's list form of ``components:`` (``- {name: N, kind: K, class: C}``) as the
    mapping form ``{N: {kind: K, class: C}}``. Each item's locations are aliased under
    ``("components", N, ...)`` so that later errors point into the item. A ``zenml:`` item is
    refused (wrapping ZenML components is not supported)."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        at = ("components", i)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            col.error(
                doc.loc(at),
                f"'components[{i}]' needs a 'name'",
                "write - {name: NAME, kind: KIND, class: 'module:Class'}",
            )
            continue
        name = item["name"]
        if name in out:
            col.error(doc.loc((*at, "name")), f"component '{name}' is declared twice")
            continue
        if "zenml" in item:
            import importlib.util

            if importlib.util.find_spec("zenml") is None:
                col.error(
                    doc.key_loc((*at, "zenml")),
                    f"component '{name}': zenml: needs the 'zenml' package, which is not installed",
                    "pip install zenml, or declare a flowc component class: "
                    "{name: N, kind: KIND, class: 'module:Class'}",
                )
                continue
            item = {"class": f"zenml:{item['zenml']}", **item}  # wrapped by the registry
            item.pop("zenml")
            doc.value_locs[(*at, "class")] = doc.loc((*at, "zenml"))
        out[name] = {k: v for k, v in item.items() if k != "name"}
        for locs in (doc.value_locs, doc.key_locs, doc.scalar_cols):
            for path, value in list(locs.items()):
                if path[:2] == at and path[2:3] != ("name",):
                    locs[("components", name, *path[2:])] = value  # type: ignore[index]
        doc.key_locs[("components", name)] = doc.loc((*at, "name"))
    return out


def _report(e: Any, doc: "Doc", col: Collector, layer_names_: list[str]) -> None:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    order: list[tuple[Any, ...]] = []
    for err in e.errors(include_url=False):
        if err["type"] in ("extra_forbidden", "missing"):
            path = (*doc.data_path(err["loc"][:-1]), "\0", err["loc"][-1])
        else:
            path = doc.data_path(err["loc"])
        if path not in groups:
            groups[path] = []
            order.append(path)
        groups[path].append(err)
    for path in order:
        errs = groups[path]
        err = errs[0]
        t = err["type"]
        if t == "extra_forbidden":
            parent, key = path[:-2], path[-1]
            allowed = _allowed_keys(err["loc"][:-1])
            if parent == ():
                allowed = [*allowed, *layer_names_]
            where = f" in '{_dotted(parent)}'" if parent else ""
            hint = did_you_mean(str(key), allowed) or (
                f"allowed keys: {', '.join(allowed)}" if allowed else None
            )
            col.error(doc.key_loc((*parent, key)), f"unknown key '{key}'{where}", hint)
        elif t == "missing":
            parent, key = path[:-2], path[-1]
            where = f"'{_dotted(parent)}'" if parent else "the flow"
            loc = doc.key_loc(parent) if parent else Loc(doc.file, 1, 1)
            col.error(loc, f"{where} is missing required key '{key}'")
        else:
            words = []
            for x in errs:
                w = _TYPE_WORDS.get(x["type"])
                if x["type"] == "literal_error":
                    w = "one of " + x.get("ctx", {}).get("expected", "")
                if w is None:
                    w = x["msg"][0].lower() + x["msg"][1:]
                    w = w.removeprefix("input should be ")
                if w not in words:
                    words.append(w)
            got = _kind(err.get("input"))
            if isinstance(err.get("input"), str) and len(errs) == 1:
                got = repr(err["input"]) if len(err["input"]) < 40 else got
            col.error(doc.loc(path), f"'{_dotted(path)}' must be {' or '.join(words)}, not {got}")


def _allowed_keys(model_loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases) of the model at a pydantic error location."""
    import typing

    ann: Any = FlowModel
    for part in model_loc:
        ann = _strip_optional(ann)
        origin = typing.get_origin(ann)
        if origin is dict:
            ann = typing.get_args(ann)[1]  # ``part`` is a mapping key
        elif origin is list:
            ann = typing.get_args(ann)[0]
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            field = _field(ann, part)
            if field is None:
                return []
            ann = field.annotation
        else:
            return []
    model = _strip_optional(ann)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _strip_optional(ann: Any) -> Any:
    """``X | None`` -> ``X`` (the first non-None member that is a model, dict or list)."""
    import typing

    args = typing.get_args(ann)
    if args and typing.get_origin(ann) not in (dict, list):
        for a in args:
            if a is type(None):
                continue
            if (isinstance(a, type) and issubclass(a, BaseModel)) or typing.get_origin(a) in (
                dict,
                list,
            ):
                return a
    return ann


def _field(model: Any, part: Any) -> Any:
    for n, f in model.model_fields.items():
        if part in (n, f.alias):
            return f
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file (for editors); layer sections are allowed as objects."""
    schema = FlowModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flowc flow (DSL version 1)"
    for k in ("runner", "pipeline", "component"):
        schema["properties"][k] = {"type": "object", "description": f"integration layer '{k}'"}
    return schema
