"""The KFP v2 target: the IR -> one ``pipeline.yaml`` holding a PipelineSpec (and, when steps need
Kubernetes settings such as secrets or timeouts, a second YAML document with the kfp-kubernetes
platform spec), emitted straight from the IR the way kfp's own compiler lays it out.

:func:`build_pipeline_spec` is shared with the Vertex target. Mapping (docs/kfp.md):

- every step is one task in the root DAG (named in kebab case); ``foreach`` / ``replicas`` wrap it
  in ``for-loop-<task>`` / ``for-replica-<task>`` ParallelFor DAGs (outputs collected as lists) and
  ``when`` (its own and every upstream step's, since a skipped step skips its downstream) wraps it
  in a ``condition-<task>`` DAG with a CEL ``triggerPolicy.condition``;
- ``run:`` steps are lightweight Python components (``kfp.dsl.executor_main`` with a generated
  one-line function calling :func:`flowc.runtime.kfp.run_component`); ``command:`` steps are
  container components with ``{{$.inputs.parameters[...]}}`` placeholders;
- step outputs cross as typed parameters where the type is known: a foreach source is a LIST,
  a value compared in a ``when`` gets the literal's type, else the type of the callable's return
  annotation (``Step.output_types``: NUMBER_INTEGER, NUMBER_DOUBLE, STRING, BOOLEAN, LIST,
  STRUCT), so the KFP UI and plain-KFP consumers see values; other outputs are STRING
  parameters holding JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flowc import __version__
from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.ir import (
    BinOp,
    Expr,
    Format,
    ListOf,
    Lit,
    Not,
    Pipeline,
    Ref,
    Step,
)
from flowc.targets.base import (
    BaseTarget,
    Capabilities,
    dns1123,
    k8s_secret,
    kebab,
    py_literal,
    seconds_text,
)
from flowc.targets.build_cache import BuildCache
from flowc.targets.yaml_writer import dump as dump_yaml

KFP_CAPABILITIES = Capabilities(
    schedule="none",  # a PipelineSpec has no schedule: a recurring run is made apart
    foreach_over_loop=False,  # a ParallelFor's collected output is not a loop source in KFP
    run_values=frozenset({"id", "date"}),  # the job's placeholders
    triggers=frozenset({"all_success", "all_done"}),  # triggerPolicy: ALL_UPSTREAM_TASKS_*
)
"""What a KFP PipelineSpec can express (the vertex target's table starts from it)."""

RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
CREATE_TIME_PLACEHOLDER = "{{$.pipeline_job_create_time_utc}}"
SCHEDULE_TIME_PLACEHOLDER = "{{$.pipeline_job_schedule_time_utc}}"
"""kfp.dsl's PIPELINE_JOB_ID / _CREATE_TIME_UTC / _SCHEDULE_TIME_UTC placeholders: ``${run.id}``
and ``${run.date}`` reach a step as task inputs the backend fills in."""

SCHEMA_VERSION = "2.1.0"
EXECUTOR_MODULE = "kfp.dsl.executor_main"

PARAM_TYPES = {
    "str": "STRING",
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "bool": "BOOLEAN",
    "list": "LIST",
    "dict": "STRUCT",
}
PY_TYPES = {
    "STRING": "str",
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
}

# kfp's lightweight-component launcher (kfp.dsl.component_factory): the program text is written
# to a file and kfp.dsl.executor_main runs the named function in it. When the image has no kfp,
# flowc's stdlib executor (python -m flowc.runtime.kfp) does the same, so an image needs only
# flowc and the step's code.
_LAUNCHER = (
    "program_path=$(mktemp -d)\n\n"
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "if python3 -c 'import importlib.util, sys; "
    'sys.exit(importlib.util.find_spec("kfp") is None)\' 2>/dev/null; then\n'
    "  _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    ' --component_module_path "$program_path/ephemeral_component.py" "$@"\n'
    "else\n"
    '  python3 -m flowc.runtime.kfp --component_module_path "$program_path/ephemeral_component.py"'
    ' "$@"\n'
    "fi\n"
)


# ---------------------------------------------------------------------------------------------
# Value kinds
# ---------------------------------------------------------------------------------------------


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "NUMBER_INTEGER"
    if isinstance(value, float):
        return "NUMBER_DOUBLE"
    if isinstance(value, list):
        return "LIST"
    if isinstance(value, dict):
        return "STRUCT"
    return "STRING"


def _holds_null(value: Any) -> bool:
    """Whether a literal is or holds a null (a KFP constant is a protobuf Value that KFP
    runners reject when it is a null, at any depth)."""
    if value is None:
        return True
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    return False


def _common_type(values: Iterable[Any]) -> str:
    kinds = {_value_type(v) for v in values}
    if kinds == {"NUMBER_INTEGER", "NUMBER_DOUBLE"}:
        return "NUMBER_DOUBLE"
    return kinds.pop() if len(kinds) == 1 else "STRING"


def _err(loc: Loc | None, message: str, hint: str | None = None) -> FlowcError:
    return FlowcError.at(loc, message, hint)


@dataclass
class _Chan:
    """A value visible in the root DAG: a pipeline parameter or a task output."""

    name: str  # the pipelinechannel--... name used inside sub-DAGs and conditions
    type: str  # KFP parameter type
    source: dict[str, Any]  # how a root-level task reads it
    producer: str | None = None  # root task producing it
    decode: Any = "raw"  # how the flowc glue turns it back into the flowc value
    item_decode: Any = "raw"  # decode of one element, when iterated by a foreach


@dataclass
class _Binding:
    """One input of a leaf component."""

    name: str
    path: list[str]
    type: str
    chan: _Chan | None = None  # where it comes from (None: a constant)
    constant: Any = None
    decode: Any = "raw"


@dataclass
class _Node:
    """A task being wrapped: its spec, the channels it needs from its parent, its outputs."""

    task: str
    spec: dict[str, Any]
    needs: dict[str, _Chan] = field(default_factory=dict)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (output key, KFP type)


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, ir: Pipeline) -> None:
        self.ir = ir
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.k8s: dict[str, Any] = {}
        self.root_tasks: dict[str, Any] = {}
        self.names: dict[str, Step] = {}
        self.task_of: dict[str, str] = {}
        self.outer_of: dict[str, str] = {}
        self.out_chan: dict[tuple[str, str], _Chan] = {}
        self.enc: dict[tuple[str, str], str] = {}
        self.conds: dict[str, list[Expr]] = {}
        self.plan = ir.to_data()
        self._leaf_outputs: dict[str, str] = {}  # output -> KFP key of the last leaf built
        self._items_src: _Chan | None = None  # the foreach items channel of the step being built
        self._items_bind: _Binding | None = None  # the foreach list, as an input of its leaf

    # -- names -----------------------------------------------------------------------------

    def _claim(self, name: str, step: Step) -> str:
        other = self.names.get(name)
        if other is not None and other.name != step.name:
            raise _err(
                step.loc,
                f"step '{step.name}' and step '{other.name}' both become KFP name '{name}'",
                "KFP names turn '_' into '-'; rename one of the steps",
            )
        self.names[name] = step
        return name

    def _names(self) -> None:
        for s in self.ir.steps:
            self.task_of[s.name] = self._claim(dns1123(kebab(s.name)), s)
        for s in self.ir.steps:
            t = self.task_of[s.name]
            if s.foreach is not None:
                self._claim(f"for-loop-{t}", s)
            if s.replicas > 1:
                self._claim(f"for-replica-{t}", s)
            if self._when_list(s):
                self._claim(f"condition-{t}", s)

    # -- effective conditions: a skipped step skips its downstream ---------------------------

    def _when_list(self, s: Step) -> list[Expr]:
        if s.name in self.conds:
            return self.conds[s.name]
        out: list[Expr] = []
        for up in s.upstream:
            for e in self._when_list(self.ir.step(up)):
                if e not in out:
                    out.append(e)
        if s.when is not None:
            for r in s.when.refs():
                if r.root == "item":
                    raise _err(
                        r.loc or s.loc,
                        f"step '{s.name}': a when that uses ${{item}} cannot compile to KFP",
                        "KFP evaluates a step's condition once, outside its ParallelFor",
                    )
            if s.when not in out:
                out.append(s.when)
        self.conds[s.name] = out
        return out

    # -- output encodings ----------------------------------------------------------------------

    def _demand(self, ref: Ref, kind: str, loc: Loc | None) -> None:
        key = (ref.step or "", ref.output or "")
        producer = self.ir.step(key[0])
        looped = producer.foreach is not None or producer.replicas > 1
        if looped:
            if kind in ("json", "text"):
                kind = "text" if kind == "text" else self.enc.get(key, "json")
            elif kind == "json-list":
                kind = self.enc.get(key, "json")  # collected into a list anyway
            else:
                raise _err(
                    ref.loc or loc,
                    f"${{{ref.dotted}}} is a list (step '{producer.name}' runs per item or "
                    f"replica) and cannot be compared as {kind} in a KFP condition",
                )
        have = self.enc.get(key)
        if have is None or have == "json":
            self.enc[key] = kind
        elif have != kind and kind != "json":
            raise _err(
                ref.loc or loc,
                f"${{{ref.dotted}}} is used both as {have} and as {kind}; KFP needs one type",
                "compare it with literals of one type",
            )

    def _infer(self) -> None:
        for s in self.ir.steps:
            for o in s.outputs:
                self.enc.setdefault((s.name, o), "json")
        for s in self.ir.steps:
            if isinstance(s.foreach, Ref) and s.foreach.root == "steps":
                self._demand(s.foreach, "json-list", s.loc)
            if s.when is not None:
                self._infer_when(s.when, s.loc, "BOOLEAN")
            if s.kind == "command" and not s.outputs:  # a container: refs become text
                for a in s.command or ():
                    for r in a.refs():
                        if r.root == "steps":
                            self._demand(r, "text", s.loc)
        for s in self.ir.steps:  # what no consumer decided: the type the callable declares
            for o, typ in s.output_types:
                if self.enc.get((s.name, o)) == "json":
                    self.enc[(s.name, o)] = PARAM_TYPES[typ]

    def _infer_when(self, e: Expr, loc: Loc | None, want: str | None) -> None:
        if isinstance(e, Ref):
            if e.root == "steps":
                if want is None:
                    raise _err(
                        e.loc or loc,
                        f"cannot tell the type of ${{{e.dotted}}} in this condition for KFP",
                        "compare it with a literal (number, 'string', true/false)",
                    )
                self._demand(e, want, loc)
        elif isinstance(e, Not):
            self._infer_when(e.operand, loc, "BOOLEAN")
        elif isinstance(e, BinOp):
            if e.op in ("and", "or"):
                self._infer_when(e.left, loc, "BOOLEAN")
                self._infer_when(e.right, loc, "BOOLEAN")
                return
            if e.op in ("in", "not in"):
                right = self._static_type(e.right)
                elem = None
                if isinstance(e.right, Lit) and isinstance(e.right.value, list) and e.right.value:
                    elem = _common_type(e.right.value)
                self._infer_when(e.left, loc, elem)
                self._infer_when(e.right, loc, right or "LIST")
                return
            lt, rt = self._static_type(e.left), self._static_type(e.right)
            self._infer_when(e.left, loc, rt)
            self._infer_when(e.right, loc, lt)

    def _static_type(self, e: Expr) -> str | None:
        if isinstance(e, Lit):
            if e.value is None:
                return None
            t = _value_type(e.value)
            return "NUMBER_DOUBLE" if t == "NUMBER_INTEGER" else t
        if isinstance(e, Ref) and e.root == "params" and len(e.path) == 1:
            t = PARAM_TYPES[self.ir.param(e.path[0]).type]
            return "NUMBER_DOUBLE" if t == "NUMBER_INTEGER" else t
        if isinstance(e, (Not, BinOp)):
            return "BOOLEAN"
        if isinstance(e, Format):
            return "STRING"
        return None

    # -- channels --------------------------------------------------------------------------------

    def _param_chan(self, name: str) -> _Chan:
        p = self.ir.param(name)
        t = PARAM_TYPES[p.type]
        return _Chan(
            f"pipelinechannel--{name}",
            t,
            {"componentInputParameter": name},
            decode="int" if t == "NUMBER_INTEGER" else "raw",
        )

    def _chan(self, ref: Ref, loc: Loc | None) -> _Chan:
        if ref.root == "params":
            return self._param_chan(ref.path[0])
        if ref.root == "steps":
            key = (ref.step or "", ref.output or "")
            chan = self.out_chan.get(key)
            if chan is None:  # pragma: no cover - the IR is topologically sorted
                raise _err(ref.loc or loc, f"${{{ref.dotted}}} is not produced upstream")
            return chan
        raise _err(ref.loc or loc, f"${{{ref.dotted}}} cannot be passed to a KFP task")

    # -- leaf components ---------------------------------------------------------------------

    def _bindings(
        self, s: Step, item_chan: _Chan | None, replica_chan: _Chan | None
    ) -> list[_Binding]:
        out: list[_Binding] = []
        used: set[str] = set()

        def add(b: _Binding) -> None:
            if b.name not in used:
                used.add(b.name)
                out.append(b)

        def base(r: Ref) -> _Binding | None:
            if r.root == "params":
                c = self._chan(Ref("params", r.path[:1]), s.loc)
                return _Binding(
                    f"_p_{r.path[0]}", ["params", r.path[0]], c.type, c, decode=c.decode
                )
            if r.root == "steps":
                c = self._chan(Ref("steps", r.path[:3], loc=r.loc), s.loc)
                name = f"_s_{r.path[0]}_{r.path[2]}"
                return _Binding(
                    name, ["steps", r.path[0], "outputs", r.path[2]], c.type, c, decode=c.decode
                )
            if r.root == "item":
                assert item_chan is not None
                return _Binding(
                    "_item", ["item"], item_chan.type, item_chan, decode=item_chan.decode
                )
            if r.root == "run" and r.path[:1] == ("id",):
                return _Binding("_run_id", ["run", "id"], "STRING", None, RUN_ID_PLACEHOLDER)
            if r.root == "run" and r.path[:1] == ("date",):
                # the logical date: the scheduled time of a scheduled run, else its creation
                when = SCHEDULE_TIME_PLACEHOLDER if self.ir.schedule else CREATE_TIME_PLACEHOLDER
                return _Binding("_run_date", ["run", "date"], "STRING", None, when)
            if r.root == "run":  # refused by check_supported (KFP_CAPABILITIES.run_values)
                raise _err(r.loc or s.loc, f"${{{r.dotted}}} is not available on KFP")
            return None  # secrets (environment), flow.name (in the plan)

        if s.kind == "run":
            for k, e in s.with_:
                if isinstance(e, Lit):
                    # a literal holding a null stays only in the executor's plan (which the
                    # glue reads): KFP runners reject a null constant at any depth
                    if not _holds_null(e.value):
                        add(_Binding(k, ["with", k], _value_type(e.value), None, e.value))
                    continue
                if isinstance(e, Ref) and (
                    (e.root == "params" and len(e.path) == 1)
                    or (e.root == "steps" and len(e.path) == 3)
                    or (e.root == "item" and not e.path)
                ):
                    b = base(e)
                    if b is not None:
                        b.name = k
                        add(b)
                        continue
                for r in e.refs():
                    b = base(r)
                    if b is not None:
                        add(b)
        for _k, e in s.env:
            for r in e.refs():
                b = base(r)
                if b is not None:
                    add(b)
        if s.kind == "command":
            for a in s.command or ():
                for r in a.refs():
                    b = base(r)
                    if b is not None:
                        add(b)
        if s.kind == "run" or s.outputs:
            # ctx.params holds every param at its run-time value, as under `flowc run`, so every
            # param reaches every executor running through the flowc glue
            bound = {b.path[1] for b in out if b.path[0] == "params"}
            for p in self.ir.params:
                if p.name not in bound:
                    b = base(Ref("params", (p.name,)))
                    if b is not None:
                        add(b)
        if item_chan is not None and (s.kind == "run" or s.outputs):
            # ctx.item and ctx.index: the item (also when no argument uses it) and the whole
            # list, in which the glue finds the item's position
            if not any(b.path == ["item"] for b in out):
                add(_Binding("_item", ["item"], item_chan.type, item_chan, decode=item_chan.decode))
            if self._items_bind is not None:
                add(self._items_bind)
        if replica_chan is not None:
            add(_Binding("_replica", ["replica"], "NUMBER_INTEGER", replica_chan, decode="int"))
        return out

    def _placeholder_text(self, e: Expr, names: dict[tuple[str, ...], str], s: Step) -> str:
        def ph(r: Ref) -> str:
            name = names.get((r.root, *r.path))
            if name is None:
                raise _err(r.loc or s.loc, f"${{{r.dotted}}} cannot be used in a KFP command")
            return "{{$.inputs.parameters['" + name + "']}}"

        if isinstance(e, Lit):
            v = e.value
            return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        if isinstance(e, Ref):
            if e.root == "flow":
                return self.ir.name
            if e.root == "secrets":
                raise _err(
                    e.loc or s.loc,
                    f"${{{e.dotted}}} in a KFP command would put the secret on the command line",
                    "read it from the environment in the process instead",
                )
            return ph(e)
        if isinstance(e, Format):
            return "".join(
                p if isinstance(p, str) else self._placeholder_text(p, names, s) for p in e.parts
            )
        raise _err(s.loc, f"step '{s.name}': this command argument cannot compile to KFP")

    def _leaf(self, s: Step, item_chan: _Chan | None, replica_chan: _Chan | None) -> _Node:
        task = self.task_of[s.name]
        comp = f"comp-{task}"
        label = f"exec-{task}"
        bindings = self._bindings(s, item_chan, replica_chan)
        single = len(s.outputs) == 1
        looped = s.foreach is not None or s.replicas > 1
        outputs: list[tuple[str, str, str]] = []
        for o in s.outputs:
            enc = self.enc[(s.name, o)]
            if looped and enc not in ("json", "text"):
                enc = "json"
            outputs.append((o, "Output" if single else o, enc))

        comp_spec: dict[str, Any] = {"executorLabel": label}
        if bindings:
            comp_spec["inputDefinitions"] = {
                "parameters": {b.name: {"parameterType": b.type} for b in bindings}
            }
        if outputs:
            comp_spec["outputDefinitions"] = {
                "parameters": {key: {"parameterType": _enc_type(enc)} for _o, key, enc in outputs}
            }
        self.components[comp] = comp_spec

        container: dict[str, Any] = {"image": s.image or "python:3.11-slim"}
        if s.kind == "run" or s.outputs:  # command steps with outputs run through flowc
            container["command"] = ["sh", "-ec", _LAUNCHER, self._program(s, bindings, outputs)]
            container["args"] = [
                "--executor_input",
                "{{$}}",
                "--function_to_execute",
                _py_name(s.name),
            ]
        else:
            names = {self._norm_key(b): b.name for b in bindings}
            argv = [self._placeholder_text(a, names, s) for a in s.command or ()]
            container["command"] = argv[:1]
            if argv[1:]:
                container["args"] = argv[1:]
        env = []
        secret_env: list[tuple[str, str]] = []  # (env var, secret): kfp-kubernetes secretAsEnv
        for k, e in s.env:
            if isinstance(e, Lit):
                v = e.value
                env.append({"name": k, "value": v if isinstance(v, str) else json.dumps(v)})
            elif isinstance(e, Ref) and e.root == "secrets" and len(e.path) == 1:
                secret_env.append((k, e.path[0]))
            elif s.kind == "command" and not s.outputs:
                raise _err(
                    s.loc,
                    f"step '{s.name}': env '{k}' uses an expression a KFP container cannot evaluate",
                )
        if env:
            container["env"] = env
        res = _resources(s)
        if res:
            container["resources"] = res
        self.executors[label] = {"container": container}
        self._platform(s, label, secret_env)

        spec: dict[str, Any] = {
            "cachingOptions": {"enableCache": True} if s.cache else {},
            "componentRef": {"name": comp},
            "taskInfo": {"name": s.name},
        }
        needs: dict[str, _Chan] = {}
        params: dict[str, Any] = {}
        for b in bindings:
            if b.chan is None:
                params[b.name] = {"runtimeValue": {"constant": b.constant}}
            else:
                needs[b.chan.name] = b.chan
                params[b.name] = {"componentInputParameter": b.chan.name}
        if params:
            spec["inputs"] = {"parameters": params}
        if s.retries > 0:
            # always all four fields, as kfp's compiler writes them (a missing backoffDuration is
            # read as kfp's default, a missing factor as 2): a fixed delay, 0s included, as under
            # `flowc run`; the longest delay is the delay itself (kfp's default 1h when 0s)
            delay = seconds_text(s.retry_delay)
            spec["retryPolicy"] = {
                "backoffDuration": delay,
                "backoffFactor": 1.0,
                "backoffMaxDuration": delay if s.retry_delay else "3600s",
                "maxRetryCount": s.retries,
            }
        node = _Node(task, spec, needs)
        node.outputs = [(key, _enc_type(enc)) for _o, key, enc in outputs]
        self._leaf_outputs = {o: key for o, key, _enc in outputs}
        return node

    @staticmethod
    def _norm_key(b: _Binding) -> tuple[str, ...]:
        if b.path[0] == "steps":
            return ("steps", b.path[1], "outputs", b.path[3])
        return tuple(b.path)

    def _program(
        self, s: Step, bindings: list[_Binding], outputs: list[tuple[str, str, str]]
    ) -> str:
        plan = self.plan
        sub: dict[str, Any] = {
            "plan_version": plan["plan_version"],
            "name": plan["name"],
            "params": {k: v for k, v in plan["params"].items()},
            "secrets": {k: v for k, v in plan["secrets"].items() if k in s.secrets},
            "steps": {s.name: plan["steps"][s.name]},
            "order": [s.name],
            "plugins": plan["plugins"],
            "integrations": plan["integrations"],
        }
        spec = {
            "plan": sub,
            "step": s.name,
            "inputs": [[b.name, b.path, b.decode] for b in bindings],
            "outputs": [[o, key, enc] for o, key, enc in outputs],
        }
        return _program_text(self.ir.name, s.name, spec, bindings, outputs)

    def _platform(self, s: Step, label: str, secret_env: list[tuple[str, str]] = ()) -> None:
        """Timeout and secrets of one executor. Every secret the step reads is exposed under its
        own env name (how flowc.runtime reads it); ``env: {VAR: "${secrets.x}"}`` adds VAR."""
        cfg: dict[str, Any] = {}
        if s.timeout:
            cfg["activeDeadlineSeconds"] = max(1, int(-(-s.timeout // 1)))
        envs = []
        for name in s.secrets:
            var, secret, key = k8s_secret(self.ir, name)  # as the k8s target
            extra = sorted({k for k, sec in secret_env if sec == name and k != var})
            envs.append(
                {
                    "keyToEnv": [{"envVar": v, "secretKey": key} for v in [var, *extra]],
                    "optional": False,
                    "secretName": secret,
                    "secretNameParameter": {"runtimeValue": {"constant": secret}},
                }
            )
        if envs:
            cfg["secretAsEnv"] = envs
        if cfg:
            self.k8s[label] = cfg

    # -- wrappers ------------------------------------------------------------------------------

    def _wrap(
        self,
        inner: _Node,
        name: str,
        *,
        extra: dict[str, _Chan],
        loop: bool,
        local: _Chan | None = None,
    ) -> _Node:
        """A DAG component ``comp-<name>`` running ``inner``; returns the task that runs it.
        ``local`` is the loop item: an input of the component that its parent does not pass."""
        needs: dict[str, _Chan] = dict(inner.needs)
        for k, c in extra.items():
            needs.setdefault(k, c)
        comp: dict[str, Any] = {"dag": {"tasks": {inner.task: inner.spec}}}
        outs = {}
        out_defs = {}
        outputs: list[tuple[str, str]] = []
        for key, typ in inner.outputs:
            okey = f"pipelinechannel--{inner.task}-{key}"
            outs[okey] = {
                "valueFromParameter": {"outputParameterKey": key, "producerSubtask": inner.task}
            }
            otype = "LIST" if loop else typ
            out_defs[okey] = {"parameterType": otype}
            outputs.append((okey, otype))
        if outs:
            comp["dag"]["outputs"] = {"parameters": outs}
        params = {k: {"parameterType": c.type} for k, c in needs.items()}
        if local is not None:
            params[local.name] = {"parameterType": local.type}
            needs.pop(local.name, None)
        if params:
            comp["inputDefinitions"] = {"parameters": params}
        if out_defs:
            comp["outputDefinitions"] = {"parameters": out_defs}
        self.components[f"comp-{name}"] = comp
        spec: dict[str, Any] = {
            "componentRef": {"name": f"comp-{name}"},
            "taskInfo": {"name": name},
        }
        return _Node(name, spec, needs, outputs)

    def _step(self, s: Step) -> None:
        task = self.task_of[s.name]
        item_chan: _Chan | None = None
        items_spec: dict[str, Any] | None = None
        if s.foreach is not None:
            f = s.foreach
            if isinstance(f, Lit) and isinstance(f.value, list):
                item_chan = _Chan(
                    f"pipelinechannel--loop-item-param-{task}",
                    _common_type(f.value) if f.value else "STRING",
                    {},
                )
                items_spec = {"raw": json.dumps(f.value, separators=(",", ":"))}
                self._items_bind = (
                    None
                    if _holds_null(f.value)  # no null constant (see the `with:` literals)
                    else _Binding("_items", ["items"], "LIST", None, f.value)
                )
            elif isinstance(f, Ref) and (
                (f.root == "params" and len(f.path) == 1)
                or (f.root == "steps" and len(f.path) == 3)
            ):
                src = self._chan(f, s.loc)
                if src.type != "LIST":
                    raise _err(f.loc or s.loc, f"foreach over ${{{f.dotted}}}: not a list")
                elem = "STRING"
                if f.root == "params":
                    d = self.ir.param(f.path[0]).default
                    if isinstance(d, list) and d:
                        elem = _common_type(d)
                item_chan = _Chan(f"{src.name}-loop-item", elem, {}, decode=src.item_decode)
                items_spec = {"inputParameter": src.name}
                self._items_src = src
                # the whole list, for ctx.index; not a step output's: kfp.local hands a task in
                # a ParallelFor the loop item for every task output it reads, so there
                # ctx.index stays None
                self._items_bind = (
                    _Binding("_items", ["items"], src.type, src, decode=src.decode)
                    if f.root == "params"
                    else None
                )
            else:
                raise _err(
                    getattr(f, "loc", None) or s.loc,
                    f"step '{s.name}': KFP can only loop over a list literal, a list param or a "
                    "step output",
                )
        replica_chan: _Chan | None = None
        if s.replicas > 1:
            replica_chan = _Chan(
                f"pipelinechannel--loop-item-param-replica-{task}", "NUMBER_INTEGER", {}
            )
        node = self._leaf(s, item_chan, replica_chan)
        # the loop item / replica index come from the enclosing loop, not from the parent
        if replica_chan is not None:
            node = self._wrap(node, f"for-replica-{task}", extra={}, loop=True, local=replica_chan)
            node.spec["parameterIterator"] = {
                "itemInput": replica_chan.name,
                "items": {"raw": json.dumps(list(range(s.replicas)), separators=(",", ":"))},
            }
        if item_chan is not None and items_spec is not None:
            extra = {}
            if "inputParameter" in items_spec:
                assert self._items_src is not None
                extra[self._items_src.name] = self._items_src
            node = self._wrap(node, f"for-loop-{task}", extra=extra, loop=True, local=item_chan)
            node.spec["parameterIterator"] = {"itemInput": item_chan.name, "items": items_spec}
        conds = self._when_list(s)
        if conds:
            cel_chans: dict[str, _Chan] = {}
            parts = [self._cel(e, cel_chans, s, top=len(conds) == 1) for e in conds]
            node = self._wrap(node, f"condition-{task}", extra=cel_chans, loop=False)
            node.spec["triggerPolicy"] = {"condition": " && ".join(parts)}
        # root-level task
        spec = node.spec
        deps = {self.outer_of[u] for u in s.upstream}
        inputs = {}
        for cname, chan in sorted(node.needs.items()):
            if chan.producer:
                deps.add(chan.producer)
            if node.task == task:  # an unwrapped leaf reads its sources directly
                continue
            inputs[cname] = dict(chan.source)
        if node.task == task:
            for p in spec.get("inputs", {}).get("parameters", {}).values():
                src = p.get("componentInputParameter")
                if src is not None:
                    p.clear()
                    p.update(node.needs[src].source)
        elif inputs:
            spec["inputs"] = {"parameters": inputs}
        if deps:
            spec["dependentTasks"] = sorted(deps)
        self.root_tasks[node.task] = spec
        self.outer_of[s.name] = node.task
        leaf_keys = self._leaf_outputs
        wrapped = node.task != task
        depth = (s.foreach is not None) + (s.replicas > 1)
        for o in s.outputs:
            key = leaf_keys[o]
            enc = self.enc[(s.name, o)]
            if wrapped:
                okey = key
                inner = task
                for wrapper in self._chain(s):
                    okey = f"pipelinechannel--{inner}-{okey}"
                    inner = wrapper
                typ = "LIST" if depth else _enc_type(enc)
            else:
                okey = key
                typ = _enc_type(enc)
            if depth:
                dec: Any = ["json", depth] if enc == "json" else "raw"
                item_dec: Any = ["json", depth - 1] if enc == "json" else "raw"
            else:
                dec = _DECODES.get(enc, "raw")
                item_dec = ["json", 0] if enc == "json-list" else "raw"
            # kfp spells it <task>-<key>; "--" before any other key keeps the name unambiguous
            # (a task may be called "train-auc") and lets kfp.local's condition evaluator find it
            sep = "-" if okey == "Output" else "--"
            self.out_chan[(s.name, o)] = _Chan(
                f"pipelinechannel--{node.task}{sep}{okey}",
                typ,
                {"taskOutputParameter": {"outputParameterKey": okey, "producerTask": node.task}},
                producer=node.task,
                decode=dec,
                item_decode=item_dec,
            )

    def _chain(self, s: Step) -> list[str]:
        t = self.task_of[s.name]
        out = []
        if s.replicas > 1:
            out.append(f"for-replica-{t}")
        if s.foreach is not None:
            out.append(f"for-loop-{t}")
        if self._when_list(s):
            out.append(f"condition-{t}")
        return out

    # -- CEL -------------------------------------------------------------------------------------

    def _cel(self, e: Expr, chans: dict[str, _Chan], s: Step, top: bool = False) -> str:
        text = self._cel_expr(e, chans, s)
        return text if top or not isinstance(e, BinOp) or e.op not in ("and", "or") else f"({text})"

    def _cel_expr(self, e: Expr, chans: dict[str, _Chan], s: Step) -> str:
        if isinstance(e, Lit):
            return _cel_literal(e.value)
        if isinstance(e, ListOf):
            return "[" + ", ".join(self._cel_expr(i, chans, s) for i in e.items) + "]"
        if isinstance(e, Ref):
            if e.root == "flow" and e.path == ("name",):
                return _cel_literal(self.ir.name)
            if not (
                (e.root == "params" and len(e.path) == 1)
                or (e.root == "steps" and len(e.path) == 3)
            ):
                raise _err(e.loc or s.loc, f"${{{e.dotted}}} cannot be used in a KFP condition")
            c = self._chan(e, s.loc)
            chans[c.name] = c
            text = f"inputs.parameter_values['{c.name}']"
            return f"int({text})" if c.type == "NUMBER_INTEGER" else text
        if isinstance(e, Not):
            return f"!({self._cel_expr(e.operand, chans, s)})"
        if isinstance(e, BinOp):
            op = {"and": "&&", "or": "||"}.get(e.op, e.op)

            def side(x: Expr) -> str:
                t = self._cel_expr(x, chans, s)
                return f"({t})" if isinstance(x, BinOp) else t

            left, right = side(e.left), side(e.right)
            if e.op == "not in":
                return f"!({left} in {right})"
            if any(
                isinstance(x, Ref) and self._ref_type(x) == "NUMBER_DOUBLE"
                for x in (e.left, e.right)
            ):
                left = _cel_double(e.left, left)
                right = _cel_double(e.right, right)
            return f"{left} {op} {right}"
        raise _err(
            s.loc, f"step '{s.name}': this when expression cannot compile to a KFP condition"
        )

    def _ref_type(self, r: Ref) -> str | None:
        if r.root == "params" and len(r.path) == 1:
            return PARAM_TYPES[self.ir.param(r.path[0]).type]
        if r.root == "steps" and len(r.path) == 3:
            return self._chan(r, None).type
        return None

    # -- whole pipeline ------------------------------------------------------------------------

    def build(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        self._names()
        self._infer()
        for s in self.ir.steps:
            self._step(s)
        root_params: dict[str, Any] = {}
        for p in self.ir.params:
            spec: dict[str, Any] = {"parameterType": PARAM_TYPES[p.type]}
            if p.has_default:
                spec["defaultValue"] = p.default
                spec["isOptional"] = True
            elif not p.required:
                spec["isOptional"] = True
            if p.description:
                spec["description"] = p.description
            if p.enum is not None:
                spec["literals"] = list(p.enum)
            root_params[p.name] = spec
        root: dict[str, Any] = {"dag": {"tasks": self.root_tasks}}
        if root_params:
            root["inputDefinitions"] = {"parameters": root_params}
        info: dict[str, Any] = {"name": dns1123(kebab(self.ir.name), 128)}
        if info["name"] != self.ir.name:
            info["displayName"] = self.ir.name
        if self.ir.description:
            info["description"] = self.ir.description
        spec_doc: dict[str, Any] = {
            "components": self.components,
            "deploymentSpec": {"executors": self.executors},
            "pipelineInfo": info,
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": f"flowc-{__version__}",
        }
        platform = None
        if self.k8s:
            platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": self.k8s}}}}
        return spec_doc, platform


_DECODES: dict[str, Any] = {
    "json": ["json", 0],
    "json-list": ["json", 1],
    "NUMBER_INTEGER": "int",
    # KFP carries LIST/STRUCT values as protobuf Values: nested ints arrive as doubles
    "LIST": "ints",
    "STRUCT": "ints",
}
"""How a consumer decodes an unlooped output of each encoding (see flowc.runtime.kfp.decode)."""


def _enc_type(enc: str) -> str:
    """The KFP parameter type of an output encoding (see flowc.runtime.kfp)."""
    return {"json": "STRING", "text": "STRING", "json-list": "LIST"}.get(enc, enc)


def _out_py(enc: str) -> str:
    return PY_TYPES[_enc_type(enc)]


def _program_text(
    flow: str,
    step: str,
    spec: dict[str, Any],
    bindings: list[_Binding],
    outputs: list[tuple[str, str, str]],
) -> str:
    """The component's Python module, already in black's style (tests check it)."""
    fn = _py_name(step)
    lines = [
        f"# flowc step {json.dumps(step)} of flow {json.dumps(flow)}: generated, do not edit.",
        "import json",
    ]
    if len(outputs) > 1:
        lines.append("import typing")
    lines += ["", "from flowc.runtime.kfp import run_component", ""]
    literal = py_literal(json.dumps(spec, sort_keys=True, ensure_ascii=False))
    if len(literal) + len("SPEC = json.loads()") <= 100:
        lines.append(f"SPEC = json.loads({literal})")
    else:
        lines += ["SPEC = json.loads(", f"    {literal}", ")"]
    if len(outputs) > 1:
        lines += ["", "", "class Outputs(typing.NamedTuple):"]
        lines += [f"    {key}: {_out_py(enc)}" for _o, key, enc in outputs]
        ret = "Outputs"
    elif outputs:
        ret = _out_py(outputs[0][2])
    else:
        ret = "None"
    args = [f"{b.name}: {PY_TYPES[b.type]}" for b in bindings]
    one = f"def {fn}({', '.join(args)}) -> {ret}:"
    lines += ["", ""]
    if len(one) <= 100:
        lines.append(one)
    elif len(f"    {', '.join(args)}") <= 100:
        lines += [f"def {fn}(", f"    {', '.join(args)}", f") -> {ret}:"]
    else:
        lines += [f"def {fn}(", *(f"    {a}," for a in args), f") -> {ret}:"]
    lines.append("    return run_component(SPEC, locals())")
    return "\n".join(lines) + "\n"


def _py_name(step: str) -> str:
    return re.sub(r"\W", "_", step) or "step"


def _cel_literal(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, list):
        return "[" + ", ".join(_cel_literal(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_cel_literal(k)}: {_cel_literal(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _cel_double(e: Expr, text: str) -> str:
    """CEL does not compare int with double: spell integer literals as doubles."""
    if isinstance(e, Lit) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return f"{float(e.value)!r}"
    return text


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def _resources(s: Step) -> dict[str, Any]:
    """A container's resources under the IR's policy (requests = limits), in both of KFP's
    spellings: the quantity strings and the legacy numbers (cores, GB)."""
    r = s.resources
    out: dict[str, Any] = {}
    if r.cpu:
        cpu = r.cpu_cores
        out.update(cpuLimit=cpu, cpuRequest=cpu, resourceCpuLimit=r.cpu, resourceCpuRequest=r.cpu)
    if r.memory:
        gb = (r.memory_bytes or 0) / 1e9
        out.update(
            memoryLimit=gb,
            memoryRequest=gb,
            resourceMemoryLimit=r.memory,
            resourceMemoryRequest=r.memory,
        )
    if r.gpu:
        kind = r.gpu_type or "nvidia.com/gpu"
        out["accelerator"] = {
            "count": str(r.gpu),
            "resourceCount": str(r.gpu),
            "resourceType": kind,
            "type": kind,
        }
    return out


def build_pipeline_spec(
    ir: Pipeline, *, platform: bool = True, cache: BuildCache | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The PipelineSpec of ``ir`` as JSON-able data, and the kfp-kubernetes platform spec (or
    None when no step needs one, or ``platform`` is false). Raises a located FlowcError for what
    KFP cannot express.

    With a ``cache`` (one compile's, see :mod:`flowc.targets.build_cache`) the kfp and vertex
    targets share one build per IR; the data returned is then shared and must not be changed."""
    if cache is None:
        spec, platform_spec = _Builder(ir).build()
    else:
        spec, platform_spec = cache.get("kfp.pipeline_spec", ir, _Builder(ir).build)
    return spec, platform_spec if platform else None


class KfpTarget(BaseTarget):
    """Kubeflow Pipelines v2: ``pipeline.yaml`` (PipelineSpec + kfp-kubernetes platform spec)."""

    name: ClassVar[str] = "kfp"
    description: ClassVar[str] = "Kubeflow Pipelines v2 PipelineSpec (pipeline.yaml)"
    CAPABILITIES: ClassVar[Capabilities] = KFP_CAPABILITIES
    uses_build_cache: ClassVar[bool] = True

    def emit(self, ir: Pipeline, cache: BuildCache | None = None) -> dict[str, str]:
        spec, platform = build_pipeline_spec(ir, cache=cache)
        head = "".join(f"# {line}\n" for line in self.header_lines(ir))
        text = head + dump_yaml(spec)
        if platform is not None:
            text += "---\n" + dump_yaml(platform)
        return {"pipeline.yaml": text}
