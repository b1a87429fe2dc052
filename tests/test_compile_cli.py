"""``flowc compile``: --check, --all + manifest, several flows, atomic writes, path confinement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FLOW = """\
flowc: 1
name: tiny
description: a tiny flow
params:
  n: {type: int, default: 3}
steps:
  load:
    run: flowc_demo.steps:load
    with: {rows: "${params.n}"}
    outputs: [frame]
  count:
    run: flowc_demo.steps:count
    with: {frame: "${steps.load.outputs.frame}"}
    outputs: [n]
"""


def flowc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "flow.yaml").write_text(FLOW)
    return tmp_path


def snapshot(d: Path) -> dict[str, bytes]:
    return {
        p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
    }


def test_check_fresh_then_stale_after_one_character_edit(project: Path) -> None:
    out = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", cwd=project)
    assert out.returncode == 0, out.stderr
    before = snapshot(project / "out")
    assert before
    ok = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", "--check", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (project / "flow.yaml").write_text(FLOW.replace("a tiny flow", "a tidy flow"))
    stale = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", "--check", cwd=project)
    assert stale.returncode == 1
    assert "-" in stale.stdout and "+" in stale.stdout and "tidy" in stale.stdout
    assert "a/tiny_flow.py" in stale.stdout or "tiny_flow.py" in stale.stdout
    assert snapshot(project / "out") == before  # --check wrote nothing


def test_check_missing_output_and_no_dir_written(project: Path) -> None:
    res = flowc("compile", "flow.yaml", "--target", "local", "-o", "never", "--check", cwd=project)
    assert res.returncode == 1
    assert "tiny_flow.py" in res.stdout
    assert not (project / "never").exists()


def test_check_names_files_no_longer_produced(project: Path) -> None:
    assert (
        flowc("compile", "flow.yaml", "--target", "local", "-o", "out", cwd=project).returncode == 0
    )
    produced = next((project / "out").glob("*.py"))
    leftover = project / "out" / "old_name_flow.py"
    leftover.write_text(produced.read_text())
    res = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", "--check", cwd=project)
    assert res.returncode == 1
    assert "old_name_flow.py: no longer produced" in res.stdout


def test_all_targets_with_manifest_and_several_flows(project: Path) -> None:
    (project / "other.yaml").write_text(FLOW.replace("name: tiny", "name: other"))
    (project / "broken.yaml").write_text(
        FLOW.replace("name: tiny", "name: broken").replace("${params.n}", "${params.nope}")
    )
    res = flowc(
        "compile", "flow.yaml", "broken.yaml", "other.yaml", "--all", "-o", "dist", cwd=project
    )
    assert res.returncode == 1
    assert "broken.yaml:" in res.stderr and ": error: " in res.stderr
    assert not (project / "dist").exists()  # a failed --all writes no set
    (project / "broken.yaml").unlink()
    res = flowc("compile", "flow.yaml", "other.yaml", "--all", "-o", "dist", cwd=project)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((project / "dist" / "manifest.json").read_text())
    flows = {e["flow"] for e in manifest["outputs"]}
    targets = {e["target"] for e in manifest["outputs"]}
    assert flows == {"tiny", "other"}
    assert targets >= {"local", "airflow", "kfp", "vertex", "k8s"}
    import hashlib

    for e in manifest["outputs"]:
        data = (project / "dist" / e["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"]
    assert not (project / "dist" / "broken").exists()


def test_invalid_flow_writes_nothing(project: Path) -> None:
    (project / "flow.yaml").write_text(FLOW.replace("${params.n}", "${params.m}"))
    res = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", cwd=project)
    assert res.returncode == 1
    assert "flow.yaml:" in res.stderr and "Traceback" not in res.stderr
    assert not (project / "out").exists()


def test_unknown_target_is_usage_error(project: Path) -> None:
    res = flowc("compile", "flow.yaml", "--target", "nope", "-o", "out", cwd=project)
    assert res.returncode == 2


def test_symlink_escape_is_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (project / "out").mkdir()
    (project / "out" / "tiny_flow.py").symlink_to(outside / "victim.py")
    res = flowc("compile", "flow.yaml", "--target", "local", "-o", "out", cwd=project)
    assert res.returncode == 1
    assert "outside the output directory" in res.stderr
    assert not (outside / "victim.py").exists()


def test_relative_paths_with_dotdot_are_refused(tmp_path: Path) -> None:
    from flowc.compiler.errors import FlowcError
    from flowc.compiler.output import write_outputs

    for bad in ("../x.py", "/abs.py", "a/../../b.py"):
        with pytest.raises(FlowcError):
            write_outputs(tmp_path / "out", {bad: "x"})
    assert not (tmp_path / "x.py").exists()


KILL_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from flowc.compiler.output import write_outputs
    root, gen = Path(sys.argv[1]), sys.argv[2]
    files = {f"f{i:03d}.txt": (gen * 200_000) + "\\n" for i in range(60)}
    print("go", flush=True)
    write_outputs(root, files)
    """)


def test_sigkill_while_writing_leaves_old_outputs_whole(tmp_path: Path) -> None:
    from flowc.compiler.output import write_outputs

    root = tmp_path / "out"
    write_outputs(root, {f"f{i:03d}.txt": ("A" * 200_000) + "\n" for i in range(60)})
    old = "A" * 200_000 + "\n"
    new = "B" * 200_000 + "\n"
    for delay in (0.0, 0.05, 0.1, 0.2):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(root), "B"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in sorted(root.glob("f*.txt")):
            assert p.read_text() in (old, new), p  # never a half-written file
        # restore the old generation for the next round
        write_outputs(root, {f"f{i:03d}.txt": old for i in range(60)})
        for leftover in root.glob(".*.tmp"):
            os.unlink(leftover)


def test_a_flow_failing_for_one_target_contributes_nothing(project: Path) -> None:
    """With --all, a flow that compiles for some targets but not another (an interval no cron
    can express) writes no file and no manifest entry; the previous set stays whole."""
    assert flowc("compile", "flow.yaml", "--all", "-o", "dist", cwd=project).returncode == 0
    before = {p: p.read_bytes() for p in (project / "dist").rglob("*") if p.is_file()}
    (project / "bad.yaml").write_text(
        FLOW.replace("name: tiny", "name: bad").replace(
            "\nsteps:\n", "\nschedule: {every: 45s}\nsteps:\n"
        )
    )
    res = flowc("compile", "bad.yaml", "flow.yaml", "--all", "-o", "dist", cwd=project)
    assert res.returncode == 1
    assert "bad.yaml:" in res.stderr and "every" in res.stderr and "YAML" not in res.stderr
    manifest = json.loads((project / "dist" / "manifest.json").read_text())
    assert {e["flow"] for e in manifest["outputs"]} == {"tiny"}
    assert not (project / "dist" / "bad").exists()
    assert {p: p.read_bytes() for p in (project / "dist").rglob("*") if p.is_file()} == before
