"""``--json`` on every listing command (validated against a schema per listing) and ``flowc run
--quiet`` / ``--verbose`` (step output streamed live, prefixed by step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli


def listing_schema(**props: object) -> dict:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": list(props),
            "properties": props,
        },
    }


STR = {"type": "string", "minLength": 1}
TARGETS = listing_schema(name=STR, **{"class": {"type": "string", "pattern": r"^[\w.]+:\w+$"}})
COMPONENTS = listing_schema(kind=STR, name=STR, source=STR, **{"class": STR})
PLUGIN_TYPES = listing_schema(name=STR, source=STR, **{"class": STR})
FLOW_PLUGINS = listing_schema(name=STR, type=STR, enabled={"type": "boolean"})
RUNS = listing_schema(
    run_id={"type": "string", "pattern": r"^\d{8}T\d{6}-[0-9a-f]{6}$"},
    flow=STR,
    status={"enum": ["running", "success", "failed", "killed"]},
    started={"type": ["string", "null"], "format": "date-time"},
    duration={"type": ["number", "null"]},
)

STEPS = """\
import sys
import time
from pathlib import Path


def talk():
    print("hello from talk")
    return 1


def wait(go):
    print("first", flush=True)
    deadline = time.monotonic() + 120
    while not Path(go).exists():  # the test creates it once it has seen "first"
        if time.monotonic() > deadline:
            raise TimeoutError(go)
        time.sleep(0.02)
    print("second")
    print("to stderr", file=sys.stderr)
"""

FLOW = """\
flowc: 1
name: chatty
params:
  go: {type: str, default: go.flag}
plugins:
  tracker: {type: mlflow, enabled: false}
steps:
  talk: {run: chatty_steps:talk, outputs: [n]}
  wait: {run: chatty_steps:wait, with: {go: "${params.go}"}, after: [talk]}
"""


def listing(*args: str) -> list:
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_targets_json() -> None:
    data = listing("targets")
    jsonschema.validate(data, TARGETS)
    assert [t["name"] for t in data] == ["airflow", "k8s", "kfp", "local", "vertex"]


def test_components_list_json() -> None:
    data = listing("components", "list")
    jsonschema.validate(data, COMPONENTS)
    assert any(c["kind"] == "orchestrator" and c["name"] == "local" for c in data)


def test_plugins_list_json(tmp_path: Path) -> None:
    data = listing("plugins", "list")
    jsonschema.validate(data, PLUGIN_TYPES)
    assert "mlflow" in [p["name"] for p in data]
    (tmp_path / "flow.yaml").write_text(FLOW)
    data = listing("plugins", "list", str(tmp_path / "flow.yaml"))
    jsonschema.validate(data, FLOW_PLUGINS)
    assert data == [{"name": "tracker", "type": "mlflow", "enabled": False}]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "chatty_steps.py").write_text(STEPS)
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "go.flag").write_text("")
    return tmp_path


def flowc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_runs_list_json(project: Path) -> None:
    assert flowc("run", "flow.yaml", "-q", cwd=project).returncode == 0
    p = flowc("runs", "list", "--json", cwd=project)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    jsonschema.validate(data, RUNS, format_checker=jsonschema.FormatChecker())
    assert len(data) == 1 and data[0]["flow"] == "chatty" and data[0]["status"] == "success"


def test_quiet_prints_only_the_final_line(project: Path) -> None:
    p = flowc("run", "flow.yaml", "--quiet", cwd=project)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("run ") and " success in " in lines[0]


def test_verbose_streams_step_output_live_prefixed_by_step(project: Path) -> None:
    (project / "go.flag").unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", "flow.yaml", "--verbose"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    killer = threading.Timer(240, proc.kill)  # a hung run fails the test instead of the suite
    killer.start()
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if line.rstrip("\n") == "wait | first":
                # the step is still running (it waits for this file): its output came live
                assert not any("wait: success" in s for s in seen)
                (project / "go.flag").write_text("")
        proc.wait()
    finally:
        killer.cancel()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert "talk | hello from talk" in seen
    i = seen.index("wait | first")
    assert seen[i + 1 : i + 3] == ["wait | second", "wait | to stderr"]
    done = next(i for i, s in enumerate(seen) if s.startswith("talk: success"))
    assert seen.index("talk | hello from talk") < done  # a step's output before its status


def test_quiet_and_verbose_together_is_a_usage_error(project: Path) -> None:
    assert flowc("run", "flow.yaml", "-q", "-v", cwd=project).returncode == 2
