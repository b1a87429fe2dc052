"""The editor schema (``flowc schema``): every example and golden flow validates, every property
has a description, invalid flows of the error table are rejected by the schema alone where a
schema can know, and the committed copy for editors and SchemaStore is current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli
from flowc.compiler.loader import load_text
from flowc.compiler.schema_docs import SCHEMA_ID, missing_descriptions
from tests.test_errors_table import CASES

REPO = Path(__file__).resolve().parents[1]
FLOWS = sorted(
    [
        *REPO.glob("examples/*/flow.yaml"),
        *REPO.glob("golden/*/flow.yaml"),
        *REPO.glob("tests/fixtures/spec/*.yaml"),
    ]
)

# Error-table cases a schema can see (shape, types, names, patterns); the others need the
# whole flow (references, cycles, timezones, environment variables) or are not YAML at all.
SCHEMA_CAN_KNOW = [
    "misspelled_top_key",
    "misspelled_step_key",
    "bad_cron",
    "bad_cron_value",
    "bad_duration",
    "wrong_default_type",
    "bad_flow_name",
    "bad_step_name",
    "bad_param_name",
    "wrong_version",
    "list_document",
    "wrong_type_retries",
    "missing_name",
    "bad_run_callable",
    "two_framework_roots",
    "foreach_literal_string",
    "run_and_command",
    "neither_run_nor_command",
    "required_with_default",
    "two_schedule_kinds",
]


@pytest.fixture(scope="module")
def schema() -> dict:
    res = CliRunner().invoke(cli, ["schema"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(data)
    return data


@pytest.fixture(scope="module")
def validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_the_flows_are_there() -> None:
    assert len(FLOWS) >= 20


@pytest.mark.parametrize("flow", FLOWS, ids=[str(f.relative_to(REPO)) for f in FLOWS])
def test_every_example_and_golden_flow_validates(
    flow: Path, validator: jsonschema.Draft202012Validator
) -> None:
    data = load_text(flow.read_text(encoding="utf-8")).data
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_every_property_has_a_description(schema: dict) -> None:
    assert missing_descriptions(schema) == []
    props = len(schema["properties"]) + sum(
        len(d.get("properties", {})) for d in schema["$defs"].values()
    )
    assert props >= 90


def test_version_id_and_examples(schema: dict, validator: jsonschema.Draft202012Validator) -> None:
    assert schema["properties"]["flowc"]["const"] == 1
    assert schema["$id"] == SCHEMA_ID
    assert schema["examples"]
    for example in schema["examples"]:
        assert list(validator.iter_errors(example)) == []


def _data(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


def test_schema_alone_rejects_twenty_error_table_flows(
    validator: jsonschema.Draft202012Validator,
) -> None:
    cases = {c[0]: c[1] for c in CASES}
    assert len(SCHEMA_CAN_KNOW) == 20 and set(SCHEMA_CAN_KNOW) <= set(cases)
    accepted = [n for n in SCHEMA_CAN_KNOW if validator.is_valid(_data(cases[n]))]
    assert accepted == []


@pytest.mark.parametrize(
    "param,ok",
    [
        ("{type: int, default: three}", False),
        ("{type: int, default: 3}", True),
        ("{type: float, default: 0.5}", True),
        ("{type: float, default: fast}", False),
        ("{type: bool, default: 'yes'}", False),
        ("{type: list, default: [a]}", True),
        ("{type: list, default: a}", False),
        ("{type: dict, default: {a: 1}}", True),
        ("{type: str, default: 3}", False),
    ],
)
def test_typed_defaults_per_param_type(
    param: str, ok: bool, validator: jsonschema.Draft202012Validator
) -> None:
    flow = f"flowc: 1\nname: d\nparams:\n  p: {param}\nsteps:\n  a: {{run: m:f}}\n"
    assert validator.is_valid(_data(flow)) is ok


@pytest.mark.parametrize(
    "step,ok",
    [
        ("{run: m:f, timeout: 1h30m}", True),
        ("{run: m:f, timeout: 90}", True),
        ("{run: m:f, timeout: -1}", False),
        ("{run: m:f, retry_delay: soon}", False),
        ("{run: pkg.mod:fn}", True),
        ("{run: pkg.mod.fn}", False),
    ],
)
def test_patterns(step: str, ok: bool, validator: jsonschema.Draft202012Validator) -> None:
    flow = f"flowc: 1\nname: d\nsteps:\n  a: {step}\n"
    assert validator.is_valid(_data(flow)) is ok


def test_committed_schema_and_schemastore_entry_are_current(schema: dict) -> None:
    committed = json.loads((REPO / "docs" / "flowc.schema.json").read_text())
    assert committed == schema, "regenerate: flowc schema > docs/flowc.schema.json"
    entry = json.loads((REPO / "docs" / "schemastore-catalog-entry.json").read_text())
    assert set(entry) == {"name", "description", "fileMatch", "url"}
    assert entry["url"] == SCHEMA_ID and "*.flow.yaml" in entry["fileMatch"]
