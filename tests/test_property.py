"""Property tests (hypothesis) over random valid flows: compiling is deterministic, and an
equivalent YAML spelling (block vs flow style, other top-level key order) gives the same plan."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.compiler.api import load_text

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n")
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$"),
    max_size=12,
)
DURATIONS = st.sampled_from(["500ms", "30s", "15m", "2h", "1d", "1h30m", 45, 2.5])


@st.composite
def params(draw: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in draw(st.lists(NAMES, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["str", "int", "float", "bool", "list", "dict"]))
        value = {
            "str": TEXT,
            "int": st.integers(-1000, 1000),
            "float": st.floats(-1e6, 1e6, allow_nan=False),
            "bool": st.booleans(),
            "list": st.lists(st.integers(0, 9) | TEXT, max_size=3),
            "dict": st.dictionaries(NAMES, st.integers(0, 9), max_size=2),
        }[kind]
        p: dict[str, Any] = {"type": kind}
        if draw(st.booleans()):
            p["default"] = draw(value)
        elif draw(st.booleans()):
            p["required"] = True
        out[name] = p
    return out


@st.composite
def flows(draw: Any) -> dict[str, Any]:
    ps = draw(params())
    names = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    steps: dict[str, Any] = {}
    outputs: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        step: dict[str, Any] = {"run": f"pkg.mod:{name}"}
        outs = draw(st.lists(NAMES, max_size=2, unique=True))
        if outs:
            step["outputs"] = outs
        outputs[name] = outs
        with_: dict[str, Any] = {}
        for key in draw(st.lists(NAMES, max_size=3, unique=True)):
            choices = [TEXT.map(lambda t: t), st.integers(0, 5)]
            if ps:
                choices.append(st.sampled_from(sorted(ps)).map(lambda p: "${params." + p + "}"))
            earlier = [(s, o) for s in names[:i] for o in outputs[s]]
            if earlier:
                choices.append(
                    st.sampled_from(earlier).map(
                        lambda so: "${steps." + so[0] + ".outputs." + so[1] + "}"
                    )
                )
            with_[key] = draw(st.one_of(*choices))
        if with_:
            step["with"] = with_
        if i and draw(st.booleans()):
            step["after"] = draw(st.lists(st.sampled_from(names[:i]), max_size=2, unique=True))
        if draw(st.booleans()):
            step["retries"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            step["timeout"] = draw(DURATIONS)
        lists = [p for p, v in ps.items() if v["type"] == "list"]
        if lists and draw(st.booleans()):
            step["foreach"] = "${params." + draw(st.sampled_from(lists)) + "}"
            step.setdefault("with", {})["it"] = "${item}"
        if draw(st.booleans()):
            step["when"] = draw(
                st.sampled_from(["${run.id} != ''", "true", "not ${flow.name} == 'x'"])
            )
        steps[name] = step
    flow: dict[str, Any] = {"flowc": 1, "name": draw(NAMES)}
    if draw(st.booleans()):
        flow["description"] = draw(TEXT)
    if ps:
        flow["params"] = ps
    if draw(st.booleans()):
        flow["defaults"] = {
            "retries": draw(st.integers(0, 3)),
            "retry_delay": draw(DURATIONS),
            "resources": {"cpu": "1", "memory": "1Gi"},
            "env": {"A": "b"},
        }
    flow["steps"] = steps
    return flow


def plan(text: str) -> dict[str, Any]:
    data = load_text(text, "flow.yaml", environ={}).to_data()
    data.pop("source")
    return data


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(flows())
def test_compiling_is_deterministic_and_spelling_independent(flow: dict[str, Any]) -> None:
    block = yaml.safe_dump(flow, sort_keys=False, default_flow_style=False, allow_unicode=True)
    first = plan(block)
    assert plan(block) == first  # deterministic
    assert json.loads(json.dumps(first)) == first  # JSON-able plan
    # the same data spelled in flow style, and with the top-level sections reordered
    flowstyle = yaml.safe_dump(flow, sort_keys=False, default_flow_style=True, width=10_000)
    assert plan(flowstyle) == first
    reordered = dict(reversed(list(flow.items())))
    assert plan(yaml.safe_dump(reordered, sort_keys=False)) == first
    # every step is ordered after its upstream
    order = first["order"]
    for name, step in first["steps"].items():
        for up in step["upstream"]:
            assert order.index(up) < order.index(name)


def test_plan_is_identical_across_hash_seeds_and_cwd(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    flow = Path(__file__).parent / "fixtures" / "spec" / "churn_training.yaml"
    code = (
        "import json, sys; from flowc.compiler.api import compile_flow; "
        "print(json.dumps(compile_flow(sys.argv[1], environment='dev').to_data()))"
    )
    outs = set()
    for seed, cwd in (("0", tmp_path), ("12345", flow.parent)):
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-c", code, str(flow)],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            check=True,
        )
        outs.add(res.stdout)
    assert len(outs) == 1
    assert '"path": "tests/fixtures/spec/churn_training.yaml"' in outs.pop()
