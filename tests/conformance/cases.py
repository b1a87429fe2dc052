"""The rows of the conformance matrix: every golden case and one flow per feature, with the runs
each gets (param overrides given on the CLI / at trigger time) and the cells that cannot run
here, each with its reason.

A case is a flow, its compile options (``golden/<case>/case.json``) and a list of runs; a run is
a ``{param: value}`` dict of overrides (``{}``: the defaults). The same runs go to every engine:
``--param`` text for ``flowc run``, the compiled module and the Kubernetes driver, a typed
``conf`` for Airflow, typed pipeline arguments for ``kfp.local``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "golden"
FLOWS = Path(__file__).resolve().parent / "flows"

ENGINES = ["flowc_run", "local_module", "airflow", "kfp", "vertex", "k8s"]
"""Matrix columns; ``flowc_run`` is the reference the others are compared with."""

ENGINE_TARGET = {
    "flowc_run": None,
    "local_module": "local",
    "airflow": "airflow",
    "kfp": "kfp",
    "vertex": "vertex",
    "k8s": "k8s",
}
ENGINE_TITLE = {
    "flowc_run": "`flowc run`",
    "local_module": "local module",
    "airflow": "Airflow 3 `dag.test()`",
    "kfp": "`kfp.local` (KFP spec)",
    "vertex": "`kfp.local` (Vertex `pipelineSpec`)",
    "k8s": "k8s driver (in-test API server)",
}

GOLDEN_RUNS: dict[str, list[dict[str, Any]]] = {
    "params": [{"path": "in.csv"}, {"path": "o {{ ds }}.csv", "rows": 5, "mode": "slow"}],
    "foreach": [{}, {"shards": []}],
    "when": [{}, {"full": True}],
    "command": [{}, {"greeting": "it's {{ x }}"}],
}

FEATURE_RUNS: dict[str, list[dict[str, Any]]] = {
    "f_params": [
        {"path": "in.csv"},
        {"path": "o.csv", "rows": 5, "lr": 0.25, "full": True, "tags": ["z"], "unused": "loud"},
    ],
    "f_foreach": [{}, {"shards": []}],
    "f_when": [{}, {"flag": True}],
    "f_env": [{}, {"level": "warn"}],
    "f_commands": [{}, {"word": "w"}],
    "f_hamilton": [{}, {"n": 5}],
    "f_trigger_join": [{}, {"flag": True}],
    "f_foreach_group": [{}, {"shards": ["x"]}],
    "f_subflow": [{}, {"n": 4}],
}

FEATURES = {
    "f_params": "params (defaults, CLI / trigger overrides, `ctx.params`)",
    "f_foreach": "foreach (items, index, empty list)",
    "f_when": "when (true and false, downstream of a skip)",
    "f_replicas": "replicas (`FLOWC_REPLICA`, `ctx.replica`)",
    "f_retries0": "retries, `retry_delay: 0s`",
    "f_retries_delay": "retries, `retry_delay: 2s`",
    "f_timeouts": "timeouts (one met, one exceeded)",
    "f_secrets": "secrets (by reference)",
    "f_commands": "commands (argv, env, replicas)",
    "f_run_values": "`${run.id}`, `${flow.name}`",
    "f_run_date": "`${run.date}`",
    "f_env": "env",
    "f_outputs": "outputs (numbers, lists, dicts downstream)",
    "f_literals": "`with:` literals (null, nested)",
    "f_plugins": "plugins (`ctx.plugins`)",
    "f_k8s_names": "realistic long step names",
    "f_hamilton": "Hamilton function module (decorated nodes as steps, `functions.config`)",
    "f_trigger_join": "`trigger: all_done` join after a skipped branch (and the all_success one skipped)",
    "f_finally_fail": "`finally:` after a failure: sees `${run.status}` failed, the run fails",
    "f_finally_names": "`finally:` sees `${run.failed_steps}`",
    "f_skip_code": "`skip_on_exit_code: [99]`: skipped, all_success downstream skipped, all_done runs",
    "f_foreach_group": "foreach group of two steps, its export downstream",
    "f_matrix": "2x2 matrix `foreach:` (`${item.lr}`, `${item.depth}`)",
    "f_subflow": "`uses:` sub-flow with `with:` params, flow `outputs:`",
}

STREAMING = (
    "streaming operators run until stopped: no finite run to record "
    "(tests/test_streaming_*.py run them)"
)
POD_OPERATOR = "KubernetesPodOperator tasks need a Kubernetes cluster; none can run here"
IMAGE_COMMAND_KFP = (
    "a command step is a container component: kfp.local runs it only with DockerRunner "
    "(no Docker daemon here)"
)

KFP_TIMEOUT = (
    "kfp.local does not apply the Kubernetes platform spec (activeDeadlineSeconds: the "
    "timeout); a KFP backend would"
)

FAILS_SLOWLY = (
    "its step `train` fails by design (`flowc_demo.steps:train` takes no `token`) after "
    "2 retries of 1m: minutes per engine to record a failure; its compiled files are checked by "
    "the golden tests"
)
LOOP_READS_TASK = (
    "kfp.local replaces every task output a ParallelFor body reads with the loop item, so a "
    "loop body reading another step's output cannot run in it (tests/test_kfp.py runs loops "
    "over params and items)"
)
JOB_TIME_PLACEHOLDER = (
    "kfp.local cannot resolve the job-time placeholder `${run.date}` compiles to "
    "(`{{$.pipeline_job_create_time_utc}}`: an IndexError in its placeholder resolution, before "
    "the task runs); a KFP backend and Vertex fill it in"
)
EMPTY_LOOP = (
    "kfp.local cannot collect the outputs of a ParallelFor over no items "
    "('Tried to get output ... from task for-loop-...')"
)

PIP_INTO_TESTS = (
    "its pods pip-install `packages` (and a pinned flowc) into the interpreter that runs them: "
    "here, kfp.local (use_venv=False) and the in-test Kubernetes API server run them in the "
    "test environment; tests/test_packages.py runs the same commands with pip stubbed"
)

NOT_RUNNABLE_RUNS: dict[tuple[str, str], tuple[int, str]] = {
    **{("f_foreach", e): (1, EMPTY_LOOP) for e in ("kfp", "vertex")},
}
"""(case, engine) -> (run index, why): one run of a cell that cannot run here; the cell compares
the others."""

NOT_RUNNABLE: dict[tuple[str, str], str] = {
    **{("streaming", e): STREAMING for e in ENGINES},
    **{("vertex_job", e): FAILS_SLOWLY for e in ENGINES},
    ("airflow_pods", "airflow"): POD_OPERATOR,
    ("packages", "airflow"): POD_OPERATOR,
    **{("packages", e): PIP_INTO_TESTS for e in ("kfp", "vertex", "k8s")},
    ("foreach", "kfp"): LOOP_READS_TASK,
    ("foreach", "vertex"): LOOP_READS_TASK,
    ("cf_groups", "kfp"): LOOP_READS_TASK,
    ("cf_groups", "vertex"): LOOP_READS_TASK,
    ("f_run_date", "kfp"): JOB_TIME_PLACEHOLDER,
    ("f_run_date", "vertex"): JOB_TIME_PLACEHOLDER,
    ("f_timeouts", "kfp"): KFP_TIMEOUT,
    ("f_timeouts", "vertex"): KFP_TIMEOUT,
    **{
        (c, e): IMAGE_COMMAND_KFP
        for c in ("command", "airflow_pods", "f_commands", "escaping")
        for e in ("kfp", "vertex")
    },
}
"""(case, engine) -> why that cell cannot run here (reported in docs/conformance.md)."""


@dataclass(frozen=True)
class Case:
    name: str
    flow: Path
    options: dict[str, Any] = field(default_factory=dict)
    runs: tuple[dict[str, Any], ...] = ({},)
    feature: str | None = None  # the feature a feature flow exercises; None: a golden case

    @property
    def title(self) -> str:
        return self.feature or f"golden `{self.name}`"


def golden_cases() -> list[Case]:
    out = []
    for flow in sorted(GOLDEN.glob("*/flow.yaml")):
        name = flow.parent.name
        opt = flow.parent / "case.json"
        options = json.loads(opt.read_text()) if opt.is_file() else {}
        runs = GOLDEN_RUNS.get(name, [{}])
        out.append(Case(name, flow, options, tuple(runs)))
    return out


def feature_cases() -> list[Case]:
    out = []
    for name, title in FEATURES.items():
        runs = FEATURE_RUNS.get(name, [{}])
        out.append(Case(name, FLOWS / f"{name}.yaml", {}, tuple(runs), feature=title))
    return out


def all_cases() -> list[Case]:
    return feature_cases() + golden_cases()
