"""The KFP v2 target: the IR -> one ``pipeline.yaml`` holding a PipelineSpec (and, when steps need
Kubernetes settings such as secrets or timeouts, a second YAML document with the kfp-kubernetes
platform spec), emitted straight from the IR the way kfp's own compiler lays it out.

:func:`build_pipeline_spec` is shared with the Vertex target. Mapping (docs/kfp.md):

- every step is one task in its DAG (kebab case: "." and "_" -> "-"); ``foreach`` / ``replicas``
  wrap it in ``for-loop-<task>`` / ``for-replica-<task>`` ParallelFor DAGs (outputs collected as
  lists) and ``when`` (its own and every upstream step's, since a skipped step skips its downstream) wraps it
  in a ``condition-<task>`` DAG with a CEL ``triggerPolicy.condition``;
- ``run:`` steps are lightweight Python components (``kfp.dsl.executor_main`` with a generated
  one-line function calling :func:`flowc.runtime.kfp.run_component`); ``command:`` steps are
  container components with ``{{$.inputs.parameters[...]}}`` placeholders;
- control flow (issue 18; DAG structure in :mod:`flowc.targets.kfp_dag`): ``trigger: all_done``
  is ``triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED`` (outputs it reads get kfp's
  default for a missing value, JSON null); ``finally:`` steps are exit tasks after an
  ``exit-handler-1`` DAG holding the rest, each with a ``TASK_FINAL_STATUS`` input giving
  ``${run.status}``; groups (``uses:`` sub-flows too) are sub-DAG components, foreach groups
  ParallelFor bodies with every member; a literal matrix is one ParallelFor over its cross
  product; flow ``outputs`` are ``root.outputDefinitions`` + ``root.dag.outputs``;
  ``retry_backoff`` / ``retry_max_delay`` are ``backoffFactor`` / ``backoffMaxDuration``. What
  KFP has no construct for is refused by :func:`kfp_problems` (other triggers,
  ``skip_on_exit_code``, ``${run.failed_steps}``, ordered finally steps);
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
from dataclasses import dataclass
from typing import Any, ClassVar

from flowc import __version__
from flowc.compiler.errors import Diagnostic, FlowcError, Loc
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
    config_secret_names,
    dns1123,
    k8s_secret,
    kebab,
    pip_install_line,
    py_literal,
    seconds_text,
    with_pip_install,
)
from flowc.targets.build_cache import BuildCache
from flowc.targets.kfp_dag import (
    EXIT_TASK,
    ROOT,
    STATUS_INPUT,
    Chan,
    Node,
    Scope,
    collected_decode,
    dag_component,
    loop_product,
    place,
    raw_items,
)
from flowc.targets.yaml_writer import dump as dump_yaml

KFP_TRIGGERS_SET = ("all_success", "all_done")
"""Trigger rules a KFP triggerPolicy can spell: ALL_UPSTREAM_TASKS_SUCCEEDED (the default) and
ALL_UPSTREAM_TASKS_COMPLETED; the others have no KFP construct (check_supported refuses them)."""

KFP_CAPABILITIES = Capabilities(
    schedule="none",  # a PipelineSpec has no schedule: a recurring run is made apart
    foreach_over_loop=False,  # a ParallelFor's collected output is not a loop source in KFP
    # the job's placeholders, and the ExitHandler's PipelineTaskFinalStatus (its state); KFP's
    # final status names the exit handler's task, never the tasks that failed: no failed_steps
    run_values=frozenset({"id", "date", "ds", "ds_nodash", "status"}),
    triggers=frozenset(KFP_TRIGGERS_SET),  # triggerPolicy: ALL_UPSTREAM_TASKS_*
    skip_exit_codes=False,  # a KFP task has no skipped state: it succeeds or fails
    non_json_values=False,  # task outputs are JSON parameters (no Dataset artifacts yet)
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
    "TASK_FINAL_STATUS": "dict",  # kfp.dsl.PipelineTaskFinalStatus as its executor input
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


_Chan = Chan
_Node = Node


@dataclass
class _Binding:
    """One input of a leaf component."""

    name: str
    path: list[str]
    type: str
    chan: _Chan | None = None  # where it comes from (None: a constant)
    constant: Any = None
    decode: Any = "raw"


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, ir: Pipeline) -> None:
        self.ir = ir
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.k8s: dict[str, Any] = {}
        self.groups = tuple(getattr(ir, "groups", ()))
        self.has_finally = any(getattr(s, "is_finally", False) for s in ir.steps)
        self.scopes: dict[str, Scope] = {ROOT: Scope(ROOT, None)}
        if self.has_finally:
            self.scopes[EXIT_TASK] = Scope(EXIT_TASK, None)
        self.root_tasks = self.scopes[ROOT].tasks
        self.group_task: dict[str, str] = {}  # group -> its task in the parent DAG
        self.group_scope: dict[str, str] = {}  # group -> the scope key of its own DAG
        self.group_loop: dict[str, tuple[_Chan, dict[str, Any], _Chan | None, _Binding | None]] = {}
        self.names: dict[str, tuple[str, Loc | None]] = {}
        self.task_of: dict[str, str] = {}
        self.outer_of: dict[str, str] = {}
        self.out_chan: dict[tuple[str, str], _Chan] = {}
        self.enc: dict[tuple[str, str], str] = {}
        self.conds: dict[str, list[Expr]] = {}
        self.nullable: set[tuple[str, str]] = set()  # outputs an all_done step reads
        self.group_outputs: dict[str, dict[str, tuple[str, str, str]]] = {}
        self.exit_outputs: dict[str, tuple[str, str, str]] = {}
        self.plan = ir.to_data()
        # secrets the stack, plugin and integration config reference: every executor builds
        # them where it runs, so each gets them as env (kfp-kubernetes secretAsEnv)
        self.config_secrets = set(config_secret_names(ir))
        self._leaf_outputs: dict[str, str] = {}  # output -> KFP key of the last leaf built
        self._items_src: _Chan | None = None  # the foreach items channel of the step being built
        self._items_bind: _Binding | None = None  # the foreach list, as an input of its leaf

    # -- names -----------------------------------------------------------------------------

    def _claim(self, name: str, owner: str, loc: Loc | None, kind: str = "step") -> str:
        other = self.names.get(name)
        if other is not None and other[0] != owner:
            raise _err(
                loc,
                f"{kind} '{owner}' and '{other[0]}' both become KFP name '{name}'",
                "KFP names turn '_' and '.' into '-'; rename one of them",
            )
        self.names[name] = (owner, loc)
        return name

    def _names(self) -> None:
        if self.has_finally:
            self._claim(EXIT_TASK, EXIT_TASK, self.ir.loc, "the exit handler")
        for s in self.ir.steps:
            self.task_of[s.name] = self._claim(dns1123(kebab(s.name)), s.name, s.loc)
        for g in self.groups:
            t = dns1123(kebab(g.name))
            task = f"for-loop-{t}" if g.foreach is not None else t
            self.group_task[g.name] = self._claim(task, g.name, g.loc, "group")
            self.group_scope[g.name] = f"comp-{task}"
            self.scopes[f"comp-{task}"] = Scope(f"comp-{task}", g.name)
        for s in self.ir.steps:
            t = self.task_of[s.name]
            if s.foreach is not None:
                self._claim(f"for-loop-{t}", s.name, s.loc)
            if s.replicas > 1:
                self._claim(f"for-replica-{t}", s.name, s.loc)
            if self._when_list(s):
                self._claim(f"condition-{t}", s.name, s.loc)

    # -- scopes ------------------------------------------------------------------------------

    def _scope_key(self, s: Step) -> str:
        """The DAG holding step ``s``'s (outermost) task."""
        group = getattr(s, "group", None)
        if group is not None:
            return self.group_scope[group]
        if self.has_finally and not getattr(s, "is_finally", False):
            return EXIT_TASK
        return ROOT

    def _group_parent_key(self, name: str) -> str:
        parent = self.ir.group(name).parent
        if parent is not None:
            return self.group_scope[parent]
        return EXIT_TASK if self.has_finally else ROOT

    def _node_scope(self, node: str) -> str:
        if node in self.group_task:
            return self._group_parent_key(node)
        return self._scope_key(self.ir.step(node))

    def _node_task(self, node: str) -> str:
        return self.group_task[node] if node in self.group_task else self.outer_of[node]

    def _deps(self, upstream: Iterable[str], key: str) -> set[str]:
        """The tasks of ``key``'s DAG that stand for ``upstream`` nodes there (a node inside a
        sibling group is its group; one outside this DAG is waited for by the DAG's own task)."""
        level = self.scopes[key].level
        out: set[str] = set()
        for u in upstream:
            node = self.ir.node_at(u, level) if self.groups else u
            if node is not None and self._node_scope(node) == key:
                out.add(self._node_task(node))
        return out

    def _foreach_group(self, s: Step) -> str | None:
        """The nearest foreach group holding ``s``."""
        g = getattr(s, "group", None)
        while g is not None:
            grp = self.ir.group(g)
            if grp.foreach is not None:
                return g
            g = grp.parent
        return None

    # -- effective conditions: a skipped step skips its downstream ---------------------------

    def _when_list(self, s: Step) -> list[Expr]:
        if s.name in self.conds:
            return self.conds[s.name]
        out: list[Expr] = []
        # a skipped step skips its downstream under all_success; all_done runs after a skip,
        # and a finally step after any outcome of the steps before it
        inherit = getattr(s, "trigger", "all_success") == "all_success"
        for up in s.upstream if inherit else ():
            ups = self.ir.group(up).leaves if up in self.group_task else (up,)
            for leaf in ups:
                step = self.ir.step(leaf)
                if getattr(step, "is_finally", False) != getattr(s, "is_finally", False):
                    continue
                for e in self._when_list(step):
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
        if key[0] in self.group_task:  # a group's export: its member's encoding
            if kind not in ("json", "text", "json-list"):
                raise _err(
                    ref.loc or loc,
                    f"${{{ref.dotted}}} is a group's output and cannot be compared as {kind} in "
                    "a KFP condition",
                    "compare the member step's output inside the group",
                )
            return
        if key in self.nullable and kind not in ("json", "text", "json-list"):
            raise _err(
                ref.loc or loc,
                f"${{{ref.dotted}}} is read by a step that runs after upstream failures (so it "
                f"may be missing, a KFP default of null) and cannot be compared as {kind}",
            )
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
        for s in self.ir.steps:  # outputs an all_done step reads may be missing: JSON, null default
            if getattr(s, "trigger", "all_success") == "all_done":
                for _k, e in (*s.with_, *s.env):
                    for r in e.refs():
                        if r.root == "steps" and r.step in {u for u in s.upstream}:
                            if r.step not in self.group_task:
                                self.nullable.add((r.step or "", r.output or ""))
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
                if self.enc.get((s.name, o)) == "json" and (s.name, o) not in self.nullable:
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
            if chan is None and key[0] in self.group_task:
                chan = self._group_chan(key[0], key[1], ref.loc or loc)
            if chan is None:  # pragma: no cover - the IR is topologically sorted
                raise _err(ref.loc or loc, f"${{{ref.dotted}}} is not produced upstream")
            return chan
        raise _err(ref.loc or loc, f"${{{ref.dotted}}} cannot be passed to a KFP task")

    def _group_chan(self, g: str, name: str, loc: Loc | None) -> _Chan:
        """Group ``g``'s export ``name`` as its task's output in the parent DAG (a foreach
        group's: the LIST over items); the group's DAG component gets the matching output."""
        grp = self.ir.group(g)
        expr = dict(grp.outputs).get(name)
        if not (
            isinstance(expr, Ref)
            and expr.root == "steps"
            and len(expr.path) == 3
            and not getattr(expr, "index", ())
        ):
            raise _err(
                getattr(expr, "loc", None) or grp.loc or loc,
                f"group '{g}': output '{name}' must be one member's output to compile to KFP",
                "export ${steps.<member>.outputs.<name>} and compute the rest in a step",
            )
        inner = self._chan(expr, grp.loc)
        if inner.scope != self.group_scope[g] or "taskOutputParameter" not in inner.source:
            raise _err(
                expr.loc or grp.loc,
                f"group '{g}': output '{name}' must be the output of a step of the group",
            )
        task = self.group_task[g]
        loop = grp.foreach is not None
        typ = "LIST" if loop else inner.type
        key = inner.source["taskOutputParameter"]["outputParameterKey"]
        self.group_outputs.setdefault(g, {})[name] = (str(inner.producer), key, typ)
        chan = _Chan(
            f"pipelinechannel--{task}--{name}",
            typ,
            {"taskOutputParameter": {"outputParameterKey": name, "producerTask": task}},
            producer=task,
            decode=collected_decode(inner.decode) if loop else inner.decode,
            item_decode=inner.decode if loop else inner.item_decode,
            scope=self._group_parent_key(g),
        )
        self.out_chan[(g, name)] = chan
        return chan

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
                name = _py_name(f"_s_{r.path[0]}_{r.path[2]}")
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
            if r.root == "run" and r.path[:1] in (("status",), ("failed_steps",)):
                return _Binding(STATUS_INPUT, ["run", "status"], "TASK_FINAL_STATUS", None, None)
            if r.root == "run" and r.path[:1] in (("date",), ("ds",), ("ds_nodash",)):
                # ds / ds_nodash: the glue spells them from the same job time
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
                if (
                    isinstance(e, Ref)
                    and not getattr(e, "index", ())
                    and (
                        (e.root == "params" and len(e.path) == 1)
                        or (e.root == "steps" and len(e.path) == 3 and not getattr(e, "index", ()))
                        or (e.root == "item" and not e.path)
                    )
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
        if getattr(s, "is_finally", False):  # an exit task: KFP's final status of the rest
            add(_Binding(STATUS_INPUT, ["run", "status"], "TASK_FINAL_STATUS", None, None))
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
                "parameters": {b.name: self._input_def(s, b) for b in bindings}
            }
        if outputs:
            comp_spec["outputDefinitions"] = {
                "parameters": {key: {"parameterType": _enc_type(enc)} for _o, key, enc in outputs}
            }
        self.components[comp] = comp_spec

        container: dict[str, Any] = {"image": s.image or "python:3.11-slim"}
        if s.kind == "run" or s.outputs:  # command steps with outputs run through flowc
            install = pip_install_line(s)  # the step's `packages` (and flowc) first
            launcher = f"{install}\n{_LAUNCHER}" if install else _LAUNCHER
            container["command"] = ["sh", "-ec", launcher, self._program(s, bindings, outputs)]
            container["args"] = [
                "--executor_input",
                "{{$}}",
                "--function_to_execute",
                _py_name(s.name),
            ]
        else:
            names = {self._norm_key(b): b.name for b in bindings}
            argv = with_pip_install(
                s, [self._placeholder_text(a, names, s) for a in s.command or ()], flowc=False
            )
            split = 3 if s.packages else 1  # `sh -c INSTALL` is the command, argv its arguments
            container["command"] = argv[:split]
            if argv[split:]:
                container["args"] = argv[split:]
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
            if b.type == "TASK_FINAL_STATUS":
                params[b.name] = {"taskFinalStatus": {"producerTask": EXIT_TASK}}
            elif b.chan is None:
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
            # retry_backoff / retry_max_delay: KFP's factor and cap; without a cap, the longest
            # delay flowc waits (before the last attempt), so no KFP default cap applies
            delay = seconds_text(s.retry_delay)
            factor = float(getattr(s, "retry_backoff", 1.0))
            cap = getattr(s, "retry_max_delay", None)
            longest = s.retry_delay * factor ** max(s.retries - 1, 0)
            if cap is not None:
                most = seconds_text(cap)
            elif factor != 1.0 and s.retry_delay:
                most = seconds_text(longest)
            else:
                most = delay if s.retry_delay else "3600s"
            spec["retryPolicy"] = {
                "backoffDuration": delay,
                "backoffFactor": factor,
                "backoffMaxDuration": most,
                "maxRetryCount": s.retries,
            }
        node = _Node(task, spec, needs, leaf=True)
        node.outputs = [(key, _enc_type(enc)) for _o, key, enc in outputs]
        self._leaf_outputs = {o: key for o, key, _enc in outputs}
        return node

    def _input_def(self, s: Step, b: _Binding) -> dict[str, Any]:
        """A leaf input's definition: an output an all_done step reads may be missing (KFP
        then passes the default: JSON null); the final status is optional, as kfp writes it."""
        d: dict[str, Any] = {"parameterType": b.type}
        if b.type == "TASK_FINAL_STATUS":
            d["isOptional"] = True
        elif (
            b.path[0] == "steps"
            and getattr(s, "trigger", "all_success") == "all_done"
            and (b.path[1], b.path[3]) in self.nullable
            and b.type == "STRING"
        ):
            d["defaultValue"] = "null"
            d["isOptional"] = True
        return d

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
            # what the step reads, and what the configuration built in its process references
            "secrets": {
                k: v
                for k, v in plan["secrets"].items()
                if k in s.secrets or k in self.config_secrets
            },
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
        for name in sorted({*s.secrets, *self.config_secrets}):
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

    def _loop(
        self, f: Expr, task: str, what: str, loc: Loc | None
    ) -> tuple[_Chan, dict[str, Any], _Chan | None, _Binding | None]:
        """A ParallelFor over ``f`` run by task ``task``: the loop item, ``items``, the list's
        channel (when read from the parent) and the binding giving the glue the whole list
        (for ``ctx.index``)."""
        if isinstance(f, Lit) and isinstance(f.value, dict):  # a matrix: the cross product
            values = f.value
            if not all(isinstance(v, list) for v in values.values()):
                raise _err(getattr(f, "loc", None) or loc, f"{what}: a matrix maps keys to lists")
            f = Lit(loop_product(values))
        if isinstance(f, Lit) and isinstance(f.value, list):
            typ = _common_type(f.value) if f.value else "STRING"
            item_chan = _Chan(
                f"pipelinechannel--loop-item-param-{task}",
                typ,
                {"componentInputParameter": f"pipelinechannel--loop-item-param-{task}"},
                # a protobuf Value has no ints: a matrix item's 3 arrives as 3.0
                decode="ints" if typ in ("LIST", "STRUCT") else "raw",
            )
            bind = (
                None
                if _holds_null(f.value)  # no null constant (see the `with:` literals)
                else _Binding("_items", ["items"], "LIST", None, f.value)
            )
            return item_chan, {"raw": raw_items(f.value)}, None, bind
        if isinstance(f, Ref) and (
            (f.root == "params" and len(f.path) == 1)
            or (f.root == "steps" and len(f.path) == 3 and not getattr(f, "index", ()))
        ):
            src = self._chan(f, loc)
            if src.type != "LIST":
                raise _err(f.loc or loc, f"foreach over ${{{f.dotted}}}: not a list")
            elem = "STRING"
            if f.root == "params":
                d = self.ir.param(f.path[0]).default
                if isinstance(d, list) and d:
                    elem = _common_type(d)
            name = f"{src.name}-loop-item"
            item_chan = _Chan(name, elem, {"componentInputParameter": name}, decode=src.item_decode)
            # the whole list, for ctx.index; not a step output's: kfp.local hands a task in
            # a ParallelFor the loop item for every task output it reads, so there
            # ctx.index stays None
            bind = (
                _Binding("_items", ["items"], src.type, src, decode=src.decode)
                if f.root == "params"
                else None
            )
            return item_chan, {"inputParameter": src.name}, src, bind
        raise _err(
            getattr(f, "loc", None) or loc,
            f"{what}: KFP can only loop over a list literal, a matrix of list literals, a list "
            "param or a step output",
        )

    def _group_items(self, g: str) -> tuple[_Chan, dict[str, Any], _Chan | None, _Binding | None]:
        if g not in self.group_loop:
            grp = self.ir.group(g)
            assert grp.foreach is not None
            item, items, src, bind = self._loop(
                grp.foreach, self.group_task[g], f"group '{g}'", grp.loc
            )
            item.scope = self.group_scope[g]
            self.group_loop[g] = (item, items, src, bind)
        return self.group_loop[g]

    def _step(self, s: Step) -> None:
        task = self.task_of[s.name]
        scope_key = self._scope_key(s)
        item_chan: _Chan | None = None
        items_spec: dict[str, Any] | None = None
        self._items_src = None
        self._items_bind = None
        if s.foreach is not None:
            item_chan, items_spec, self._items_src, self._items_bind = self._loop(
                s.foreach, task, f"step '{s.name}'", s.loc
            )
        else:
            g = self._foreach_group(s)
            if g is not None:  # the group's ParallelFor gives the item
                item_chan, _items, _src, self._items_bind = self._group_items(g)
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
        # the task in its DAG (root, the exit handler's or its group's)
        spec = place(self.scopes[scope_key], node, self._deps(s.upstream, scope_key))
        if getattr(s, "is_finally", False):
            # an exit task (kfp's dsl.ExitHandler): after the rest, whatever its outcome
            spec["dependentTasks"] = sorted({*spec.get("dependentTasks", ()), EXIT_TASK})
            spec.setdefault("triggerPolicy", {})["strategy"] = "ALL_UPSTREAM_TASKS_COMPLETED"
        elif getattr(s, "trigger", "all_success") == "all_done" and spec.get("dependentTasks"):
            spec.setdefault("triggerPolicy", {})["strategy"] = "ALL_UPSTREAM_TASKS_COMPLETED"
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
                scope=scope_key,
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
                or (e.root == "steps" and len(e.path) == 3 and not getattr(e, "index", ()))
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

    # -- control-flow DAGs (see flowc.targets.kfp_dag) ------------------------------------------

    def _flow_outputs(self) -> dict[str, tuple[str, str, str]]:
        """Flow outputs as the root DAG's outputs: name -> (root task, its key, type); one
        produced inside the exit handler leaves its DAG as an output first."""
        out: dict[str, tuple[str, str, str]] = {}
        for name, e in getattr(self.ir, "outputs", ()):
            if not (
                isinstance(e, Ref)
                and e.root == "steps"
                and len(e.path) == 3
                and not getattr(e, "index", ())
            ):
                raise _err(
                    getattr(e, "loc", None) or self.ir.loc,
                    f"flow output '{name}' must be one step's or group's output to compile to "
                    "KFP pipeline outputs",
                    "export ${steps.<step>.outputs.<name>} and compute the rest in a step",
                )
            chan = self._chan(e, self.ir.loc)
            top = chan.source["taskOutputParameter"]
            if chan.scope == EXIT_TASK:
                self.exit_outputs[name] = (
                    top["producerTask"],
                    top["outputParameterKey"],
                    chan.type,
                )
                out[name] = (EXIT_TASK, name, chan.type)
            else:
                out[name] = (top["producerTask"], top["outputParameterKey"], chan.type)
        return out

    def _close_groups(self) -> None:
        """Each group's DAG component (innermost first) and its task in the parent DAG."""
        for g in reversed(self.groups):
            key = self.group_scope[g.name]
            sc = self.scopes[key]
            task = self.group_task[g.name]
            exports = self.group_outputs.get(g.name, {})
            spec: dict[str, Any] = {"componentRef": {"name": key}, "taskInfo": {"name": g.name}}
            needs = dict(sc.needs)
            if g.foreach is not None:
                item, items, src, _bind = self._group_items(g.name)
                extra = {src.name: src} if src is not None else {}
                self.components[key] = dag_component(sc, exports, local=item, extra=extra)
                spec["parameterIterator"] = {"itemInput": item.name, "items": items}
                needs.update(extra)
            else:
                self.components[key] = dag_component(sc, exports)
            parent = self._group_parent_key(g.name)
            deps = self._deps((*g.upstream, *g.after), parent)
            place(self.scopes[parent], _Node(task, spec, needs), deps)

    # -- whole pipeline ------------------------------------------------------------------------

    def build(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        self._names()
        self._infer()
        for s in self.ir.steps:
            self._step(s)
        outputs = self._flow_outputs()
        self._close_groups()
        if self.has_finally:
            sc = self.scopes[EXIT_TASK]
            exits = {k: v for k, v in outputs.items() if v[0] == EXIT_TASK}
            self.components[f"comp-{EXIT_TASK}"] = dag_component(
                sc, {k: self.exit_outputs[k] for k in exits}
            )
            exit_spec = {
                "componentRef": {"name": f"comp-{EXIT_TASK}"},
                "taskInfo": {"name": EXIT_TASK},
            }
            place(self.scopes[ROOT], _Node(EXIT_TASK, exit_spec, dict(sc.needs)), set())
        stray = self.scopes[ROOT].needs
        if stray:  # pragma: no cover - refs across DAGs are refused by the checks before
            raise _err(self.ir.loc, f"KFP cannot pass {', '.join(sorted(stray))} here")
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
        if outputs:
            root["dag"]["outputs"] = {
                "parameters": {
                    k: {"valueFromParameter": {"outputParameterKey": key, "producerSubtask": task}}
                    for k, (task, key, _t) in outputs.items()
                }
            }
        if root_params:
            root["inputDefinitions"] = {"parameters": root_params}
        if outputs:
            root["outputDefinitions"] = {
                "parameters": {k: {"parameterType": typ} for k, (_a, _b, typ) in outputs.items()}
            }
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


def kfp_problems(ir: Pipeline, target: str) -> list[Diagnostic]:
    """Control flow a KFP PipelineSpec cannot express (kfp and vertex) beyond the capability
    table (which refuses triggers other than all_success / all_done and ``skip_on_exit_code``),
    located, naming the target: a finally step in a group, after another finally step (KFP runs
    the exit tasks of an ExitHandler side by side) or reading a step's output (an exit task
    sees the final status)."""
    out: list[Diagnostic] = []
    finals = {s.name for s in ir.steps if getattr(s, "is_finally", False)}
    for s in ir.steps:
        if s.name in finals:
            if getattr(s, "group", None) is not None:
                out.append(
                    Diagnostic(
                        s.loc, f"finally step '{s.name}': a group cannot be a {target} exit task"
                    )
                )
            before = sorted(u for u in s.upstream if u in finals)
            if before:
                out.append(
                    Diagnostic(
                        s.loc,
                        f"finally step '{s.name}' runs after finally step '{before[0]}', which "
                        f"the {target} target cannot express (the exit tasks of a KFP "
                        "ExitHandler all start once its body finished)",
                        "make the finally steps independent, or join them into one step",
                    )
                )
            for _k, e in (*s.with_, *s.env):
                for r in e.refs():
                    if r.root == "steps" and r.step not in finals:
                        out.append(
                            Diagnostic(
                                r.loc or s.loc,
                                f"finally step '{s.name}' reads ${{{r.dotted}}}, which the "
                                f"{target} target cannot pass (a KFP exit task gets the "
                                "ExitHandler's final status, not its tasks' outputs)",
                                "read ${run.status} in the finally step, or pass the value "
                                "through a flow output",
                            )
                        )
    return out


class KfpTarget(BaseTarget):
    """Kubeflow Pipelines v2: ``pipeline.yaml`` (PipelineSpec + kfp-kubernetes platform spec)."""

    name: ClassVar[str] = "kfp"
    description: ClassVar[str] = "Kubeflow Pipelines v2 PipelineSpec (pipeline.yaml)"
    CAPABILITIES: ClassVar[Capabilities] = KFP_CAPABILITIES
    uses_build_cache: ClassVar[bool] = True

    def check(self, ir: Pipeline) -> list[Diagnostic]:
        return kfp_problems(ir, self.name)

    def emit(self, ir: Pipeline, cache: BuildCache | None = None) -> dict[str, str]:
        spec, platform = build_pipeline_spec(ir, cache=cache)
        head = "".join(f"# {line}\n" for line in self.header_lines(ir))
        text = head + dump_yaml(spec)
        if platform is not None:
            text += "---\n" + dump_yaml(platform)
        return {"pipeline.yaml": text}
