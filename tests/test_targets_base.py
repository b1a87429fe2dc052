"""Helpers of flowc.targets.base against what they stand in for: json_text writes exactly what
json.dumps(indent=2) writes, py_literal quotes strings exactly as black does."""

from __future__ import annotations

import json
import random

import pytest
from black.strings import normalize_string_quotes

from flowc.targets.base import json_text, py_literal

HOSTILE = {
    "z": [1, 2.5, -0.0, 1e300, 1e-7, float("nan"), float("inf"), float("-inf"), 10**30],
    "a": {"": "", "nested": {"empty_list": [], "empty_dict": {}, "t": (1, "x", ())}},
    'quotes " and \\ ': "line\nbreak\r\ttab \x00 \x7f \u2028 é 日本 \U0001f600 \ud800",
    "bools": [True, False, None],
    "deep": [[[{"k": [{}]}]]],
    "ümlaut key": "ascii? no",
}


@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_same_text_as_json_dumps(sort_keys: bool, ensure_ascii: bool) -> None:
    for value in (HOSTILE, [], {}, "s", 1, 1.5, None, True, [HOSTILE, [HOSTILE]]):
        want = json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
        assert json_text(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == want


def test_non_string_keys_coerced_as_json_does() -> None:
    for value in ({1: "a", 2: {3: []}}, {1.5: 0, float("inf"): 1}, {True: 1, False: 2}, {None: 2}):
        for sort_keys in (False, True):
            want = json.dumps(value, indent=2, sort_keys=sort_keys)
            assert json_text(value, sort_keys=sort_keys) == want
    with pytest.raises(TypeError):
        json_text({(1, 2): 0})


def test_not_json_able_fails_like_json() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"a": [object()]})


def test_random_documents() -> None:
    rng = random.Random(7)
    atoms = ["", "x", 'ü\n"', 0, -3, 2.25, 1e20, None, True, False]

    def make(depth: int) -> object:
        r = rng.random()
        if depth > 4 or r < 0.4:
            return rng.choice(atoms)
        if r < 0.7:
            return [make(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["k", "b", "é", "a b", ""]) + str(i): make(depth + 1) for i in range(4)}

    for _ in range(300):
        doc = make(0)
        for sort_keys in (False, True):
            for ensure_ascii in (False, True):
                want = json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
                assert json_text(doc, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == want


def test_string_quotes_as_black_writes_them() -> None:
    rng = random.Random(11)
    alphabet = ["'", '"', "\\", "a", "\n", "\x00", "é", "\u2028", "{", " ", "\U0001f600", "\ud800"]
    texts = ["", "'" * 300 + '"' * 299, '"' * 300 + "'" * 299, "it's", 'say "hi"', "\\'\\\""]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(14))) for _ in range(20000)]
    for text in texts:
        assert py_literal(text) == normalize_string_quotes(repr(text)), text


def test_kfp_component_program_with_many_apostrophes_is_black_stable() -> None:
    import black
    import yaml

    from flowc.compiler.api import emit, load_text

    flow = (
        "flowc: 1\nname: q\nsteps:\n  a:\n    run: flowc_demo.steps:echo\n"
        f'    with: {{value: "{chr(39) * 400}"}}\n    outputs: [value]\n'
    )
    text = emit(load_text(flow), "kfp")["pipeline.yaml"]
    spec = yaml.safe_load(text.split("\n---\n")[0])
    program = spec["deploymentSpec"]["executors"]["exec-a"]["container"]["command"][3]
    assert program.count("'") >= 400
    assert black.format_str(program, mode=black.Mode(line_length=100)) == program


def test_a_line_break_in_the_file_name_stays_in_the_header_comment() -> None:
    from flowc.compiler.api import emit, load_text

    flow = "flowc: 1\nname: inj\nsteps:\n  a: {run: flowc_demo.steps:echo, with: {value: x}}\n"
    for brk in ("\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c"):
        ir = load_text(flow, f"f{brk}import os; os.system(1){brk}#.yaml")
        for target in ("local", "airflow", "kfp", "k8s"):
            for text in emit(ir, target).values():
                head = text.split("\n")[:2]
                assert all(line.startswith("# ") for line in head), (target, head)
                assert "os.system(1)" in head[0] and "os.system(1)" in head[1], (target, head)
                assert not any(c in "".join(head) for c in brk), (target, head)
