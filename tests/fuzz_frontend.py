"""Mutation fuzzing of the front-end, shared by tests/test_fuzz_frontend.py (bounded) and
bench/fuzz_frontend.py (long runs). A mutated flow must either compile or raise FlowcError whose
every diagnostic is located in the flow file; anything else (a traceback) is a bug."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from flowc.compiler.api import load_text
from flowc.compiler.errors import FlowcError

SPEC = Path(__file__).parent / "fixtures" / "spec"
BASES = [
    (SPEC / "churn_training.yaml").read_text(),
    (SPEC / "channels.yaml").read_text(),
    (SPEC / "integration_framework.yaml").read_text(),
]
HOSTILE = [
    "${",
    "${params.}",
    "${steps.x.outputs}",
    "$${x}",
    "${item}",
    "${env.NOPE}",
    "${'}'}",
    "\u202e\u0000",
    "😀" * 3,
    "{{ x }}",
    "%(x)s",
    "a" * 5000,
    "!!python/object:os.system",
    "${params.epochs == }",
    "${not}",
    "${[1, 2}",
    "0 3 * * 1 1",
    "-1s",
    "",
    "${" + "[" * 300 + "1" + "]" * 300 + "}",
    "${" + "not " * 300 + "true}",
    "${params.epochs} >= and",
]
TEXT_SNIPPETS = [
    "\n!!python/object/apply:os.system ['true']\n",
    "\nx: &a [1, *a]\n",
    "\n---\n",
    "\n  - \n",
    "\t",
    ": :",
    "{",
    "]",
    "&x ",
    "*x",
    "\x00",
    "\n<<: 1\n",
    "'",
    '"',
]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice(HOSTILE)
    if kind == 1:
        return rng.randint(-10, 10**6)
    if kind == 2:
        return rng.random() * 1000
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return [rng.choice(HOSTILE) for _ in range(rng.randrange(4))]
    if kind == 5:
        return {rng.choice(["a", "run", "with", "type", "x_y"]): rng.choice(HOSTILE)}
    if kind == 6:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
    return {}


def mutate(rng: random.Random) -> str:
    """A random mutation of one of the base flows, as YAML text."""
    base = rng.choice(BASES)
    if rng.random() < 0.3:  # text-level mutation
        text = base
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(text) + 1)
            op = rng.randrange(3)
            if op == 0:
                text = text[:pos] + rng.choice(TEXT_SNIPPETS) + text[pos:]
            elif op == 1:
                text = text[:pos] + text[pos + rng.randint(1, 20) :]
            else:
                lines = text.splitlines(keepends=True)
                i = rng.randrange(len(lines))
                lines.insert(i, lines[i])
                text = "".join(lines)
        return text
    return yaml.safe_dump(
        mutate_data(rng, yaml.safe_load(base)), sort_keys=False, allow_unicode=True
    )


def mutate_data(rng: random.Random, data: Any) -> Any:
    """Apply 1-4 random structural mutations to flow ``data`` (in place) and return it."""
    for _ in range(rng.randint(1, 4)):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = _get(data, path[:-1])
        key = path[-1]
        op = rng.randrange(5)
        if op == 0:
            del parent[key]
        elif op == 1 and isinstance(parent, dict):
            parent[str(key) + rng.choice(["s", "_", "x"])] = parent.pop(key)
        elif op == 2:
            parent[key] = _random_value(rng)
        elif op == 3 and isinstance(parent, dict):
            parent[rng.choice(["zz", "step_x", "params", "foreach", "when"])] = _random_value(rng)
        else:
            node: Any = rng.choice(HOSTILE)
            for _ in range(rng.randrange(40)):
                node = [node] if rng.random() < 0.5 else {"k": node}
            parent[key] = node
    return data


def check(text: str) -> str:
    """Compile ``text``; return "ok" or "error"; raise AssertionError on any unlocated error."""
    try:
        load_text(text, "flow.yaml", environ={})
    except FlowcError as e:
        for d in e.diagnostics:
            assert d.loc is not None, d.render()
            assert d.loc.file == "flow.yaml" and d.loc.line >= 1 and d.loc.col >= 1, d.render()
            assert "Traceback" not in d.render()
            assert "internal error" not in d.message, d.render()
        assert e.diagnostics, "FlowcError without diagnostics"
        return "error"
    return "ok"
