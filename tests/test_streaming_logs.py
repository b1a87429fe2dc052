"""Operator logs: ctx.logger / get_logger() levels per operator (``log_level:``, ``$LOG_LEVEL``,
INFO by default as pypz's logger plugins), every replica's output kept under its run folder, and
``flowc runs logs RUN [STEP] [--replica N]``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli

SCHEMA = {"type": "record", "name": "DemoRecord", "fields": [{"name": "text", "type": "string"}]}


def write_flow(tmp_path: Path, reader_extra: str = "log_level: DEBUG") -> Path:
    f = tmp_path / "flow.yaml"
    f.write_text(textwrap.dedent(f"""\
            flowc: 1
            name: logs
            channels:
              records: {{schema: {json.dumps(SCHEMA)}}}
            steps:
              writer:
                run: flowc_streaming.ops:LoggingWriter
                operator: true
                produces: [records]
                with: {{record_count: 4}}
              reader:
                run: flowc_streaming.ops:LoggingReader
                operator: true
                consumes: [records]
                replicas: 2
                {reader_extra}
            """))
    return f


def run_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "flow.yaml"])
    assert res.exit_code == 0, res.output
    return res.output.split()[1]  # "run <id> success in ..."


def logs(*args: str) -> str:
    res = CliRunner().invoke(cli, ["runs", "logs", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_levels_per_operator_and_replica_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    write_flow(tmp_path)
    run_id = run_flow(tmp_path, monkeypatch)
    base = tmp_path / ".flowc" / "runs" / run_id
    writer = (base / "writer" / "operator.r0.log").read_text()
    assert "INFO flowc.writer.r0: writer info line" in writer
    assert "writer debug line" not in writer  # INFO by default
    assert "writer stdout line of replica 0" in writer  # stdout is kept too
    readers = [(base / "reader" / f"operator.r{r}.log").read_text() for r in (0, 1)]
    received = [line for text in readers for line in text.splitlines() if "Received record" in line]
    assert len(received) == 4 and all(" DEBUG flowc.reader.r" in line for line in received)

    assert (
        logs(run_id, "reader", "--replica", "1") == f"==> reader/operator.r1.log <==\n{readers[1]}"
    )
    everything = logs(run_id)
    assert everything.index("==> reader/operator.r0.log <==") < everything.index(
        "==> writer/operator.r0.log <=="
    )
    assert "writer info line" in everything and everything.count("==> ") == 3


def test_log_level_env_applies_where_the_step_sets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    write_flow(tmp_path, reader_extra="log_level: WARNING")
    run_id = run_flow(tmp_path, monkeypatch)
    base = tmp_path / ".flowc" / "runs" / run_id
    assert (
        "DEBUG flowc.writer.r0: writer debug line"
        in (base / "writer" / "operator.r0.log").read_text()
    )
    for r in (0, 1):  # the step's own level wins over $LOG_LEVEL
        assert "Received record" not in (base / "reader" / f"operator.r{r}.log").read_text()


def test_runs_logs_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_flow(tmp_path)
    run_id = run_flow(tmp_path, monkeypatch)
    res = CliRunner().invoke(cli, ["runs", "logs", run_id, "nope"])
    assert res.exit_code == 1
    assert f"error: run '{run_id}' has no logs of step 'nope'" in res.output
    assert "steps with logs: reader, writer" in res.output
    res = CliRunner().invoke(cli, ["runs", "logs", "missing"])
    assert res.exit_code == 1 and "no run 'missing'" in res.output
    res = CliRunner().invoke(cli, ["runs", "logs", run_id, "writer", "--replica", "3"])
    assert res.exit_code == 1 and "has no logs of replica 3 of 'writer'" in res.output


def test_log_level_is_for_operators(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "flowc: 1\nname: x\nsteps:\n  a: {run: 'flowc_demo.steps:echo', log_level: DEBUG}\n"
    )
    res = CliRunner().invoke(cli, ["validate", str(f)])
    assert res.exit_code == 1
    assert f"{f}:4:37: error: step 'a' has 'log_level' but is not an operator" in res.output
    f.write_text(
        "flowc: 1\nname: x\nsteps:\n  a: {run: 'flowc_demo.steps:echo', log_level: LOUD}\n"
    )
    res = CliRunner().invoke(cli, ["validate", str(f)])
    assert res.exit_code == 1 and f"{f}:4:" in res.output and "log_level" in res.output
