"""Airflow's task model -> a flowc flow: shared by the dag-factory and the Airflow DAG importers.

Both importers first describe a DAG as plain data (:class:`dict`, documented on :func:`convert`)
and this module turns that into a :class:`~flowc.compiler.importers.Imported`: bash tasks become
``command: [bash, -c, ...]`` steps, Python callables ``run: module:function`` steps whose return
value is the output ``return_value`` (Airflow's XCom key), upstream task ids ``after:`` (or the
``${steps...}`` references that imply them), task groups groups, mapped tasks ``foreach``,
branch and short-circuit operators ``when:`` on their direct downstream steps, and retries,
timeouts, trigger rules, params and the schedule their flowc keys. Everything else is a comment
at the step plus a warning.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from flowc.compiler.importers import Imported, flow_name, step_name
from flowc.compiler.importers.writer import Map

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
TRIGGERS = {
    "all_success",
    "all_done",
    "one_failed",
    "one_success",
    "none_failed",
    "none_failed_min_one_success",
    "all_failed",
}
TRIGGER_ALIASES = {"none_failed_or_skipped": "none_failed_min_one_success"}
PARAM_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}
PY_TYPES = {str: "str", bool: "bool", int: "int", float: "float", list: "list", dict: "dict"}
#: Airflow context names a callable may declare, and the flowc value that stands for each.
CONTEXT_VALUES = {
    "ds": "${run.ds}",
    "ds_nodash": "${run.ds_nodash}",
    "run_id": "${run.id}",
    "ts": "${run.date}",
    "logical_date": "${run.date}",
}
CONTEXT_NAMES = {
    "ti",
    "task_instance",
    "dag",
    "dag_run",
    "task",
    "conf",
    "macros",
    "data_interval_start",
    "data_interval_end",
    "execution_date",
    "prev_ds",
    "next_ds",
    "var",
    "conn",
    "outlets",
    "inlets",
    "triggering_asset_events",
}
_JINJA = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_JINJA_SIMPLE = {
    "ds": "${run.ds}",
    "ds_nodash": "${run.ds_nodash}",
    "run_id": "${run.id}",
    "ts": "${run.date}",
    "logical_date": "${run.date}",
    "dag.dag_id": "${flow.name}",
}


def duration(seconds: float | int | None) -> str | None:
    """A flowc duration (``30s``, ``5m``, ``2h``, ``1d``, ``500ms``) for a number of seconds."""
    if seconds is None:
        return None
    if seconds != int(seconds):
        return f"{int(round(seconds * 1000))}ms"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


class Converter:
    def __init__(self, dag: dict[str, Any], source: str, name: str | None):
        self.dag = dag
        self.source = source
        self.imp = Imported(name or flow_name(dag["dag_id"]), Map())
        self.tasks: dict[str, dict[str, Any]] = {t["task_id"]: t for t in dag["tasks"]}
        self.groups: dict[str, dict[str, Any]] = {g["group_id"]: g for g in dag.get("groups", [])}
        self.params: list[str] = list(dag.get("params") or {})
        # task id -> flowc qualified name (groups joined by ".")
        self.qual: dict[str, str] = {}
        for t in dag["tasks"]:
            g = t.get("group")
            local = step_name(
                t["task_id"][len(g) + 1 :]
                if g and t["task_id"].startswith(g + ".")
                else t["task_id"]
            )
            self.qual[t["task_id"]] = f"{self._gqual(g)}.{local}" if g else local
        self.referenced: set[str] = set()
        self.lifted: dict[str, set[str]] = {}  # group id -> extra after: names

    # -- naming ---------------------------------------------------------------------------
    def _gqual(self, group: str | None) -> str:
        if not group:
            return ""
        g = self.groups.get(group, {})
        local = group.rsplit(".", 1)[-1]
        parent = g.get("parent")
        return f"{self._gqual(parent)}.{step_name(local)}" if parent else step_name(local)

    def _ref_name(self, task_id: str, from_group: str | None) -> str:
        """How a step in ``from_group`` names ``task_id``: local inside the same group."""
        q = self.qual.get(task_id, step_name(task_id))
        here = self._gqual(from_group)
        if here and q.startswith(here + ".") and "." not in q[len(here) + 1 :]:
            return q[len(here) + 1 :]
        return q

    def where(self, line: int | None) -> str:
        return f"{self.source}:{line}" if line else self.source

    # -- values -----------------------------------------------------------------------------
    def value(self, v: Any, task: dict[str, Any], notes: list[str]) -> Any:
        """A task argument as a flowc value: ``{"$task": id}`` (an XComArg / ``+task``) becomes a
        ``${steps...}`` reference, Jinja templates flowc expressions where one exists."""
        if isinstance(v, dict) and set(v) in ({"$task"}, {"$task", "key"}):
            self.referenced.add(v["$task"])
            ref = f"steps.{self._ref_name(v['$task'], task.get('group'))}.outputs.return_value"
            if "key" in v:  # an XCom of a multiple_outputs task: a key of its returned dict
                ref += f".{v['key']}"
            return f"${{{ref}}}"
        if isinstance(v, dict) and set(v) == {"$item"}:
            return "${item}"
        if isinstance(v, dict) and set(v) == {"$unsupported"}:
            notes.append(self.imp.warn(self.where(task.get("line")), v["$unsupported"]))
            return None
        if isinstance(v, dict):
            return {str(k): self.value(x, task, notes) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.value(x, task, notes) for x in v]
        if isinstance(v, str):
            return self.template(v, task, notes)
        return v

    def template(self, text: str, task: dict[str, Any], notes: list[str]) -> str:
        text = text.replace("${", "$${")

        def sub(m: re.Match[str]) -> str:
            inner = m.group(1)
            if inner in _JINJA_SIMPLE:
                return _JINJA_SIMPLE[inner]
            pm = re.fullmatch(r"params\.([A-Za-z_][A-Za-z0-9_]*)", inner)
            if pm and pm.group(1) in self.params:
                return f"${{params.{pm.group(1)}}}"
            notes.append(
                self.imp.warn(
                    self.where(task.get("line")),
                    f"task '{task['task_id']}': Jinja template '{{{{ {inner} }}}}' has no flowc "
                    "equivalent; kept as literal text",
                )
            )
            return m.group(0)

        return _JINJA.sub(sub, text)

    # -- the flow -----------------------------------------------------------------------------
    def convert(self) -> Imported:
        d, imp = self.dag, self.imp
        flow = imp.flow
        flow.set("flowc", 1)
        flow.set("name", imp.name)
        if d.get("description"):
            flow.set("description", d["description"])
        if d.get("tags"):
            flow.set("tags", list(d["tags"]))
        if d.get("owner") and d["owner"] != "airflow":
            flow.set("owner", d["owner"])
        self._params(flow)
        self._defaults(flow)
        self._schedule(flow)
        for key, msg in (d.get("extra") or {}).items():
            flow.notes.append(
                imp.warn(
                    self.where(d.get("line")),
                    f"DAG argument '{key}' ({msg}) has no flowc equivalent",
                )
            )
        steps = Map(spaced=True)
        gates = self._gates()
        # a group sits where its first task (or sub-group) is written
        group_maps: dict[str, Map] = {}

        def group_map(gid: str) -> Map:
            if gid not in group_maps:
                g = self.groups[gid]
                gm = Map()
                if g.get("tooltip"):
                    gm.set("description", g["tooltip"])
                ups = self._collapse(set(g.get("upstream") or []), g.get("parent"), gid)
                if ups:
                    gm.set("after", ups)
                if g.get("expand"):
                    exp = g["expand"]
                    notes: list[str] = []
                    if len(exp) == 1:
                        gm.set(
                            "foreach", self.value(next(iter(exp.values())), {"task_id": gid}, notes)
                        )
                    else:
                        gm.set("foreach", self.value(exp, {"task_id": gid}, notes))
                    gm.notes.extend(notes)
                gm.set("steps", Map(spaced=True))
                group_maps[gid] = gm
                parent = g.get("parent")
                local = step_name(gid.rsplit(".", 1)[-1])
                (group_map(parent).get("steps") if parent else steps).set(local, gm)
            return group_maps[gid]

        for t in d["tasks"]:
            sm = self._step(t, gates)
            g = t.get("group")
            local = self.qual[t["task_id"]].rsplit(".", 1)[-1]
            (group_map(g).get("steps") if g else steps).set(local, sm)
        for gid, extra in self.lifted.items():
            gm = group_map(gid)
            have = set(gm.get("after") or [])
            names = sorted(have | extra)
            if "after" in gm:
                gm.set("after", names)
            else:
                gm.entries.insert(len(gm.entries) - 1, type(gm.entries[0])("after", names))
        flow.set("steps", steps)
        return imp

    def _params(self, flow: Map) -> None:
        params = self.dag.get("params") or {}
        if not params:
            return
        pm = Map()
        for name, p in params.items():
            entry = Map()
            schema = dict(p.get("schema") or {})
            default = p.get("default")
            typ = schema.pop("type", None)
            nullable = False
            if isinstance(typ, list):
                nullable = "null" in typ
                typ = next((x for x in typ if x != "null"), None)
            ftype = PARAM_TYPES.get(typ) if typ else None
            if ftype is None:
                ftype = PY_TYPES.get(type(default), "str") if default is not None else "str"
            if ftype == "float" and isinstance(default, bool):
                ftype = "bool"
            entry.set("type", ftype)
            if default is not None:
                if ftype == "float" and isinstance(default, int):
                    default = float(default)
                entry.set("default", default)
            elif not nullable:
                entry.set("required", True)  # Airflow refuses a run without a value
            desc = p.get("description") or schema.pop("description", None)
            schema.pop("description", None)
            if desc:
                entry.set("description", desc)
            if "enum" in schema:
                entry.set("enum", schema.pop("enum"))
            if "minimum" in schema:
                entry.set("min", schema.pop("minimum"))
            if "maximum" in schema:
                entry.set("max", schema.pop("maximum"))
            for k in sorted(schema):
                entry.notes.append(
                    self.imp.warn(
                        self.where(p.get("line")),
                        f"param '{name}': schema keyword '{k}' has no flowc equivalent",
                    )
                    + f" ({k}: {schema[k]!r})"
                )
            pm.set(step_name(name) if name != step_name(name) else name, entry)
        flow.set("params", pm)

    def _defaults(self, flow: Map) -> None:
        da = self.dag.get("default_args") or {}
        dm = Map()
        if da.get("retries"):
            dm.set("retries", int(da["retries"]))
        if da.get("retry_delay") is not None and da.get("retries"):
            dm.set("retry_delay", duration(da["retry_delay"]))
        if da.get("execution_timeout") is not None:
            dm.set("timeout", duration(da["execution_timeout"]))
        for k, v in (da.get("extra") or {}).items():
            dm.notes.append(
                self.imp.warn(
                    self.where(self.dag.get("line")), f"default_args '{k}' has no flowc equivalent"
                )
                + f" ({k}: {v})"
            )
        if len(dm) or dm.notes:
            flow.set("defaults", dm)

    def _schedule(self, flow: Map) -> None:
        d = self.dag
        sched = d.get("schedule")
        sm = Map()
        where = self.where(d.get("schedule_line") or d.get("line"))
        if sched is None:
            return
        if isinstance(sched, dict) and "every" in sched:
            sm.set("every", duration(sched["every"]))
        elif isinstance(sched, str) and sched in PRESETS:
            sm.set("cron", PRESETS[sched], comment=sched)
        elif isinstance(sched, str) and sched == "@once":
            if d.get("start_date"):
                sm.set("at", d["start_date"])
            else:
                flow.notes.append(
                    self.imp.warn(where, "schedule '@once' without a start date is dropped")
                )
                return
        elif isinstance(sched, str) and len(sched.split()) == 5:
            sm.set("cron", sched)
        else:
            flow.notes.append(
                self.imp.warn(
                    where, f"schedule {sched!r} has no flowc equivalent (cron, every, at); dropped"
                )
            )
            return
        if d.get("timezone") and d["timezone"] not in ("UTC", "Timezone('UTC')"):
            sm.set("timezone", d["timezone"])
        if d.get("start_date") and "at" not in sm:
            sm.set("start", d["start_date"])
        if d.get("start_date_note"):
            sm.notes.append(self.imp.warn(where, d["start_date_note"]))
        if d.get("end_date"):
            sm.set("end", d["end_date"])
        if d.get("catchup"):
            sm.set("catchup", True)
        flow.set("schedule", sm)

    def _gates(self) -> dict[str, list[str]]:
        """Task id -> ``when`` conditions from the branch / short-circuit tasks right upstream."""
        gates: dict[str, list[str]] = {}
        for t in self.dag["tasks"]:
            for u in t.get("upstream", []):
                src = self.tasks.get(u)
                if not src or src.get("kind") not in ("branch", "short_circuit"):
                    continue
                ref = f"${{steps.{self._ref_name(u, t.get('group'))}.outputs.return_value}}"
                if src["kind"] == "branch":
                    gates.setdefault(t["task_id"], []).append(f"'{t['task_id']}' in {ref}")
                else:
                    gates.setdefault(t["task_id"], []).append(f"{ref} == true")
        return gates

    def _step(self, t: dict[str, Any], gates: dict[str, list[str]]) -> Map:
        sm = Map()
        notes: list[str] = []
        w = self.where(t.get("line"))
        kind = t.get("kind")
        kwargs: dict[str, Any] = {}
        if kind == "bash":
            cmd = self.template(t.get("bash_command") or "", t, notes)
            sm.set("command", ["bash", "-c", cmd])
            if t.get("env"):
                sm.set("env", {str(k): str(v) for k, v in t["env"].items()})
            codes = list(t.get("skip_on_exit_code") or [])
            if codes == [99] and "99" not in cmd:
                codes = []  # BashOperator's default; kept only where the command can exit 99
            if codes:
                sm.set("skip_on_exit_code", codes)
        elif kind in ("python", "branch", "short_circuit"):
            cb = t.get("callable") or {}
            if cb.get("moved"):
                sm.set("run", f"{self.imp.name}_steps:{cb['function']}")
            elif cb.get("module") and cb.get("function"):
                sm.set("run", f"{cb['module']}:{cb['function']}")
            else:
                sm.set("run", "TODO_module:TODO_function")
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}': its callable could not be located ({cb.get('repr', '?')}); fill in run:",
                    )
                )
            sig = cb.get("params")  # parameter names in order, or None when unknown
            args = [self.value(v, t, notes) for v in t.get("args") or []]
            kwargs = {str(k): self.value(v, t, notes) for k, v in (t.get("kwargs") or {}).items()}
            if args:
                if sig and len(sig) >= len(args):
                    for name, v in zip(sig, args, strict=False):
                        kwargs.setdefault(name, v)
                else:
                    notes.append(
                        self.imp.warn(
                            w,
                            f"task '{t['task_id']}': positional op_args without a known signature are dropped ({args!r})",
                        )
                    )
            for name in sig or []:
                if name == "params" and name not in kwargs:
                    kwargs["params"] = {p: f"${{params.{p}}}" for p in self.params}
                    for k, v in (t.get("task_params") or {}).items():
                        kwargs["params"][k] = self.value(v, t, notes)
                elif name in CONTEXT_VALUES and name not in kwargs:
                    kwargs[name] = CONTEXT_VALUES[name]
                elif name in CONTEXT_NAMES and name not in kwargs:
                    notes.append(
                        self.imp.warn(
                            w,
                            f"task '{t['task_id']}': the callable takes Airflow's context value '{name}', which flowc does not pass (flowc passes ctx)",
                        )
                    )
            if cb.get("var_keyword") and "params" not in kwargs:
                kwargs["params"] = {p: f"${{params.{p}}}" for p in self.params}
            if cb.get("var_keyword"):
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}': the callable takes **{cb['var_keyword']} (Airflow's context); flowc passes params (a dict of every param) and the with: values, no other context value",
                    )
                )
            if t.get("runs_elsewhere"):
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}': {t['runs_elsewhere']} runs its callable in another Python; flowc runs it as a plain callable step (requirements: use the step's image)",
                    )
                )
            if kind == "branch":
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}' is a branch: its return value (the task ids to follow) gates its direct downstream steps with when:",
                    )
                )
            elif kind == "short_circuit":
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}' is a short-circuit: a falsy return value skips its direct downstream steps (when: ... == true; flowc compares with true, not truthiness)",
                    )
                )
        elif kind == "empty":
            sm.set("command", ["true"])  # EmptyOperator: does nothing
        else:
            sm.set("command", ["true"])
            notes.append(
                self.imp.warn(
                    w,
                    f"task '{t['task_id']}': operator {t.get('operator')} has no flowc equivalent; replaced by a no-op command (its arguments are below)",
                )
            )
            for k, v in sorted((t.get("operator_args") or {}).items()):
                notes.append(f"  {k}: {v}")
        # mapped tasks
        expand = t.get("expand")
        if expand:
            exp = {k: self.value(v, t, notes) for k, v in expand.items()}
            if kind in ("python", "branch", "short_circuit") and "op_args" in exp:
                sig = (t.get("callable") or {}).get("params") or []
                src = exp.pop("op_args")
                sm.set("foreach", src)
                if sig:
                    kwargs[sig[0]] = "${item[0]}"
                if len([p for p in sig[1:] if p not in kwargs]) > 0:
                    notes.append(
                        self.imp.warn(
                            w,
                            f"task '{t['task_id']}': op_args items are mapped to the first parameter '{sig[0] if sig else '?'}' only",
                        )
                    )
            if "op_kwargs" in exp:
                sm.set("foreach", exp.pop("op_kwargs"))
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}': expand(op_kwargs=...) items are dicts; pass them with ${{item.KEY}}",
                    )
                )
            if len(exp) == 1:
                ((k, v),) = exp.items()
                sm.set("foreach", v)
                kwargs[k] = "${item}"
            elif len(exp) > 1:
                sm.set("foreach", dict(exp))
                for k in exp:
                    kwargs[k] = f"${{item.{k}}}"
        if kwargs:
            sm.set("with", kwargs)
        if kind in ("python", "branch", "short_circuit") and t.get("do_xcom_push", True):
            sm.set("outputs", ["return_value"])  # Airflow's XCom key for the returned value
        after = self._after(t)
        if after:
            sm.set("after", after)
        if gates.get(t["task_id"]):
            sm.set("when", " and ".join(gates[t["task_id"]]))
        trig = t.get("trigger_rule") or "all_success"
        trig = TRIGGER_ALIASES.get(trig, trig)
        if trig == "always":
            sm.set("trigger", "all_done")
            notes.append(
                self.imp.warn(
                    w,
                    f"task '{t['task_id']}': trigger rule 'always' becomes all_done (flowc waits for the upstream steps)",
                )
            )
        elif trig in TRIGGERS:
            if trig != "all_success":
                sm.set("trigger", trig)
        else:
            notes.append(
                self.imp.warn(
                    w,
                    f"task '{t['task_id']}': trigger rule '{trig}' has no flowc equivalent; all_success is used",
                )
            )
        if t.get("retries"):
            sm.set("retries", int(t["retries"]))
            if t.get("retry_delay") is not None:
                sm.set("retry_delay", duration(t["retry_delay"]))
            if t.get("retry_exponential_backoff"):
                sm.set("retry_backoff", 2)
                notes.append(
                    self.imp.warn(
                        w,
                        f"task '{t['task_id']}': Airflow's exponential backoff adds jitter; flowc doubles the delay exactly",
                    )
                )
            if t.get("max_retry_delay") is not None:
                sm.set("retry_max_delay", duration(t["max_retry_delay"]))
        if t.get("execution_timeout") is not None:
            sm.set("timeout", duration(t["execution_timeout"]))
        if t.get("doc"):
            sm.set("description", t["doc"])
        for k, v in sorted((t.get("extra") or {}).items()):
            notes.append(
                self.imp.warn(w, f"task '{t['task_id']}': '{k}' has no flowc equivalent")
                + f" ({k}: {v})"
            )
        sm.notes.extend(notes)
        return sm

    def _node_name(self, node: str, from_group: str | None) -> str:
        """How a step in ``from_group`` names the task or group ``node``."""
        q = self._gqual(node) if node in self.groups else self.qual.get(node, step_name(node))
        here = self._gqual(from_group)
        if here and q.startswith(here + ".") and "." not in q[len(here) + 1 :]:
            return q[len(here) + 1 :]
        return q

    def _ancestors(self, group: str | None) -> list[str]:
        out = []
        while group:
            out.append(group)
            group = self.groups.get(group, {}).get("parent")
        return out

    def _in(self, task_id: str, group: str) -> bool:
        return group in self._ancestors(self.tasks[task_id].get("group"))

    def _leaves(self, group: str) -> set[str]:
        members = {x for x in self.tasks if self._in(x, group)}
        return {
            m for m in members if not any(m in self.tasks[o].get("upstream", []) for o in members)
        }

    def _after(self, t: dict[str, Any]) -> list[str]:
        """``after:`` of task ``t``: upstream tasks not implied by a reference nor by an enclosing
        group's own ``after:``; every leaf of a group (outside ``t``'s) becomes the group."""
        g = t.get("group")
        ups = {u for u in t.get("upstream", []) if u in self.tasks or u in self.groups}
        for anc in self._ancestors(g):
            for gu in self.groups[anc].get("upstream") or []:
                ups = {u for u in ups if u != gu and not (gu in self.groups and self._in(u, gu))}
        ups -= self._refs_of(t)
        direct = set()
        for u in ups:
            level, a_t, a_u = self._lca(t["task_id"], u)
            if a_t == t["task_id"]:
                direct.add(u)
            else:  # u is outside t's group but inside an enclosing one: t's group waits for it
                self.lifted.setdefault(a_t, set()).add(self._node_name(a_u, level))
        return self._collapse(direct, g, None)

    def _lca(self, a: str, b: str) -> tuple[str | None, str, str]:
        """(the innermost group holding both tasks, a's node right under it, b's node)."""
        chain_a = [a, *self._ancestors(self.tasks[a].get("group")), None]
        parent_b = self.groups[b].get("parent") if b in self.groups else self.tasks[b].get("group")
        chain_b = [b, *self._ancestors(parent_b), None]
        for i, level in enumerate(chain_a[1:], start=1):
            if level in chain_b[1:]:
                return level, chain_a[i - 1], chain_b[chain_b.index(level) - 1]
        return None, chain_a[-2], chain_b[-2]

    def _collapse(self, ups: set[str], g: str | None, own: str | None) -> list[str]:
        """Node names for the upstream ids ``ups`` (tasks or groups) of a node in group ``g``:
        the tasks inside a listed group are dropped, all leaves of a group become the group."""
        groups_listed = {u for u in ups if u in self.groups}
        ups = {u for u in ups if u in self.groups or not any(self._in(u, x) for x in groups_listed)}
        names: set[str] = set()
        for gid in sorted(self.groups, key=lambda x: self._gqual(x).count(".")):
            if gid == own or (g and (gid == g or gid in self._ancestors(g))):
                continue
            leaves = self._leaves(gid)
            if leaves and leaves <= ups:
                ups -= leaves
                ups.add(gid)
        names |= {self._node_name(u, g) for u in ups}
        return sorted(names)

    def _refs_of(self, t: dict[str, Any]) -> set[str]:
        out: set[str] = set()

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                if "$task" in v:
                    out.add(v["$task"])
                for x in v.values():
                    walk(x)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    walk(x)

        walk(t.get("kwargs"))
        walk(t.get("args"))
        walk(t.get("expand"))
        return out


def convert(
    dag: dict[str, Any], source: str, name: str | None = None, module: str | None = None
) -> Imported:
    """``dag`` = {dag_id, description, tags, owner, schedule (cron/preset str or {"every": s}),
    start_date, end_date, catchup, timezone, params {name: {default, schema, description}},
    default_args {retries, retry_delay, execution_timeout, extra}, groups [{group_id, parent,
    tooltip, upstream}], tasks [{task_id, group, kind (bash|python|branch|short_circuit|other),
    bash_command, callable {module, function, params, var_keyword}, kwargs, args, expand,
    upstream, trigger_rule, retries, retry_delay, retry_exponential_backoff, max_retry_delay,
    execution_timeout, env, extra, line}], extra, line}; ``{"$task": id}`` is a task's output."""
    return Converter(dag, source, name).convert()


def signature_of(path: str, function: str) -> tuple[list[str] | None, str | None]:
    """Parameter names of ``function`` in the Python file ``path`` (read, never imported) and
    its ``**kwargs`` name; (None, None) when it cannot be found."""
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except (OSError, SyntaxError, ValueError):
        return None, None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            a = node.args
            names = [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
            return names, a.kwarg.arg if a.kwarg else None
    return None, None
