"""The one YAML writer (flowc.targets.yaml_writer): round trips through ``yaml.safe_load`` over
all of Unicode, and the writer bugs the kfp and k8s targets had (U+2028 in a ``with:`` key, U+0085
in a description, a string that looked like the old block placeholder)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flowc.compiler.api import emit, load_text
from flowc.targets.yaml_writer import Block, dump, dump_documents, scalar

# Every code point a Python str can hold, surrogates included (YAML can only escape those).
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)
TEXT = st.text(ANY_CHAR, max_size=40) | st.sampled_from(
    [
        "",
        "-",
        "- x",
        "a: b",
        "x:",
        "#c",
        "a #c",
        "---",
        "...",
        "yes",
        "Null",
        "~",
        "1e3",
        "0o7",
        "1:20",
        "2026-01-01",
        "<<",
        "=",
        ".inf",
        "\u2028",
        "\x85",
        "\ufeff",
        "a\n",
        "\n",
        " a\nb",
        "a\nb\n",
        "a \nb",
        "a\n\n",
        "\ta\nb",
        "x" * 1100,
    ]
)
MULTI_LINE = st.lists(TEXT, min_size=2, max_size=4).map("\n".join)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT | MULTI_LINE
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(TEXT | MULTI_LINE, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT | MULTI_LINE, DATA, max_size=5), st.booleans())
def test_every_document_round_trips(doc: dict, sort_keys: bool) -> None:
    text = dump(doc, sort_keys=sort_keys)
    assert yaml.safe_load(text) == (doc or None)
    if not sort_keys:  # insertion order is kept
        assert list(yaml.safe_load(text) or {}) == list(doc)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_every_string_is_one_line_and_round_trips_as_key_and_value(text: str) -> None:
    spelled = scalar(text)
    assert "\n" not in spelled
    assert yaml.safe_load(f"k: {spelled}\n") == {"k": text}
    assert yaml.safe_load(dump({text: text, "l": [text, {text: [text]}]})) == {
        text: text,
        "l": [text, {text: [text]}],
    }
    assert yaml.safe_load(f"- {spelled}\n") == [text]


def test_escapes_what_yaml_treats_specially() -> None:
    for ch in "\x85\u2028\u2029\ufeff\x7f\x9f\ufffe\ud800":
        assert scalar(f"a{ch}b") == f'"a\\u{ord(ch):04x}b"'
        assert yaml.safe_load(dump({f"k{ch}": f"v{ch}\nw"})) == {f"k{ch}": f"v{ch}\nw"}


def test_plain_only_where_yaml_reads_the_string_back() -> None:
    plain = ["python:3.11-slim", "--plan", "512Mi", "2.1.0", "/etc/flowc", "a#b", "x, y"]
    assert [scalar(t) for t in plain] == plain
    for t in ["", "yes", "NO", "~", "4", "1e3", "0o17", "-", "a: b", "a #b", "x:", "{{$}}", " x"]:
        assert scalar(t).startswith('"'), t


def _compile(body: str, target: str, stack: str | None = None) -> str:
    (text,) = emit(load_text(body, stack=stack), target).values()
    return text


def test_u2028_in_a_with_key_keeps_pipeline_yaml_parseable() -> None:
    body = (
        "flowc: 1\nname: sep\nsteps:\n"
        '  a: {run: flowc_demo.steps:echo, with: {"x\\u2028y": 1, "p\\x85q": "v\\u2029w"}}\n'
    )
    docs = list(yaml.safe_load_all(_compile(body, "kfp")))
    params = docs[0]["components"]["comp-a"]["inputDefinitions"]["parameters"]
    assert {"x\u2028y", "p\x85q"} <= set(params)


def test_u0085_in_a_description_survives_the_round_trip() -> None:
    body = 'flowc: 1\nname: nel\ndescription: "a\\x85b\\u2028c"\nsteps:\n  a: {run: m:f}\n'
    for target in ("kfp", "k8s"):
        docs = list(yaml.safe_load_all(_compile(body, target)))
        if target == "kfp":
            assert docs[0]["pipelineInfo"]["description"] == "a\x85b\u2028c"
        else:
            cm = next(d for d in docs if d["kind"] == "ConfigMap")
            assert '"a\\u0085b\\u2028c"' in cm["data"]["plan.json"]


def test_a_string_like_the_old_block_placeholder_stays_itself() -> None:
    body = (
        "flowc: 1\nname: ph\nstacks:\n  c:\n    orchestrator:\n      type: kubernetes\n"
        "      image: __flowc_block_0__\nsteps:\n  a: {run: m:f}\n"
    )
    docs = list(yaml.safe_load_all(_compile(body, "k8s", stack="c")))
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "__flowc_block_0__"
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert set(cm["data"]) == {"k8s.json", "plan.json"}


def test_blocks_are_written_directly() -> None:
    parts = ['  "a": 1,\n', '{\n  "c": "xy', "x\n"]
    doc = {"data": {f"p{i}": Block(t) for i, t in enumerate(parts)}, "n": [Block("y\nz")]}
    text = dump_documents([doc, {"k": 1}], ["head"])
    assert text.startswith("# head\n---\ndata:\n  p0: |2\n    ")
    assert list(yaml.safe_load_all(text)) == [
        {"data": {f"p{i}": t for i, t in enumerate(parts)}, "n": ["y\nz"]},
        {"k": 1},
    ]


def test_writer_refuses_what_is_not_json_like() -> None:
    with pytest.raises(TypeError):
        dump({"x": object()})
