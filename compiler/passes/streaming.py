"""Pass 60: streaming operators (pypz) checked at compile time.

Runs after ``channels`` (40, which builds ``ir.channels`` with producers/consumers) and
``envrefs`` (58). Checks, each a located error:

* every channel has a valid Avro schema (``fastavro.parse_schema``; a JSON string is accepted
  and normalized to JSON data in the IR);
* transport/location consistency: ``kafka`` needs a ``location`` (bootstrap servers,
  ``host:port[,host:port...]`` when written literally);
* ports only on operator steps; an operator is a ``run:`` class (not a ``command``), has no
  ``outputs`` and no ``foreach``;
* the operator's own parameters: the class is imported (the flow file's folder is on the import
  path while it is; through :mod:`flowc.compiler.trust`: only from the project or installed
  packages, read from the source with imports off) and its constructor signature read: a ``with:`` key the constructor does not
  take is an error; a required constructor parameter must come from ``with:`` or a pipeline param
  of the same name (the pipeline -> operator cascade); a literal of the wrong annotated type is an
  error. A class whose module cannot be found at compile time is checked at run time instead.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

from flowc.compiler import trust
from flowc.compiler.errors import FlowcError, did_you_mean
from flowc.compiler.ir import Lit, Ref
from flowc.compiler.passes import PassContext

ORDER = 60

_HOSTPORT = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}\Z")
_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
}
_PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def run(ctx: PassContext) -> None:
    _check_channels(ctx)
    for name, step in list(ctx.steps.items()):
        path = ctx.step_paths.get(name, ("steps", name))
        if not step.operator:
            for port in ("produces", "consumes", "log_level"):
                if getattr(step, port):
                    ctx.errors.error(
                        ctx.key_loc(*path, port),
                        f"step '{name}' has '{port}' but is not an operator",
                        "add 'operator: true' ("
                        + (
                            "log_level sets an operator's logger level"
                            if port == "log_level"
                            else "ports belong to long-running operator steps"
                        )
                        + ")",
                    )
            continue
        if step.kind != "run" or step.is_integration:
            ctx.errors.error(
                ctx.key_loc(*path),
                f"operator step '{name}' needs 'run: module:Class' (an operator class)",
            )
            continue
        if step.outputs:
            ctx.errors.error(
                ctx.key_loc(*path, "outputs"),
                f"operator step '{name}' cannot declare outputs",
                "operators send records on channels: use 'produces: [CHANNEL]'",
            )
        if step.foreach is not None:
            ctx.errors.error(
                ctx.key_loc(*path, "foreach"),
                f"operator step '{name}' cannot use foreach",
                "use 'replicas: N' to run several copies of an operator",
            )
        _check_operator_params(ctx, name, step, path)


def _check_channels(ctx: PassContext) -> None:
    for name, c in list(ctx.channels.items()):
        path = ("channels", name)
        schema = c.schema
        if schema is None:
            ctx.errors.error(
                ctx.key_loc(*path),
                f"channel '{name}' needs an Avro 'schema'",
                "e.g. schema: {type: record, name: Rec, fields: [{name: text, type: string}]}",
            )
        else:
            if isinstance(schema, str) and schema.strip()[:1] in ("{", "["):
                try:
                    schema = json.loads(schema)
                except ValueError as e:
                    ctx.errors.error(
                        ctx.loc(*path, "schema"), f"channel '{name}': schema is not JSON: {e}"
                    )
                    schema = None
            if schema is not None:
                problem = _avro_problem(schema)
                if problem:
                    ctx.errors.error(
                        ctx.loc(*path, "schema"),
                        f"channel '{name}': invalid Avro schema: {problem}",
                        "see https://avro.apache.org/docs/1.11.1/specification/",
                    )
                elif schema is not c.schema:
                    ctx.channels[name] = dataclasses.replace(c, schema=schema)
        if c.transport == "kafka":
            if c.location is None:
                ctx.errors.error(
                    ctx.key_loc(*path),
                    f"channel '{name}' uses transport kafka but has no 'location'",
                    'set location: to the bootstrap servers, e.g. "${params.kafka}" or '
                    "broker:9092",
                )
            elif isinstance(c.location, Lit):
                bad = [
                    s
                    for s in str(c.location.value).split(",")
                    if not _HOSTPORT.match(s.strip().removeprefix("PLAINTEXT://"))
                ]
                if bad:
                    ctx.errors.error(
                        ctx.loc(*path, "location"),
                        f"channel '{name}': kafka location '{bad[0]}' is not host:port",
                        "bootstrap servers are written host:port[,host:port...]",
                    )


def _avro_problem(schema: Any) -> str | None:
    try:
        import fastavro
    except ImportError:
        return "cannot check it: fastavro is missing (pip install 'flowc[streaming]')"
    try:
        fastavro.parse_schema(schema)
    except Exception as e:  # fastavro raises several exception types
        return str(e) or type(e).__name__
    return None


def _load_class(ctx: PassContext, name: str, ref: str, loc: Any) -> type | None:
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = trust.import_module(module_name, ctx.file, f"operator step '{name}'")
    except FlowcError as e:  # outside the project (trust rule), or unreadable source
        ctx.errors.extend(trust.relocated(e, loc))
        return None
    except ModuleNotFoundError as e:
        if e.name and module_name.split(".")[0] == e.name.split(".")[0]:
            return None  # not importable here (e.g. only inside the image): run-time check
        ctx.errors.error(loc, f"operator step '{name}': importing {module_name} failed: {e}")
        return None
    except Exception as e:
        ctx.errors.error(
            loc,
            f"operator step '{name}': importing {module_name} failed: " f"{type(e).__name__}: {e}",
        )
        return None
    for part in attr.split("."):
        nxt = getattr(obj, part, None)
        if nxt is None:
            names = [n for n in dir(obj) if not n.startswith("_")]
            ctx.errors.error(
                loc,
                f"operator step '{name}': {module_name} has no '{part}'",
                did_you_mean(part, names),
            )
            return None
        obj = nxt
    if not isinstance(obj, type):
        ctx.errors.error(
            loc,
            f"operator step '{name}': '{ref}' is not a class",
            "an operator is a class with on_init / on_running / on_shutdown hooks",
        )
        return None
    return obj


def _check_operator_params(ctx: PassContext, name: str, step: Any, path: tuple[Any, ...]) -> None:
    cls = _load_class(ctx, name, step.run, ctx.loc(*path, "run"))
    if cls is None:
        return
    from flowc.runtime.operator_base import operator_signature

    named, aliases, var_kw = operator_signature(cls)  # constructor + pypz-style declared params
    given = {aliases.get(k, k): v for k, v in step.with_}
    for key, expr in step.with_:
        if key in aliases:  # a parameter's alt_name (pypz: camelCase alias)
            _check_type(ctx, name, key, named[aliases[key]], expr, ctx.loc(*path, "with", key))
            continue
        if key not in named:
            if not var_kw:
                ctx.errors.error(
                    ctx.key_loc(*path, "with", key),
                    f"operator '{cls.__name__}' of step '{name}' takes no parameter '{key}'",
                    did_you_mean(key, named) or f"its parameters: {', '.join(named) or '(none)'}",
                )
            continue
        _check_type(ctx, name, key, named[key], expr, ctx.loc(*path, "with", key))
    for pname, p in named.items():
        if p.default is not p.empty or pname in given:
            continue
        if pname in ctx.params:  # pipeline -> operator cascade
            _check_param_type(ctx, name, pname, p, ctx.key_loc(*path))
            continue
        ctx.errors.error(
            ctx.key_loc(*path),
            f"operator step '{name}' misses required parameter '{pname}' of {cls.__name__}",
            f"add it under 'with:' or declare a pipeline param named '{pname}'",
        )


def _annotation(p: inspect.Parameter) -> tuple[type, ...] | None:
    ann = p.annotation
    if isinstance(ann, str):  # from __future__ import annotations
        ann = {
            "int": int,
            "float": float,
            "str": str,
            "bool": bool,
            "list": list,
            "dict": dict,
        }.get(ann.split("[")[0].strip())
    return _SIMPLE_TYPES.get(ann)


def _check_type(
    ctx: PassContext, step: str, key: str, p: inspect.Parameter, expr: Any, loc: Any
) -> None:
    want = _annotation(p)
    if want is None:
        return
    got: type | None = None
    if isinstance(expr, Lit) and expr.value is not None:
        got = type(expr.value)
    elif isinstance(expr, Ref) and expr.root == "params" and len(expr.path) == 1:
        param = ctx.params.get(expr.path[0])
        got = _PARAM_TYPES.get(param.type) if param is not None else None
    if got is None:
        return
    if got not in want:
        ctx.errors.error(
            loc,
            f"operator step '{step}': parameter '{key}' expects {want[-1].__name__}, "
            f"got {got.__name__}",
        )


def _check_param_type(
    ctx: PassContext, step: str, key: str, p: inspect.Parameter, loc: Any
) -> None:
    _check_type(ctx, step, key, p, Ref("params", (key,)), loc)
