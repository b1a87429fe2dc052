"""Compile-time checks of streaming flows (compiler/passes/streaming.py): Avro schemas, ports,
transport/location, operator parameters; located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow
from flowc.compiler.errors import FlowcError

HEAD = """\
flowc: 1
name: s
params:
  kafka: {type: str, default: "localhost:9092"}
  record_count: {type: int, default: 3}
"""
SCHEMA = "{type: record, name: DemoRecord, fields: [{name: text, type: string}]}"


def compile_text(tmp_path: Path, body: str) -> object:
    p = tmp_path / "flow.yaml"
    p.write_text(HEAD + textwrap.dedent(body))
    return compile_flow(p)


def errors(tmp_path: Path, body: str) -> str:
    with pytest.raises(FlowcError) as e:
        compile_text(tmp_path, body)
    return e.value.render()


def test_valid_streaming_flow_compiles(tmp_path: Path) -> None:
    ir = compile_text(
        tmp_path,
        f"""
        channels:
          records: {{schema: {SCHEMA}, transport: kafka, location: "${{params.kafka}}"}}
        steps:
          writer: {{run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records],
                   replicas: 3}}
          reader: {{run: "flowc_streaming.ops:DemoReader", operator: true, consumes: [records],
                   replicas: 2, with: {{out_dir: /tmp/x}}}}
        """,
    )
    data = ir.to_data()  # record_count comes from the pipeline param of the same name
    assert data["channels"]["records"]["producers"] == ["writer"]
    assert data["channels"]["records"]["location"] == {"$ref": ["params", "kafka"]}


def test_schema_as_json_string_is_normalized(tmp_path: Path) -> None:
    ir = compile_text(
        tmp_path,
        """
        channels:
          records:
            schema: '{"type": "record", "name": "R", "fields": [{"name": "text", "type": "string"}]}'
        steps:
          writer: {run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records]}
        """,
    )
    assert ir.to_data()["channels"]["records"]["schema"]["name"] == "R"


def test_invalid_avro_schema_is_located(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        """
        channels:
          records:
            schema: {type: record, name: R, fields: [{name: text, type: strin}]}
        steps:
          writer: {run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [records]}
        """,
    )
    assert "flow.yaml:9:" in text and "channel 'records': invalid Avro schema" in text, text
    assert "strin" in text


def test_missing_schema_and_kafka_without_location(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        """
        channels:
          a: {transport: kafka, schema: string}
          b: {transport: kafka, schema: string, location: "nohost"}
          c: {}
        steps:
          writer: {run: "flowc_streaming.ops:DemoWriter", operator: true, produces: [a, b, c]}
        """,
    )
    assert "flow.yaml:8:3: error: channel 'a' uses transport kafka but has no 'location'" in text
    assert "flow.yaml:9:" in text and "kafka location 'nohost' is not host:port" in text
    assert "flow.yaml:10:3: error: channel 'c' needs an Avro 'schema'" in text


def test_operator_parameter_checks(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        f"""
        channels:
          records: {{schema: {SCHEMA}}}
        steps:
          writer:
            run: "flowc_streaming.ops:DemoWriter"
            operator: true
            produces: [records]
            with: {{record_cont: 5, message: 3}}
          reader:
            run: "flowc_streaming.ops:DemoReader"
            operator: true
            consumes: [records]
        """,
    )
    assert "takes no parameter 'record_cont'" in text and "did you mean 'record_count'" in text
    assert "parameter 'message' expects str, got int" in text
    assert (
        "flow.yaml:15:3: error: operator step 'reader' misses required parameter 'out_dir'" in text
    )


def test_ports_only_on_operators_and_operator_shape(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        f"""
        channels:
          records: {{schema: {SCHEMA}}}
        steps:
          plain: {{run: "flowc_demo.steps:hello", produces: [records]}}
          op: {{run: "flowc_streaming.ops:DemoWriter", operator: true, outputs: [x],
               produces: [records]}}
          cmd: {{command: [echo], operator: true, consumes: [records]}}
          missing: {{run: "flowc_streaming.ops:NoSuch", operator: true, consumes: [records]}}
        """,
    )
    assert "step 'plain' has 'produces' but is not an operator" in text
    assert "operator step 'op' cannot declare outputs" in text
    assert "operator step 'cmd' needs 'run: module:Class'" in text
    assert "operator step 'missing': flowc_streaming.ops has no 'NoSuch'" in text


def test_example_flow_compiles_with_its_module_next_to_it() -> None:
    repo = Path(__file__).resolve().parent.parent
    ir = compile_flow(repo / "examples" / "streaming_hello" / "flow.yaml")
    assert [s.replicas for s in ir.steps] == [3, 2]
