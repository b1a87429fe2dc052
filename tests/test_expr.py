"""``${...}`` parsing (grammar/expr.lark) into IR expression nodes."""

from __future__ import annotations

import pytest

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.expr import parse_condition, parse_template, parser, value_expr
from flowc.compiler.ir import BinOp, DictOf, Format, ListOf, Lit, Not, Ref, encode_expr


def loc(i: int) -> Loc:
    return Loc("f.yaml", 3, 10 + i)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("${params.epochs}", Ref("params", ("epochs",))),
        ("${steps.load.outputs.frame}", Ref("steps", ("load", "outputs", "frame"))),
        ("${secrets.api_token}", Ref("secrets", ("api_token",))),
        ("${env.HOME}", Ref("env", ("HOME",))),
        ("${env.X:-fallback value}", Ref("env", ("X",), "fallback value")),
        ("${env.X:-}", Ref("env", ("X",), "")),
        ("${item}", Ref("item")),
        ("${item.key}", Ref("item", ("key",))),
        ("${run.id}", Ref("run", ("id",))),
        ("${run.date}", Ref("run", ("date",))),
        ("${flow.name}", Ref("flow", ("name",))),
        ("${ params.x }", Ref("params", ("x",))),
        ("${1}", Lit(1)),
        ("${-2.5}", Lit(-2.5)),
        ("${'a}b'}", Lit("a}b")),
        ('${"q\\"x"}', Lit('q"x')),
        ("${true}", Lit(True)),
        ("${null}", Lit(None)),
        ("${[1, 'a', false]}", Lit([1, "a", False])),
        ("${[params.a, 2]}", ListOf((Ref("params", ("a",)), Lit(2)))),
    ],
)
def test_exact_interpolation_keeps_type(text: str, expected: object) -> None:
    assert parse_template(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("plain", Lit("plain")),
        ("$HOME and ${{ x }}", None),
        ("$HOME/x", Lit("$HOME/x")),
        ("{{ ds }}", Lit("{{ ds }}")),
        ("%s and %(x)s", Lit("%s and %(x)s")),
        ("cost $5", Lit("cost $5")),
        ("$${params.x}", Lit("${params.x}")),
        ("a$${b}c", Lit("a${b}c")),
        ("$", Lit("$")),
        ("$$", Lit("$$")),
    ],
)
def test_text_passes_through(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(FlowcError):
            parse_template(text)
    else:
        assert parse_template(text) == expected


def test_format_parts() -> None:
    e = parse_template("gs://b/${params.day}/x-${run.id}")
    assert e == Format(("gs://b/", Ref("params", ("day",)), "/x-", Ref("run", ("id",))))
    assert encode_expr(e) == {
        "$fmt": ["gs://b/", {"$ref": ["params", "day"]}, "/x-", {"$ref": ["run", "id"]}]
    }
    assert parse_template("${params.a}${params.b}") == Format(
        (Ref("params", ("a",)), Ref("params", ("b",)))
    )
    assert parse_template("$${x} ${params.a}") == Format(("${x} ", Ref("params", ("a",))))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("${a.outputs.x}", None),
        ("${params.a == 1}", BinOp("==", Ref("params", ("a",)), Lit(1))),
        ("${params.a != 'x'}", BinOp("!=", Ref("params", ("a",)), Lit("x"))),
        ("${params.a <= 1.5}", BinOp("<=", Ref("params", ("a",)), Lit(1.5))),
        ("${params.a in [1, 2]}", BinOp("in", Ref("params", ("a",)), Lit([1, 2]))),
        ("${params.a not in [1]}", BinOp("not in", Ref("params", ("a",)), Lit([1]))),
        ("${not params.a}", Not(Ref("params", ("a",)))),
        (
            "${params.a or params.b and params.c}",
            BinOp(
                "or",
                Ref("params", ("a",)),
                BinOp("and", Ref("params", ("b",)), Ref("params", ("c",))),
            ),
        ),
        (
            "${(params.a or params.b) and params.c}",
            BinOp(
                "and",
                BinOp("or", Ref("params", ("a",)), Ref("params", ("b",))),
                Ref("params", ("c",)),
            ),
        ),
        ("${params.inner}", Ref("params", ("inner",))),
        ("${params.order_by}", Ref("params", ("order_by",))),
    ],
)
def test_operators(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(FlowcError):
            parse_template(text)
    else:
        assert parse_template(text) == expected


def test_condition_with_wrapped_operands() -> None:
    e = parse_condition("${steps.train.outputs.auc} >= 0.8 and not ${params.full}", loc)
    assert e == BinOp(
        "and",
        BinOp(">=", Ref("steps", ("train", "outputs", "auc")), Lit(0.8)),
        Not(Ref("params", ("full",))),
    )
    refs = e.refs()
    assert [r.loc for r in refs] == [loc(0), loc(42)]
    assert parse_condition("${params.a > 1}") == BinOp(">", Ref("params", ("a",)), Lit(1))


@pytest.mark.parametrize(
    "text,message",
    [
        ("x ${params.a", "f.yaml:3:12: error: unterminated '${' in 'x ${params.a'"),
        (
            "${params.a ==}",
            "f.yaml:3:10: error: invalid expression '${params.a ==}': unexpected end of expression",
        ),
        (
            "${params.a === 1}",
            "f.yaml:3:10: error: invalid expression '${params.a === 1}': unexpected character '='",
        ),
        (
            "ok ${params.a @ 1}",
            "f.yaml:3:13: error: invalid expression 'ok ${params.a @ 1}': unexpected character '@'",
        ),
        ("${}", "f.yaml:3:10: error: invalid expression '${}': unexpected end of expression"),
        ("${params}", "f.yaml:3:10: error: malformed reference ${params}"),
        ("${params.a.b}", "f.yaml:3:10: error: malformed reference ${params.a.b}"),
        ("${steps.a.output.x}", "f.yaml:3:10: error: malformed reference ${steps.a.output.x}"),
        ("${run.time}", "f.yaml:3:10: error: malformed reference ${run.time}"),
        ("${flow.id}", "f.yaml:3:10: error: malformed reference ${flow.id}"),
        (
            "${stpes.a.outputs.b}",
            "f.yaml:3:10: error: unknown reference root 'stpes' in ${stpes.a.outputs.b}",
        ),
        (
            "${params.x:-1}",
            "f.yaml:3:10: error: ':-default' is only allowed for ${env.X}, not in ${params.x}",
        ),
    ],
)
def test_errors_are_located_at_the_interpolation(text: str, message: str) -> None:
    with pytest.raises(FlowcError) as info:
        parse_template(text, loc)
    assert info.value.render().splitlines()[0] == message


def test_condition_errors() -> None:
    with pytest.raises(FlowcError, match="unexpected 'true'"):
        parse_condition("${params.a} >= and true", loc)
    with pytest.raises(FlowcError, match="empty condition"):
        parse_condition("  ", loc)
    with pytest.raises(FlowcError, match="unterminated"):
        parse_condition("${params.a >= 1", loc)


def test_value_expr_nests() -> None:
    assert value_expr({"a": [1, {"b": "x"}]}) == Lit({"a": [1, {"b": "x"}]})
    e = value_expr({"a": [1, "${params.x}"], "b": 2})
    assert e == DictOf((("a", ListOf((Lit(1), Ref("params", ("x",))))), ("b", Lit(2))))
    assert encode_expr(e) == {"$dict": {"a": {"$list": [1, {"$ref": ["params", "x"]}]}, "b": 2}}


def test_parser_is_built_once() -> None:
    assert parser() is parser()


@pytest.mark.parametrize(
    "src", ["params.x", " env.A:-d e ", "item", "item.a-b", "steps.a.outputs.b", "run.id"]
)
def test_lone_reference_fast_path_matches_the_grammar(src: str) -> None:
    from flowc.compiler.expr import _Build, _tree

    fast = parse_template("${" + src + "}", loc)
    slow = _Build("${" + src + "}", 2, loc).build(_tree(src))
    assert fast == slow
    assert isinstance(fast, Ref) and isinstance(slow, Ref) and fast.loc == slow.loc


@pytest.mark.parametrize(
    "inner",
    ["[" * 3000 + "1" + "]" * 3000, "not " * 3000 + "true", " and ".join(["true"] * 5000)],
    ids=["lists", "nots", "ands"],
)
def test_pathological_nesting_is_a_located_error(inner: str) -> None:
    with pytest.raises(FlowcError) as info:
        parse_template("${" + inner + "}", loc)
    assert info.value.render().startswith("f.yaml:3:10: error: expression '${")
    assert "nested more than 64 levels deep" in info.value.render()


def test_reasonable_nesting_is_fine() -> None:
    assert parse_template("${" + "(" * 500 + "1" + ")" * 500 + "}") == Lit(1)
    assert (
        parse_template("${" + " or ".join(["params.a"] * 60) + "}").refs()[0].dotted == "params.a"
    )
