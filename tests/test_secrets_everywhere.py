"""No secret value appears in any compiled output of any target, nor in logs, artifacts or the
metadata store of a run: values planted in the environment at compile time and at run time are
grepped for in every file produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
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


# -- secrets in configuration (${secrets.NAME} in stack and plugin config) ----------------------

CONFIG_COMPILE = "cfg-compile-pw-3d9e1"
CONFIG_RUN = "cfg-run-pw-b7c04"
CONFIG_K8S = "cfg-k8s-pw-f0a62"


def config_flow(events: Path) -> dict:
    recorder = "flowc_stackfix.plugins:RecorderPlugin"
    return {
        "flowc": 1,
        "name": "cfgsecrets",
        "secrets": {"mq_pw": {"env": "MQ_PASSWORD", "k8s": {"name": "mq", "key": "password"}}},
        "plugins": {
            # the whole value, and inside a longer string (amqp://user:PASSWORD@host style)
            "whole": {
                "type": recorder,
                "enabled": True,
                "config": {"events": str(events), "label": "${secrets.mq_pw}"},
            },
            "inside": {
                "type": recorder,
                "enabled": True,
                "config": {"events": str(events), "label": "amqp://u:${secrets.mq_pw}@mq:5672/"},
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
        "steps": {"one": {"run": "flowc_demo.steps:echo", "with": {"value": 1}}},
    }


def labels_seen(events: Path) -> set[str]:
    import json

    rows = [json.loads(line) for line in events.read_text().splitlines()]
    return {r["plugin"] for r in rows if r["event"] == "initialize"}


def test_config_secrets_stay_references_in_every_target_and_resolve_at_run_time(
    tmp_path: Path,
) -> None:
    import json

    (tmp_path / ".git").mkdir()
    events = tmp_path.parent / f"{tmp_path.name}-events.jsonl"  # outside the grepped tree
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(config_flow(events), sort_keys=False))
    base_env = {k: v for k, v in os.environ.items() if k != "MQ_PASSWORD"}
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "compile", "flow.yaml", "--all", "-o", "dist"]
        + ["--stack", "gcp"],
        cwd=tmp_path,
        env={**base_env, "MQ_PASSWORD": CONFIG_COMPILE},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    produced = [p.relative_to(tmp_path / "dist").parts for p in (tmp_path / "dist").rglob("*")]
    targets = {parts[1] for parts in produced if len(parts) > 2}
    assert targets >= {"local", "airflow", "kfp", "vertex", "k8s"}
    assert grep_tree(tmp_path / "dist", [CONFIG_COMPILE]) == []
    # the reference is what every target carries (the plan), e.g. the k8s ConfigMap's plan.json
    docs = list(yaml.safe_load_all((tmp_path / "dist/cfgsecrets/k8s/manifests.yaml").read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    plan = json.loads(cm["data"]["plan.json"])
    assert plan["plugins"]["whole"]["config"]["label"] == {
        "$ref": ["secrets", "mq_pw"],
        "env": "MQ_PASSWORD",
    }
    # ... and every step pod and the driver get the Kubernetes Secret as env, a reference
    ref = {"name": "MQ_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mq", "key": "password"}}}
    job = json.loads(cm["data"]["k8s.json"])["job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["env"] == [ref]
    driver = next(d for d in docs if d["kind"] == "Job")
    assert ref in driver["spec"]["template"]["spec"]["containers"][0]["env"]

    run = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml"],
        cwd=tmp_path,
        env={**base_env, "MQ_PASSWORD": CONFIG_RUN},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # the plugins received the real value, resolved where they run
    assert labels_seen(events) == {CONFIG_RUN, f"amqp://u:{CONFIG_RUN}@mq:5672/"}
    assert CONFIG_RUN not in run.stdout + run.stderr
    assert (tmp_path / ".flowc" / "metadata.db").is_file()
    assert grep_tree(tmp_path / ".flowc", [CONFIG_RUN]) == []

    missing = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml"],
        cwd=tmp_path,
        env=base_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1
    assert "secret 'mq_pw' is missing at run time: set MQ_PASSWORD" in missing.stdout + (
        missing.stderr
    )


def test_config_secrets_reach_plugins_in_kubernetes_step_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from flowc.compiler.cli import cli
    from tests.k8s_fake_api import FakeCluster

    monkeypatch.delenv("MQ_PASSWORD", raising=False)  # only the Secret can give it
    monkeypatch.setenv("FLOWC_K8S_POLL", "0.2")
    events = tmp_path / "events.jsonl"
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(config_flow(events), sort_keys=False))
    with FakeCluster(tmp_path / "cluster") as fc:
        fc.create_secret("default", "mq", {"password": CONFIG_K8S})

        def flowc(*args: str) -> tuple[int, str]:
            res = CliRunner().invoke(cli, [*args, "--kubeconfig", str(fc.kubeconfig)])
            return res.exit_code, res.output

        code, out = flowc("deploy", str(flow))
        assert code == 0, out
        code, out = flowc("attach", "cfgsecrets", "--timeout", "120", "--poll", "0.2")
        assert code == 0, out
        assert CONFIG_K8S not in out
        docs = [
            o
            for plural, _, _ in fc.all_objects()
            if plural in ("jobs", "configmaps")
            for o in fc.items(plural, "default")
        ]
        assert CONFIG_K8S not in json_dumps(docs)  # no value in any object sent to the API
        assert flowc("destroy", "cfgsecrets")[0] == 0
    assert fc.rejected == []
    assert labels_seen(events) == {CONFIG_K8S, f"amqp://u:{CONFIG_K8S}@mq:5672/"}


def json_dumps(value: object) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize(
    ("label", "message", "hint"),
    [
        (
            "${env.MQ_PASSWORD}",
            "error: ${env.MQ_PASSWORD} is the source of secret 'mq_pw'",
            "hint: write ${secrets.mq_pw}",
        ),
        ("${secrets.mq_pass}", "error: unknown secret 'mq_pass'", "mq_pw"),
        (
            "${params.x}",
            "error: only ${env.X} and ${secrets.NAME} may be used in plugin 'whole'",
            "secrets where the code runs",
        ),
    ],
)
def test_config_secret_errors_are_located(
    tmp_path: Path, label: str, message: str, hint: str
) -> None:
    from flowc.compiler.api import compile_flow
    from flowc.compiler.errors import FlowcError

    data = config_flow(tmp_path / "e.jsonl")
    data["plugins"]["whole"]["config"]["label"] = label
    data["params"] = {"x": {"type": "str", "default": "a"}}
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(FlowcError) as e:
        compile_flow(f, environ={"MQ_PASSWORD": CONFIG_COMPILE})
    text = e.value.render()
    assert "flow.yaml:" in text and message in text and hint in text, text
    assert CONFIG_COMPILE not in text


STORE = '''\
import hashlib

from flowc.runtime.stack import ArtifactStore

KEY_SHA256 = "a1be6c60173d64e630e69781f06685ac42f10646e7d3fee5828712f407aaa390"  # of the run's key: the source holds no value


class MinioStore(ArtifactStore):
    """Saves in memory; refuses to work without the real secret key."""

    def __init__(self, name="minio", endpoint="localhost:9000", secret_key=""):
        super().__init__(name)
        self.endpoint, self.secret_key, self.data = endpoint, secret_key, {}

    def save(self, artifact, path):
        if hashlib.sha256(str(self.secret_key).encode()).hexdigest() != KEY_SHA256:
            raise RuntimeError(f"wrong key type {type(self.secret_key).__name__}")
        self.data[path] = artifact

    def load(self, path):
        return self.data[path]

    def exists(self, path):
        return path in self.data
'''

STORE_FLOW = """\
flowc: 1
name: storesecret
secrets:
  minio_key: {env: MINIO_KEY}
components:
  minio: {kind: artifact_store, class: "infra/minio.py:MinioStore"}
stacks:
  dev:
    orchestrator: {type: local}
    artifact_store: {type: minio, endpoint: "m:9000", secret_key: "${secrets.minio_key}"}
steps:
  a: {run: flowc_demo.steps:echo, with: {value: 1}, outputs: [v]}
"""


def test_a_stack_component_gets_its_secret_where_it_is_built(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "minio.py").write_text(STORE)
    (tmp_path / "flow.yaml").write_text(STORE_FLOW)
    base = {k: v for k, v in os.environ.items() if k != "MINIO_KEY"}

    def flowc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowc", *args],
            cwd=tmp_path,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    compiled = flowc("compile", "flow.yaml", "--stack", "dev", "--target", "local", "-o", "out")
    assert compiled.returncode == 0, compiled.stderr  # compiles without the secret at hand
    run = flowc("run", "flow.yaml", "--stack", "dev", MINIO_KEY="minio-run-key-61c2")
    assert run.returncode == 0, run.stdout + run.stderr  # the store saved: it had the real key
    assert grep_tree(tmp_path, ["minio-run-key-61c2"]) == []
    missing = flowc("run", "flow.yaml", "--stack", "dev")
    assert missing.returncode == 1
    assert "secret 'minio_key' is missing at run time: set MINIO_KEY" in missing.stderr


def _config_flow_ir(tmp_path: Path, events: Path) -> object:
    from flowc.compiler.api import compile_flow

    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(config_flow(events), sort_keys=False))
    return compile_flow(f, environ={})  # nothing of the secret at compile time


def test_config_secrets_reach_plugins_in_kfp_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kfp.local's SubprocessRunner runs each executor with this environment: where a KFP pod
    gets the secret as env."""
    from kfp import components, local

    from flowc.compiler.api import emit

    events = tmp_path.parent / f"{tmp_path.name}-events.jsonl"
    ir = _config_flow_ir(tmp_path, events)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(emit(ir, "kfp")["pipeline.yaml"], encoding="utf-8")
    assert "cfg-kfp" not in spec.read_text()
    monkeypatch.setenv("MQ_PASSWORD", "cfg-kfp-pw-0a1b")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=True,
    )
    components.load_component_from_file(str(spec))()
    assert labels_seen(events) == {"cfg-kfp-pw-0a1b", "amqp://u:cfg-kfp-pw-0a1b@mq:5672/"}
    assert grep_tree(tmp_path, ["cfg-kfp-pw-0a1b"]) == []


def test_config_secrets_reach_plugins_in_airflow_dag_test(tmp_path: Path) -> None:
    """dag.test() in Airflow 3 (.venv-airflow): the worker's environment gives the value."""
    from flowc.compiler.api import emit
    from tests.test_airflow_dags import _run_dags

    events = tmp_path.parent / f"{tmp_path.name}-events.jsonl"
    ir = _config_flow_ir(tmp_path, events)
    (text,) = emit(ir, "airflow").values()
    assert "cfg-af" not in text
    runs = _run_dags(
        tmp_path,
        {"cfgsecrets": [None]},
        env={"MQ_PASSWORD": "cfg-af-pw-9c8d"},
        sources={"cfgsecrets": text},
    )
    assert runs["cfgsecrets"][0]["state"] == "success", runs
    assert labels_seen(events) >= {"cfg-af-pw-9c8d", "amqp://u:cfg-af-pw-9c8d@mq:5672/"}
    assert grep_tree(tmp_path, ["cfg-af-pw-9c8d"]) == []
