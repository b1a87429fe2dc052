"""Hostile strings in every string position the DSL allows, compiled for all five targets.

Every output still parses (Python ``ast``, YAML, JSON), nothing is executed (a marker file is
never created, also when the generated local module is imported and run), and the local runtime
hands each value to the step byte-exact (``with:`` literal, param default, ``--param`` value,
``env:`` value, ``command:`` argument). ``$${`` is the escape for a literal ``${`` in expression
positions (``with``, ``env``, ``command``); param values (defaults and ``--param``) are data,
taken verbatim.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TARGETS = ("local", "airflow", "kfp", "vertex", "k8s")


def hostile_strings(marker: Path) -> dict[str, str]:
    m = str(marker)
    return {
        "single_quotes": "it's 'quoted'",
        "double_quotes": 'say "hi" \\"there\\"',
        "triple_single": "'''; import os; os.system('touch " + m + "'); '''",
        "triple_double": '"""; import os; os.system("touch ' + m + '"); """',
        "backslashes": "C:\\new\\table\\x41\\u0041\\\\",
        "newlines": "line1\nline2\r\nline3\n",
        "nul": "before\x00after",
        "jinja_expr": "{{ ds }} {{ macros.datetime.now() }} {{ var.value.x }}",
        "jinja_stmt": "{% for x in range(3) %}{{ x }}{% endfor %}",
        "shell_subst": "$(touch " + m + ")",
        "backticks": "`touch " + m + "`",
        "shell_chain": "; touch " + m + " ; rm -rf /tmp/flowc-nope &&",
        "printf": "%(x)s %s %d %%",
        "dollar_env": "$HOME ${HOME_NOT_EXPR_ESCAPED}".replace("${", "$${"),
        "unicode_rtl_emoji": "\u202egnp.exe \U0001f600 \u0000"[:-1] + "ünïcødé",
        "yaml_like": "key: value\n- item\n&anchor *alias !!python/object",
        "big_10kb": ("0123456789abcdef" * 640) + "'\"\n{{x}}",
    }


def expected_value(s: str) -> str:
    """What the step receives: ``$${`` is the DSL's escape for a literal ``${``."""
    return s.replace("$${", "${")


def make_flow(h: str, out_file: Path) -> dict:
    cmd_value = h.replace("\x00", "")  # an argv element cannot hold NUL (the OS forbids it)
    return {
        "flowc": 1,
        "name": "inj",
        "description": h,
        "tags": ["inj", h[:100]],  # Airflow's tag limit (longer ones are validate errors)
        "owner": h,
        "params": {
            "p": {"type": "str", "default": h, "description": h},
            "q": {"type": "str", "default": "x"},
        },
        "stacks": {
            "gcp": {
                "orchestrator": {
                    "type": "vertex",
                    "project": "acme-proj",
                    "region": "us-central1",
                    "pipeline_root": "gs://bucket/root",
                }
            }
        },
        "steps": {
            "lit": {
                "run": "flowc_demo.steps:echo",
                "with": {"value": h},
                "outputs": ["out"],
                "description": h,
            },
            "par": {
                "run": "flowc_demo.steps:echo",
                "with": {"value": "${params.p}"},
                "outputs": ["out"],
            },
            "cli": {
                "run": "flowc_demo.steps:echo",
                "with": {"value": "${params.q}"},
                "outputs": ["out"],
            },
            "envv": {
                "run": "flowc_injection_env:read",
                "env": {"INJ_VALUE": cmd_value},
                "outputs": ["out"],
            },
            "cmd": {
                "command": [
                    sys.executable,
                    "-c",
                    "import sys; open(sys.argv[1], 'w', encoding='utf-8', newline='').write(sys.argv[2])",
                    str(out_file),
                    cmd_value,
                ],
                "after": ["lit"],
            },
        },
    }


def parse_output(rel: str, text: str) -> None:
    if rel.endswith(".py"):
        ast.parse(text)
    elif rel.endswith((".yaml", ".yml")):
        list(yaml.safe_load_all(text))
    elif rel.endswith(".json"):
        json.loads(text)
    else:  # pragma: no cover - a new output kind must be added here
        raise AssertionError(f"unknown output kind {rel}")


@pytest.fixture()
def env_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "flowc_injection_env.py").write_text(
        "import os\n\ndef read():\n    return os.environ['INJ_VALUE']\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")]))
    return pkg


@pytest.mark.parametrize("kind", sorted(hostile_strings(Path("/m"))))
def test_hostile_string_everywhere(
    kind: str, tmp_path: Path, env_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowc.compiler.api import compile_flow, emit
    from flowc.runtime.executor import run_plan

    marker = tmp_path / "MARKER"
    h = hostile_strings(marker)[kind]
    out_file = tmp_path / "cmd_out.txt"
    (tmp_path / ".git").mkdir()
    flow_path = tmp_path / "flow.yaml"
    flow_path.write_text(
        yaml.safe_dump(make_flow(h, out_file), allow_unicode=True, width=10**6), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)

    ir = compile_flow("flow.yaml", params={"q": h}, stack="gcp")
    for target in TARGETS:
        files = emit(ir, target)
        assert files, target
        for rel, text in files.items():
            parse_output(rel, text)

    # The generated local module imports and runs without executing anything hostile.
    files = emit(ir, "local")
    ((rel, text),) = files.items()
    (tmp_path / rel).write_text(text, encoding="utf-8")
    res = subprocess.run(
        [sys.executable, rel, "--param", "q=" + h.replace("\x00", "")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert not marker.exists()

    # Byte-exact at the step, through the runtime every target reuses.
    result = run_plan(ir.to_data(), {"q": h}, root=tmp_path / ".flowc-direct")
    assert result.ok, result.error and result.error.render()
    want = expected_value(h)
    assert result.outputs["lit"]["out"] == want
    assert result.outputs["par"]["out"] == h  # param values are data: `$${` is not an escape there
    assert result.outputs["cli"]["out"] == h  # --param values are taken verbatim (no escapes)
    assert result.outputs["envv"]["out"] == want.replace("\x00", "")
    with open(out_file, encoding="utf-8", newline="") as fh:
        assert fh.read() == want.replace("\x00", "")
    assert not marker.exists()
