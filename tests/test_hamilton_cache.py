"""``cache: true`` on steps built from Hamilton nodes: the code part of the key is Hamilton's own
code version of the node (``flowc.runtime.hamilton.code_version``), not the source of the
runtime's ``node`` shim every such step calls. Editing the node's function (its body or its
decorator's bound values) re-runs the step; editing another function of the module does not
(Hamilton's caching keys on the node's code and its dependencies' data, and so does flowc: the
upstream values are the step's inputs). Each run is a fresh ``flowc run`` process, as a user
edits and re-runs."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MODULE = """\
import os

from hamilton.function_modifiers import parameterize, source, value

K = int(os.environ.get("HC_K", "1"))  # read at import time, as FlowerPower's PARAMS


def base(n: int) -> int:
    return n


@parameterize(plus={"x": source("base"), "k": value(K)})
def shifted(x: int, k: int) -> int:
    return x + k


def unrelated(n: int) -> int:
    return n * 100
"""
FLOW = """\
flowc: 1
name: hc
params:
  n: {type: int, default: 3}
defaults: {cache: true}
functions: [hcache_mod]
"""


def _env(k: int = 1) -> dict[str, str]:
    # no .pyc: an edit within the same second and of the same size must still be read
    env = {name: v for name, v in os.environ.items() if name != "HC_K"}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "HC_K": str(k)}


def _run(tmp_path: Path, k: int = 1) -> tuple[dict[str, str], dict[str, int]]:
    """One ``flowc run``: each step's final state and each output value, from its report."""
    done = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml", "--root", str(tmp_path / ".flowc")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(k),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    states: dict[str, str] = {}
    values: dict[str, int] = {}
    for line in done.stdout.splitlines():
        step, sep, rest = line.partition(": ")
        if sep and step in ("base", "plus", "unrelated") and not rest.startswith("running"):
            states[step] = rest.split()[0]
        if line.startswith("  ") and " = " in line:
            name, value = line.strip().split(" = ")
            values[name.split(".")[0]] = int(value)
    return states, values


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_editing_the_node_function_invalidates_and_another_function_does_not(
    tmp_path: Path,
) -> None:
    module = tmp_path / "hcache_mod.py"
    module.write_text(MODULE, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")

    assert _run(tmp_path) == (
        {"base": "success", "plus": "success", "unrelated": "success"},
        {"plus": 4, "unrelated": 300},
    )
    # nothing changed: everything from the cache
    assert _run(tmp_path)[0] == {"base": "cached", "plus": "cached", "unrelated": "cached"}
    # another function's body: only that function's step runs again
    _edit(module, "return n * 100", "return n * 1000")
    assert _run(tmp_path) == (
        {"base": "cached", "plus": "cached", "unrelated": "success"},
        {"plus": 4, "unrelated": 3000},
    )
    # the node's function body: the Hamilton node's step runs again, with the new code
    _edit(module, "return x + k", "return x + 2 * k")
    assert _run(tmp_path) == (
        {"base": "cached", "plus": "success", "unrelated": "cached"},
        {"plus": 5, "unrelated": 3000},
    )
    # a value Hamilton bound into the node, read at import time (FlowerPower's PARAMS from conf/)
    assert _run(tmp_path, k=5) == (
        {"base": "cached", "plus": "success", "unrelated": "cached"},
        {"plus": 13, "unrelated": 3000},
    )
    # the decorator is part of the node's code
    _edit(module, '"k": value(K)', '"k": value(K + 1)')
    assert _run(tmp_path) == (
        {"base": "cached", "plus": "success", "unrelated": "cached"},
        {"plus": 7, "unrelated": 3000},
    )
    # a comment or docstring in the node's function is not code (Hamilton strips them)
    _edit(module, "    return x + 2 * k", '    """Shifted by 2k."""\n    return x + 2 * k  # two k')
    assert _run(tmp_path)[0] == {"base": "cached", "plus": "cached", "unrelated": "cached"}


def _versions(tmp_path: Path, config: dict | None = None, k: int = 1) -> dict[str, str]:
    """``code_version`` of each named node's step, in a fresh process (no compiler)."""
    code = (
        "import json, sys\n"
        "from flowc.runtime.hamilton import code_version, NODE_REF\n"
        "spec = json.loads(sys.argv[1])\n"
        "print(json.dumps({n: code_version({'run': NODE_REF, 'with': {'hamilton_node': "
        "{'$lit': {'modules': ['hcache_mod'], 'config': spec['config'], 'node': n}}}}) "
        "for n in spec['nodes']}))\n"
    )
    spec = {"nodes": ["plus", "gone"], "config": config or {}}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(k), "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_code_version_is_hamiltons_node_version(tmp_path: Path) -> None:
    from hamilton import graph, graph_types

    module = tmp_path / "hcache_mod.py"
    module.write_text(MODULE, encoding="utf-8")
    first = _versions(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        fg = graph.FunctionGraph.from_modules(importlib.import_module("hcache_mod"), config={})
        want = graph_types.HamiltonNode.from_node(fg.nodes["plus"]).version
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hcache_mod", None)
    assert first["plus"] == f'hamilton: {want} bound: [{{"args": [], "kwargs": {{"k": 1}}}}]'
    # a node the module no longer makes: no version any cache entry could match
    assert first["gone"].startswith("unversioned: KeyError")

    _edit(module, "return n * 100", "return n * 1000")
    assert _versions(tmp_path)["plus"] == first["plus"]
    _edit(module, "return x + k", "return x + 2 * k")
    changed = _versions(tmp_path)["plus"]
    assert changed != first["plus"]
    assert _versions(tmp_path, k=5)["plus"] not in (first["plus"], changed)
    _edit(module, '"k": value(K)', '"k": value(K + 1)')
    assert _versions(tmp_path)["plus"] not in (first["plus"], changed)


def test_steps_that_are_not_hamilton_nodes_have_no_hamilton_version() -> None:
    from flowc.runtime.hamilton import code_version

    # their callable's own source is the code part of their key (runtime/step.py)
    assert code_version({"run": "hcache_mod:base", "with": {}}) == ""
    assert code_version({"kind": "command", "run": None}) == ""
