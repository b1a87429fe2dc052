"""pypz-style operator parameters: ``RequiredParameter`` / ``OptionalParameter`` class attributes
with an ``alt_name`` (camelCase alias) given by either name in ``with:`` (or by attribute name
as a pipeline param),
checked at compile time and set on the operator at run time."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from flowc.compiler.api import compile_flow
from flowc.compiler.errors import FlowcError
from flowc.runtime.executor import run_plan

SCHEMA = {"type": "record", "name": "DemoRecord", "fields": [{"name": "text", "type": "string"}]}


def flow(tmp_path: Path, writer_with: str, params: str = "") -> Path:
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent(f"""\
            flowc: 1
            name: alias
            params: {{{params}}}
            channels:
              records: {{schema: {json.dumps(SCHEMA)}}}
            steps:
              writer:
                run: flowc_streaming.declared:AliasWriter
                operator: true
                produces: [records]
                with: {{{writer_with}}}
              reader:
                run: flowc_streaming.ops:DemoReader
                operator: true
                consumes: [records]
                with: {{out_dir: "{tmp_path / 'out'}"}}
            """))
    return f


def sink(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "out" / "reader.0.jsonl").read_text().splitlines()
    return sorted(json.loads(line)["text"] for line in lines)


def test_alt_name_in_with_and_an_optional_param_from_the_pipeline(tmp_path: Path) -> None:
    f = flow(tmp_path, "recordCount: 3", params="message: {type: str, default: Hi}")
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    assert sink(tmp_path) == ["Hi_0", "Hi_1", "Hi_2"]


def test_the_attribute_name_in_with_or_as_a_pipeline_param(tmp_path: Path) -> None:
    f = flow(tmp_path, "", params="record_count: {type: int, default: 2}")
    result = run_plan(compile_flow(f).to_data(), root=tmp_path / ".flowc")
    assert result.status == "success", result.error
    assert sink(tmp_path) == ["HelloWorld_0", "HelloWorld_1"]  # the initial value of message
    other = tmp_path / "b"
    other.mkdir()
    result = run_plan(compile_flow(flow(other, "record_count: 1")).to_data(), root=other / ".flowc")
    assert result.status == "success", result.error
    assert sink(other) == ["HelloWorld_0"]


def errors_of(f: Path) -> str:
    try:
        compile_flow(f)
    except FlowcError as e:
        return e.render()
    raise AssertionError("compiled")


def test_declared_parameters_are_checked_at_compile_time(tmp_path: Path) -> None:
    text = errors_of(flow(tmp_path, 'recordCount: "many"'))
    assert "operator step 'writer': parameter 'recordCount' expects int, got str" in text
    text = errors_of(flow(tmp_path, "record_cont: 3"))
    assert "misses required parameter 'record_count' of AliasWriter" in text
    assert "takes no parameter 'record_cont'" in text
