"""Pictures of a pipeline's DAG: Mermaid and Graphviz dot text (deterministic), and images
(svg, png, pdf) through Graphviz's ``dot`` program when it is installed.

Edges, the same in both formats: data edges solid (labelled with the outputs read), ``after:``
edges dotted, edges from the steps a ``when`` reads dotted and labelled ``when <condition>``
(a condition that reads no step is written in its step's box). With a run's states
(``flowc graph --run RUN_ID``) every box is coloured by its step's state in that run.

Control flow: groups (``steps:`` / ``uses:``) are clusters (Mermaid subgraphs) holding their
members, labelled with their foreach or sub-flow file; an edge from or to a group starts or ends
at the cluster. A box names a non-default trigger rule (``trigger all_done``), skip exit codes,
and ``finally`` steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flowc.compiler import ir as irm
from flowc.compiler.ir import Pipeline

#: fill colour per step state of a run (the live view's colours)
STATE_COLORS = {
    "success": "#b7e4c7",
    "cached": "#bde0fe",
    "skipped": "#e9ecef",
    "failed": "#f4a3a8",
    "upstream_failed": "#ffd6a5",
    "running": "#a5f3fc",
    "pending": "#ffffff",
}

IMAGE_FORMATS = ("svg", "png", "pdf")
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
    "or write the text with -o FILE.dot / FILE.mmd"
)


def render(ir: Pipeline, fmt: str = "mermaid", states: Mapping[str, str] | None = None) -> str:
    return mermaid(ir, states) if fmt == "mermaid" else dot(ir, states)


def expr_text(e: Any) -> str:
    """An expression written back as DSL text: ``${steps.train.outputs.auc} >= 0.8``."""
    if isinstance(e, irm.Ref):
        return "${" + e.dotted + (f":-{e.default}" if e.default is not None else "") + "}"
    if isinstance(e, irm.Lit):
        v = e.value
        return f"'{v}'" if isinstance(v, str) else json.dumps(v)
    if isinstance(e, irm.BinOp):
        return f"{_operand(e.left)} {e.op} {_operand(e.right)}"
    if isinstance(e, irm.Not):
        return f"not {_operand(e.operand)}"
    if isinstance(e, irm.Format):
        return "".join(p if isinstance(p, str) else expr_text(p) for p in e.parts)
    if isinstance(e, irm.ListOf):
        return "[" + ", ".join(expr_text(i) for i in e.items) + "]"
    if isinstance(e, irm.DictOf):
        return "{" + ", ".join(f"{k}: {expr_text(v)}" for k, v in e.items) + "}"
    return str(e)


def _operand(e: Any) -> str:
    text = expr_text(e)
    return f"({text})" if isinstance(e, irm.BinOp) and e.op in ("and", "or") else text


def _condition(ir: Pipeline, name: str) -> tuple[str | None, frozenset[str]]:
    """A step's ``when`` text and the steps it reads."""
    if ir.is_group(name):
        return None, frozenset()
    s = ir.step(name)
    if s.when is None:
        return None, frozenset()
    if isinstance(s.when, irm.Lit):
        return json.dumps(s.when.value), frozenset()
    return expr_text(s.when), frozenset(r.step for r in s.when.refs() if r.step)


def _label(ir: Pipeline, name: str, gated: set[str]) -> str:
    s = ir.step(name)
    extra = []
    if s.foreach is not None:
        extra.append("foreach")
    if s.when is not None and name not in gated:
        extra.append(f"when {_condition(ir, name)[0]}")
    if s.replicas > 1:
        extra.append(f"x{s.replicas}")
    if s.operator:
        extra.append("operator")
    if s.trigger != "all_success":
        extra.append(f"trigger {s.trigger}")
    if s.skip_on_exit_code:
        extra.append("skip on exit " + ",".join(str(c) for c in s.skip_on_exit_code))
    if s.is_finally:
        extra.append("finally")
    return s.local_name + (f" [{', '.join(extra)}]" if extra else "")


def _group_label(g: irm.Group) -> str:
    extra = []
    if g.foreach is not None:
        extra.append("foreach " + ("matrix" if g.matrix else expr_text(g.foreach)))
    if g.uses is not None:
        extra.append(f"uses {g.uses}")
    return g.local_name + (f" [{', '.join(extra)}]" if extra else "")


def _mid(name: str) -> str:
    """A Mermaid node id: prefixed, so step names such as ``end`` (a Mermaid keyword) are safe;
    a group member's dots become ``__``."""
    return f"s_{name.replace('.', '__')}"


def _gid(name: str) -> str:
    return f"g_{name.replace('.', '__')}"


def _tree(ir: Pipeline) -> list[tuple[int, str, str]]:
    """``(depth, "open" | "step" | "close", name)`` walking groups and steps in plan order."""
    out: list[tuple[int, str, str]] = []
    stack: list[str] = []
    for s in ir.steps:
        chain: list[str] = []
        g = s.group
        while g is not None:
            chain.insert(0, g)
            g = ir.group(g).parent
        while stack and stack[-1] not in chain:
            out.append((len(stack) - 1, "close", stack.pop()))
        for g in chain[len(stack) :]:
            out.append((len(stack), "open", g))
            stack.append(g)
        out.append((len(stack), "step", s.name))
    while stack:
        out.append((len(stack) - 1, "close", stack.pop()))
    return out


def _mtext(text: str) -> str:
    """Text inside a quoted Mermaid label (quotes as entities)."""
    return text.replace('"', "#quot;")


def mermaid(ir: Pipeline, states: Mapping[str, str] | None = None) -> str:
    edges, gated = _styled_edges(ir)
    lines = ["flowchart TD"]
    for depth, kind, name in _tree(ir):
        pad = "    " * (depth + 1)
        if kind == "open":
            lines.append(f'{pad}subgraph {_gid(name)}["{_mtext(_group_label(ir.group(name)))}"]')
        elif kind == "close":
            lines.append(f"{pad}end")
        else:
            lines.append(f'{pad}{_mid(name)}["{_mtext(_label(ir, name, gated))}"]')
    for src, dst, style, label in edges:
        src_id = _gid(src) if ir.is_group(src) else _mid(src)
        dst_id = _gid(dst) if ir.is_group(dst) else _mid(dst)
        arrow = {"data": "-->", "order": "-.->", "when": "-.->"}[style]
        simple = label.replace(",", "").replace("_", "").isalnum()
        quoted = f'|"{_mtext(label)}"|'
        lab = "" if not label else f"|{label}|" if simple else quoted
        lines.append(f"    {src_id} {arrow}{lab} {dst_id}")
    for c in ir.channels:
        for p in c.producers:
            for q in c.consumers:
                lines.append(f"    {_mid(p)} == {c.name} ==> {_mid(q)}")
    if states is not None:
        for state, color in STATE_COLORS.items():
            lines.append(f"    classDef {state} fill:{color},stroke:#333")
        for s in ir.steps:
            lines.append(f"    class {_mid(s.name)} {states.get(s.name, 'pending')}")
    return "\n".join(lines) + "\n"


def _styled_edges(ir: Pipeline) -> tuple[list[tuple[str, str, str, str]], set[str]]:
    """``(src, dst, style, label)`` per edge, and the steps whose condition is on an edge."""
    out = []
    gated: set[str] = set()
    for src, dst, kind, outs in _edges(ir):
        cond, reads = _condition(ir, dst)
        if cond is not None and src in reads:
            gated.add(dst)
            out.append((src, dst, "when", f"when {cond}"))
        elif kind == "order":
            out.append((src, dst, "order", ""))
        else:
            out.append((src, dst, "data", outs if kind == "data" else ""))
    return out, gated


def _edges(ir: Pipeline) -> list[tuple[str, str, str, str]]:
    """One edge per (src, dst, kind) with its outputs joined, in step order."""
    pos = {s.name: i for i, s in enumerate(ir.steps)}
    merged: dict[tuple[str, str, str], list[str]] = {}
    for e in ir.edges:
        merged.setdefault((e.src, e.dst, e.kind), [])
        if e.output:
            merged[(e.src, e.dst, e.kind)].append(e.output)
    keys = sorted(merged, key=lambda k: (pos.get(k[0], 0), pos.get(k[1], 0), k[2]))
    return [(k[0], k[1], k[2], ",".join(sorted(merged[k]))) for k in keys]


def dot(ir: Pipeline, states: Mapping[str, str] | None = None) -> str:
    q = json.dumps
    edges, gated = _styled_edges(ir)
    lines = [f"digraph {q(ir.name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    if ir.groups:
        lines.append("  compound=true;")
    for depth, kind, name in _tree(ir):
        pad = "  " * (depth + 1)
        if kind == "open":
            g = ir.group(name)
            lines.append(f"{pad}subgraph {q('cluster_' + name)} {{")
            lines.append(f"{pad}  label={q(_group_label(g))};")
            continue
        if kind == "close":
            lines.append(f"{pad}}}")
            continue
        s = ir.step(name)
        attrs = [f"label={q(_label(ir, s.name, gated))}"]
        if states is not None:
            color = STATE_COLORS.get(states.get(s.name, "pending"), "#ffffff")
            attrs += ["style=filled", f"fillcolor={q(color)}"]
        elif s.is_finally:
            attrs.append("style=dashed")
        lines.append(f"{pad}{q(s.name)} [{', '.join(attrs)}];")
    for src, dst, style, label in edges:
        attrs = []
        if ir.is_group(src):
            attrs.append(f"ltail={q('cluster_' + src)}")
            src = ir.group(src).leaves[-1] if ir.group(src).leaves else src
        if ir.is_group(dst):
            attrs.append(f"lhead={q('cluster_' + dst)}")
            members = ir.members(dst)
            dst = members[0] if members else dst
        if label:
            attrs.append(f"label={q(label)}")
        if style != "data":
            attrs.append("style=dotted")
        lines.append(f"  {q(src)} -> {q(dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    for c in ir.channels:
        for p in c.producers:
            for c2 in c.consumers:
                lines.append(f"  {q(p)} -> {q(c2)} [label={q(c.name)}, style=bold];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def image(dot_text: str, fmt: str) -> bytes:
    """``dot_text`` rendered by Graphviz's ``dot -T<fmt>``; FileNotFoundError when ``dot`` is
    not installed, RuntimeError with its message when it fails."""
    import shutil
    import subprocess

    exe = shutil.which("dot")
    if exe is None:
        raise FileNotFoundError("dot")
    proc = subprocess.run(
        [exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode("utf-8", "replace").strip())
    return proc.stdout
