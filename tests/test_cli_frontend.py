"""The front-end commands: validate, graph, schema, targets; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from flowc.compiler.cli import cli

SPEC = Path(__file__).parent / "fixtures" / "spec"
GOOD = """flowc: 1
name: demo
params:
  epochs: {type: int, default: 1, min: 1}
  tag: {type: str, default: x}
environments:
  prod: {params: {epochs: 5}}
steps:
  a: {run: m:f, outputs: [x], with: {n: "${params.epochs}"}}
  b: {run: m:g, with: {v: "${steps.a.outputs.x}"}}
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_validate_ok(tmp_path: Path) -> None:
    code, out, err = run("validate", _write(tmp_path, "f.yaml", GOOD))
    assert code == 0 and "ok (2 steps)" in out and err == ""


def test_validate_reports_every_invalid_file(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.yaml", GOOD)
    bad1 = _write(tmp_path, "bad1.yaml", GOOD.replace("run: m:g", "rn: m:g"))
    bad2 = _write(tmp_path, "bad2.yaml", "- x\n")
    code, out, err = run("validate", bad1, good, bad2)
    assert code == 1
    assert f"{bad1}:10:7: error: unknown key 'rn' in 'steps.b'" in err
    assert f"{bad2}:1:1: error: the document is a list" in err
    assert "2 of 3 flow(s) invalid" in err
    assert "Traceback" not in err


def test_validate_collects_several_errors_in_one_file(tmp_path: Path) -> None:
    text = GOOD.replace("${params.epochs}", "${params.epoch}").replace("outputs.x", "outputs.y")
    code, _, err = run("validate", _write(tmp_path, "f.yaml", text))
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert code == 1 and len(lines) == 2
    assert lines[0].endswith("unknown param 'epoch' in ${params.epoch}")
    assert lines[1].endswith("step 'a' has no output 'y' (${steps.a.outputs.y})")


def test_param_and_env_options(tmp_path: Path) -> None:
    f = _write(tmp_path, "f.yaml", GOOD)
    assert run("validate", f, "--param", "epochs=3", "--param", "tag=007")[0] == 0
    assert run("validate", f, "-e", "prod")[0] == 0
    code, _, err = run("validate", f, "--param", "epochs=0")
    assert code == 1 and "below min 1" in err
    code, _, err = run("validate", f, "--param", "epochs=three")
    assert code == 1 and "expected an integer" in err
    code, _, err = run("validate", f, "--param", "epoch=3")
    assert code == 1 and "did you mean 'epochs'?" in err
    code, _, err = run("validate", f, "-e", "prd")
    assert code == 1 and "unknown environment 'prd'" in err and "did you mean 'prod'?" in err
    code, _, err = run("validate", f, "--param", "epochs")
    assert code == 2 and "KEY=VALUE" in err


def test_set_overrides_any_value(tmp_path: Path) -> None:
    f = _write(tmp_path, "f.yaml", GOOD)
    from flowc.compiler.api import compile_flow

    ir = compile_flow(f, sets={"steps.a.retries": "4", "defaults.image": "py:3"})
    assert ir.step("a").retries == 4 and ir.step("b").image == "py:3"
    code, _, err = run("validate", f, "--set", "steps.a.retries=many")
    assert code == 1 and "'steps.a.retries' must be an integer" in err


def test_graph_formats(tmp_path: Path) -> None:
    f = _write(tmp_path, "f.yaml", GOOD)
    code, out, _ = run("graph", f)
    assert code == 0
    assert out == 'flowchart TD\n    s_a["a"]\n    s_b["b"]\n    s_a -->|x| s_b\n'
    code, out, _ = run("graph", f, "--format", "dot")
    assert code == 0 and '"a" -> "b" [label="x"];' in out
    assert run("graph", f, "--format", "png")[0] == 2


def test_schema_is_json_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    props = schema["properties"]
    for key in (
        "flowc",
        "name",
        "params",
        "steps",
        "schedule",
        "secrets",
        "environments",
        "stacks",
        "components",
        "plugins",
        "channels",
        "functions",
        "final",
        "integration_framework",
    ):
        assert key in props, key
    assert schema["additionalProperties"] is False
    step = schema["$defs"]["StepModel"]["properties"]
    assert "with" in step and "with_" not in step


def test_targets_lists_entry_points() -> None:
    code, out, _ = run("targets")
    assert code == 0
    names = {ln.split()[0]: ln.split()[1] for ln in out.splitlines()}
    assert names["local"] == "flowc.targets.local:LocalTarget"
    assert set(names) >= {"airflow", "kfp", "vertex", "k8s", "local"}


def test_help_on_every_front_end_command() -> None:
    for cmd in ("validate", "graph", "schema", "targets"):
        code, out, _ = run(cmd, "--help")
        assert code == 0 and "Usage:" in out


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", "flowc: 1\nname: x\nsteps: {a: {run: m:f, when: '${'}}\n")
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "validate", bad], capture_output=True, text=True
    )
    assert p.returncode == 1
    assert p.stderr.startswith(f"{bad}:3:30: error: unterminated '${{'")
    assert "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "flowc", "validate"], capture_output=True, text=True)
    assert p.returncode == 2
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "validate", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "cannot read" in p.stderr and "Traceback" not in p.stderr


def test_validate_keeps_the_import_graph_lean() -> None:
    flow = SPEC / "churn_training.yaml"
    code = (
        "import sys\n"
        "from flowc.compiler.cli import main\n"
        "try:\n"
        f"    main(['validate', '-q', {str(flow)!r}])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "               {'jinja2', 'black', 'rich', 'airflow', 'kfp', 'kubernetes'})\n"
        "print(heavy)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_schema_validates_the_spec_flows_and_rejects_typos() -> None:
    import jsonschema

    from flowc.compiler.loader import load_text

    code, out, _ = run("schema")
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for flow in sorted(SPEC.glob("*.yaml")):
        data = load_text(flow.read_text()).data  # YAML 1.2-like: dates stay strings
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], (flow.name, errors)
    bad = load_text(GOOD.replace("run: m:g", "rn: m:g")).data
    assert any("'rn'" in e.message for e in validator.iter_errors(bad))
