"""The editor schema: the JSON Schema generated from the pydantic models
(:func:`flowc.compiler.schema.json_schema`) plus what an editor needs and the models do not say:
a description of every property (taken from the DSL reference, docs/dsl.md), ``flowc`` as const
1, patterns for names, durations, cron expressions and ``module:function`` references, typed
param defaults per declared type, ``$id`` and an example.

The models stay the single source of shape; this module only annotates their output, so
:data:`DESCRIPTIONS` must name every property (a test checks it).
"""

from __future__ import annotations

import copy
from typing import Any

SCHEMA_ID = "https://flowc.dev/schema/flow-1.json"

#: Names of flows, steps and params (the passes' NAME_RE).
NAME = r"^[a-z][a-z0-9_]*$"
#: ``500ms``, ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m`` (the passes' parse_duration).
DURATION = r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"
#: ``module:function`` or ``path/to/file.py:Class`` (the passes' RUN_RE / CLASS_RE).
CALLABLE = r"^[^\s:]+:[A-Za-z_][A-Za-z0-9_.]*$"


def _names(words: str) -> str:
    """``jan|Jan|JAN|...``: editors' regexes (ECMA 262) have no inline case flag."""
    return "|".join(f"{w}|{w.title()}|{w.upper()}" for w in words.split())


def _cron_field(value: str, names: str = "") -> str:
    atom = f"({value}{'|' + names if names else ''})"
    item = rf"(\*|{atom}(-{atom})?)(/[1-9][0-9]*)?"
    return rf"{item}(,{item})*"


#: Five crontab fields, each value within its field's range (minute 0-59, hour 0-23,
#: day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT).
CRON = (
    r"^\s*"
    + r"\s+".join(
        [
            _cron_field(r"[0-5]?[0-9]"),
            _cron_field(r"[01]?[0-9]|2[0-3]"),
            _cron_field(r"0?[1-9]|[12][0-9]|3[01]"),
            _cron_field(
                r"0?[1-9]|1[0-2]",
                _names("jan feb mar apr may jun jul aug sep oct nov dec"),
            ),
            _cron_field(r"[0-7]", _names("sun mon tue wed thu fri sat")),
        ]
    )
    + r"\s*$"
)

_DURATION_WORDS = "a duration: 500ms, 30s, 15m, 2h, 1d, 1h30m, or seconds as a number"

#: ``{definition: {property: description}}``; ``FlowModel`` is the document itself.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "FlowModel": {
        "flowc": "The DSL version; always 1.",
        "name": "The flow's name: lower case letters, digits and '_', starting with a letter.",
        "description": "What the flow does (shown in targets' UIs).",
        "tags": "Free-form labels, copied to the targets that have tags.",
        "owner": "Who owns the flow (Airflow's owner).",
        "params": "Typed run parameters, set with --param NAME=VALUE; read as ${params.NAME}.",
        "defaults": "Step settings that cascade into every step unless the step sets its own "
        "(resources and env merge key by key).",
        "schedule": "When the flow runs by itself: exactly one of cron, every, at.",
        "secrets": "Secrets by reference, per engine; a value is never read at compile time. "
        "Read as ${secrets.NAME}.",
        "environments": "Named overlays selected with -e NAME: params, defaults, stack, schedule.",
        "stacks": "Named sets of stack components (orchestrator, artifact_store, "
        "metadata_store, container_registry, ...), each with a type and its settings.",
        "components": "Extra stack component types by import path (module:Class or "
        "path/to/file.py:Class).",
        "plugins": "Plugins steps use at run time as ctx.plugins.NAME (mlflow, rabbitmq, "
        "celery, ...).",
        "steps": "The DAG: each key is a step name; order in the file does not matter.",
        "finally": "Exit handler: steps that run once after every other step, whatever "
        "happened; they may read ${run.status} and ${run.failed_steps}.",
        "outputs": "Flow outputs: name -> ${...} expression, evaluated after the run (KFP "
        "pipeline outputs; printed by flowc run).",
        "integration_framework": "Layers of an integration framework (lolpop): a tree of layer "
        "names; each layer's classes are configured in a top-level section of that name.",
        "config": "Free-form configuration handed to function modules and integrations "
        "(secrets as references).",
        "search_paths": "Folders (relative to the flow) added to the import path for run:, "
        "functions and components.",
        "functions": "Function modules (FlowerPower/Hamilton): modules whose functions become "
        "steps named after them.",
        "final": "Steps that run once after every other step, whatever happened (exit "
        "handlers).",
        "channels": "Typed streams between streaming operators (steps with operator: true).",
        "runner": "Integration layer 'runner' (default framework root): its classes and config.",
        "pipeline": "Integration layer 'pipeline': its classes and config.",
        "component": "Integration layer 'component': its classes and config.",
    },
    "ParamModel": {
        "type": "The param's type: str, int, float, bool, list or dict.",
        "default": "The value when none is given; must have the declared type.",
        "required": "A value must be given at run time (no default allowed then).",
        "description": "What the param means (shown in targets' UIs).",
        "enum": "The allowed values.",
        "min": "Smallest allowed value (int and float params).",
        "max": "Largest allowed value (int and float params).",
    },
    "ResourcesModel": {
        "cpu": 'CPU request, in cores or Kubernetes units ("1", "500m").',
        "memory": "Memory request in Kubernetes units (512Mi, 2Gi).",
        "gpu": "Number of GPUs.",
        "gpu_type": "GPU accelerator type (nvidia-tesla-t4, ...).",
    },
    "DefaultsModel": {
        "image": "Container image steps run in on container targets (python:3.11-slim).",
        "packages": "pip requirements a container target installs before the step starts "
        "(with a pinned flowc where the step runs through it); local runs use this environment.",
        "package_index": "The index (pip --index-url) the packages are installed from.",
        "retries": "How many times a failed step is retried.",
        "retry_delay": f"Wait between retries: {_DURATION_WORDS}.",
        "retry_backoff": "Multiplier of the wait between retries (>= 1): the wait before "
        "attempt n is retry_delay * retry_backoff**(n-2), capped by retry_max_delay.",
        "retry_max_delay": f"Longest wait between retries: {_DURATION_WORDS}.",
        "timeout": f"Longest a step may run before it is stopped: {_DURATION_WORDS}.",
        "resources": "CPU, memory and GPU requests.",
        "env": "Environment variables of the step's process.",
        "cache": "Skip a step whose inputs and code are unchanged (local runtime).",
        "replicas": "Parallel copies of each step; each sees FLOWC_REPLICA / FLOWC_REPLICAS.",
    },
    "ScheduleModel": {
        "cron": "A 5-field crontab: minute hour day-of-month month day-of-week.",
        "every": f"Run at this interval: {_DURATION_WORDS}.",
        "at": "Run once at this ISO 8601 instant (2027-01-01T00:00:00Z).",
        "timezone": "IANA time zone the schedule is read in (Europe/Berlin); default UTC.",
        "start": "First date (ISO 8601) the schedule may fire.",
        "end": "Last date (ISO 8601) the schedule may fire.",
        "catchup": "Run the intervals missed between start and now (Airflow's catchup).",
    },
    "K8sSecretModel": {
        "name": "Name of the Kubernetes Secret.",
        "key": "Key inside the Kubernetes Secret.",
    },
    "AirflowSecretModel": {
        "variable": "Name of the Airflow Variable holding the secret.",
        "connection": "Id of the Airflow Connection holding the secret.",
    },
    "VertexSecretModel": {
        "secret": "Secret Manager version " "(projects/P/secrets/S/versions/latest).",
    },
    "SecretModel": {
        "env": "Environment variable holding the secret (local runtime and generic engines).",
        "k8s": "A key of a Kubernetes Secret (k8s and KFP targets).",
        "airflow": "An Airflow Variable or Connection (airflow target).",
        "vertex": "A Google Secret Manager version (vertex target).",
    },
    "EnvironmentModel": {
        "description": "What the environment is for.",
        "params": "Param values of this environment (beaten by --param).",
        "defaults": "Step defaults of this environment, merged over the flow's defaults.",
        "stack": "The stack (a key of stacks:) this environment runs on.",
        "schedule": "The schedule in this environment (replaces the flow's).",
        "functions": "Function-module settings of this environment (its Hamilton config, "
        "merged per key over the flow's).",
    },
    "FunctionsModel": {
        "modules": "Python modules whose functions become steps (Hamilton's graph).",
        "config": "Hamilton driver config: decides @config.when and friends; also an input "
        "source.",
    },
    "EnvFunctionsModel": {
        "config": "Hamilton driver config of this environment, merged per key over the flow's.",
    },
    "ComponentSettingsModel": {
        "type": "The component type (local, sqlite, gcs, vertex, ...; see `flowc components "
        "list`); the other keys are its settings.",
    },
    "CustomComponentModel": {
        "kind": "The component kind: orchestrator, artifact_store, metadata_store, "
        "container_registry, ...",
        "class": "The class, as module:Class or path/to/file.py:Class.",
    },
    "PluginModel": {
        "type": "The plugin type (mlflow, rabbitmq, celery, ...; see `flowc plugins list`).",
        "enabled": "Initialize the plugin for runs (false keeps it declared but off).",
        "config": "The plugin's settings (secrets as ${secrets.NAME} references).",
        "health_timeout": f"Longest a health check may take (default 5s): {_DURATION_WORDS}.",
    },
    "StepModel": {
        "run": "The Python callable, module:function; its parameters come from with:.",
        "packages": "pip requirements a container target installs before the step starts "
        "(with a pinned flowc where the step runs through it); local runs use this environment.",
        "package_index": "The index (pip --index-url) the packages are installed from.",
        "log_level": "An operator's logger level (DEBUG, INFO, WARNING, ERROR, CRITICAL); "
        "else $LOG_LEVEL, else INFO.",
        "command": "A process to run instead of a callable (argv list, never a shell).",
        "with": "Arguments of the callable; values may reference ${params.X}, "
        "${steps.S.outputs.O}, ${secrets.X}, ${item}.",
        "outputs": "Names of the values the step returns: a dict keyed by these names, or "
        "the value itself for one name.",
        "after": "Steps this one runs after, without taking their outputs.",
        "foreach": "Fan-out: one instance per item of this list (or ${...} list); the item is "
        "${item}, outputs are gathered in order.",
        "when": "A condition (${...} expression); the step is skipped when it is false.",
        "retries": "How many times the step is retried when it fails.",
        "retry_delay": f"Wait between retries: {_DURATION_WORDS}.",
        "retry_backoff": "Multiplier of the wait between retries (>= 1): the wait before "
        "attempt n is retry_delay * retry_backoff**(n-2), capped by retry_max_delay.",
        "retry_max_delay": f"Longest wait between retries: {_DURATION_WORDS}.",
        "timeout": f"Longest the step may run before it is stopped: {_DURATION_WORDS}.",
        "resources": "CPU, memory and GPU requests of the step.",
        "cache": "Skip the step when its inputs and code are unchanged (local runtime).",
        "replicas": "Parallel copies of the step; each sees FLOWC_REPLICA / FLOWC_REPLICAS.",
        "image": "Container image of the step on container targets.",
        "env": "Environment variables of the step's process.",
        "description": "What the step does (shown in targets' UIs).",
        "operator": "A streaming operator: runs alongside the others, reading consumes: and "
        "writing produces: channels.",
        "produces": "Channels this operator writes.",
        "consumes": "Channels this operator reads.",
        "trigger": "When the step runs given its upstream states: all_success (default), "
        "all_done, one_failed, one_success, none_failed, none_failed_min_one_success, "
        "all_failed.",
        "skip_on_exit_code": "Exit codes (1..255) of a command step that mean 'skipped', "
        "not 'failed'.",
        "steps": "Makes this a group: its own steps (qualified GROUP.NAME); ${steps.NAME} "
        "inside means the group's own step first; outputs: maps the group's exports.",
        "uses": "Makes this a group from a sub-flow file (relative to this file); with: sets "
        "its params, its outputs: are the group's exports.",
    },
    "ChannelModel": {
        "schema": "The records' Avro schema (inline, or a path to an .avsc file).",
        "transport": "How records travel: local (files) or kafka.",
        "location": "Where the channel lives (a folder, or a Kafka host:port).",
    },
}

#: Properties that take a duration, per definition.
_DURATIONS = {
    "DefaultsModel": ("retry_delay", "timeout", "retry_max_delay"),
    "StepModel": ("retry_delay", "timeout", "retry_max_delay"),
    "ScheduleModel": ("every",),
    "PluginModel": ("health_timeout",),
}

_PARAM_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}

EXAMPLE = {
    "flowc": 1,
    "name": "quickstart",
    "params": {"data_path": {"type": "str", "default": "sales.csv"}},
    "defaults": {"retries": 1, "retry_delay": "1s"},
    "schedule": {"cron": "0 3 * * 1", "timezone": "Europe/Berlin"},
    "steps": {
        "load": {
            "run": "quickstart_steps:load",
            "with": {"path": "${params.data_path}"},
            "outputs": ["rows", "regions"],
        },
        "summarize": {
            "run": "quickstart_steps:summarize",
            "foreach": "${steps.load.outputs.regions}",
            "with": {"rows": "${steps.load.outputs.rows}", "region": "${item}"},
            "outputs": ["summary"],
        },
    },
}


def _string_branch(prop: dict[str, Any], **extra: Any) -> None:
    """Add ``extra`` to the string alternative of ``prop`` (or to ``prop`` when it is one)."""
    for sub in prop.get("anyOf", [prop]):
        if sub.get("type") == "string":
            sub.update(extra)


def _number_branches(prop: dict[str, Any], **extra: Any) -> None:
    for sub in prop.get("anyOf", [prop]):
        if sub.get("type") in ("integer", "number"):
            sub.update(extra)


def editor_schema(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The annotated schema (``base``: the models' schema, by default generated now)."""
    if base is None:
        from flowc.compiler.schema import json_schema

        base = json_schema()
    schema = copy.deepcopy(base)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for name, props in DESCRIPTIONS.items():
        target = schema if name == "FlowModel" else defs.get(name)
        if target is None:
            continue
        for key, text in props.items():
            if key in target.get("properties", {}):
                target["properties"][key]["description"] = text

    top = schema["properties"]
    top["flowc"] = {"const": 1, "description": DESCRIPTIONS["FlowModel"]["flowc"]}
    _string_branch(top["name"], pattern=NAME)
    for key in ("steps", "params", "finally"):
        top[key]["propertyNames"] = {"pattern": NAME}
    for model, keys in _DURATIONS.items():
        for key in keys:
            prop = defs[model]["properties"][key]
            _string_branch(prop, pattern=DURATION)
            _number_branches(prop, minimum=0)
    _string_branch(defs["ScheduleModel"]["properties"]["cron"], pattern=CRON)
    _string_branch(defs["StepModel"]["properties"]["run"], pattern=CALLABLE)
    _string_branch(defs["CustomComponentModel"]["properties"]["class"], pattern=CALLABLE)
    defs["ParamModel"]["allOf"] = [
        {
            "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
            "then": {"properties": {"default": {"type": [json_type, "null"]}}},
        }
        for t, json_type in _PARAM_TYPES.items()
    ]
    # rules across keys that the passes check and a schema can state too
    step = defs["StepModel"]
    step["not"] = {"required": ["run", "command"]}
    _string_branch(step["properties"]["foreach"], pattern=r"^\s*\$\{.*\}\s*$")
    defs["ParamModel"]["not"] = {
        "required": ["required", "default"],
        "properties": {"required": {"const": True}, "default": {"not": {"type": "null"}}},
    }
    defs["ScheduleModel"]["oneOf"] = [{"required": [k]} for k in ("cron", "every", "at")]
    for sub in top["integration_framework"].get("anyOf", [top["integration_framework"]]):
        if sub.get("type") == "object":
            sub["maxProperties"] = 1
    # without function modules every step names what it runs
    schema["if"] = {"not": {"required": ["functions"]}}
    schema["then"] = {
        "properties": {
            "steps": {
                "additionalProperties": {
                    "anyOf": [{"required": [k]} for k in ("run", "command", "steps", "uses")]
                }
            }
        }
    }
    schema["$id"] = SCHEMA_ID
    schema["description"] = (
        "A flowc flow file (DSL version 1): params, defaults, schedule, secrets, environments, "
        "stacks, plugins and steps. Reference: docs/dsl.md."
    )
    schema["examples"] = [EXAMPLE]
    return schema


def missing_descriptions(schema: dict[str, Any]) -> list[str]:
    """``definition.property`` for every property without a description (should be none)."""
    out = [f"FlowModel.{k}" for k, v in schema["properties"].items() if not v.get("description")]
    for name, d in sorted(schema.get("$defs", {}).items()):
        out += [
            f"{name}.{k}" for k, v in d.get("properties", {}).items() if not v.get("description")
        ]
    return out
