"""What the commands tell a user: where a run's outputs went, which files compile wrote, the
defaults in every ``--help``, the target choice list, and shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
FLOW = """\
flowc: 1
name: tiny
environments:
  dev: {}
  prod: {}
steps:
  load: {run: m:f, outputs: [x]}
  count: {run: m:g, with: {v: "${steps.load.outputs.x}"}}
"""


def flowc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_run_ends_with_the_run_folder_outputs_and_files(tmp_path: Path) -> None:
    shutil.copytree(QUICKSTART, tmp_path / "qs")
    p = flowc("run", "flow.yaml", cwd=tmp_path / "qs")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    run_id = lines[-1].split()[1]  # the status line stays last
    assert lines[-1].startswith(f"run {run_id} success in ")
    folder = f".flowc/runs/{run_id}"
    head = lines.index(f"run folder: {folder}")
    assert lines[head + 1] == "outputs:"
    # the outputs no other step reads (load.count is read by report's when: not listed)
    assert lines[head + 2].startswith('  report.result = {"path": ')
    assert '"total": 928.75}' in lines[head + 2]
    assert lines[head + 3 : -1] == ["files written by steps:", f"  {folder}/report/report.md"]
    assert (tmp_path / "qs" / folder / "report" / "report.md").is_file()


def test_compile_lists_written_and_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    p = flowc("compile", "flow.yaml", "--target", "local", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "build/flowc/local/tiny_flow.py: written\n"
    p = flowc("compile", "flow.yaml", "--target", "local", cwd=tmp_path)
    assert p.stdout == "build/flowc/local/tiny_flow.py: unchanged\n"
    p = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", cwd=tmp_path)
    assert p.stdout == "out/tiny_flow.py: written\n"


def test_target_is_a_choice_list(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    p = flowc("compile", "flow.yaml", "--target", "airflo", cwd=tmp_path)
    assert p.returncode == 2
    assert "'airflo' is not one of 'airflow', 'k8s', 'kfp', 'local', 'vertex'" in p.stderr
    res = CliRunner().invoke(cli, ["compile", "--help"])
    assert "[airflow|k8s|kfp|local|vertex]" in res.stdout
    assert "[default:" in res.stdout and "build/flowc/TARGET" in res.stdout


def _commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, click.Context(cmd, parent=ctx), (*prefix, name))


def test_every_help_shows_the_defaults() -> None:
    ctx = click.Context(cli)
    checked = 0
    for path, cmd in _commands(cli, ctx):
        res = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
        assert res.exit_code == 0, (path, res.output)
        text = " ".join(res.stdout.split())
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            default = param.default
            unset = type(default).__name__ == "Sentinel"  # click's UNSET: no default
            if param.is_flag or unset or default in (None, (), []) or callable(default):
                continue
            shown = str(default) if not isinstance(default, (list, tuple)) else ", ".join(default)
            assert f"[default: {shown}" in text, (path, param.name, text)
            checked += 1
    assert checked >= 5


def complete(words: str, cwd: Path) -> list[str]:
    argv = words.split()
    cword = len(argv) if words.endswith(" ") else len(argv) - 1
    p = flowc(
        cwd=cwd,
        env={"_FLOWC_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)},
    )
    assert p.returncode == 0, p.stderr
    return [ln.split(",", 1)[1] for ln in p.stdout.splitlines() if "," in ln]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(FLOW)
    return tmp_path


def test_completion_of_targets_environments_and_steps(project: Path) -> None:
    assert complete("flowc compile flow.yaml --target k", project) == ["k8s", "kfp"]
    assert complete("flowc run flow.yaml -e ", project) == ["dev", "prod"]
    assert complete("flowc validate flow.yaml -e p", project) == ["prod"]
    assert complete("flowc run flow.yaml --only ", project) == ["count", "load"]
    assert complete("flowc run broken.yaml --only ", project) == []  # never fails


def test_completion_of_run_ids(project: Path) -> None:
    (project / "steps_mod.py").write_text("def f():\n    return 1\n\ndef g(v):\n    return v\n")
    (project / "flow.yaml").write_text(
        FLOW.replace("m:f", "steps_mod:f").replace("m:g", "steps_mod:g")
    )
    p = flowc("run", "flow.yaml", cwd=project)
    assert p.returncode == 0, p.stderr
    run_id = next(ln.split()[1] for ln in p.stdout.splitlines() if " success in " in ln)
    assert complete("flowc runs show ", project) == [run_id]
    assert complete("flowc run flow.yaml --resume ", project) == [run_id]
    assert complete("flowc runs show nope", project) == []


def test_completion_script_for_each_shell(project: Path) -> None:
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")):
        res = CliRunner().invoke(cli, ["completion", shell])
        assert res.exit_code == 0 and "_FLOWC_COMPLETE" in res.stdout and marker in res.stdout
    assert CliRunner().invoke(cli, ["completion", "tcsh"]).exit_code == 2


def test_header_regenerates_into_the_output_folder_relative_to_the_repository(
    tmp_path: Path,
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "sub").mkdir()
    p = flowc("compile", "../flow.yaml", "-t", "local", "-o", "../out", cwd=tmp_path / "sub")
    assert p.returncode == 0, p.stderr
    header = (tmp_path / "out" / "tiny_flow.py").read_text().splitlines()[1]
    assert (
        header == "# Do not edit: regenerate with `flowc compile flow.yaml --target local -o out`."
    )
    p = flowc("compile", "flow.yaml", "--all", "-o", "dist", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    header = (tmp_path / "dist" / "tiny" / "kfp" / "pipeline.yaml").read_text().splitlines()[1]
    assert header.endswith("`flowc compile flow.yaml --target kfp -o dist/tiny/kfp`.")
    # following the header's command reproduces the file byte for byte
    before = (tmp_path / "dist" / "tiny" / "kfp" / "pipeline.yaml").read_bytes()
    p = flowc("compile", "flow.yaml", "--target", "kfp", "-o", "dist/tiny/kfp", cwd=tmp_path)
    assert p.stdout == "dist/tiny/kfp/pipeline.yaml: unchanged\n"
    assert (tmp_path / "dist" / "tiny" / "kfp" / "pipeline.yaml").read_bytes() == before
