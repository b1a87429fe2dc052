"""The trust rule (compiler/trust.py, docs/trust.md): validate/compile import code only from the
flow's project and installed packages; ``flowc validate --no-import`` executes nothing and still
checks what the source shows (classes, functions, signatures, constructor parameters)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler import trust
from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def evil(folder: Path, marker: Path, name: str = "evil") -> Path:
    """A module that writes ``marker`` when it is imported (and defines the names flows use)."""
    return write(
        folder / f"{name}.py",
        f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("ran")

        from flowc.runtime.stack import ArtifactStore

        class Store(ArtifactStore):
            type_name = "evil_store"

        def double(x: int) -> int:
            return 2 * x

        class Op:
            def __init__(self, rate: int, name: str = "op") -> None:
                pass
        """,
    )


def errors(flow: Path, no_import: bool = False) -> list[str]:
    with pytest.raises(FlowcError) as ei, trust.no_imports(no_import):
        compile_flow(flow)
    return [d.render() for d in ei.value.diagnostics]


def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    return root


def test_project_root_is_the_nearest_repository_or_the_flow_folder(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert trust.project_root(str(root / "a" / "b" / "flow.yaml")) == root.resolve()
    (root / "a" / "pyproject.toml").parent.mkdir(parents=True)
    (root / "a" / "pyproject.toml").write_text("")
    assert trust.project_root(str(root / "a" / "b" / "flow.yaml")) == (root / "a").resolve()
    loose = tmp_path / "loose" / "flow.yaml"
    assert trust.project_root(str(loose)) == loose.parent.resolve()


@pytest.mark.parametrize("ref", ["../elsewhere/evil.py:Store", "ABS"])
def test_component_file_outside_the_project_is_a_located_error(tmp_path: Path, ref: str) -> None:
    root = project(tmp_path)
    marker = tmp_path / "marker"
    evil(tmp_path / "elsewhere", marker)
    if ref == "ABS":
        ref = f"{tmp_path / 'elsewhere' / 'evil.py'}:Store"
    flow = write(
        root / "flow.yaml",
        f"""
        flowc: 1
        name: demo
        components:
          mine: {{kind: artifact_store, class: "{ref}"}}
        steps:
          a: {{command: ["true"]}}
        """,
    )
    for no_import in (False, True):
        (got,) = errors(flow, no_import)
        assert got.startswith(f"{flow}:4:")
        assert "outside the flow's project" in got and "hint:" in got
    assert not marker.exists()


def test_modules_found_only_outside_the_project_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current directory is on the import path (as for ``flowc run``), but a module found
    there outside the project is not imported: functions, operators, integrations."""
    root = project(tmp_path)
    marker = tmp_path / "marker"
    outside = tmp_path / "cwd"
    evil(outside, marker, "evil_cwd")
    monkeypatch.chdir(outside)
    flows = {
        "functions": "functions: [evil_cwd]\n",
        "operator": "steps:\n  op: {run: 'evil_cwd:Op', operator: true, with: {rate: 1}}\n",
        "integration": "runner:\n  main: {class: 'evil_cwd:Op'}\n",
    }
    for kind, body in flows.items():
        flow = root / f"{kind}.yaml"
        flow.write_text(f"flowc: 1\nname: demo\n{body}")
        if kind != "operator":
            flow.write_text(flow.read_text() + "steps:\n  a: {command: ['true']}\n")
        got = errors(flow)
        assert any("outside the flow's project" in e and e.startswith(f"{flow}:") for e in got), (
            kind,
            got,
        )
    assert not marker.exists()


def test_project_code_still_imports(tmp_path: Path) -> None:
    root = project(tmp_path)
    marker = tmp_path / "marker"
    evil(root / "lib", marker, "helpers")
    flow = write(
        root / "sub" / "flow.yaml",
        """
        flowc: 1
        name: demo
        components:
          mine: {kind: artifact_store, class: "../lib/helpers.py:Store"}
        steps:
          a: {command: ["true"]}
        """,
    )
    compile_flow(flow)
    assert marker.read_text() == "ran"  # inside the project: imported as before


NO_IMPORT_FLOW = """
flowc: 1
name: demo
params:
  rate: {type: int, default: 1}
functions: [MOD]
components:
  mine: {kind: artifact_store, class: "MOD.py:Missing"}
steps:
  double: {with: {x: 2, y: 3}}
  op: {run: "MOD:Op", operator: true, with: {rate: "fast", nope: 1}}
  op2: {run: "MOD:Nope", operator: true}
"""


def test_no_import_executes_nothing_and_checks_the_source(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil(tmp_path, marker, "evil_static")
    flow = write(tmp_path / "flow.yaml", NO_IMPORT_FLOW.replace("MOD", "evil_static"))
    got = errors(flow, no_import=True)
    assert not marker.exists()
    text = "\n".join(got)
    assert "'evil_static.py' has no class 'Missing'" in text
    assert "function 'double' of 'evil_static' has no parameter 'y'" in text
    assert "operator 'Op' of step 'op' takes no parameter 'nope'" in text
    assert "parameter 'rate' expects int, got str" in text
    assert "evil_static has no 'Nope'" in text
    assert all(e.startswith(f"{flow}:") for e in got), got
    # the same errors with imports on (which runs the module); hints may list more there
    assert [e.split("\n")[0] for e in errors(flow)] == [e.split("\n")[0] for e in got]
    assert marker.exists()


def test_no_import_valid_flow_through_the_cli(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil(tmp_path, marker, "evil_cli")
    flow = write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: demo
        functions: [evil_cli]
        steps:
          double: {with: {x: 2}}
        """,
    )
    res = CliRunner().invoke(cli, ["validate", "--no-import", str(flow)])
    assert res.exit_code == 0, res.output
    assert "ok (1 steps)" in res.output
    assert not marker.exists()


def test_no_import_reports_a_syntax_error_in_the_module(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n")
    flow = write(tmp_path / "flow.yaml", "flowc: 1\nname: demo\nfunctions: [broken]\n")
    (got,) = errors(flow, no_import=True)
    assert got.startswith(f"{flow}:3:") and "cannot parse" in got


def test_the_precommit_validate_hook_executes_nothing() -> None:
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "entry: flowc validate --no-import\n" in hooks


def test_every_import_of_user_code_goes_through_trust() -> None:
    """The compiler imports user code only in compiler/trust.py."""
    calls = ("import_module(", "spec_from_file_location(", "__import__(")
    offenders = []
    for path in sorted((REPO / "compiler").rglob("*.py")):
        if path.name == "trust.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(f"importlib.{c}" in line or line.strip().startswith(c) for c in calls):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    # flowc's own modules: the CLI's lazy commands and the pass registry
    allowed = {"compiler/cli.py", "compiler/passes/__init__.py"}
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []


def test_no_import_cli_subprocess_leaves_no_marker(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil(tmp_path, marker)
    flow = write(tmp_path / "flow.yaml", NO_IMPORT_FLOW.replace("MOD", "evil"))
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "validate", "--no-import", str(flow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert not marker.exists()


def test_compile_flow_imports_false_is_the_api_of_no_import(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil(tmp_path, marker, "evil_api")
    flow = write(tmp_path / "flow.yaml", "flowc: 1\nname: demo\nfunctions: [evil_api]\n")
    with pytest.raises(FlowcError, match="parameter 'x' of function 'double'"):
        compile_flow(flow, imports=False)
    assert not marker.exists()
    assert trust.import_allowed()  # the switch is scoped to the call


def test_no_import_checks_integration_classes_and_methods(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    write(
        tmp_path / "lolpop_mod.py",
        f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("ran")

        class Runner:
            pass

        class Train:
            def fit(self, data: str) -> str:
                return data
        """,
    )
    flow = write(
        tmp_path / "flow.yaml",
        """
        flowc: 1
        name: demo
        runner: {main: "lolpop_mod:Runner"}
        pipeline: {train: "lolpop_mod:Train", other: "lolpop_mod:Missing"}
        steps:
          fit: {run: "integration:train.fit", with: {data: x, extra: 1}}
          fit2: {run: "integration:train.nope"}
        """,
    )
    got = errors(flow, no_import=True)
    assert not marker.exists()
    text = "\n".join(got)
    assert "class 'lolpop_mod:Missing' of 'pipeline.other' not found" in text, text
    # method checks run once the classes are all found
    (tmp_path / "flow.yaml").write_text(
        flow.read_text().replace(', other: "lolpop_mod:Missing"', "")
    )
    text = "\n".join(errors(flow, no_import=True))
    assert "method 'train.fit' has no parameter 'extra'" in text, text
    assert "has no method 'nope'" in text, text
    assert not marker.exists()


def test_static_module_reads_functions_in_top_level_blocks(tmp_path: Path) -> None:
    src = write(
        tmp_path / "blocks.py",
        """
        import sys
        from os import path as p

        try:
            def a(x: int, *, y: str = "s") -> int:
                return x
        except ImportError:
            pass
        if sys.version_info >= (3,):
            class K:
                def __init__(self, n: int) -> None:
                    pass
        def _private() -> None:
            pass
        """,
    )
    mod = trust.static_module(src, "blocks", "test")
    assert str(inspect.signature(mod.a)) == "(x: 'int', *, y: 'str' = 's')"
    assert list(inspect.signature(mod.K.__init__).parameters) == ["self", "n"]
    assert inspect.isclass(mod.p)  # bound by an import: an open stand-in
    with pytest.raises(AttributeError):
        mod.nothing  # noqa: B018
