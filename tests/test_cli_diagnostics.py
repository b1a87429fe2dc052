"""Diagnostics as a feature: every problem of a file in one pass, once each, sorted; cron and
single-output hints; code frames on a terminal; ``--output-format text|json|github|sarif``."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli
from flowc.compiler.errors import Diagnostic, Loc
from flowc.compiler.hints import cron_hint
from flowc.compiler.render import JSON_SCHEMA, print_text

THREE = """\
flowc: 1
name: three
schedule: {cron: "0 25 * * 1"}
defaults: {retry_delay: 5 parsecs}
steps:
  a:
    run: m:f
    bogus: 1
  b:
    run: m:g
    after: [nope]
  c: {run: m:h, retries: many}
"""

# The minimal schema of a SARIF 2.1.0 log as code-scanning reads it (the official schema is
# not fetched here: no network in the suite); every result needs a level, a message and a
# physical location with a 1-based region.
SARIF_SCHEMA = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"const": "flowc"}},
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "level", "message", "locations"],
                            "properties": {
                                "level": {"enum": ["error", "warning", "note"]},
                                "message": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {"text": {"type": "string", "minLength": 1}},
                                },
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["physicalLocation"],
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine", "startColumn"],
                                                        "properties": {
                                                            "startLine": {
                                                                "type": "integer",
                                                                "minimum": 1,
                                                            },
                                                            "startColumn": {
                                                                "type": "integer",
                                                                "minimum": 1,
                                                            },
                                                        },
                                                    }
                                                },
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("three.yaml").write_text(THREE)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def error_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ": error: " in ln]


def test_every_problem_of_a_file_once_each_sorted(in_tmp: Path) -> None:
    code, out, err = invoke("validate", "three.yaml")
    assert code == 1 and out == ""
    lines = error_lines(err)
    assert lines == [
        "three.yaml:3:18: error: invalid cron expression '0 25 * * 1'",
        "three.yaml:4:25: error: invalid duration '5 parsecs'",  # once, not once per step
        "three.yaml:8:5: error: unknown key 'bogus' in 'steps.a'",
        "three.yaml:11:13: error: unknown step 'nope' in 'after' of step 'b'",
        "three.yaml:12:26: error: 'steps.c.retries' must be an integer, not 'many'",
    ]
    assert "hint: field 2 (hour) is '25': 25 is out of range; hour must be 0-23" in err


def test_a_pruned_value_does_not_cascade(in_tmp: Path) -> None:
    # 'run: 5' is a type error; the step is not also reported as having no 'run'
    Path("f.yaml").write_text("flowc: 1\nname: f\nsteps:\n  a: {run: 5}\n  b: {run: m:g}\n")
    code, _, err = invoke("validate", "f.yaml")
    assert code == 1
    assert error_lines(err) == [
        "f.yaml:4:12: error: 'steps.a.run' must be a string, not an integer"
    ]
    # a misspelled top-level key is not also "the flow has no steps"
    Path("g.yaml").write_text("flowc: 1\nname: g\nstepz:\n  a: {run: m:f}\n")
    code, _, err = invoke("validate", "g.yaml")
    assert error_lines(err) == ["g.yaml:3:1: error: unknown key 'stepz'"]


@pytest.mark.parametrize(
    "expr,hint",
    [
        ("0 25 * * 1", "field 2 (hour) is '25': 25 is out of range; hour must be 0-23"),
        ("0 3 * *", "use 5 fields: minute hour day-of-month month day-of-week (got 4 fields)"),
        ("61 * * * *", "field 1 (minute) is '61': 61 is out of range; minute must be 0-59"),
        (
            "0 0 0 * *",
            "field 3 (day-of-month) is '0': 0 is out of range; day-of-month must be 1-31",
        ),
        (
            "0 0 * 1-13 *",
            "field 4 (month) is '1-13': 13 is out of range; month must be 1-12 or JAN-DEC",
        ),
        (
            "0 0 * * 9",
            "field 5 (day-of-week) is '9': 9 is out of range; day-of-week must be 0-7 or SUN-SAT",
        ),
        ("0 x * * *", "field 2 (hour) is 'x': 'x' is not a hour; hour must be 0-23"),
        ("*/0 * * * *", "field 1 (minute) is '*/0': a step /0 never fires"),
    ],
)
def test_cron_hint_names_the_field_and_its_range(expr: str, hint: str) -> None:
    assert cron_hint(expr) == hint


def test_cron_hint_reaches_the_cli(in_tmp: Path) -> None:
    Path("c.yaml").write_text(
        "flowc: 1\nname: c\nschedule: {cron: '0 3 * 13 *'}\nsteps:\n  a: {run: m:f}\n"
    )
    code, _, err = invoke("validate", "c.yaml")
    assert code == 1
    assert err.splitlines()[:2] == [
        "c.yaml:3:18: error: invalid cron expression '0 3 * 13 *'",
        "  hint: field 4 (month) is '13': 13 is out of range; month must be 1-12 or JAN-DEC",
    ]


def test_json_format_validates_against_its_schema(in_tmp: Path) -> None:
    Path("good.yaml").write_text("flowc: 1\nname: g\nsteps:\n  a: {run: m:f}\n")
    code, out, err = invoke("validate", "good.yaml", "three.yaml", "--output-format", "json")
    assert code == 1
    data = json.loads(out)  # stdout is one JSON document, nothing else
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    jsonschema.validate(data, JSON_SCHEMA)
    assert [(d["file"], d["line"], d["column"]) for d in data] == [
        ("three.yaml", 3, 18),
        ("three.yaml", 4, 25),
        ("three.yaml", 8, 5),
        ("three.yaml", 11, 13),
        ("three.yaml", 12, 26),
    ]
    assert data[0]["hint"].startswith("field 2 (hour)")
    assert "1 of 2 flow(s) invalid" in err
    code, out, _ = invoke("validate", "good.yaml", "--output-format", "json")
    assert code == 0 and json.loads(out) == []


def test_github_format_annotates_each_line(in_tmp: Path) -> None:
    code, out, _ = invoke("validate", "three.yaml", "--output-format", "github")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0] == (
        "::error file=three.yaml,line=3,col=18,title=flowc::invalid cron expression "
        "'0 25 * * 1'%0Ahint: field 2 (hour) is '25': 25 is out of range; hour must be 0-23"
    )
    pattern = re.compile(r"^::error file=three\.yaml,line=\d+,col=\d+,title=flowc::[^\n]+$")
    assert all(pattern.match(ln) for ln in lines), lines


def test_sarif_format(in_tmp: Path) -> None:
    code, out, _ = invoke("validate", "three.yaml", "--output-format", "sarif")
    assert code == 1
    log = json.loads(out)
    jsonschema.validate(log, SARIF_SCHEMA)
    results = log["runs"][0]["results"]
    assert len(results) == 5
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 18}


def test_compile_takes_the_output_formats_too(in_tmp: Path) -> None:
    code, out, _ = invoke(
        "compile", "three.yaml", "--target", "local", "-o", "out", "--output-format", "github"
    )
    assert code == 1 and len(out.splitlines()) == 5 and not Path("out").exists()
    Path("good.yaml").write_text("flowc: 1\nname: g\nsteps:\n  a: {run: m:f}\n")
    code, out, _ = invoke("compile", "good.yaml", "--target", "local", "-o", "out", "--check")
    assert code == 1
    code, out, _ = invoke(
        "compile", "good.yaml", "-t", "local", "-o", "out", "--check", "--output-format", "json"
    )
    data = json.loads(out)
    jsonschema.validate(data, JSON_SCHEMA)
    assert code == 1 and data[0]["file"] == "good.yaml"
    assert data[0]["message"] == "compiled output 'out/g_flow.py' is stale"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_code_frame_with_a_caret_on_a_terminal_only(in_tmp: Path) -> None:
    diag = Diagnostic(Loc("three.yaml", 3, 18), "invalid cron expression '0 25 * * 1'", "h")
    tty = _Tty()
    print_text([diag], tty)
    lines = tty.getvalue().splitlines()
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in lines]
    assert plain == [
        "three.yaml:3:18: error: invalid cron expression '0 25 * * 1'",
        ' 3 | schedule: {cron: "0 25 * * 1"}',
        "   |                  ^",
        "  hint: h",
    ]
    pipe = io.StringIO()
    print_text([diag], pipe)
    assert pipe.getvalue() == (
        "three.yaml:3:18: error: invalid cron expression '0 25 * * 1'\n  hint: h\n"
    )


def test_single_output_dict_gets_a_hint_at_run_time(tmp_path: Path) -> None:
    (tmp_path / "shard_steps.py").write_text(
        "def make():\n    return {'shards': [1, 2, 3]}\n\ndef use(x):\n    return x\n"
    )
    (tmp_path / "flow.yaml").write_text(
        "flowc: 1\nname: fe\nsteps:\n"
        "  make: {run: shard_steps:make, outputs: [shards]}\n"
        "  use: {run: shard_steps:use, foreach: '${steps.make.outputs.shards}',"
        " with: {x: '${item}'}}\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1, p.stderr
    assert "foreach must be a list, got dict" in p.stderr
    assert (
        "hint: step 'make' declares one output, 'shards', so its whole return value is "
        "'shards': return the list itself, not {'shards': [...]}"
    ) in p.stderr
