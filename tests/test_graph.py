"""``flowc graph``: condition text on ``when`` edges styled alike in Mermaid and dot, ``--run``
colours, ``-o`` images through Graphviz (and a located error with the install hint without
it), and the rendered quickstart picture in the docs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart" / "flow.yaml"
DOCS_DOT = REPO / "docs" / "img" / "quickstart-dag.dot"
DOCS_PNG = REPO / "docs" / "img" / "quickstart-dag.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FLOW = """\
flowc: 1
name: gates
params:
  full: {type: bool, default: false}
steps:
  train: {run: m:f, outputs: [model, auc]}
  check: {run: m:c, after: [train]}
  publish:
    run: m:p
    with: {model: "${steps.train.outputs.model}"}
    when: "${steps.train.outputs.auc} >= 0.8 and not ${params.full}"
  always: {run: m:a, when: "${params.full}"}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture()
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.yaml").write_text(FLOW)
    return tmp_path / "flow.yaml"


def test_when_edges_carry_the_condition_in_one_style_in_both_formats(flow: Path) -> None:
    code, mermaid, _ = invoke("graph", str(flow))
    assert code == 0
    cond = "when ${steps.train.outputs.auc} >= 0.8 and not ${params.full}"
    assert f'    s_train -.->|"{cond}"| s_publish\n' in mermaid
    assert "    s_train -.-> s_check\n" in mermaid  # after: dotted, no label
    assert '    s_always["always [when ${params.full}]"]\n' in mermaid  # reads no step: in the box
    code, dot, _ = invoke("graph", str(flow), "--format", "dot")
    assert code == 0
    assert f'  "train" -> "publish" [label="{cond}", style=dotted];\n' in dot
    assert '  "train" -> "check" [style=dotted];\n' in dot
    assert '  "always" [label="always [when ${params.full}]"];\n' in dot


def test_run_colours_nodes_by_state(tmp_path: Path) -> None:
    shutil.copytree(QUICKSTART.parent, tmp_path / "qs")
    cwd = tmp_path / "qs"
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml", "--param", "min_rows=1000", "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    run_id = p.stdout.split()[1]
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "graph", "flow.yaml", "--run", run_id],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith(
        "    class s_load success\n    class s_summarize success\n    class s_report skipped\n"
    )
    assert "    classDef skipped fill:#e9ecef,stroke:#333\n" in p.stdout
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "graph", "flow.yaml", "--run", run_id, "--format", "dot"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert '"report" [label="report", style=filled, fillcolor="#e9ecef"];' in p.stdout
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "graph", "flow.yaml", "--run", "nope"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1 and "no run 'nope'" in p.stderr


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", PNG_MAGIC)])
def test_output_image_through_graphviz(flow: Path, suffix: str, magic: bytes) -> None:
    assert shutil.which("dot"), "Graphviz must be installed (scripts/test.sh installs it)"
    code, out, err = invoke("graph", str(flow), "-o", f"dag{suffix}")
    assert code == 0, err
    assert out == f"dag{suffix}: written\n"
    assert Path(f"dag{suffix}").read_bytes().startswith(magic)


def test_output_text_files(flow: Path) -> None:
    assert invoke("graph", str(flow), "-o", "dag.dot")[0] == 0
    assert Path("dag.dot").read_text().startswith('digraph "gates" {')
    assert invoke("graph", str(flow), "-o", "dag.mmd")[0] == 0
    assert Path("dag.mmd").read_text().startswith("flowchart TD")
    assert invoke("graph", str(flow), "-o", "dag.jpg")[0] == 2


def test_without_graphviz_a_clear_error_with_the_install_hint(flow: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    p = subprocess.run(
        [sys.executable, "-m", "flowc", "graph", str(flow), "-o", "dag.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": str(empty)},
    )
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "flowc: error: cannot write dag.png: Graphviz's 'dot' program is not installed",
        "  hint: install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
        "graphviz), or write the text with -o FILE.dot / FILE.mmd",
    ]
    assert not (tmp_path / "dag.png").exists()


def test_quickstart_picture_in_the_docs_is_current(tmp_path: Path) -> None:
    """docs/img/quickstart-dag.png is `flowc graph examples/quickstart/flow.yaml -o ...`; its dot
    source is committed beside it and must match exactly. FLOWC_UPDATE_DOCS=1 regenerates both
    (PNG bytes depend on the Graphviz version and fonts, so they are not compared)."""
    rel = QUICKSTART.relative_to(REPO).as_posix()
    args = [sys.executable, "-m", "flowc", "graph", rel, "--format", "dot"]
    dot = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert dot.returncode == 0, dot.stderr
    png = tmp_path / "q.png"
    args = [sys.executable, "-m", "flowc", "graph", rel, "-o", str(png)]
    made = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert png.read_bytes().startswith(PNG_MAGIC)
    if os.environ.get("FLOWC_UPDATE_DOCS"):
        DOCS_DOT.write_text(dot.stdout)
        shutil.copyfile(png, DOCS_PNG)
    assert DOCS_DOT.read_text() == dot.stdout, "regenerate with FLOWC_UPDATE_DOCS=1"
    assert DOCS_PNG.read_bytes().startswith(PNG_MAGIC)
    assert "docs/img/quickstart-dag.png" in (REPO / "README.md").read_text()
