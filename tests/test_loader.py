"""The YAML loader: locations for keys and values, duplicate keys, aliases, tags, documents."""

from __future__ import annotations

import pytest

from flowc.compiler import loader
from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.loader import load_file, load_text


def _err(text: str) -> str:
    with pytest.raises(FlowcError) as info:
        load_text(text, "f.yaml")
    return info.value.render().splitlines()[0]


def test_every_key_and_scalar_is_located() -> None:
    doc = load_text("a: 1\nb:\n  c: [x, 'y']\n  d: {e: null}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"], "d": {"e": None}}}
    assert doc.key_loc(("a",)) == Loc("f.yaml", 1, 1)
    assert doc.loc(("a",)) == Loc("f.yaml", 1, 4)
    assert doc.key_loc(("b", "c")) == Loc("f.yaml", 3, 3)
    assert doc.loc(("b", "c", 1)) == Loc("f.yaml", 3, 10)
    assert doc.loc(("b", "d", "e")) == Loc("f.yaml", 4, 10)
    assert doc.key_loc(("b", "d", "e")) == Loc("f.yaml", 4, 7)


def test_path_is_kept_as_given(tmp_path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "flow.yaml").write_text("a: [1,\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FlowcError) as info:
        load_file("sub/flow.yaml")
    assert info.value.render().startswith("sub/flow.yaml:2:1: error: YAML syntax error")


def test_duplicate_key_anywhere() -> None:
    assert _err("a:\n  b: 1\n  b: 2\n") == "f.yaml:3:3: error: duplicate key 'b'"


def test_timestamps_stay_text_and_scalars_typed() -> None:
    doc = load_text("d: 2026-01-01\nt: 2027-01-01T00:00:00Z\ni: 007\nf: 1.5\nb: true\ns: '1'\n")
    assert doc.data == {
        "d": "2026-01-01",
        "t": "2027-01-01T00:00:00Z",
        "i": 7,
        "f": 1.5,
        "b": True,
        "s": "1",
    }


def test_plain_keys_are_names_not_yaml11_booleans() -> None:
    doc = load_text("on: 1\nyes: 2\n1: 3\nnull: 4\n", "f.yaml")
    assert doc.data == {"on": 1, "yes": 2, "1": 3, "null": 4}


def test_merge_keys_work_and_local_keys_win() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["other"] == {"y": 3, "x": 1}
    assert doc.loc(("other", "x")) == Loc("f.yaml", 1, 14)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", "f.yaml:1:1: error: empty file: expected a mapping with 'flowc: 1'"),
        ("# only a comment\n", "f.yaml:1:1: error: empty file: expected a mapping with 'flowc: 1'"),
        ("- a\n", "f.yaml:1:1: error: the document is a list; expected a mapping with 'flowc: 1'"),
        (
            "hello\n",
            "f.yaml:1:1: error: the document is a scalar; expected a mapping with 'flowc: 1'",
        ),
        ("a: 1\n---\nb: 2\n", "f.yaml:2:1: error: more than one YAML document in the file"),
        (
            "a: !!python/object/apply:os.system [touch x]\n",
            "f.yaml:1:4: error: unsupported YAML tag '!!python/object/apply:os.system'",
        ),
        (
            "a: !!python/name:os.system\n",
            "f.yaml:1:4: error: unsupported YAML tag '!!python/name:os.system'",
        ),
        ("a: !custom x\n", "f.yaml:1:4: error: unsupported YAML tag '!custom'"),
        ("a: !!binary aGVsbG8=\n", "f.yaml:1:4: error: unsupported YAML tag '!!binary'"),
        ("a: !!set {x}\n", "f.yaml:1:4: error: unsupported YAML tag '!!set'"),
        ("a: &a [*a]\n", "f.yaml:1:4: error: recursive YAML alias"),
        ("!!int 1: x\n", "f.yaml:1:1: error: mapping key '1' must be a string, not '!!int'"),
        ("[a]: x\n", "f.yaml:1:1: error: a mapping key must be a string, not a collection"),
        (
            "a: [1, 2\n",
            "f.yaml:2:1: error: YAML syntax error: did not find expected ',' or ']'",
        ),
        (
            "a: b: c\n",
            "f.yaml:1:5: error: YAML syntax error: mapping values are not allowed in this context",
        ),
        ("a: \x07\n", "f.yaml:1:4: error: character #x0007 is not allowed in YAML"),
        ("a: !!float x\n", "f.yaml:1:4: error: 'x' is not a valid !!float"),
        ("a: !!int x\n", "f.yaml:1:4: error: 'x' is not a valid !!int"),
        ("a: !!bool x\n", "f.yaml:1:4: error: 'x' is not a valid !!bool"),
        ("a: !!int 0x\n", "f.yaml:1:4: error: '0x' is not a valid !!int"),
        ("a: !!int 0b\n", "f.yaml:1:4: error: '0b' is not a valid !!int"),
        ("a: " + "9" * 5000 + "\n", "f.yaml:1:4: error: integer with 5000 digits is too large"),
    ],
)
def test_bad_documents_are_located(text: str, expected: str) -> None:
    assert _err(text) == expected


def test_python_tags_are_never_constructed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    text = f"a: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(FlowcError):
        load_text(text)
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
    msg = _err("\n".join(lines) + "\n")
    assert "error: YAML aliases expand to too many nodes" in msg


def test_reasonable_aliases_are_fine() -> None:
    doc = load_text("d: &d {image: x}\ns1: *d\ns2: *d\n")
    assert doc.data["s1"] == doc.data["s2"] == {"image": "x"}


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert _err("a: " + "[" * 3000 + "]" * 3000 + "\n").startswith("f.yaml:1:")


def test_offset_loc_inside_plain_and_quoted_scalars() -> None:
    doc = load_text("a: x ${y}\nb: 'z ${y}'\nc: \"\\t ${y}\"\n", "f.yaml")
    assert doc.offset_loc(("a",), 2) == Loc("f.yaml", 1, 6)
    assert doc.offset_loc(("b",), 2) == Loc("f.yaml", 2, 7)
    # escapes make offsets unmappable: fall back to the scalar's start
    assert doc.offset_loc(("c",), 2) == Loc("f.yaml", 3, 4)


def test_map_error_path_skips_non_data_parts() -> None:
    doc = load_text("steps:\n  a: {retries: x}\n", "f.yaml")
    assert doc.map_error_path(("steps", "a", "retries", "int")) == Loc("f.yaml", 2, 16)
    assert doc.map_error_path(("steps", "a", "retries"), key=True) == Loc("f.yaml", 2, 7)


def test_libyaml_composer_is_used() -> None:
    """The messages above are libyaml's; the pure-Python fallback words some differently."""
    import yaml

    from flowc.compiler import loader

    assert yaml.__with_libyaml__, "PyYAML without libyaml: install the binary wheel"
    assert loader._pick_loader() is yaml.CSafeLoader


def test_aliases_of_one_large_string_are_refused_by_size() -> None:
    """Few nodes, many bytes: 200 aliases of a 100 KB string pass the node budget."""
    big = "x" * 100_000
    text = "flowc: 1\nname: demo\nsteps:\n  a:\n    command: [echo]\n    env: {BIG: &big " + big
    text += "}\n" + "".join(
        f"  s{i}: {{command: [echo], env: {{BIG: *big}}}}\n" for i in range(200)
    )
    with pytest.raises(FlowcError) as ei:
        load_text(text, "f.yaml")
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.loc.file == "f.yaml" and d.loc.line > 5
    assert "YAML aliases expand to more than" in d.message
    # a few uses of a large value stay fine
    load_text(text.split("  s3:")[0], "f.yaml")


def test_devices_are_not_read(tmp_path) -> None:
    with pytest.raises(FlowcError) as ei:
        load_file("/dev/zero")
    assert ei.value.render() == (
        "flowc: error: cannot read /dev/zero: not a regular file\n"
        "  hint: give the path of a flow file"
    )


def test_input_size_is_bounded(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(loader, "MAX_INPUT_BYTES", 1000)
    flow = tmp_path / "flow.yaml"
    flow.write_text("flowc: 1\nname: demo\n" + "# padding\n" * 200)
    with pytest.raises(FlowcError) as ei:
        load_file(str(flow))
    assert ei.value.render().startswith(f"{flow}:1:1: error: the file is larger than")
    with pytest.raises(FlowcError, match="larger than"):
        load_text(flow.read_text(), "f.yaml")
