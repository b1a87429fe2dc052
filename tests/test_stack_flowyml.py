"""flowyml stack component code run unchanged (seed 000): the seed's custom orchestrator and
artifact store snippets, importing ``flowyml.stacks.components`` / ``flowyml.stacks.plugins``
(a thin re-export of ``flowc.runtime.stack.flowyml``), under ``flowc run --stack S``. A custom
orchestrator's ``run_pipeline`` runs the flow; one without it and without a local target is an
error saying what to do. Runs in fresh processes: the Airflow and MinIO test doubles
(tests/fixtures/flowyml/README.md) stay out of this one."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "flowyml"
PKGS = REPO / "tests" / "fixtures" / "pkgs"

STEPS = """
from pathlib import Path


def make(n: int) -> list:
    return list(range(n))


def total(rows: list, out: str) -> int:
    Path(out).write_text(str(sum(rows)))
    return sum(rows)
"""


PLAIN = '''
from flowyml.stacks.components import Orchestrator


class NoTarget(Orchestrator):
    """Neither run_pipeline nor a flowc target."""

    target = None
'''


def project(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "custom_orchestrator.py.txt", tmp_path / "custom_orchestrator.py")
    shutil.copy(FIXTURES / "custom_artifact_store.py.txt", tmp_path / "custom_artifact_store.py")
    (tmp_path / "seed_steps.py").write_text(STEPS)
    (tmp_path / "plain.py").write_text(PLAIN)
    (tmp_path / "dags").mkdir()
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(f"""\
            flowc: 1
            name: seedflow
            components:
              - {{name: seedair, kind: orchestrator,
                  class: "custom_orchestrator.py:AirflowOrchestrator"}}
              - {{name: minio, kind: artifact_store,
                  class: "custom_artifact_store.py:MinIOArtifactStore"}}
              - {{name: plain, kind: orchestrator, class: "plain.py:NoTarget"}}
            stacks:
              air:
                orchestrator: {{type: seedair, dag_folder: "{tmp_path / 'dags'}"}}
              store:
                orchestrator: {{type: local}}
                artifact_store: {{type: minio, bucket: ml}}
              plain:
                orchestrator: {{type: plain}}
            steps:
              make: {{run: "seed_steps:make", with: {{n: 4}}, outputs: [rows]}}
              total:
                run: "seed_steps:total"
                with: {{rows: "${{steps.make.outputs.rows}}", out: "{tmp_path / 'total.txt'}"}}
                outputs: [sum]
            """))
    return tmp_path / "flow.yaml"


def flowc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(FIXTURES),
            str(FIXTURES / "fake_airflow"),
            str(FIXTURES / "fake_minio"),
            str(PKGS),
            str(REPO),
        ]
    )
    env["FAKE_AIRFLOW_HOME"] = str(tmp_path)
    env["FAKE_MINIO_DIR"] = str(tmp_path / "minio")
    return subprocess.run(
        [sys.executable, "-m", "flowc", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_the_seeds_orchestrator_runs_the_flow_with_run_pipeline(tmp_path: Path) -> None:
    f = project(tmp_path)
    res = flowc(tmp_path, "run", str(f), "--stack", "air")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    run_id = lines[0].split()[1].rstrip(":")
    assert lines == [
        f"run {run_id}: handing flow 'seedflow' to orchestrator 'seedair'",
        f"run flowyml_{run_id} success",  # the snippet's run id, its get_run_status
    ]
    runs = json.loads((tmp_path / "dagruns.json").read_text())
    assert runs[f"flowyml_{run_id}"]["tasks"] == ["make", "total"]  # steps ran through flowc
    assert (tmp_path / "total.txt").read_text() == "6"


def test_the_seeds_artifact_store_keeps_the_outputs(tmp_path: Path) -> None:
    f = project(tmp_path)
    res = flowc(tmp_path, "run", str(f), "--stack", "store")
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = res.stdout.split("run ", 1)[1].split()[0]
    objects = tmp_path / "minio" / "ml" / "runs" / run_id
    assert pickle.loads((objects / "make" / "rows").read_bytes()) == [0, 1, 2, 3]
    assert pickle.loads((objects / "total" / "sum").read_bytes()) == 6


def test_an_orchestrator_without_run_pipeline_or_target_is_refused(tmp_path: Path) -> None:
    f = project(tmp_path)
    res = flowc(tmp_path, "run", str(f), "--stack", "plain")
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(n for n, t in enumerate(f.read_text().splitlines(), 1) if "{type: plain}" in t)
    assert res.stderr.splitlines()[0].startswith(f"{f}:{line}:")
    assert "orchestrator type 'plain' has neither a run_pipeline method nor a flowc target" in (
        res.stderr
    )
    assert "Traceback" not in res.stderr and not (tmp_path / "total.txt").exists()
