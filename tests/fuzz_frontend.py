"""Mutation fuzzing of the front-end, shared by tests/test_fuzz_frontend.py (bounded) and
bench/fuzz_frontend.py (long runs). A mutated flow must either compile or raise FlowcError whose
every diagnostic is located in the flow file; anything else (a traceback) is a bug. Bases: the
spec flows and every golden flow; mutations include the hostile inputs of issue 19 (bad YAML
tags, huge ints, NaN/Inf, long names, invalid env/secret/image values). :func:`check_emit` also
emits every target for a flow that compiled, and :func:`check_cli` runs the real CLI
(``validate``, ``compile --all``) and checks its exit code (0, 1 or 2) and messages."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from flowc.compiler.api import load_text
from flowc.compiler.errors import FlowcError

SPEC = Path(__file__).parent / "fixtures" / "spec"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
BASES = [
    (SPEC / "churn_training.yaml").read_text(),
    (SPEC / "channels.yaml").read_text(),
    (SPEC / "integration_framework.yaml").read_text(),
]
#: Every golden case's flow (mutated like the spec flows).
GOLDEN_BASES = [p.read_text() for p in sorted(GOLDEN.glob("*/flow.yaml"))]
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
    # values engines reject (issue 19, item 8): refused at validate time
    "A=B",
    "x y;",
    "My_Secret",
    "Trainer:1 latest",
    "${params.epochs} > 1e400",
    "${params.epochs} == 'a\nb'",
    "n" * 251,
    "t" * 101,
]
#: Numbers engines or the loader choke on (issue 19, items 6 and 8).
NUMBERS: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    10**20,
    -(2**63),
    2**63,
    99999999999999999999,
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
    # tags and sizes the loader must refuse located (issue 19, items 6 and 7)
    " !!float x",
    " !!int x",
    " !!bool x",
    " !!int 0x",
    " " + "9" * 5000,
    " .nan",
    " -.inf",
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
    kind = rng.randrange(9)
    if kind == 8:
        return rng.choice(NUMBERS)
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


def mutate(rng: random.Random, bases: list[str] | None = None) -> str:
    """A random mutation of one of ``bases`` (default: the spec flows), as YAML text."""
    base = rng.choice(bases or BASES)
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
        _assert_located(e)
        return "error"
    return "ok"


def _assert_located(e: FlowcError) -> None:
    for d in e.diagnostics:
        assert d.loc is not None, d.render()
        assert d.loc.file == "flow.yaml" and d.loc.line >= 1 and d.loc.col >= 1, d.render()
        assert "Traceback" not in d.render()
        assert "internal error" not in d.message, d.render()
    assert e.diagnostics, "FlowcError without diagnostics"


def check_emit(text: str) -> str:
    """Like :func:`check`; a flow that compiles is also emitted for every target (a target may
    refuse it with a located FlowcError, never crash)."""
    from flowc.compiler.api import emit
    from flowc.compiler.registry import target_names

    try:
        ir = load_text(text, "flow.yaml", environ={})
    except FlowcError as e:
        _assert_located(e)
        return "error"
    for t in target_names():
        try:
            emit(ir, t)
        except FlowcError as e:
            _assert_located(e)
    return "ok"


def check_cli(args: list[str], cwd: Path) -> int:
    """Run ``flowc ARGS`` in-process (from ``cwd``); assert no traceback, an exit code of 0, 1
    or 2, and every error line located (``FILE:LINE:COL: error:`` or ``flowc: error:``)."""
    import os
    import re

    from click.testing import CliRunner

    from flowc.compiler.cli import cli

    here = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(cli, args)
    finally:
        os.chdir(here)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (0, 1, 2), res.exit_code
    assert "Traceback" not in res.output
    located = re.compile(r"(\S.*:\d+:\d+|flowc): error: ")
    for line in res.stderr.splitlines():
        if "error:" in line and not line.startswith(("  ", "Error: ", "Usage: ")):
            assert located.match(line), line
    return res.exit_code
