"""Builds the conformance matrix: each case compiled for each target and run on each engine that
can run here, what every step saw normalised, and each engine's observation compared with
``flowc run``'s.

An observation of one run is ``{"status", "outputs", "records"}``: the run's end state, the
outputs of every step that succeeded (steps with declared outputs), and the normalised records
the recording callables (``tests/fixtures/pkgs/flowc_conformance``) wrote. A cell is a
:class:`Cell`: ``pass``, ``differs`` (with the difference), ``refused`` (the compile error),
``not runnable`` (why) or ``error`` (the engine failed to run the compiled output at all).

Cost: the Airflow runs of all cases go to ONE Airflow process (one migrated SQLite database),
started first and run in the background while the in-process engines work; every kfp.local run
shares one pipeline root; every Kubernetes run shares one in-test API server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance.cases import (
    ENGINE_TARGET,
    ENGINES,
    NOT_RUNNABLE,
    NOT_RUNNABLE_RUNS,
    REPO,
    Case,
    all_cases,
)
from tests.golden_harness import environ

TOKEN = "conformance-token-value"
"""The value behind the feature flows' secret (env, Airflow Variable and k8s Secret alike)."""
SECRET_ENV = {
    "CONFORMANCE_TOKEN": TOKEN,
    "DB_PASSWORD": "pw-from-env",
    "API_TOKEN": "tok-from-airflow",
}
AIRFLOW_VARIABLES = {"conformance_token": TOKEN, "api_token": "tok-from-airflow"}
GCS_BUCKET = "acme-artifacts"
"""The bucket of the golden gcp stacks' artifact store (served by an in-test GCS emulator)."""
RETRY_TOLERANCE = 15.0
"""Seconds an attempt may start later than its retry delay (a loaded 2-core machine)."""
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")


@dataclass
class Cell:
    case: str
    engine: str
    status: str  # pass | differs | refused | not runnable | error
    detail: str = ""
    observed: list[Any] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------


def compile_case(case: Case) -> tuple[Any, dict[str, Any]]:
    """``(ir or None, {target: files | FlowcError text})`` compiled as users do (from the repo,
    the flow path relative to it)."""
    from flowc.compiler.api import compile_flow, emit
    from flowc.compiler.errors import FlowcError

    opts = case.options
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with environ(opts.get("env", {})):
            try:
                ir = compile_flow(
                    os.path.relpath(case.flow),
                    environment=opts.get("environment"),
                    params=opts.get("params"),
                    sets=opts.get("sets"),
                    stack=opts.get("stack"),
                )
            except FlowcError as e:
                return None, {t: e.render() for t in ENGINE_TARGET.values() if t}
            out: dict[str, Any] = {}
            for target in {t for t in ENGINE_TARGET.values() if t}:
                try:
                    out[target] = emit(ir, target)
                except FlowcError as e:
                    out[target] = e.render()
            return ir, out
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------------------------------
# Normalising what a run saw
# ---------------------------------------------------------------------------------------------


def read_records(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def normalise(
    plan: dict[str, Any], records: list[dict[str, Any]], outputs: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Records grouped by step, in a stable order, with what legitimately differs between
    engines replaced: the run id (checked to be one per run), the run date (checked to be ISO),
    times (turned into the gap between attempts, checked against the retry delay)."""
    run_ids = {r["run_id"] for r in records if "run_id" in r}
    marks: dict[str, str] = {rid: "<run id>" for rid in run_ids if rid}
    if len(run_ids) > 1:
        marks = {rid: f"<run id {n}>" for n, rid in enumerate(sorted(run_ids))}

    def scrub(v: Any) -> Any:
        if isinstance(v, str):
            if v in marks:
                return marks[v]
            if ISO.match(v):
                return "<iso date>"
            return v
        if isinstance(v, list):
            return [scrub(x) for x in v]
        if isinstance(v, dict):
            return {k: scrub(x) for k, x in v.items()}
        return v

    by_step: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_step.setdefault(r["step"], []).append(r)
    out: dict[str, Any] = {}
    for step, recs in sorted(by_step.items()):
        recs.sort(
            key=lambda r: (
                r.get("index") if r.get("index") is not None else -1,
                r.get("replica") if r.get("replica") is not None else -1,
                json.dumps(r.get("argv"), sort_keys=True),
                json.dumps(r.get("env"), sort_keys=True),
                r.get("call") or 0,
                r["time"],
            )
        )
        delay = float((plan["steps"].get(step) or {}).get("retry_delay") or 0.0)
        norm = []
        prev = None
        for r in recs:
            r = dict(r)
            t = r.pop("time")
            if r.get("call") is not None and prev is not None:
                gap = t - prev
                ok = delay - 0.05 <= gap <= delay + RETRY_TOLERANCE
                r["gap"] = f"retry delay {delay:g}s kept" if ok else f"{gap:.1f}s after the last"
            prev = t if r.get("call") is not None else None
            if r.get("run_date") is not None and not ISO.match(str(r["run_date"])):
                r["run_date"] = f"not ISO: {r['run_date']}"
            norm.append(scrub(r))
        out[step] = norm
    return out, scrub(outputs or {})


def _scrub_outputs(case: str, outputs: dict[str, Any]) -> dict[str, Any]:
    outputs = json.loads(json.dumps(outputs, sort_keys=True, default=repr))
    if case == "integration_framework":  # an object id: differs between processes
        outputs.get("wiring", {}).get("facts", {}).pop("tree_id", None)
    return outputs


def observation(
    case: Case, plan: dict[str, Any], status: str, outputs: dict[str, Any], folder: Path
) -> dict[str, Any]:
    declared = {s for s, d in plan["steps"].items() if d.get("outputs")}
    outs = _scrub_outputs(case.name, {s: v for s, v in outputs.items() if s in declared})
    records, outs = normalise(plan, read_records(folder), outs)
    return {"status": status, "outputs": outs, "records": records}


def param_text(plan: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """``NAME=VALUE`` pairs as a user types them after ``--param``."""
    out = []
    for k, v in params.items():
        ptype = plan["params"][k]["type"]
        out.append(f"{k}={v}" if ptype == "str" else f"{k}={json.dumps(v)}")
    return out


def diff(want: Any, got: Any, path: str = "") -> list[str]:
    """Where two observations differ, as short ``path: want != got`` lines."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got), key=str):
            if k not in got:
                out.append(f"{path}/{k}: missing (flowc run: {_short(want[k])})")
            elif k not in want:
                out.append(f"{path}/{k}: extra {_short(got[k])}")
            else:
                out += diff(want[k], got[k], f"{path}/{k}")
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            x
            for i, (a, b) in enumerate(zip(want, got, strict=True))
            for x in diff(a, b, f"{path}[{i}]")
        ]
    return [] if want == got else [f"{path}: flowc run {_short(want)} != {_short(got)}"]


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, default=repr)
    return s if len(s) <= 160 else s[:157] + "..."


# ---------------------------------------------------------------------------------------------
# The engines
# ---------------------------------------------------------------------------------------------


class Runner:
    """Runs every case on every engine under one work folder."""

    def __init__(self, work: Path, cases: list[Case] | None = None) -> None:
        self.work = Path(work)
        self.cases = cases if cases is not None else all_cases()
        self.compiled: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.obs: dict[tuple[str, str], list[dict[str, Any]] | Cell] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def rec_dir(self, case: Case, engine: str, n: int) -> Path:
        return self.work / "records" / case.name / engine / str(n)

    # -- flowc run -----------------------------------------------------------------------------

    def flowc_run(self, case: Case, ir: Any) -> list[dict[str, Any]]:
        from click.testing import CliRunner

        from flowc.compiler.cli import cli
        from flowc.runtime import executor

        plan = ir.to_data()
        real = executor.run_plan
        out = []
        for n, params in enumerate(case.runs):
            results: list[Any] = []

            def capture(*a: Any, results: list[Any] = results, **k: Any) -> Any:
                results.append(real(*a, **k))
                return results[-1]

            args = ["run", os.path.relpath(case.flow, REPO), "--root", str(self.work / "flowc")]
            args += [x for p in param_text(plan, params) for x in ("--param", p)]
            opts = case.options
            # a stack that runs elsewhere chooses the engine, not the behaviour: `flowc run`
            # refuses --stack with it, so the reference run uses the flow's default stack
            if opts.get("stack") and (ir.stack is None or ir.stack.target in (None, "local")):
                args += ["--stack", opts["stack"]]
            if opts.get("environment"):
                args += ["--env", opts["environment"]]
            folder = self.rec_dir(case, "flowc_run", n)
            executor.run_plan = capture
            cwd = os.getcwd()
            os.chdir(REPO)
            try:
                with environ({"FLOWC_CONFORMANCE_OUT": str(folder), **opts.get("env", {})}):
                    res = CliRunner().invoke(cli, args, catch_exceptions=True)
            finally:
                executor.run_plan = real
                os.chdir(cwd)
            if not results:
                raise RuntimeError(f"flowc run did not run: {res.output[-2000:]} {res.exception!r}")
            r = results[0]
            out.append(observation(case, plan, r.status, r.outputs, folder))
        return out

    # -- the compiled local module -------------------------------------------------------------

    def local_module(self, case: Case, ir: Any, files: dict[str, str]) -> list[dict[str, Any]]:
        import importlib.util

        plan = ir.to_data()
        ((rel, text),) = files.items()
        path = self.work / "local" / case.name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(f"conformance_{case.name}_flow", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = []
        for n, params in enumerate(case.runs):
            folder = self.rec_dir(case, "local_module", n)
            text_params = dict(p.split("=", 1) for p in param_text(plan, params))
            with environ({"FLOWC_CONFORMANCE_OUT": str(folder)}):
                r = mod.run(text_params, root=str(self.work / "local" / ".flowc"))
            out.append(observation(case, plan, r.status, r.outputs, folder))
        return out

    # -- kfp.local -----------------------------------------------------------------------------

    def kfp_local(self, case: Case, ir: Any, text: str, engine: str) -> list[dict[str, Any]]:
        from kfp import components, local

        from tests.test_kfp import _kfp_outputs

        plan = ir.to_data()
        spec = _yaml_docs(text)[0]
        drift = retry_policy_drift(spec, plan)
        if drift:  # as for Airflow: the spec already says the retries differ
            return Cell(case.name, engine, "differs", "; ".join(drift))
        root = self.work / "kfp-root"  # one pipeline root for every kfp.local run
        spec_path = self.work / engine / f"{case.name}.yaml"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(text, encoding="utf-8")
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=True,
        )
        comp = components.load_component_from_file(str(spec_path))
        out = []
        skip = NOT_RUNNABLE_RUNS.get((case.name, engine), (None, ""))[0]
        for n, params in enumerate(case.runs):
            if n == skip:
                out.append(None)
                continue
            folder = self.rec_dir(case, engine, n)
            before = set(root.iterdir()) if root.is_dir() else set()
            status = "success"
            with environ({"FLOWC_CONFORMANCE_OUT": str(folder)}):
                try:
                    comp(**params)
                except RuntimeError as e:  # kfp.local: "Task ... finished with status FAILURE"
                    if "FAILURE" not in str(e):
                        raise
                    status = "failed"
            (run_root,) = set(root.iterdir()) - before
            outputs = _kfp_outputs(spec, run_root)
            out.append(observation(case, plan, status, outputs, folder))
        return out

    # -- the Kubernetes driver -----------------------------------------------------------------

    def k8s(self, case: Case, ir: Any, files: dict[str, str], cluster: Any) -> list[dict]:
        import yaml
        from kubernetes import utils

        from flowc.runtime.k8s import api_client, drive

        plan = ir.to_data()
        docs = [d for d in yaml.safe_load_all(files["manifests.yaml"]) if d]
        api = api_client(str(cluster.kubeconfig))
        maps = [d for d in docs if d["kind"] == "ConfigMap"]
        ns = maps[0]["metadata"].get("namespace") or "default"
        for d in maps:
            utils.create_from_dict(api, d, namespace=ns)
        name = maps[0]["metadata"]["name"]
        store = _k8s_store(maps, cluster.workdir)
        out = []
        for n, params in enumerate(case.runs):
            folder = self.rec_dir(case, "k8s", n)
            run_id = f"c{n}-{case.name.replace('_', '-')}"[:40]
            args = ["--configmap", name, "--kubeconfig", str(cluster.kubeconfig)]
            args += ["--run-id", run_id, "--namespace", ns]
            args += [x for p in param_text(plan, params) for x in ("--param", p)]
            cwd = os.getcwd()
            os.chdir(cluster.workdir)
            try:
                env = {"FLOWC_CONFORMANCE_OUT": str(folder), "FLOWC_K8S_POLL": "0.2"}
                if store.pvc_root is not None:  # the driver writes where the pods read
                    env["FLOWC_ARTIFACT_ROOT"] = store.pvc_root
                with environ(env), _without("FLOWC_DRIVER_JOB"):
                    code = drive(args)
            finally:
                os.chdir(cwd)
            outputs = {}
            for step, data in plan["steps"].items():
                names = data.get("outputs") or []
                if names and all(store.exists(run_id, step, o) for o in names):
                    outputs[step] = {o: store.get(run_id, step, o) for o in names}
            out.append(
                observation(case, plan, "success" if code == 0 else "failed", outputs, folder)
            )
        return out

    # -- Airflow: one background process for all cases -----------------------------------------

    def start_airflow(self, jobs: list[tuple[Case, Any, str]]) -> Any:
        from tests.test_airflow_dags import _airflow_python, _env

        home = self.work / "airflow_home"
        (home / "dags").mkdir(parents=True, exist_ok=True)
        variables = home / "variables.json"
        variables.write_text(json.dumps(AIRFLOW_VARIABLES))
        spec = []
        for case, ir, text in jobs:
            f = home / "dags" / f"{case.name}.py"
            f.write_text(text, encoding="utf-8")
            plan = ir.to_data()
            delays = {
                s: float(d.get("retry_delay") or 0.0)
                for s, d in plan["steps"].items()
                if d.get("retries")
            }
            runs = [
                {
                    "conf": params or None,
                    "env": {"FLOWC_CONFORMANCE_OUT": str(self.rec_dir(case, "airflow", n))},
                }
                for n, params in enumerate(case.runs)
            ]
            spec.append(
                {"file": str(f), "runs": runs, "retry_delays": delays, "variables": str(variables)}
            )
        jobs_file = self.work / "airflow_jobs.json"
        jobs_file.write_text(json.dumps(spec))
        runner = Path(__file__).resolve().parent / "airflow_runner.py"
        log = open(self.work / "airflow.log", "w", encoding="utf-8")  # noqa: SIM115
        proc = subprocess.Popen(
            [_airflow_python(), str(runner), str(jobs_file)],
            env=_env(home, SECRET_ENV),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        return proc, log

    def finish_airflow(self, handle: Any, jobs: list[tuple[Case, Any, str]]) -> None:
        from tests.test_airflow_dags import airflow_outputs

        proc, log = handle
        t0 = time.monotonic()
        stdout, _ = proc.communicate(timeout=1800)
        self.seconds[("*", "airflow wait")] = time.monotonic() - t0
        log.close()
        result = None
        for line in stdout.splitlines():
            if line.startswith("FLOWC_HARNESS_RESULT "):
                result = json.loads(line.split(" ", 1)[1])
        (self.work / "airflow_result.json").write_text(json.dumps(result, indent=1))
        if result is None:
            tail = (self.work / "airflow.log").read_text()[-3000:]
            for case, _ir, _t in jobs:
                self.obs[(case.name, "airflow")] = Cell(case.name, "airflow", "error", tail)
            return
        for (case, ir, _t), res in zip(jobs, result, strict=True):
            if "runs" not in res:
                detail = res.get("not_run") or json.dumps(res.get("errors"))
                status = "differs" if "not_run" in res else "error"
                self.obs[(case.name, "airflow")] = Cell(case.name, "airflow", status, detail)
                continue
            plan = ir.to_data()
            obs = []
            for n, run in enumerate(res["runs"]):
                if run.get("state") == "error":
                    obs = Cell(case.name, "airflow", "error", run["error"])
                    break
                status = "success" if run["state"] == "success" else "failed"
                ok = {s.name for s in ir.steps if _airflow_ok(run["tis"], s.name)}
                # steps that did not succeed have no XCom: read only the others
                tis = {k: v if k.split("[")[0] in ok else "skipped" for k, v in run["tis"].items()}
                tis.update({s: "skipped" for s in plan["steps"] if s not in ok})
                try:
                    outputs = airflow_outputs(ir, {**run, "tis": tis})
                except (KeyError, ValueError, TypeError) as e:
                    outputs = {"<unreadable>": repr(e)}
                obs.append(
                    observation(case, plan, status, outputs, self.rec_dir(case, "airflow", n))
                )
            self.obs[(case.name, "airflow")] = obs

    # -- all of it -----------------------------------------------------------------------------

    def run(self) -> list[Cell]:
        from tests.k8s_fake_api import FakeCluster

        for case in self.cases:
            self.compiled[case.name] = compile_case(case)
        airflow_jobs = []
        for case in self.cases:
            ir, files = self.compiled[case.name]
            if (
                ir is None
                or ("airflow_pods" == case.name)
                or (case.name, "airflow") in NOT_RUNNABLE
            ):
                continue
            if isinstance(files["airflow"], dict):
                (text,) = files["airflow"].values()
                airflow_jobs.append((case, ir, text))
        from tests.plugin_services import gcs_emulator

        with (
            gcs_emulator(self.work / "gcs", GCS_BUCKET) as host,
            environ({**SECRET_ENV, "STORAGE_EMULATOR_HOST": host}),
        ):
            handle = self.start_airflow(airflow_jobs) if airflow_jobs else None
            try:
                with FakeCluster(self.work / "cluster") as cluster:
                    cluster.create_secret("default", "conformance", {"token": TOKEN})
                    cluster.create_secret("default", "api", {"token": "tok-from-airflow"})
                    cluster.create_secret(
                        "default", "secrets-secrets", {"DB_PASSWORD": "pw-from-env"}
                    )
                    for case in self.cases:
                        self._in_process(case, cluster)
                    self.rejected = list(cluster.rejected)
            finally:
                if handle is not None:
                    self.finish_airflow(handle, airflow_jobs)
        return self.cells()

    def _in_process(self, case: Case, cluster: Any) -> None:
        ir, files = self.compiled[case.name]
        for engine in ENGINES:
            if engine == "airflow":
                continue
            key = (case.name, engine)
            target = ENGINE_TARGET[engine]
            if ir is None:
                self.obs[key] = Cell(case.name, engine, "refused", files["local"])
                continue
            if target and isinstance(files[target], str):
                self.obs[key] = Cell(case.name, engine, "refused", files[target])
                continue
            if key in NOT_RUNNABLE:
                self.obs[key] = Cell(case.name, engine, "not runnable", NOT_RUNNABLE[key])
                continue
            t0 = time.monotonic()
            try:
                if engine == "flowc_run":
                    self.obs[key] = self.flowc_run(case, ir)
                elif engine == "local_module":
                    self.obs[key] = self.local_module(case, ir, files["local"])
                elif engine == "kfp":
                    self.obs[key] = self.kfp_local(case, ir, files["kfp"]["pipeline.yaml"], "kfp")
                elif engine == "vertex":
                    body = json.loads(files["vertex"]["pipeline_job.json"])
                    text = json.dumps(body["pipelineSpec"], indent=1)  # JSON is YAML
                    self.obs[key] = self.kfp_local(case, ir, text, "vertex")
                elif engine == "k8s":
                    self.obs[key] = self.k8s(case, ir, files["k8s"], cluster)
            except Exception as e:  # the engine could not run the compiled output
                self.obs[key] = Cell(case.name, engine, "error", f"{type(e).__name__}: {e}"[:2000])
            self.seconds[key] = time.monotonic() - t0

    def cells(self) -> list[Cell]:
        out = []
        for case in self.cases:
            ir, files = self.compiled[case.name]
            base = self.obs.get((case.name, "flowc_run"))
            for engine in ENGINES:
                key = (case.name, engine)
                got = self.obs.get(key)
                if key in NOT_RUNNABLE and not isinstance(got, Cell):
                    got = Cell(case.name, engine, "not runnable", NOT_RUNNABLE[key])
                if ir is not None and engine == "airflow" and got is None:
                    target_out = files["airflow"]
                    got = (
                        Cell(case.name, engine, "refused", target_out)
                        if isinstance(target_out, str)
                        else None
                    )
                if isinstance(got, Cell):
                    out.append(got)
                    continue
                if got is None or not isinstance(base, list):
                    out.append(Cell(case.name, engine, "error", "no observation"))
                    continue
                problems = []
                for n, (w, g) in enumerate(zip(base, got, strict=True)):
                    if g is not None:
                        problems += [f"run {n}{p}" for p in diff(w, g)]
                status = "pass" if not problems else "differs"
                detail = "\n".join(problems[:20])
                if status == "pass" and key in NOT_RUNNABLE_RUNS:
                    n, why = NOT_RUNNABLE_RUNS[key]
                    detail = f"run {n} ({_short(case.runs[n])}) not runnable here: {why}"
                out.append(Cell(case.name, engine, status, detail, got))
        return out


def retry_policy_drift(spec: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """Tasks whose ``retryPolicy`` does not say the flow's retries and delay (kfp's own compiler
    writes ``backoffDuration`` always, ``0s`` included, with ``backoffFactor`` 1)."""
    by_task = {name.replace("_", "-"): name for name in plan["steps"]}
    out = []
    dags = [spec["root"]] + [c for c in spec.get("components", {}).values() if "dag" in c]
    for comp in dags:
        for task, t in comp["dag"]["tasks"].items():
            step = by_task.get(task)
            if step is None or not plan["steps"][step].get("retries"):
                continue
            delay = float(plan["steps"][step].get("retry_delay") or 0.0)
            policy = t.get("retryPolicy") or {}
            want = {
                "maxRetryCount": plan["steps"][step]["retries"],
                "backoffDuration": f"{delay:g}s",
            }
            got = {k: policy.get(k) for k in want}
            if got != want:
                out.append(
                    f"task {task}: retryPolicy {_short(policy)}, the flow says {_short(want)}"
                )
    return out


def _k8s_store(maps: list[dict[str, Any]], workdir: Path) -> Any:
    """The artifact store the step pods wrote to, opened from outside the fake cluster (a PVC
    is a folder of the fake server's work dir)."""
    from flowc.runtime.k8s import open_store

    data = "".join(
        v for m in maps for k, v in sorted(m.get("data", {}).items()) if k.startswith("k8s.json")
    )
    config = json.loads(data)
    claims = re.findall(r'"claimName": ?"([^"]+)"', json.dumps(config.get("job")))
    pvc = claims[0] if claims else None
    root = workdir / ".fake-k8s" / "pvc" / pvc if pvc else workdir / ".flowc" / "artifacts"
    with environ({"FLOWC_ARTIFACT_ROOT": str(root)}):
        store = open_store(config)
    store.pvc_root = str(root) if pvc else None
    return store


def _airflow_ok(tis: dict[str, str], step: str) -> bool:
    """Whether a step's task (all its mapped instances, when mapped) succeeded."""
    if step in tis:
        return tis[step] == "success"
    mapped = [v for k, v in tis.items() if k.startswith(f"{step}[")]
    return bool(mapped) and all(v in ("success", "skipped") for v in mapped)


@contextmanager
def _without(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def _yaml_docs(text: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]


def build(work: Path, cases: list[Case] | None = None) -> tuple[list[Cell], float]:
    """Run the matrix under ``work``: ``(cells, wall seconds)``."""
    t0 = time.monotonic()
    cells = Runner(work, cases).run()
    return cells, time.monotonic() - t0
