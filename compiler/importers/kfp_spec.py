"""A KFP v2 PipelineSpec YAML (what ``kfp`` compiles) -> a flowc flow; no kfp import.

Read: ``pipelineInfo`` (name, description), root ``inputDefinitions`` (params), the root DAG's
tasks and, recursively, the sub-DAGs KFP makes for ``dsl.Condition`` / ``dsl.If`` (flattened: each
member step gets the condition as ``when:``), ``dsl.ParallelFor`` (a ``foreach`` step when the
body is one task, else a ``foreach`` group) and ``dsl.ExitHandler`` (the body is flattened, the
exit task becomes a ``finally:`` step); task inputs (pipeline params, upstream outputs, constants,
loop items and their fields), ``dependentTasks``, retry policies, caching, the executors
(lightweight Python components: the function source moves into ``<flow>_steps.py``; container
components: ``command:`` + ``image:``), ``env`` and the kfp-kubernetes platform spec's secrets.
Everything else is a comment plus a warning located at the source line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.importers import Imported, flow_name, step_name
from flowc.compiler.importers.airflow_common import duration
from flowc.compiler.importers.writer import Map

TYPES = {
    "STRING": "str",
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "dict",
}
_KFP_PRELUDE = re.compile(
    r"^(import kfp|from kfp import dsl|from kfp\.dsl import \*|from typing import \*)\s*$", re.M
)


def _compose(text: str, path: str) -> tuple[list[Any], dict[tuple[Any, ...], int]]:
    """The YAML documents and the line of every mapping key (path of the first document's keys
    start at the document index)."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, p: tuple[Any, ...]) -> Any:
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = k.value
                lines[(*p, key)] = k.start_mark.line + 1
                out[key] = walk(v, (*p, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(x, (*p, i)) for i, x in enumerate(node.value)]
        return yaml.SafeLoader(node.value).construct_object(node) if False else _scalar(node)

    try:
        docs = [walk(n, (i,)) for i, n in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader))]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = Loc(path, mark.line + 1, mark.column + 1) if mark else Loc(path, 1, 1)
        raise FlowcError.at(loc, f"invalid YAML: {getattr(e, 'problem', e)}") from None
    return docs, lines


def _scalar(node: Any) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class Kfp:
    def __init__(self, path: str, name: str | None):
        self.path = path
        text = open(path, encoding="utf-8").read()
        docs, self.lines = _compose(text, path)
        spec = docs[0] if docs else None
        if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
            raise FlowcError.at(
                Loc(path, 1, 1),
                "not a KFP PipelineSpec: no 'pipelineInfo' and 'root'",
                "compile the pipeline with kfp's compiler (kfp.compiler.Compiler().compile) and import the YAML",
            )
        self.spec = spec
        self.platform = next((d for d in docs[1:] if isinstance(d, dict) and "platforms" in d), {})
        raw = spec["pipelineInfo"].get("name", "pipeline")
        self.imp = Imported(name or flow_name(raw), Map())
        self.funcs: dict[str, str] = {}  # function source -> its name in the step module
        self.secrets = Map()
        self.final_status = False

    def line(self, *p: Any) -> str:
        n = self.lines.get((0, *p))
        return f"{self.path}:{n}" if n else self.path

    def convert(self) -> Imported:
        spec, imp = self.spec, self.imp
        flow = imp.flow
        flow.set("flowc", 1)
        flow.set("name", imp.name)
        desc = spec["pipelineInfo"].get("description") or spec["root"].get("description")
        if desc:
            flow.set("description", desc)
        params = (spec["root"].get("inputDefinitions") or {}).get("parameters") or {}
        env = {}
        if params:
            pm = Map()
            for k, p in params.items():
                e = Map()
                typ = TYPES.get(p.get("parameterType", "STRING"), "str")
                e.set("type", typ)
                if "defaultValue" in p:
                    dv = p["defaultValue"]
                    e.set("default", float(dv) if typ == "float" and isinstance(dv, int) else dv)
                elif not p.get("isOptional"):
                    e.set("required", True)
                if p.get("description"):
                    e.set("description", p["description"])
                pm.set(step_name(k), e)
                env[k] = f"${{params.{step_name(k)}}}"
            flow.set("params", pm)
        arts = (spec["root"].get("inputDefinitions") or {}).get("artifacts")
        if arts:
            flow.notes.append(
                imp.warn(
                    self.line("root", "inputDefinitions"),
                    f"pipeline input artifacts {sorted(arts)} have no flowc equivalent",
                )
            )
        steps = Map(spaced=True)
        finally_ = Map(spaced=True)
        self.dag(spec["root"]["dag"], ("root", "dag"), env, steps, finally_, when=[], prefix="")
        if self.secrets:
            flow.set("secrets", self.secrets)
        flow.set("steps", steps)
        if finally_:
            flow.set("finally", finally_)
        outs = (spec["root"]["dag"].get("outputs") or {}).get("parameters") or {}
        if outs:
            om = Map()
            for k, o in outs.items():
                src = o.get("valueFromParameter") or {}
                if src.get("producerSubtask"):
                    om.set(
                        step_name(k),
                        f"${{steps.{step_name(src['producerSubtask'])}.outputs.{src['outputParameterKey']}}}",
                    )
            flow.set("outputs", om)
        if self.funcs:
            body = "\n\n".join(self.funcs)
            if self.final_status:
                body = FINAL_STATUS + "\n\n" + body
            imp.modules[f"{imp.name}_steps.py"] = (
                f'"""Lightweight KFP components of pipeline \'{spec["pipelineInfo"].get("name")}\', '
                "moved by `flowc import` (one function each, called with its inputs as keyword "
                'arguments)."""\n\nfrom __future__ import annotations\n\nfrom typing import *  # noqa: F403 (as the KFP component had)\n\n'
                + body
            )
        return imp

    # -- one DAG (root or sub-DAG); ``env`` maps its input names to flowc expressions ----------
    def dag(
        self,
        dag: dict[str, Any],
        where: tuple[Any, ...],
        env: dict[str, str],
        steps: Map,
        finally_: Map,
        when: list[str],
        prefix: str,
    ) -> dict[str, str]:
        """Convert the tasks of ``dag`` into ``steps``; returns task name -> step name."""
        tasks = dag.get("tasks") or {}
        names: dict[str, str] = {}
        comps = self.spec.get("components") or {}
        handlers = {
            n
            for n, t in tasks.items()
            if (t.get("componentRef") or {}).get("name", "").startswith("comp-exit-handler")
        }
        exit_tasks = {
            n
            for n, t in tasks.items()
            if (t.get("triggerPolicy") or {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
            and set(t.get("dependentTasks") or []) & handlers
        }
        del comps
        for tname in _topo(tasks):
            t = tasks[tname]
            tw = (*where, "tasks", tname)
            comp_name = (t.get("componentRef") or {}).get("name")
            comp = (self.spec.get("components") or {}).get(comp_name) or {}
            local_env = dict(env)
            inputs = (t.get("inputs") or {}).get("parameters") or {}
            resolved = {k: self.input(v, local_env, names, tw) for k, v in inputs.items()}
            cond = list(when)
            tp = t.get("triggerPolicy") or {}
            if tp.get("condition"):
                cond.append(
                    self.condition(
                        tp["condition"],
                        {
                            **local_env,
                            **{
                                f"pipelinechannel--{k}": v
                                for k, v in resolved.items()
                                if isinstance(v, str)
                            },
                            **{k: v for k, v in resolved.items() if isinstance(v, str)},
                        },
                        tw,
                    )
                )
            if "dag" in comp:
                sub_env = {k: v for k, v in resolved.items() if isinstance(v, str)}
                sub_env.update(
                    {
                        k: json.dumps(v) if not isinstance(v, str) else v
                        for k, v in resolved.items()
                        if not isinstance(v, str)
                    }
                )
                pi = t.get("parameterIterator")
                if pi:
                    self.loop(tname, t, comp, comp_name, sub_env, resolved, names, steps, cond, tw)
                else:
                    inner = self.dag(
                        comp["dag"],
                        ("components", comp_name, "dag"),
                        sub_env,
                        steps,
                        finally_,
                        cond,
                        prefix,
                    )
                    names.update({f"{tname}/{k}": v for k, v in inner.items()})
                    names[tname] = "|".join(inner.values())
                continue
            sm = self.step(tname, t, comp, resolved, names, tw)
            if cond:
                sm.set("when", " and ".join(f"({c})" if " or " in c else c for c in cond))
            target = finally_ if tname in exit_tasks else steps
            names[tname] = step_name(prefix + tname)
            target.set(names[tname], sm)
        return names

    def loop(self, tname, t, comp, comp_name, sub_env, resolved, names, steps, cond, tw) -> None:
        pi = t["parameterIterator"]
        items = pi.get("items") or {}
        if "raw" in items:
            try:
                src: Any = json.loads(items["raw"])
            except ValueError:
                src = items["raw"]
        else:
            src = sub_env.get(items.get("inputParameter"), None)
        item_name = pi.get("itemInput")
        body_env = dict(sub_env)
        body_env[item_name] = "${item}"
        body_tasks = comp["dag"].get("tasks") or {}
        if len(body_tasks) == 1 and "dag" not in (
            (self.spec.get("components") or {}).get(
                next(iter(body_tasks.values()))["componentRef"]["name"]
            )
            or {}
        ):
            # one task: a foreach step
            inner = self.dag(
                comp["dag"], ("components", comp_name, "dag"), body_env, steps, Map(), cond, ""
            )
            sm = steps.get(next(iter(inner.values())))
            entries = sm.entries
            sm.entries = []
            sm.set(entries[0].key, entries[0].value)
            sm.set("foreach", src)
            for e in entries[1:]:
                sm.entries.append(e)
            names[tname] = next(iter(inner.values()))
        else:
            gm = Map()
            gm.set("foreach", src)
            members = Map(spaced=True)
            inner = self.dag(
                comp["dag"], ("components", comp_name, "dag"), body_env, members, Map(), [], ""
            )
            if cond:
                gm.notes.append(
                    self.imp.warn(
                        self.line(*tw),
                        f"loop '{tname}' runs under a condition: the condition is put on each member step",
                    )
                )
                for e in members.entries:
                    e.value.set("when", " and ".join(cond))
            gm.set("steps", members)
            names[tname] = step_name(tname)
            steps.set(step_name(tname), gm)

    def input(
        self, v: dict[str, Any], env: dict[str, str], names: dict[str, str], tw: tuple[Any, ...]
    ) -> Any:
        if "componentInputParameter" in v:
            ref = env.get(v["componentInputParameter"])
            if ref is None:
                self.imp.warn(
                    self.line(*tw), f"input '{v['componentInputParameter']}' is not known here"
                )
            sel = v.get("parameterExpressionSelector")
            if sel and ref:
                m = re.fullmatch(r'parseJson\(string_value\)\["([^"]+)"\]', sel)
                if m and ref.startswith("${") and ref.endswith("}"):
                    return ref[:-1] + f".{m.group(1)}}}"
                self.imp.warn(
                    self.line(*tw), f"parameter expression {sel!r} has no flowc equivalent"
                )
            return ref
        if "taskOutputParameter" in v:
            o = v["taskOutputParameter"]
            prod = names.get(o["producerTask"], step_name(o["producerTask"]))
            return f"${{steps.{prod}.outputs.{o['outputParameterKey']}}}"
        if "runtimeValue" in v:
            c = v["runtimeValue"].get("constant")
            if isinstance(c, str):
                return c.replace("${", "$${")
            return c
        if "taskFinalStatus" in v:
            return {"$final": True}
        self.imp.warn(self.line(*tw), f"task input {sorted(v)} has no flowc equivalent")
        return None

    def condition(self, text: str, env: dict[str, str], tw: tuple[Any, ...]) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            ref = env.get(key)
            if ref is None:
                self.imp.warn(
                    self.line(*tw, "triggerPolicy"), f"condition input '{key}' is not known here"
                )
                return "null"
            return ref

        out = re.sub(r"inputs\.parameter_values\['([^']+)'\]", sub, text)
        out = re.sub(r"\bint\((\$\{[^}]+\})\)", r"\1", out)
        out = out.replace("&&", " and ").replace("||", " or ").replace("!(", "not (")
        return re.sub(r"\s+", " ", out).strip()

    def step(
        self,
        tname: str,
        t: dict[str, Any],
        comp: dict[str, Any],
        resolved: dict[str, Any],
        names: dict[str, str],
        tw: tuple[Any, ...],
    ) -> Map:
        sm = Map()
        label = comp.get("executorLabel")
        ex = ((self.spec.get("deploymentSpec") or {}).get("executors") or {}).get(label) or {}
        ew = ("deploymentSpec", "executors", label)
        c = ex.get("container")
        outs = list((comp.get("outputDefinitions") or {}).get("parameters") or {})
        arts = sorted(
            ((comp.get("outputDefinitions") or {}).get("artifacts") or {})
            | ((comp.get("inputDefinitions") or {}).get("artifacts") or {})
        )
        notes: list[str] = []
        if c is None:
            sm.set("command", ["true"])
            notes.append(
                self.imp.warn(
                    self.line(*ew),
                    f"task '{tname}': executor {label} is not a container ({sorted(ex)}); replaced by a no-op",
                )
            )
        else:
            fn, src = _python_function(c)
            if fn:
                name = self.function(fn, src)
                final = [k for k, v in resolved.items() if isinstance(v, dict) and "$final" in v]
                if final:
                    wrapper = f"{name}__final"
                    self.funcs[
                        f"def {wrapper}(**kwargs):\n"
                        f'    """{name} with its PipelineTaskFinalStatus built from flowc\'s run status."""\n'
                        + "".join(
                            f"    kwargs[{k!r}] = _FinalStatus(kwargs[{k!r}])\n" for k in final
                        )
                        + f"    return {name}(**kwargs)\n"
                    ] = wrapper
                    self.final_status = True
                    name = wrapper
                sm.set("run", f"{self.imp.name}_steps:{name}")
                if final:
                    notes.append(
                        self.imp.warn(
                            self.line(*tw),
                            f"task '{tname}': PipelineTaskFinalStatus '{final[0]}' is built from ${{run.status}} (state SUCCEEDED / FAILED; no error details)",
                        )
                    )
                with_ = {
                    k: v for k, v in resolved.items() if not (isinstance(v, dict) and "$final" in v)
                }
                for k in final:
                    with_[k] = {"state": "${run.status}"}  # KFP has no failed-task list
                if with_:
                    sm.set("with", with_)
            else:
                cmd = [
                    self.placeholder(x, resolved, tname, ew, notes)
                    for x in [*(c.get("command") or []), *(c.get("args") or [])]
                ]
                sm.set("command", cmd)
            if c.get("image") and not (fn and re.fullmatch(r"python:3\.\d+(-slim)?", c["image"])):
                sm.set(
                    "image", c["image"]
                )  # KFP's default base image of Python components is not kept
            envs = {e["name"]: e.get("value", "") for e in c.get("env") or []}
            for sec in self._secrets(label):
                envs[sec[0]] = sec[1]
            if envs:
                sm.set("env", envs)
            if c.get("resources"):
                notes.append(
                    self.imp.warn(
                        self.line(*ew, "container", "resources"),
                        f"task '{tname}': container resources are kept as a comment ({c['resources']})",
                    )
                )
        if outs and "run" in sm:
            sm.set("outputs", outs)
            if len(outs) > 1:
                notes.append(
                    self.imp.warn(
                        self.line(*tw),
                        f"task '{tname}': a NamedTuple component returns a tuple; a flowc step with several outputs returns a dict keyed by output name",
                    )
                )
        if arts:
            notes.append(
                self.imp.warn(
                    self.line(*tw),
                    f"task '{tname}': artifacts {arts} have no flowc equivalent (values cross steps as JSON)",
                )
            )
        refs = {
            m
            for v in resolved.values()
            for m in re.findall(r"\$\{steps\.([a-z0-9_]+)\.", json.dumps(v))
        }
        after = sorted({names.get(d, step_name(d)) for d in t.get("dependentTasks") or []} - refs)
        after = [a for x in after for a in x.split("|") if a and a not in refs]
        is_exit = (t.get("triggerPolicy") or {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        if is_exit and not any(d.startswith("exit-handler") for d in t.get("dependentTasks") or []):
            sm.set("trigger", "all_done")
        if after and not is_exit:
            sm.set("after", after)
        rp = t.get("retryPolicy")
        if rp:
            sm.set("retries", int(rp.get("maxRetryCount", 0)))
            if rp.get("backoffDuration") is not None:
                sm.set("retry_delay", duration(_seconds(rp["backoffDuration"])))
            if rp.get("backoffFactor") not in (None, 1, 1.0):
                sm.set("retry_backoff", rp["backoffFactor"])
            if rp.get("backoffMaxDuration") not in (None, "3600s"):
                sm.set("retry_max_delay", duration(_seconds(rp["backoffMaxDuration"])))
        if (t.get("cachingOptions") or {}).get("enableCache"):
            sm.set("cache", True)
        sm.notes.extend(notes)
        return sm

    def function(self, fn: str, src: str) -> str:
        if src in self.funcs:
            return self.funcs[src]
        used = set(self.funcs.values())
        name = fn
        i = 2
        while name in used:
            name = f"{fn}_{i}"
            i += 1
        if name != fn:
            src = re.sub(rf"^def {re.escape(fn)}\(", f"def {name}(", src, flags=re.M)
        self.funcs[src] = name
        return name

    def placeholder(
        self, x: Any, resolved: dict[str, Any], tname: str, ew: tuple[Any, ...], notes: list[str]
    ) -> Any:
        if not isinstance(x, str):
            return x

        def sub(m: re.Match[str]) -> str:
            v = resolved.get(m.group(1))
            if isinstance(v, str):
                return v
            return json.dumps(v) if v is not None else ""

        out = x.replace("${", "$${")
        out = re.sub(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", sub, out)
        if "{{$" in out:
            notes.append(
                self.imp.warn(
                    self.line(*ew), f"task '{tname}': placeholder in {x!r} has no flowc equivalent"
                )
            )
        return out

    def _secrets(self, label: str) -> list[tuple[str, str]]:
        k8s = ((self.platform.get("platforms") or {}).get("kubernetes") or {}).get(
            "deploymentSpec"
        ) or {}
        cfg = (k8s.get("executors") or {}).get(label) or {}
        out = []
        for s in cfg.get("secretAsEnv") or []:
            sname = s.get("secretName") or (s.get("secretNameParameter") or {}).get(
                "runtimeValue", {}
            ).get("constant")
            for kv in s.get("keyToEnv") or []:
                name = step_name(f"{sname}_{kv['secretKey']}")
                self.secrets.set(
                    name, {"env": kv["envVar"], "k8s": {"name": sname, "key": kv["secretKey"]}}
                )
                out.append((kv["envVar"], f"${{secrets.{name}}}"))
        for k in sorted(cfg):
            if k != "secretAsEnv":
                self.imp.warn(self.path, f"kfp-kubernetes '{k}' of {label} has no flowc equivalent")
        return out


FINAL_STATUS = '''class _FinalStatus:
    """Stands for kfp's PipelineTaskFinalStatus in a flowc finally step."""

    def __init__(self, run: dict):
        self.state = "SUCCEEDED" if run["state"] == "success" else "FAILED"
        self.failed_steps = list(run.get("failed_steps") or [])
        self.error_code = None if self.state == "SUCCEEDED" else 1
        self.error_message = ", ".join(self.failed_steps) or None
        self.pipeline_job_resource_name = ""
        self.pipeline_task_name = ""
'''


def _seconds(text: Any) -> float:
    s = str(text)
    return float(s[:-1]) if s.endswith("s") else float(s)


def _python_function(c: dict[str, Any]) -> tuple[str | None, str]:
    """(function name, source) of a lightweight Python component's container, else (None, "")."""
    args = c.get("args") or []
    if "--function_to_execute" not in args:
        return None, ""
    fn = args[args.index("--function_to_execute") + 1]
    body = next(
        (x for x in reversed(c.get("command") or []) if isinstance(x, str) and f"def {fn}(" in x),
        None,
    )
    if body is None:
        return None, ""
    src = _KFP_PRELUDE.sub("", body).strip("\n") + "\n"
    return fn, src


def _topo(tasks: dict[str, Any]) -> list[str]:
    """Task names in dependency order, ties in written order."""
    done: list[str] = []
    seen: set[str] = set()

    def deps(n: str) -> list[str]:
        t = tasks[n]
        d = list(t.get("dependentTasks") or [])
        for v in ((t.get("inputs") or {}).get("parameters") or {}).values():
            p = ((v or {}).get("taskOutputParameter") or {}).get("producerTask")
            if p:
                d.append(p)
        return [x for x in d if x in tasks]

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if n in seen or n in stack:
            return
        for d in deps(n):
            visit(d, (*stack, n))
        seen.add(n)
        done.append(n)

    for n in tasks:
        visit(n, ())
    return done


def load(path: str, name: str | None = None) -> Imported:
    try:
        return Kfp(path, name).convert()
    except OSError as e:
        raise FlowcError.at(Loc(path, 1, 1), f"cannot read {path}: {e.strerror}") from None
