"""No secret value appears in any compiled output of any target, nor in logs, artifacts or the
metadata store of a run: values planted in the environment at compile time and at run time are
grepped for in every file produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

COMPILE_SECRETS = {"DB_PASSWORD": "compile-pw-7f3a9", "API_TOKEN": "compile-tok-c41e2"}
RUN_SECRETS = {"DB_PASSWORD": "run-pw-91bd0", "API_TOKEN": "run-tok-55ae7"}

FLOW = {
    "flowc": 1,
    "name": "leaky",
    "secrets": {
        "db_password": {
            "env": "DB_PASSWORD",
            "vertex": {"secret": "projects/p/secrets/db/versions/1"},
        },
        "api_token": {
            "env": "API_TOKEN",
            "k8s": {"name": "api", "key": "token"},
            "airflow": {"variable": "api_token"},
            "vertex": {"secret": "projects/p/secrets/api/versions/latest"},
        },
    },
    "stacks": {
        "gcp": {
            "orchestrator": {
                "type": "vertex",
                "project": "acme-proj",
                "region": "us-central1",
                "pipeline_root": "gs://b/r",
            }
        }
    },
    "steps": {
        "use": {
            "run": "flowc_secretsfix:use",
            "with": {"token": "${secrets.api_token}", "password": "${secrets.db_password}"},
            "outputs": ["n"],
        },
        "env_step": {
            "run": "flowc_secretsfix:from_env",
            "env": {"PW_FROM_ENV": "${secrets.db_password}"},
            "outputs": ["n"],
        },
        "cmd": {
            "command": [sys.executable, "-c", "import os; print('env', os.environ['TOKEN'])"],
            "env": {"TOKEN": "${secrets.api_token}"},
        },
        "boom": {"run": "flowc_secretsfix:fail_with", "with": {"token": "${secrets.api_token}"}},
        # a command that prints a declared secret it never referenced, from the inherited env
        "inherited": {
            "command": [sys.executable, "-c", "import os; print('pw', os.environ['DB_PASSWORD'])"],
        },
    },
}


def grep_tree(root: Path, values: list[str]) -> list[str]:
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            for v in values:
                if v.encode() in data:
                    hits.append(f"{p}: {v}")
    return hits


def test_no_secret_value_in_outputs_logs_or_metadata(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(FLOW, sort_keys=False))
    env = {**os.environ, **COMPILE_SECRETS}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowc",
            "compile",
            "flow.yaml",
            "--all",
            "-o",
            "dist",
            "--stack",
            "gcp",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    produced = sorted(
        p.relative_to(tmp_path / "dist").as_posix()
        for p in (tmp_path / "dist").rglob("*")
        if p.is_file()
    )
    assert {p.split("/")[1] for p in produced if "/" in p} >= {
        "local",
        "airflow",
        "kfp",
        "vertex",
        "k8s",
    }
    assert grep_tree(tmp_path / "dist", list(COMPILE_SECRETS.values())) == []
    # KFP: the command step's env var comes from the Kubernetes Secret (kfp-kubernetes layout)
    platform = list(yaml.safe_load_all((tmp_path / "dist/leaky/kfp/pipeline.yaml").read_text()))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    cmd_env = [k["envVar"] for e in executors["exec-cmd"]["secretAsEnv"] for k in e["keyToEnv"]]
    assert cmd_env == ["API_TOKEN", "TOKEN"]

    env = {**os.environ, **RUN_SECRETS}
    run = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1  # "boom" fails, with the token in its exception message
    assert "boom" in run.stdout + run.stderr
    values = list(RUN_SECRETS.values())
    for v in values:
        assert v not in run.stdout and v not in run.stderr
    assert (tmp_path / ".flowc" / "metadata.db").is_file()
    assert grep_tree(tmp_path / ".flowc", values) == []
    shown = subprocess.run(
        [sys.executable, "-m", "flowc", "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and not any(v in shown.stdout for v in values)
    # the steps did receive the real values (lengths are outputs; the values never persisted)
    import json

    outs = [json.loads(p.read_text()) for p in (tmp_path / ".flowc" / "runs").rglob("n.json")]
    assert sorted(outs) == sorted(
        [
            len(RUN_SECRETS["API_TOKEN"]) + len(RUN_SECRETS["DB_PASSWORD"]),
            len(RUN_SECRETS["DB_PASSWORD"]),
        ]
    )
