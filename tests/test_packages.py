"""``packages:`` / ``package_index:`` (issue 20): a step on a stock image pip-installs what it
needs, and a pinned flowc where the container runs the step through flowc, before it starts.

The compiled commands really run: in ``kfp.local`` and in the in-test Kubernetes API server. Both
run a container's command in this interpreter's environment, so ``pip`` itself is stubbed (a
``python``/``python3`` first on PATH records ``-m pip ...`` and runs everything else with the
real interpreter): what is proved is that the step starts only after the install line ran with
the right arguments, and then runs as under ``flowc run``. No package index is used.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowc import __version__
from flowc.compiler.api import emit, load_text
from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Step
from flowc.targets.base import check_supported, pip_install_line

FLOW = """\
flowc: 1
name: pk
defaults:
  image: python:3.11-slim
  packages: ["pandas==2.2.3", "scikit-learn>=1.4,<2"]
steps:
  load:
    run: flowc_demo.steps:load
    with: {rows: 2}
    outputs: [frame]
  report:
    run: flowc_demo.steps:echo
    with: {value: "${steps.load.outputs.frame}"}
    outputs: [value]
    packages: ["rich[jupyter]==13.7.1"]
    package_index: https://pypi.internal.example/simple
"""

DEFAULT_LINE = f"flowc=={__version__} pandas==2.2.3 scikit-learn>=1.4,<2"
REPORT_LINE = (
    f"--index-url https://pypi.internal.example/simple flowc=={__version__} rich[jupyter]==13.7.1"
)


def _pip_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip stubbed twice, so no real install can happen: ``python``/``python3`` first on PATH
    (for commands a shell starts: ``-m pip ...`` is recorded, anything else runs in this
    interpreter) and a ``pip`` package first on PYTHONPATH (kfp.local runs a container's
    ``python3`` as this interpreter itself). Each call is one line in the file returned."""
    bin_dir, shadow, log = tmp_path / "stub-bin", tmp_path / "stub-pip", tmp_path / "pip.log"
    bin_dir.mkdir()
    (shadow / "pip").mkdir(parents=True)
    script = textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
          shift 2
          printf '%s\\n' "$*" >> {shlex.quote(str(log))}
          exit 0
        fi
        exec {shlex.quote(sys.executable)} "$@"
        """)
    for name in ("python", "python3"):
        (bin_dir / name).write_text(script, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    (shadow / "pip" / "__init__.py").write_text("", encoding="utf-8")
    (shadow / "pip" / "__main__.py").write_text(
        "import sys\n\n"
        f"with open({str(log)!r}, 'a', encoding='utf-8') as f:\n"
        "    f.write(' '.join(sys.argv[1:]) + '\\n')\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return log


def _installs(log: Path) -> list[str]:
    """The ``pip install`` calls recorded, without the fixed options."""
    fixed = "install --quiet --no-warn-script-location "
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    return sorted(line[len(fixed) :] for line in lines if line.startswith(fixed))


# ---------------------------------------------------------------------------------------------
# The front end: the IR holds the list and the index, targets only spell them
# ---------------------------------------------------------------------------------------------


def test_the_step_list_replaces_the_defaults_and_the_index_is_kept() -> None:
    ir = load_text(FLOW, "flow.yaml")
    assert ir.step("load").packages == ("pandas==2.2.3", "scikit-learn>=1.4,<2")
    assert ir.step("load").package_index is None
    assert ir.step("report").packages == ("rich[jupyter]==13.7.1",)
    assert ir.step("report").package_index == "https://pypi.internal.example/simple"
    plain = load_text("flowc: 1\nname: p\nsteps:\n  a: {run: m:f}\n", "flow.yaml")
    assert plain.step("a").packages == () and "packages" not in plain.to_data()["steps"]["a"]


def test_bad_requirements_and_index_are_located_errors() -> None:
    text = (
        "flowc: 1\nname: bad\ndefaults:\n"
        '  packages: ["-e git+https://x/y", "ok==1", "--index-url http://x"]\n'
        "  package_index: ftp://nope\nsteps:\n  a: {run: m:f}\n"
    )
    with pytest.raises(FlowcError) as e:
        load_text(text, "flow.yaml")
    out = e.value.render()
    assert "flow.yaml:4:14: error: '-e git+https://x/y' in 'packages' is not a requirement" in out
    assert "flow.yaml:4:45: error: '--index-url http://x' in 'packages'" in out
    assert "an index goes in 'package_index'" in out
    assert "flow.yaml:5:18: error: 'package_index' must be an http(s):// or file:// URL" in out


def test_the_install_line_quotes_every_word_and_pins_flowc_unless_listed() -> None:
    ir = load_text(FLOW, "flow.yaml")
    line = pip_install_line(ir.step("load")).splitlines()[-1]
    assert line == (
        "PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet "
        f"--no-warn-script-location flowc=={__version__} pandas==2.2.3 'scikit-learn>=1.4,<2'"
    )
    assert "flowc==" not in pip_install_line(ir.step("load"), flowc=False)
    own = load_text(FLOW.replace('"pandas==2.2.3"', '"flowc[k8s]==9"'), "flow.yaml")
    assert "flowc==" not in pip_install_line(own.step("load"))
    assert pip_install_line(Step(name="x", kind="run")) == ""


# ---------------------------------------------------------------------------------------------
# KFP / Vertex: the launcher installs first (kfp's packages_to_install), kfp.local runs it
# ---------------------------------------------------------------------------------------------


def test_kfp_installs_before_the_launcher_and_kfp_local_runs_the_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfp import components, local

    ir = load_text(FLOW, "flow.yaml")
    text = emit(ir, "kfp")["pipeline.yaml"]
    spec = next(yaml.safe_load_all(text))
    ex = spec["deploymentSpec"]["executors"]["exec-report"]["container"]
    assert ex["command"][:2] == ["sh", "-ec"]
    assert "--index-url https://pypi.internal.example/simple" in ex["command"][2]
    vertex = json.loads(emit(ir, "vertex")["pipeline_job.json"])["pipelineSpec"]
    assert vertex["deploymentSpec"] == spec["deploymentSpec"]
    log = _pip_stub(tmp_path, monkeypatch)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "r"))
    components.load_component_from_file(str(path))()
    assert _installs(log) == sorted([DEFAULT_LINE, REPORT_LINE])
    (out,) = (tmp_path / "r").rglob("report/executor_output.json")
    value = json.loads(json.loads(out.read_text())["parameterValues"]["Output"])
    assert value == [{"id": 0, "src": "data.csv"}, {"id": 1, "src": "data.csv"}]  # load's rows


def test_a_plain_kfp_container_installs_without_flowc() -> None:
    ir = load_text(
        "flowc: 1\nname: c\nsteps:\n  a:\n    command: [echo, hi]\n    image: alpine\n"
        "    packages: [httpie==3.2.2]\n",
        "flow.yaml",
    )
    spec = next(yaml.safe_load_all(emit(ir, "kfp")["pipeline.yaml"]))
    c = spec["deploymentSpec"]["executors"]["exec-a"]["container"]
    assert c["command"][:2] == ["sh", "-c"] and c["args"] == ["echo", "hi"]
    assert c["command"][2].endswith(' httpie==3.2.2 && exec "$0" "$@"\n')
    assert "flowc==" not in c["command"][2]


# ---------------------------------------------------------------------------------------------
# Kubernetes: the step pod installs, then starts flowc's step runtime
# ---------------------------------------------------------------------------------------------


def test_k8s_step_pods_install_then_run_on_the_in_test_api_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.k8s_fake_api import FakeCluster, drive_configmap, plan_configmap

    cm = plan_configmap(load_text(FLOW, str(tmp_path / "flow.yaml")))
    config = json.loads(cm["data"]["k8s.json"])
    assert config["steps"]["load"]["container"]["command"][:2] == ["sh", "-c"]
    assert "python -m flowc.runtime.k8s step" not in json.dumps(config["job"])  # no shell
    log = _pip_stub(tmp_path, monkeypatch)
    with FakeCluster(tmp_path / "cluster") as cluster:
        code, store = drive_configmap(cluster, cm, monkeypatch)
        assert code == 0, capsys.readouterr().out
        assert cluster.rejected == []
        rows = [{"id": 0, "src": "data.csv"}, {"id": 1, "src": "data.csv"}]
        assert store.get("r1", "report", "value") == rows
    assert _installs(log) == sorted([DEFAULT_LINE, REPORT_LINE])


# ---------------------------------------------------------------------------------------------
# Airflow: pods install; a task in the worker gets a warning (the workers need the packages)
# ---------------------------------------------------------------------------------------------


def test_airflow_pods_install_and_worker_tasks_are_warned_about() -> None:
    from flowc.compiler.registry import load_target as get_target

    ir = load_text(FLOW, "flow.yaml")
    (warning,) = [d for d in check_supported(ir, get_target("airflow")) if d.severity == "warning"]
    assert "steps 'load', 'report': `packages` are not installed by the airflow target" in (
        warning.render()
    )
    assert not [d for d in check_supported(ir, get_target("kfp")) if "packages" in d.message]
    pods = load_text(
        "flowc: 1\nname: p\nstacks:\n  pods:\n"
        "    orchestrator: {type: airflow, pod_operator: true, namespace: ml}\n"
        "steps:\n  a:\n    command: [echo, hi]\n    image: alpine\n"
        "    packages: [httpie==3.2.2]\n",
        "flow.yaml",
        stack="pods",
    )
    assert check_supported(pods, get_target("airflow")) == []
    (text,) = emit(pods, "airflow").values()
    assert 'cmds=[\n            "sh",\n            "-c",' in text
    assert 'arguments=["echo", "hi"]' in text
