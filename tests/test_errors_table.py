"""Table-driven invalid flows: each asserts the exact first ``FILE:LINE:COL: error: message``
line (and hint where it matters). None may raise anything but FlowcError."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.api import load_text
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError

H = "flowc: 1\nname: demo\n"
S = "steps:\n  a: {run: m:f, outputs: [x]}\n"

CASES = [
    ("duplicate_key", H + "name: other\n" + S, {}, "flow.yaml:3:1: error: duplicate key 'name'"),
    (
        "misspelled_top_key",
        H + "stepz:\n  a: {run: m:f}\n",
        {},
        "flow.yaml:3:1: error: unknown key 'stepz'",
    ),
    (
        "misspelled_step_key",
        H + "steps:\n  a: {run: m:f, retires: 2}\n",
        {},
        "flow.yaml:4:17: error: unknown key 'retires' in 'steps.a'",
    ),
    (
        "unknown_param_ref",
        H
        + "params:\n  epochs: {type: int, default: 1}\nsteps:\n  a: {run: m:f, with: {n: '${params.epoch}'}}\n",
        {},
        "flow.yaml:6:28: error: unknown param 'epoch' in ${params.epoch}",
    ),
    (
        "unknown_step_ref",
        H + S + "  b: {run: m:g, with: {v: '${steps.aa.outputs.x}'}}\n",
        {},
        "flow.yaml:5:28: error: unknown step 'aa' in ${steps.aa.outputs.x}",
    ),
    (
        "unknown_output_ref",
        H + S + "  b: {run: m:g, with: {v: '${steps.a.outputs.y}'}}\n",
        {},
        "flow.yaml:5:28: error: step 'a' has no output 'y' (${steps.a.outputs.y})",
    ),
    (
        "cycle",
        H
        + "steps:\n  a: {run: m:f, after: [c]}\n  b: {run: m:f, after: [a]}\n  c: {run: m:f, after: [b]}\n",
        {},
        "flow.yaml:4:3: error: dependency cycle: a -> b -> c -> a",
    ),
    (
        "item_outside_foreach",
        H + "steps:\n  a: {run: m:f, with: {v: '${item}'}}\n",
        {},
        "flow.yaml:4:28: error: ${item} is only available in a step with 'foreach'",
    ),
    (
        "undeclared_secret",
        H + "steps:\n  a: {run: m:f, with: {t: '${secrets.token}'}}\n",
        {},
        "flow.yaml:4:28: error: undeclared secret 'token' in ${secrets.token}",
    ),
    (
        "bad_cron",
        H + "schedule: {cron: '0 3 * *'}\n" + S,
        {},
        "flow.yaml:3:18: error: invalid cron expression '0 3 * *'",
    ),
    (
        "bad_cron_value",
        H + "schedule: {cron: '0 25 * * *'}\n" + S,
        {},
        "flow.yaml:3:18: error: invalid cron expression '0 25 * * *'",
    ),
    (
        "bad_duration",
        H + "steps:\n  a: {run: m:f, timeout: 5 minutes}\n",
        {},
        "flow.yaml:4:26: error: invalid duration '5 minutes'",
    ),
    (
        "wrong_default_type",
        H + "params:\n  epochs: {type: int, default: ten}\n" + S,
        {},
        "flow.yaml:4:32: error: default for param 'epochs' must be an integer, not 'ten'",
    ),
    (
        "required_with_default",
        H + "params:\n  path: {type: str, required: true, default: x}\n" + S,
        {},
        "flow.yaml:4:37: error: param 'path' is required and has a default",
    ),
    (
        "run_and_command",
        H + "steps:\n  a: {run: m:f, command: [echo]}\n",
        {},
        "flow.yaml:4:3: error: step 'a' has both 'run' and 'command'",
    ),
    (
        "neither_run_nor_command",
        H + "steps:\n  a: {with: {x: 1}}\n",
        {},
        "flow.yaml:4:3: error: step 'a' needs 'run' (module:function) or 'command'",
    ),
    (
        "bad_flow_name",
        "flowc: 1\nname: Demo-Flow\n" + S,
        {},
        "flow.yaml:2:7: error: invalid flow name 'Demo-Flow'",
    ),
    (
        "bad_step_name",
        H + "steps:\n  Load: {run: m:f}\n",
        {},
        "flow.yaml:4:3: error: invalid step name 'Load'",
    ),
    (
        "bad_param_name",
        H + "params:\n  Epochs: {type: int}\n" + S,
        {},
        "flow.yaml:4:3: error: invalid param name 'Epochs'",
    ),
    (
        "wrong_version",
        "flowc: 2\nname: demo\n" + S,
        {},
        "flow.yaml:1:8: error: unsupported DSL version flowc: 2",
    ),
    ("empty_file", "", {}, "flow.yaml:1:1: error: empty file: expected a mapping with 'flowc: 1'"),
    (
        "yaml_syntax_error",
        H + "steps:\n  a: {run: m:f\n",
        {},
        "flow.yaml:5:1: error: YAML syntax error: did not find expected ',' or '}'",
    ),
    (
        "list_document",
        "- flowc: 1\n- name: demo\n",
        {},
        "flow.yaml:1:1: error: the document is a list; expected a mapping with 'flowc: 1'",
    ),
    (
        "when_syntax_error",
        H + S + "  b: {run: m:g, when: '${steps.a.outputs.x} >= and true'}\n",
        {},
        "flow.yaml:5:24: error: invalid expression '${steps.a.outputs.x} >= and true': unexpected 'true'",
    ),
    (
        "unterminated_interp",
        H + 'steps:\n  a: {run: m:f, with: {p: "gs://b/${params.x"}}\n',
        {},
        "flow.yaml:4:35: error: unterminated '${' in 'gs://b/${params.x'",
    ),
    (
        "unterminated_interp_plain",
        H
        + "params:\n  x: {type: str}\nsteps:\n  a:\n    run: m:f\n    with:\n      p: gs://b/${params.x\n",
        {},
        "flow.yaml:9:17: error: unterminated '${' in 'gs://b/${params.x'",
    ),
    (
        "unset_env",
        H
        + "stacks:\n  s:\n    artifact_store: {type: local, path: '${env.FLOWC_TEST_UNSET_VAR}'}\nenvironments:\n  dev: {stack: s}\n"
        + S,
        {"environment": "dev"},
        "flow.yaml:5:42: error: environment variable 'FLOWC_TEST_UNSET_VAR' is not set (${env.FLOWC_TEST_UNSET_VAR})",
    ),
    (
        "foreach_non_list_param",
        H
        + "params:\n  n: {type: int, default: 3}\nsteps:\n  a: {run: m:f, foreach: '${params.n}'}\n",
        {},
        "flow.yaml:6:26: error: foreach of step 'a' iterates param 'n' of type int; it must be a list",
    ),
    (
        "foreach_literal_string",
        H + "steps:\n  a: {run: m:f, foreach: abc}\n",
        {},
        "flow.yaml:4:26: error: foreach of step 'a' must be a list, not 'abc'",
    ),
    (
        "two_framework_roots",
        H + "integration_framework:\n  runner: {}\n  pipeline: {}\n" + S,
        {},
        "flow.yaml:5:3: error: integration_framework has more than one root (runner, pipeline)",
    ),
    (
        "channel_never_produced",
        H
        + "channels:\n  recs: {schema: {type: string}}\nsteps:\n  r: {run: m:r, operator: true, consumes: [recs]}\n",
        {},
        "flow.yaml:6:44: error: channel 'recs' is consumed by r but never produced",
    ),
    (
        "multiple_documents",
        H + S + "---\nflowc: 1\n",
        {},
        "flow.yaml:5:1: error: more than one YAML document in the file",
    ),
    (
        "python_tag",
        H + "description: !!python/object/apply:os.system [echo hi]\n" + S,
        {},
        "flow.yaml:3:14: error: unsupported YAML tag '!!python/object/apply:os.system'",
    ),
    (
        "unknown_env",
        H + "environments:\n  prod: {}\n" + S,
        {"environment": "prd"},
        "flowc: error: unknown environment 'prd' (-e)",
    ),
    (
        "unknown_cli_param",
        H + "params:\n  epochs: {type: int, default: 1}\n" + S,
        {"params": {"epoch": "3"}},
        "flowc: error: unknown param 'epoch' (--param epoch=...)",
    ),
    (
        "bad_cli_param_value",
        H + "params:\n  epochs: {type: int, default: 1}\n" + S,
        {"params": {"epochs": "three"}},
        "flowc: error: --param epochs=three: expected an integer for param 'epochs' (int)",
    ),
    (
        "enum_violation",
        H + "params:\n  mode: {type: str, enum: [fast, slow], default: medium}\n" + S,
        {},
        "flow.yaml:4:50: error: default 'medium' for param 'mode' is not one of ['fast', 'slow']",
    ),
    (
        "min_violation",
        H + "params:\n  epochs: {type: int, default: 0, min: 1}\n" + S,
        {},
        "flow.yaml:4:32: error: default 0 for param 'epochs' is below min 1",
    ),
    (
        "bad_timezone",
        H + "schedule: {cron: '0 3 * * 1', timezone: Mars/Olympus}\n" + S,
        {},
        "flow.yaml:3:41: error: unknown timezone 'Mars/Olympus'",
    ),
    (
        "two_schedule_kinds",
        H + "schedule: {cron: '0 3 * * 1', every: 30s}\n" + S,
        {},
        "flow.yaml:3:1: error: schedule needs exactly one of 'cron', 'every', 'at' (got cron, every)",
    ),
    (
        "unknown_after",
        H + S + "  b: {run: m:g, after: [aa]}\n",
        {},
        "flow.yaml:5:25: error: unknown step 'aa' in 'after' of step 'b'",
    ),
    (
        "self_reference",
        H + "steps:\n  a: {run: m:f, outputs: [x], with: {v: '${steps.a.outputs.x}'}}\n",
        {},
        "flow.yaml:4:42: error: step 'a' references its own output in ${steps.a.outputs.x}",
    ),
    (
        "malformed_ref",
        H + S + "  b: {run: m:g, with: {v: '${steps.a.x}'}}\n",
        {},
        "flow.yaml:5:28: error: malformed reference ${steps.a.x}",
    ),
    (
        "unknown_ref_root",
        H + S + "  b: {run: m:g, with: {v: '${parms.x}'}}\n",
        {},
        "flow.yaml:5:28: error: unknown reference root 'parms' in ${parms.x}",
    ),
    (
        "wrong_type_retries",
        H + "steps:\n  a: {run: m:f, retries: many}\n",
        {},
        "flow.yaml:4:26: error: 'steps.a.retries' must be an integer, not 'many'",
    ),
    (
        "unknown_stack",
        H
        + "stacks:\n  local: {orchestrator: {type: local}}\nenvironments:\n  dev: {stack: locl}\n"
        + S,
        {"environment": "dev"},
        "flow.yaml:6:16: error: unknown stack 'locl'",
    ),
    (
        "unknown_channel",
        H
        + "channels:\n  recs: {schema: {type: string}}\nsteps:\n  w: {run: m:w, operator: true, produces: [rec]}\n",
        {},
        "flow.yaml:6:44: error: unknown channel 'rec' in step 'w'",
    ),
    (
        "non_string_key",
        H + "steps:\n  a: {run: m:f}\n  !!bool yes: {run: m:g}\n",
        {},
        "flow.yaml:5:3: error: mapping key 'yes' must be a string, not '!!bool'",
    ),
    (
        "alias_bomb",
        "flowc: 1\nname: demo\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        {},
        "flow.yaml:3:23: error: YAML aliases expand to too many nodes",
    ),
    (
        "missing_name",
        "flowc: 1\n" + S,
        {},
        "flow.yaml:1:1: error: the flow is missing required key 'name'",
    ),
    (
        "bad_run_callable",
        H + "steps:\n  a: {run: not a callable}\n",
        {},
        "flow.yaml:4:12: error: invalid callable 'not a callable'",
    ),
    (
        "env_default_on_param",
        H + "params:\n  x: {type: str}\nsteps:\n  a: {run: m:f, with: {v: '${params.x:-d}'}}\n",
        {},
        "flow.yaml:6:28: error: ':-default' is only allowed for ${env.X}, not in ${params.x}",
    ),
]


@pytest.mark.parametrize("name,text,kw,expected", CASES, ids=[c[0] for c in CASES])
def test_invalid_flow_reports_located_error(name: str, text: str, kw: dict, expected: str) -> None:
    with pytest.raises(FlowcError) as info:
        load_text(text, "flow.yaml", environ={}, **kw)
    assert info.value.render().splitlines()[0] == expected


@pytest.mark.parametrize("name,text,kw,expected", CASES, ids=[c[0] for c in CASES])
def test_cli_validate_prints_the_same_line_and_exits_1(
    name: str, text: str, kw: dict, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flow.yaml").write_text(text, encoding="utf-8")
    args = ["validate", "flow.yaml"]
    if "environment" in kw:
        args += ["-e", kw["environment"]]
    for k, v in kw.get("params", {}).items():
        args += ["--param", f"{k}={v}"]
    res = CliRunner().invoke(cli, args, env={"FLOWC_TEST_UNSET_VAR": None})
    assert res.exit_code == 1
    assert res.stderr.splitlines()[0] == expected
    assert (
        "Traceback" not in res.output
        and res.exception is None
        or isinstance(res.exception, SystemExit)
    )


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30
