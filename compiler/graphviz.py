"""Text pictures of a pipeline's DAG: Mermaid and Graphviz dot (deterministic)."""

from __future__ import annotations

import json

from flowc.compiler.ir import Pipeline

_STYLE = {"data": "-->", "order": "-.->", "when": "-. when .->"}


def render(ir: Pipeline, fmt: str = "mermaid") -> str:
    return mermaid(ir) if fmt == "mermaid" else dot(ir)


def _label(ir: Pipeline, name: str) -> str:
    s = ir.step(name)
    extra = []
    if s.foreach is not None:
        extra.append("foreach")
    if s.when is not None:
        extra.append("when")
    if s.replicas > 1:
        extra.append(f"x{s.replicas}")
    if s.operator:
        extra.append("operator")
    return name + (f" [{', '.join(extra)}]" if extra else "")


def _mid(name: str) -> str:
    """A Mermaid node id: prefixed, so step names such as ``end`` (a Mermaid keyword) are safe."""
    return f"s_{name}"


def mermaid(ir: Pipeline) -> str:
    lines = ["flowchart TD"]
    for s in ir.steps:
        lines.append(f'    {_mid(s.name)}["{_label(ir, s.name)}"]')
    for src, dst, kind, out in _edges(ir):
        lab = f"|{out}|" if out and kind == "data" else ""
        lines.append(f"    {_mid(src)} {_STYLE[kind]}{lab} {_mid(dst)}")
    for c in ir.channels:
        for p in c.producers:
            for q in c.consumers:
                lines.append(f"    {_mid(p)} == {c.name} ==> {_mid(q)}")
    return "\n".join(lines) + "\n"


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


def dot(ir: Pipeline) -> str:
    q = json.dumps
    lines = [f"digraph {q(ir.name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for s in ir.steps:
        lines.append(f"  {q(s.name)} [label={q(_label(ir, s.name))}];")
    for src, dst, kind, out in _edges(ir):
        attrs = []
        if out:
            attrs.append(f"label={q(out)}")
        if kind != "data":
            attrs.append("style=dashed")
        lines.append(f"  {q(src)} -> {q(dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    for c in ir.channels:
        for p in c.producers:
            for c2 in c.consumers:
                lines.append(f"  {q(p)} -> {q(c2)} [label={q(c.name)}, style=bold];")
    lines.append("}")
    return "\n".join(lines) + "\n"
