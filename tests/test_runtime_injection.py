"""Hostile strings through the local target: compiled into the module, passed as defaults, as
`--param` text, as literal `with:` values and as command arguments, each step receives them
byte-exact and nothing is executed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MARKER = "flowc-injection-marker"

HOSTILE = [
    "plain",
    'it\'s "quoted" `back` \'\'\'triple\'\'\' """triple"""',
    "back\\slash \\n \\x00 \\u1234 C:\\path\\",
    "new\nline\r\ncrlf\ttab",
    "{{ ds }} {% if x %}{% endif %} {#c#} %(x)s %s {0} {x}",
    f"$(touch {MARKER}) `touch {MARKER}` ; touch {MARKER} && rm -rf / | cat",
    "$HOME $${HOME} $${not_a_ref}",
    "\u202eRTL\u202c emoji \U0001f680 \u00e9\u00e8 \u4e2d\u6587 \ufeffbom",
    "x" * 10_000,
    "#!/bin/sh\n# comment\nimport os; os.system('touch " + MARKER + "')",
    '"""; import os; os.system("touch ' + MARKER + '"); """',
]
# What the DSL makes of each in an expression position (``$${`` is the escape of a literal
# ``${``); param defaults and ``--param`` text are data, taken verbatim (docs/dsl-choices.md).
EXPECTED = [h.replace("$${", "${") for h in HOSTILE]
NUL = "nul\x00byte"


def yq(s: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(s, ensure_ascii=False)


def build(tmp_path: Path) -> Path:
    lines = ["flowc: 1", "name: hostile", "description: " + yq(HOSTILE[1]), "params:"]
    for i, h in enumerate(HOSTILE):
        lines.append(f"  p{i}: {{type: str, default: {yq(h)}}}")
    lines.append("steps:")
    for i, h in enumerate(HOSTILE):
        lines.append(
            f"  s{i}: {{run: 'flowc_demo.steps:echo', with: {{value: {yq(h)}, "
            f"param: '${{params.p{i}}}'}}, outputs: [v]}}"
        )
    code = (
        "import json, os, sys; "
        "json.dump({'v': sys.argv[1:]}, open(os.environ['FLOWC_OUTPUTS'], 'w'))"
    )
    args = ", ".join(f"'${{params.p{i}}}'" for i in range(len(HOSTILE)))
    lines.append(
        f"  cmd: {{command: [{yq(sys.executable)}, -c, {yq(code)}, {args}], outputs: [v]}}"
    )
    lines.append(
        f"  nul: {{run: 'flowc_demo.steps:echo', with: {{value: {yq(NUL)}}}, outputs: [v]}}"
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return flow


def outputs(root: Path, step: str) -> object:
    (run,) = list((root / "runs").iterdir())
    return json.loads((run / step / "v.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("via", ["defaults", "cli"])
def test_hostile_strings_reach_steps_byte_exact(tmp_path: Path, via: str) -> None:
    flow = build(tmp_path)
    out = tmp_path / "out"
    comp = subprocess.run(
        [sys.executable, "-m", "flowc", "compile", str(flow), "--target", "local", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert comp.returncode == 0, comp.stderr
    module = out / "hostile_flow.py"
    compile(module.read_text(encoding="utf-8"), str(module), "exec")  # valid Python
    argv = [sys.executable, str(module), "--root", str(tmp_path / ".flowc"), "-q"]
    params = HOSTILE  # defaults: verbatim
    if via == "cli":  # --param text is taken verbatim for str params
        params = [h + " (cli)" for h in EXPECTED]
        argv += [f"--param=p{i}={h}" for i, h in enumerate(params)]
    run = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    root = tmp_path / ".flowc"
    for i, want in enumerate(EXPECTED):
        assert outputs(root, f"s{i}") == {"value": want, "param": params[i]}, i
    assert outputs(root, "cmd") == params
    assert outputs(root, "nul") == NUL
    assert not list(tmp_path.rglob(MARKER)) and not (Path.cwd() / MARKER).exists()
