"""The Airflow 3 target: one DAG file ``<name>.py`` per flow.

The file imports only ``airflow.sdk`` and the providers' operators at parse time and embeds the
plan (``Pipeline.to_data()``) as JSON text in a Python string literal (one line per step: Airflow
recompiles DAG files on every parse, and a string literal compiles in no time where a nested
dict literal of a 1,000-step plan costs most of a second); every task calls :mod:`flowc.runtime.airflow`
(imported inside the task callable) which runs the step with :func:`flowc.runtime.step.execute`,
the same code ``flowc run`` uses. Mapping:

- ``run:`` step -> ``PythonOperator`` (outputs -> XCom ``return_value``, a dict by output name,
  and one XCom per output name, as ``multiple_outputs`` pushes; command tasks push those from a
  ``post_execute`` hook);
- ``command:`` step -> ``BashOperator`` (shell-quoted argv; literal text Jinja-escaped, references
  rendered at run time by the ``flowc_arg`` macro), or ``KubernetesPodOperator`` when the step has
  an ``image`` and the stack's orchestrator sets ``pod_operator: true``;
- ``foreach`` -> a ``<step>__items`` task + dynamic task mapping (``.expand``); ``replicas: N`` ->
  N mapped copies; ``when`` -> a ``<step>__when`` ``ShortCircuitOperator`` gate;
- params -> ``Param(default, type=...)``; schedule -> cron timetable / timedelta / ``@once``;
- control flow (docs/control-flow.md): ``trigger`` -> the task's ``trigger_rule`` (on its first
  task: the ``__when`` gate or ``__items`` helper when it has one); ``skip_on_exit_code`` ->
  BashOperator/KubernetesPodOperator ``skip_on_exit_code``; ``flowc.runtime.Skip`` ->
  ``AirflowSkipException`` (in flowc.runtime.airflow); a group -> a ``TaskGroup`` (task ids
  ``group.step``), a foreach group -> a mapped task group (``@task_group`` + ``.expand`` over a
  ``<group>__items`` task: every member runs once per item, item-wise); ``finally:`` steps ->
  tasks with ``trigger_rule="all_done"`` downstream of every other task; flow ``outputs:`` -> the
  ``return_value`` XCom of a ``_flowc_outputs`` task (all_done, downstream of everything); with
  any of these a ``_flowc_failed`` watcher task (``one_failed``, downstream of every step task)
  fails the DAG run when a step failed (Airflow decides a run's state by its leaves alone);
  ``retry_backoff`` / ``retry_max_delay`` -> ``retry_exponential_backoff`` / ``max_retry_delay``.

Pure: no I/O, no clock, no Airflow import (see ``docs/airflow.md``).
"""

from __future__ import annotations

import datetime as _dt
import keyword
import shlex
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import encode_expr
from flowc.targets.base import (
    LINE_LENGTH,
    BaseTarget,
    Capabilities,
    black_format,
    jinja_env,
    kebab,
    pod_resources,
    py_literal,
    with_pip_install,
)

if TYPE_CHECKING:
    from flowc.compiler.ir import Pipeline, Step

PARAM_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
# Names the generated module defines itself; a step named like one gets a ``_`` suffix.
RESERVED = {
    "dag",
    "datetime",
    "pendulum",
    "k8s",
    "PLAN",
    "PLAN_JSON",
    "DAG",
    "Param",
    "PythonOperator",
    "ShortCircuitOperator",
    "BashOperator",
    "KubernetesPodOperator",
    "CronTriggerTimetable",
    "annotations",
    "_run",
    "_items",
    "_when",
    "_arg",
    "_env",
    "_outputs",
    "_finally",
    "_flow_outputs",
    "_run_failed",
    "TaskGroup",
    "task_group",
    "RetryDecision",
    "RetryPolicy",
    "_Backoff",
}
OUTPUTS_TASK = "_flowc_outputs"  # a step name never starts with "_": these cannot collide
WATCHER_TASK = "_flowc_failed"


def _cf(obj: Any, name: str, default: Any) -> Any:
    """A control-flow field of the IR (defaults when an older IR has none)."""
    return getattr(obj, name, default)


POD_XCOM_FILE = "/airflow/xcom/return.json"  # what KubernetesPodOperator's sidecar pushes


# ---------------------------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------------------------


def jinja_literal(text: str) -> str:
    """Template text that Airflow's Jinja renders back to exactly ``text``.

    Every ``{`` becomes ``{{ '{' }}`` (so no ``{{``/``{%``/``{#`` can start a tag), every
    carriage return ``{{ '\\r' }}`` (Jinja would normalise it to a newline) and a final newline
    ``{{ '\\n' }}`` (Airflow's Jinja environment drops one trailing newline)."""
    out = text.replace("{", "{{ '{' }}").replace("\r", "{{ '\\r' }}")
    return out[:-1] + "{{ '\\n' }}" if out.endswith("\n") else out


def is_plain(enc: Any) -> bool:
    """An encoded expression that needs no run-time evaluation (a plain string/number)."""
    return not isinstance(enc, dict)


def plain_text(enc: Any) -> str:
    """How a plain scalar is spelled in argv/env (JSON for non-strings, like the runtime)."""
    if isinstance(enc, str):
        return enc
    import json

    return json.dumps(enc, separators=(",", ":"), ensure_ascii=False)


def _code_dict(items: list[tuple[str, str]], kwarg: str, indent: int = 4) -> str:
    """A ``{key: code, ...}`` display for ``kwarg=`` in ``with DAG(...)``, laid out as black would
    (one line when ``    kwarg={...},`` fits, else one item per line), so files too large for
    black at compile time still read as black wrote them."""
    one = "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if not items or indent + len(kwarg) + 1 + len(one) + 1 <= LINE_LENGTH:
        return one
    pad = " " * (indent + 4)
    comma = "," if len(items) > 1 else ""
    return "{\n" + "".join(f"{pad}{k}: {v}{comma}\n" for k, v in items) + " " * indent + "}"


def plan_json_lines(plan: dict[str, Any]) -> list[str]:
    """The plan as compact JSON, cut into Python string literals: the head, one per step, the
    tail (their concatenation is ``json.dumps(plan)`` with compact separators)."""
    import json

    def dump(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    head: list[str] = []
    tail: list[str] = []
    steps = list(plan["steps"].items())
    seen_steps = False
    for k, v in plan.items():
        if k == "steps":
            seen_steps = True
            continue
        (tail if seen_steps else head).append(f"{dump(k)}:{dump(v)}")
    texts = ["{" + "".join(f"{h}," for h in head) + '"steps":{']
    for i, (name, data) in enumerate(steps):
        texts.append(f"{dump(name)}:{dump(data)}" + ("," if i < len(steps) - 1 else ""))
    texts.append("}" + "".join(f",{t}" for t in tail) + "}")
    return [py_literal(t) for t in texts]


def _ident(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) or name in RESERVED else name


def _timedelta(seconds: float) -> str:
    if float(seconds).is_integer():
        return f"datetime.timedelta(seconds={int(seconds)})"
    return f"datetime.timedelta(seconds={seconds!r})"


def _pendulum(iso: str, tz: str) -> str:
    """``pendulum.datetime(...)`` for a naive local ISO date/time in ``tz``."""
    d = _dt.datetime.fromisoformat(iso)
    if d.tzinfo is not None:  # carries its own offset: keep the instant, show it in UTC
        d = d.astimezone(_dt.UTC).replace(tzinfo=None)
        tz = "UTC"
    parts = [d.year, d.month, d.day]
    if (d.hour, d.minute, d.second, d.microsecond) != (0, 0, 0, 0):
        parts += [d.hour, d.minute, d.second]
        if d.microsecond:
            parts.append(d.microsecond)
    return f"pendulum.datetime({', '.join(map(str, parts))}, tz={py_literal(tz)})"


# ---------------------------------------------------------------------------------------------
# The target
# ---------------------------------------------------------------------------------------------


class AirflowTarget(BaseTarget):
    """IR -> ``{"<name>.py": DAG source}`` for Airflow 3."""

    name: ClassVar[str] = "airflow"
    description: ClassVar[str] = "Airflow 3 DAG file (airflow.sdk, standard provider)"

    CAPABILITIES: ClassVar[Capabilities] = Capabilities(packages="pods")

    def emit(self, ir: Pipeline) -> dict[str, str]:
        if ir.schedule is not None:
            for p in ir.params:
                if p.required and not p.has_default:
                    raise FlowcError.at(
                        p.loc,
                        f"param '{p.name}' is required and has no default, but Airflow cannot "
                        "schedule a DAG with such a param",
                        "give it a default (e.g. in an environment overlay or with --param) or "
                        "remove the schedule",
                    )
        names = {s.name for s in ir.steps}
        for s in ir.steps:
            for helper in (f"{s.name}__when", f"{s.name}__items"):
                if helper in names:
                    raise FlowcError.at(
                        ir.step(helper).loc,
                        f"step name '{helper}' collides with the Airflow helper task of step "
                        f"'{s.name}'",
                        "rename the step (the airflow target adds <step>__when and <step>__items)",
                    )
        groups = {g.name: g for g in _cf(ir, "groups", ())}
        for g in groups.values():
            if g.foreach is not None and f"{g.name}__items" in names:
                raise FlowcError.at(
                    ir.step(f"{g.name}__items").loc,
                    f"step name '{g.name}__items' collides with the Airflow helper task of "
                    f"group '{g.name}'",
                    "rename the step (the airflow target adds <group>__items for a foreach group)",
                )
        for s in ir.steps:
            group = _cf(s, "group", None)
            while group is not None and groups[group].foreach is None:
                group = groups[group].parent
            if group is not None and s.replicas > 1:
                raise FlowcError.at(
                    s.loc,
                    f"step '{s.name}' has replicas inside foreach group '{group}': the airflow "
                    "target cannot map a task inside a mapped task group",
                    "drop replicas, or move the step out of the foreach group",
                )
        builder = _Builder(ir, self.header_lines(ir))
        source = jinja_env("airflow").get_template("dag.py.j2").render(**builder.context())
        return {f"{ir.name}.py": black_format(source)}

    @staticmethod
    def in_pod(ir: Pipeline, s: Step) -> bool:
        """Whether ``s`` runs as a KubernetesPodOperator (the stack's ``pod_operator``, a
        command step with an image): only a pod installs the step's ``packages``."""
        return _pod_step(bool(ir.orchestrator_settings("airflow").get("pod_operator")), s)


def _pod_step(pod_operator: bool, s: Step) -> bool:
    """The rule of :meth:`AirflowTarget.in_pod`, given the stack's ``pod_operator``."""
    return pod_operator and s.kind == "command" and bool(s.image)


class _Builder:
    """Turns the IR into the template's context (code snippets, in a fixed order)."""

    def __init__(self, ir: Pipeline, header: list[str]):
        self.ir = ir
        self.header = header
        self.imports: set[str] = set()
        settings = ir.orchestrator_settings("airflow")  # the stack's, when it runs on Airflow
        self.pods = bool(settings.get("pod_operator"))
        self.namespace = settings["namespace"]
        # pods asked for: Python tasks with resources get a pod_override (KubernetesExecutor)
        self.k8s_executor = self.pods
        self.groups = {g.name: g for g in _cf(ir, "groups", ())}
        self.vars: dict[str, str] = {}  # step or group -> its Python variable
        used = set(RESERVED)
        for name in [s.name for s in ir.steps] + [f"{g}_group" for g in self.groups]:
            var = _ident(name.replace(".", "__"))
            while var in used:
                var += "_"
            used.add(var)
            self.vars[name] = var
        self.step_names = {s.name for s in ir.steps}
        self.uses_groups = False
        self.uses_mapped_groups = False
        self.flow_outputs = False  # the _flowc_outputs task
        self.watcher = False  # the _flowc_failed task
        self.backoff_policy = False  # the _Backoff RetryPolicy class
        self.needs_macros = False
        self.uses_literal = False  # airflow.sdk.literal() wraps literal BashOperator env values
        self.needs_outputs_hook = False

    # -- defaults --------------------------------------------------------------------------

    def _common(self, attr: str) -> Any:
        values = [getattr(s, attr) for s in self.ir.steps]
        if not values:
            return None
        counts = Counter(values)
        best = max(counts.values())
        return next(v for v in values if counts[v] == best)

    def default_args(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.ir.owner:
            out.append(("owner", py_literal(self.ir.owner)))
        self.d_retries = self._common("retries") or 0
        self.d_delay = self._common("retry_delay") or 0.0
        self.d_timeout = self._common("timeout")
        out.append(("retries", repr(self.d_retries)))
        # Airflow's own default delay is 5 minutes: a flow's delay (0s when none is written, as
        # under `flowc run`) is always spelled when a task can retry
        if self.d_delay or any(s.retries for s in self.ir.steps):
            self.imports.add("datetime")
            out.append(("retry_delay", _timedelta(self.d_delay)))
        if self.d_timeout is not None:
            self.imports.add("datetime")
            out.append(("execution_timeout", _timedelta(self.d_timeout)))
        return out

    def task_policy(self, s: Step) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if s.retries != self.d_retries:
            out.append(("retries", repr(s.retries)))
        backoff = float(_cf(s, "retry_backoff", 1.0))
        max_delay = _cf(s, "retry_max_delay", None)
        delay = s.retry_delay
        if backoff == 1.0 and max_delay is not None:
            delay = min(delay, float(max_delay))  # a constant delay, capped
        if delay != self.d_delay:
            self.imports.add("datetime")
            out.append(("retry_delay", _timedelta(delay)))
        if backoff != 1.0:
            # Airflow's delay before try n+1 is retry_delay * backoff**(n-1), capped by
            # max_retry_delay (its scheduler adds a deterministic jitter below that delay again)
            out.append(("retry_exponential_backoff", repr(backoff)))
            if max_delay is not None:
                self.imports.add("datetime")
                out.append(("max_retry_delay", _timedelta(float(max_delay))))
            # ... so the exact delay comes from a RetryPolicy (Airflow 3.3's own hook, evaluated
            # in the worker): retry_delay * backoff**(n-2) before attempt n, capped
            self.imports.add("datetime")
            self.backoff_policy = True
            cap = "None" if max_delay is None else repr(float(max_delay))
            out.append(("retry_policy", f"_Backoff({float(delay)!r}, {backoff!r}, {cap})"))
        if s.timeout != self.d_timeout:
            if s.timeout is None:
                out.append(("execution_timeout", "None"))
            else:
                self.imports.add("datetime")
                out.append(("execution_timeout", _timedelta(s.timeout)))
        if not s.resources.is_empty() and not self._is_pod(s):
            out.append(("executor_config", self._executor_config(s)))
        return out

    def _executor_config(self, s: Step) -> str:
        """Resources for the task's worker: a ``pod_override`` when the stack's Airflow orchestrator
        asks for pods (``pod_operator: true``, tasks then run on the KubernetesExecutor);
        otherwise plain data under ``flowc_resources`` (for a cluster policy or a custom
        executor), so parsing the file never imports the kubernetes client (~1-2 s)."""
        if not self.k8s_executor:
            return "{" + f'"flowc_resources": {py_literal(s.resources.to_data())}' + "}"
        self.imports.add("k8s")
        res = self._k8s_resources(s)
        image = f", image={py_literal(s.image)}" if s.image and self.pods else ""
        selector = s.resources.node_selector()
        nodes = f", node_selector={py_literal(selector)}" if selector else ""
        return (
            '{"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container('
            f'name="base"{image}, resources={res})]{nodes}))}}'
        )

    def _k8s_resources(self, s: Step) -> str:
        res = pod_resources(s.resources)
        req, lim = res.get("requests", {}), res.get("limits", {})
        return f"k8s.V1ResourceRequirements(requests={py_literal(req)}, limits={py_literal(lim)})"

    # -- DAG arguments -----------------------------------------------------------------------

    def schedule_args(self) -> list[tuple[str, str]]:
        sch = self.ir.schedule
        if sch is None:
            return [("schedule", "None"), ("catchup", "False")]
        out: list[tuple[str, str]] = []
        tz = sch.timezone or "UTC"
        if sch.kind == "cron":
            self.imports.add("CronTriggerTimetable")
            timetable = f"CronTriggerTimetable({py_literal(sch.cron)}, timezone={py_literal(tz)})"
            out.append(("schedule", timetable))
        elif sch.kind == "every":
            self.imports.add("datetime")
            out.append(("schedule", _timedelta(float(sch.every_seconds or 0))))
        else:
            out.append(("schedule", py_literal("@once")))
        start = sch.at if sch.kind == "at" else sch.start
        if start is not None:
            self.imports.add("pendulum")
            out.append(("start_date", _pendulum(start, tz)))
        if sch.end is not None:
            self.imports.add("pendulum")
            out.append(("end_date", _pendulum(sch.end, tz)))
        out.append(("catchup", repr(bool(sch.catchup))))
        return out

    def params(self) -> list[tuple[str, str]]:
        out = []
        for p in self.ir.params:
            args: list[str] = []
            jtype: Any = PARAM_TYPES[p.type]
            if p.has_default:
                args.append(py_literal(p.default))
                if p.default is None:
                    jtype = ["null", jtype]
            elif not p.required:
                args.append("None")
                jtype = ["null", jtype]
            args.append(f"type={py_literal(jtype)}")
            if p.enum is not None:
                args.append(f"enum={py_literal(list(p.enum))}")
            if p.min is not None:
                args.append(f"minimum={p.min!r}")
            if p.max is not None:
                args.append(f"maximum={p.max!r}")
            if p.description is not None:
                args.append(f"description={py_literal(p.description)}")
            out.append((py_literal(p.name), f"Param({', '.join(args)})"))
        return out

    # -- tasks -----------------------------------------------------------------------------

    def _is_pod(self, s: Step) -> bool:
        return _pod_step(self.pods, s)

    # -- groups (TaskGroup, mapped task groups) ------------------------------------------

    def _foreach_group(self, group: str | None) -> str | None:
        """The nearest foreach group holding ``group`` (itself included), if any."""
        while group is not None:
            g = self.groups[group]
            if g.foreach is not None:
                return g.name
            group = g.parent
        return None

    def _task_id(self, name: str, suffix: str = "") -> str:
        """The id passed to the operator: the local name (its TaskGroup prefixes the rest)."""
        return name.rpartition(".")[2] + suffix

    def _full_id(self, name: str, suffix: str = "") -> str:
        return name + suffix

    def _node(self, name: str, suffix: str = "") -> str:
        """Code naming the task ``name + suffix`` (or group ``name``) where edges are set: the
        variable, or ``dag.task_dict[...]`` for a task created inside a mapped group's body."""
        if name in self.groups:
            return self.vars[f"{name}_group"]
        s = self.ir.step(name)
        if self._foreach_group(_cf(s, "group", None)) is not None:
            return f"dag.task_dict[{py_literal(name + suffix)}]"
        return self.vars[name] + suffix

    def _chain_ids(self, s: Step) -> list[str]:
        """Suffixes of the step's tasks in order: gate, items helper, the step itself."""
        chain = []
        if s.when is not None:
            chain.append("__when")
        if s.foreach is not None:
            chain.append("__items")
        chain.append("")
        return chain

    def _group_code(self, g: Any, pad: str) -> list[dict[str, Any]]:
        """A plain group: ``<var> = TaskGroup("<local>", parent_group=...)``."""
        self.uses_groups = True
        args = [py_literal(g.local_name if hasattr(g, "local_name") else g.name)]
        if g.parent is not None and self._foreach_group(g.parent) is None:
            args.append(f"parent_group={self.vars[g.parent + '_group']}")
        if g.description:
            args.append(f"tooltip={py_literal(g.description)}")
        return [
            {"raw": f"{self.vars[g.name + '_group']} = TaskGroup({', '.join(args)})", "pad": pad}
        ]

    def tasks(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Every task (gate, items helper, step) and every edge, in step order; a foreach
        group's members inside its ``@task_group`` body, emitted where its first member is."""
        tasks: list[dict[str, Any]] = []
        edges: list[tuple[str, str]] = []
        for g in self.groups.values():  # plain groups first, parents before children
            if self._foreach_group(g.name) is None:
                tasks += self._group_code(g, "")
        emitted: set[str] = set()
        steps = [s for s in self.ir.steps if not _cf(s, "is_finally", False)]
        finals = [s for s in self.ir.steps if _cf(s, "is_finally", False)]
        for s in steps + finals:
            fg = self._foreach_group(_cf(s, "group", None))
            if fg is None:
                tasks += self._step_tasks(s, "")
            elif fg not in emitted:
                emitted.add(fg)
                tasks += self._mapped_group(fg)
        for s in steps + finals:
            chain = [self._node(s.name, x) for x in self._chain_ids(s)]
            ups = list(s.upstream)
            if _cf(s, "is_finally", False):
                finally_ups = [
                    u
                    for u in ups
                    if u in self.step_names and _cf(self.ir.step(u), "is_finally", False)
                ]
                # a finally step without finally upstream waits for every other step (all_done)
                ups = finally_ups or [x.name for x in steps]
            for up in ups:
                edges.append((self._last(up), chain[0]))
            edges.extend(zip(chain, chain[1:], strict=False))
        for g in self.groups.values():
            # the group waits for its sibling-level upstream (its members' outside deps, its
            # foreach and after:); a foreach group's items helper does, the rest follows it
            if g.foreach is not None:
                targets = [self._group_items_node(g)]
            elif self._foreach_group(g.name) is None:
                targets = [self._node(g.name)]
            else:  # a TaskGroup inside a mapped group's body: its variable is local there
                targets = self._roots(g.name)
            for up in g.upstream:
                edges.extend((self._last(up), t) for t in targets)
        tasks += self._run_tasks(steps, finals, edges)
        for t in tasks:
            t.setdefault("pad", "")
        return tasks, list(dict.fromkeys(edges))

    def _roots(self, group: str) -> list[str]:
        """The first tasks of the group's member steps that depend on nothing inside it."""
        inside = set(self.ir.members(group)) | {g for g in self.groups if g.startswith(group + ".")}
        return [
            self._node(m, self._chain_ids(self.ir.step(m))[0])
            for m in self.ir.members(group)
            if not inside & set(self.ir.step(m).upstream)
        ]

    def _last(self, name: str) -> str:
        return self._node(name)

    def _group_items_node(self, g: Any) -> str:
        return self.vars[g.name + "_group"].removesuffix("_group") + "__items"

    def _mapped_group(self, name: str) -> list[dict[str, Any]]:
        """A foreach group: its ``<group>__items`` task, then ``@task_group`` with every member
        (plain child groups too) in its body, expanded over the items (``index``: the item's
        position, ``-1`` for the one placeholder instance of an empty list)."""
        self.uses_mapped_groups = True
        self.imports.add("PythonOperator")
        g = self.groups[name]
        var = self.vars[name + "_group"]
        items_var = self._group_items_node(g)
        items_kwargs = [
            ("task_id", py_literal(self._task_id(name, "__items"))),
            ("python_callable", "_items"),
            ("op_args", py_literal([name])),
            ("retries", "0"),
        ]
        if g.parent is not None:
            items_kwargs.append(("task_group", self.vars[g.parent + "_group"]))
        out: list[dict[str, Any]] = [
            {"var": items_var, "ctor": "PythonOperator", "kwargs": items_kwargs, "mapped": None}
        ]
        deco = [f"group_id={py_literal(self._task_id(name))}"]
        if g.parent is not None:
            deco.append(f"parent_group={self.vars[g.parent + '_group']}")
        if g.description:
            deco.append(f"tooltip={py_literal(g.description)}")
        body = var.removesuffix("_group") + "__body"
        out.append({"raw": f"@task_group({', '.join(deco)})", "pad": ""})
        out.append({"raw": f"def {body}(index):", "pad": ""})
        inner = "    "
        for child in self.groups.values():  # plain groups nested in this one
            if child.name.startswith(name + ".") and child.name != name:
                cargs = [py_literal(child.local_name)]
                if child.parent != name:
                    cargs.append(f"parent_group={self.vars[child.parent + '_group']}")
                out.append(
                    {
                        "raw": f"{self.vars[child.name + '_group']} = TaskGroup({', '.join(cargs)})",
                        "pad": inner,
                    }
                )
                self.uses_groups = True
        for s in self.ir.steps:
            if self._foreach_group(_cf(s, "group", None)) == name:
                out += self._step_tasks(s, inner, group_index=True)
        out.append({"raw": f"{var} = {body}.expand(index={items_var}.output)", "pad": ""})
        return out

    def _run_tasks(
        self, steps: list[Step], finals: list[Step], edges: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """The flow outputs task and the watcher that fails the DAG run when a step failed."""
        ir = self.ir
        has_outputs = bool(_cf(ir, "outputs", ()))
        needs_watcher = (
            has_outputs
            or bool(finals)
            or any(_cf(s, "trigger", "all_success") != "all_success" for s in ir.steps)
        )
        out: list[dict[str, Any]] = []
        every = [self._node(s.name) for s in steps + finals]
        if has_outputs:
            self.imports.add("PythonOperator")
            self.flow_outputs = True
            out.append(
                {
                    "var": "_flowc_outputs",
                    "ctor": "PythonOperator",
                    "kwargs": [
                        ("task_id", py_literal(OUTPUTS_TASK)),
                        ("python_callable", "_flow_outputs"),
                        ("trigger_rule", py_literal("all_done")),
                        ("retries", "0"),
                    ],
                    "mapped": None,
                }
            )
            edges.extend((n, "_flowc_outputs") for n in every)
        if needs_watcher:
            self.imports.add("PythonOperator")
            self.watcher = True
            out.append(
                {
                    "var": "_flowc_failed",
                    "ctor": "PythonOperator",
                    "kwargs": [
                        ("task_id", py_literal(WATCHER_TASK)),
                        ("python_callable", "_run_failed"),
                        ("trigger_rule", py_literal("one_failed")),
                        ("retries", "0"),
                    ],
                    "mapped": None,
                }
            )
            edges.extend((n, "_flowc_failed") for n in every)
        return out

    def _step_tasks(self, s: Step, pad: str, group_index: bool = False) -> list[dict[str, Any]]:
        """The step's gate, items helper and own task (``group_index``: inside a mapped group's
        body, where ``index`` is the group item's position)."""
        var = self.vars[s.name]
        out: list[dict[str, Any]] = []
        trigger = _cf(s, "trigger", "all_success")
        if _cf(s, "is_finally", False) and not any(
            u in self.step_names and _cf(self.ir.step(u), "is_finally", False) for u in s.upstream
        ):
            trigger = "all_done"  # it waits for every other step, whatever their state
        first: list[tuple[str, str]] = []
        if trigger != "all_success":
            first.append(("trigger_rule", py_literal(trigger)))
        where: list[tuple[str, str]] = []
        group = _cf(s, "group", None)
        if group is not None and self._foreach_group(group) != group:
            where.append(("task_group", self.vars[group + "_group"]))
        if s.when is not None:
            self.imports.add("ShortCircuitOperator")
            out.append(self._helper(s, "when", "ShortCircuitOperator", "_when", first + where))
            first = []
        mapped: str | None = None
        if s.foreach is not None:
            self.imports.add("PythonOperator")
            out.append(self._helper(s, "items", "PythonOperator", "_items", first + where))
            first = []
            mapped = f"{var}__items.output"
        elif s.replicas > 1:
            if s.kind == "run":
                copies: list[Any] = [{"index": i} for i in range(s.replicas)]
            else:  # the expanded env replaces the static one: carry it in every copy
                n = str(s.replicas)
                copies = [
                    self._env_code(s, {"FLOWC_REPLICA": str(i), "FLOWC_REPLICAS": n})
                    for i in range(s.replicas)
                ]
            mapped = py_literal(copies) if s.kind == "run" else "[" + ", ".join(copies) + "]"
        task = self._step_task(s, var, mapped, group_index=group_index)
        task["kwargs"][1:1] = first + where  # after task_id
        out.append(task)
        for t in out:
            t["pad"] = pad
            if group_index:  # inside a mapped group's body: edges name it by task id
                t["var"] = None
        return out

    def _helper(
        self,
        s: Step,
        suffix: str,
        ctor: str,
        fn: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        kwargs = [
            ("task_id", py_literal(self._task_id(s.name, f"__{suffix}"))),
            *(extra or []),
            ("python_callable", fn),
            ("op_args", py_literal([s.name])),
            ("retries", "0"),
        ]
        if ctor == "ShortCircuitOperator":
            # skip the gated step only; its downstream tasks then skip by their trigger rule
            kwargs.append(("ignore_downstream_trigger_rules", "False"))
        return {
            "var": f"{self.vars[s.name]}__{suffix}",
            "ctor": ctor,
            "kwargs": kwargs,
            "mapped": None,
        }

    def _step_task(
        self, s: Step, var: str, mapped: str | None, group_index: bool = False
    ) -> dict[str, Any]:
        policy = self.task_policy(s)
        if s.kind == "run":
            self.imports.add("PythonOperator")
            kwargs = [
                ("task_id", py_literal(self._task_id(s.name))),
                ("python_callable", "_run"),
                ("op_args", py_literal([s.name])),
                *([("op_kwargs", '{"index": index}')] if group_index else []),
                *policy,
            ]
            return {
                "var": var,
                "ctor": "PythonOperator",
                "kwargs": kwargs,
                "mapped": ("op_kwargs", mapped) if mapped else None,
            }
        # None: the code `index` (a mapped group's item position)
        extra_env: dict[str, str | None] | None = {"FLOWC_INDEX": None} if group_index else None
        if self._is_pod(s):
            return self._pod_task(s, var, mapped, policy, extra_env)
        self.imports.add("BashOperator")
        skip_codes = tuple(_cf(s, "skip_on_exit_code", ()))
        kwargs = [
            ("task_id", py_literal(self._task_id(s.name))),
            ("bash_command", py_literal(self._bash_command(s))),
            *([] if mapped else [("env", self._env_code(s, extra_env))]),
            ("append_env", "True"),
            ("skip_on_exit_code", py_literal(list(skip_codes)) if skip_codes else "None"),
            ("do_xcom_push", repr(bool(s.outputs))),
            *self._outputs_hook(s),
            *policy,
        ]
        return {
            "var": var,
            "ctor": "BashOperator",
            "kwargs": kwargs,
            "mapped": ("env", mapped) if mapped else None,
        }

    def _outputs_hook(self, s: Step) -> list[tuple[str, str]]:
        """A command step with outputs pushes one XCom per output name after it ran (a
        ``run:`` step's callable pushes them itself): see flowc.runtime.airflow."""
        if not s.outputs:
            return []
        self.needs_outputs_hook = True
        return [("post_execute", "_outputs")]

    def _arg(self, s: Step, index: int, enc: Any, *, quote: bool) -> str:
        """Template text for argv[index]: inline when plain, else the ``flowc_arg`` macro."""
        if is_plain(enc):
            text = plain_text(enc)
            return jinja_literal(shlex.quote(text) if quote else text)
        self.needs_macros = True
        return f"{{{{ flowc_arg({s.name!r}, {index}, {quote!r}) }}}}"

    def _bash_command(self, s: Step) -> str:
        encs = [encode_expr(a) for a in s.command or ()]
        argv = " ".join(self._arg(s, i, a, quote=True) for i, a in enumerate(encs))
        if s.outputs:
            # $FLOWC_OUTPUTS: the command writes a JSON object there (as under `flowc run`); its
            # newline-free copy is the last stdout line, which BashOperator pushes to XCom.
            text = (
                'export FLOWC_OUTPUTS="$(mktemp)" && '
                f"{argv} && printf '\\n' && tr -d '\\r\\n' < \"$FLOWC_OUTPUTS\""
            )
        else:
            text = argv
        if s.foreach is not None or self._foreach_group(_cf(s, "group", None)) is not None:
            # the placeholder instance of a foreach (or a foreach group) over no items
            text = 'if [ "$FLOWC_INDEX" = "-1" ]; then exit 0; fi; ' + text
        if text.endswith((".sh", ".bash")):
            text += " "  # otherwise Airflow reads it as a template file name
        return text

    def _env_code(self, s: Step, extra: dict[str, str | None] | None = None) -> str:
        """The task's env as code. BashOperator renders ``env`` as templates and reads a value
        ending in ``.sh``/``.bash`` (its ``template_ext``) as a template FILE: every literal value
        is wrapped in ``airflow.sdk.literal()`` and reaches the step as written, as under
        ``flowc run``. KubernetesPodOperator has no ``template_ext``: its values stay
        Jinja-escaped text (it turns them into V1EnvVar objects)."""
        if self._is_pod(s):
            env = {**self._env(s), **{k: v for k, v in (extra or {}).items() if v is not None}}
            code = py_literal(env)
            if extra and None in extra.values():  # a mapped group's item position
                code = (
                    code[:-1]
                    + ", "
                    + ", ".join(f"{py_literal(k)}: index" for k, v in extra.items() if v is None)
                    + "}"
                )
            return code
        items: list[tuple[str, str]] = []
        for k, v in s.env:
            enc = encode_expr(v)
            if is_plain(enc):
                self.uses_literal = True
                items.append((k, f"literal({py_literal(plain_text(enc))})"))
            else:
                self.needs_macros = True
                items.append((k, py_literal(f"{{{{ flowc_env({s.name!r}, {k!r}) }}}}")))
        fixed = {"FLOWC_STEP": s.name, "FLOWC_RUN_ID": "{{ run_id }}", **(extra or {})}
        items += [(k, "index" if v is None else py_literal(v)) for k, v in fixed.items()]
        return "{" + ", ".join(f"{py_literal(k)}: {code}" for k, code in items) + "}"

    def _env(self, s: Step) -> dict[str, str]:
        env: dict[str, str] = {}
        for k, v in s.env:
            enc = encode_expr(v)
            if is_plain(enc):
                env[k] = jinja_literal(plain_text(enc))
            else:
                self.needs_macros = True
                env[k] = f"{{{{ flowc_env({s.name!r}, {k!r}) }}}}"
        env["FLOWC_STEP"] = s.name
        env["FLOWC_RUN_ID"] = "{{ run_id }}"
        if s.outputs and self._is_pod(s):
            env["FLOWC_OUTPUTS"] = POD_XCOM_FILE
        return env

    def _pod_task(
        self,
        s: Step,
        var: str,
        mapped: str | None,
        policy: list[tuple[str, str]],
        extra_env: dict[str, str | None] | None = None,
    ) -> dict[str, Any]:
        self.imports.add("KubernetesPodOperator")
        argv = [encode_expr(a) for a in s.command or ()]
        cmds = [self._arg(s, 0, argv[0], quote=False)] if argv else []
        args = [self._arg(s, i, a, quote=False) for i, a in enumerate(argv) if i > 0]
        if s.packages:  # the pod installs them, then runs the command (`sh -c ... "$0" "$@"`)
            wrapped = with_pip_install(s, cmds + args, flowc=False)  # argv: already rendered
            cmds, args = [*wrapped[:2], jinja_literal(wrapped[2])], wrapped[3:]
        kwargs = [
            ("task_id", py_literal(self._task_id(s.name))),
            ("name", py_literal(kebab(s.name.replace(".", "-")))),
            ("namespace", py_literal(self.namespace)),
            ("image", py_literal(jinja_literal(s.image or ""))),
            ("cmds", py_literal(cmds)),
            ("arguments", py_literal(args)),
            *([] if mapped else [("env_vars", self._env_code(s, extra_env))]),
            *(
                [("skip_on_exit_code", py_literal(list(_cf(s, "skip_on_exit_code", ()))))]
                if _cf(s, "skip_on_exit_code", ())
                else []
            ),
            # declared outputs: the JSON the command writes to $FLOWC_OUTPUTS is the pod's XCom
            ("do_xcom_push", repr(bool(s.outputs))),
            *self._outputs_hook(s),
            *policy,
        ]
        if not s.resources.is_empty():
            self.imports.add("k8s")
            kwargs.append(("container_resources", self._k8s_resources(s)))
        if s.resources.node_selector():
            kwargs.append(("node_selector", py_literal(s.resources.node_selector())))
        return {
            "var": var,
            "ctor": "KubernetesPodOperator",
            "kwargs": kwargs,
            "mapped": ("env_vars", mapped) if mapped else None,
        }

    # -- everything ----------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        ir = self.ir
        dargs = self.default_args()
        dag_args: list[tuple[str, str]] = [("dag_id", py_literal(ir.name))]
        if ir.description:
            dag_args.append(("description", py_literal(ir.description)))
        dag_args += self.schedule_args()
        if ir.tags:
            dag_args.append(("tags", py_literal(list(ir.tags))))
        dag_args.append(
            ("default_args", _code_dict([(py_literal(k), v) for k, v in dargs], "default_args"))
        )
        params = self.params()
        if params:
            dag_args.append(("params", _code_dict(params, "params")))
        tasks, edges = self.tasks()
        if self.needs_macros:
            dag_args.append(("user_defined_macros", '{"flowc_arg": _arg, "flowc_env": _env}'))
        sdk_names = ["DAG"]
        if "CronTriggerTimetable" in self.imports:
            sdk_names.append("CronTriggerTimetable")
        if params:
            sdk_names.append("Param")
        if self.uses_groups:
            sdk_names.append("TaskGroup")
        if self.uses_literal:
            sdk_names.append("literal")
        if self.uses_mapped_groups:
            sdk_names.append("task_group")
        if self.backoff_policy:
            sdk_names += ["RetryDecision", "RetryPolicy"]
        return {
            "sdk_names": sdk_names,
            "header": self.header,
            "imports": sorted(self.imports),
            "plan_lines": plan_json_lines(ir.to_data()),
            "dag_args": dag_args,
            "tasks": tasks,
            "edges": edges,
            "macros": self.needs_macros,
            "outputs_hook": self.needs_outputs_hook,
            "any_python": "PythonOperator" in self.imports,
            "any_when": "ShortCircuitOperator" in self.imports,
            "any_foreach": any(s.foreach is not None for s in ir.steps) or self.uses_mapped_groups,
            "flow_outputs": self.flow_outputs,
            "watcher": self.watcher,
            "backoff_policy": self.backoff_policy,
        }
