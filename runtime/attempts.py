"""Running one step instance of a local run: its attempts with retries and delays, in the
calling pool thread (:func:`flowc.runtime.step.execute`) or as child processes
(``python -m flowc.runtime step``, one per replica, killed on timeout or interrupt); the log
files of attempts, and masking of known secret values in errors, tracebacks and logs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from flowc.runtime import step as step_mod
from flowc.runtime.masking import file_writer, pump
from flowc.runtime.plan import Plan, StepData
from flowc.runtime.run_state import StepFailure, upstream_outputs
from flowc.runtime.skip import Skip
from flowc.runtime.step_command import die_with_runner
from flowc.runtime.store import atomic_write

_DRAIN_SECONDS = 5.0


class _Failed(Exception):
    def __init__(self, failure: StepFailure, attempts: list[dict[str, Any]]):
        self.failure = failure
        self.attempts = attempts
        super().__init__(failure.render())


class _Skipped(Exception):
    """The instance was skipped (:class:`flowc.runtime.Skip`): not retried, outputs null."""

    def __init__(self, reason: str, attempts: list[dict[str, Any]]):
        self.reason = reason
        self.attempts = attempts
        super().__init__(reason)


def retry_delay(data: Mapping[str, Any] | StepData, attempt: int) -> float:
    """Seconds to wait before ``attempt`` (2 = the first retry): ``retry_delay *
    retry_backoff ** (attempt - 2)``, at most ``retry_max_delay``."""
    d = cast(Mapping[str, Any], data)
    delay = float(d.get("retry_delay") or 0.0)
    backoff = float(d.get("retry_backoff") or 1.0)
    value = delay * backoff ** max(attempt - 2, 0)
    cap = d.get("retry_max_delay")
    return value if cap is None else min(value, float(cap))


class _ChildError(Exception):
    def __init__(self, type_name: str, message: str, tb: str):
        self.type_name = type_name
        self.message = message
        self.tb = tb
        super().__init__(message)


class AttemptRunner:
    """Runs the attempts of step instances for one run (from several pool threads at once).

    ``outputs`` is the run's ``{step: outputs}`` (read for upstream values); ``ctx_values`` the
    run services' context values, filled in once the services are up."""

    def __init__(
        self,
        plan: Plan,
        *,
        params: Mapping[str, Any],
        run_id: str,
        run_date: str | None,
        root: Path,
        outputs: Mapping[str, dict[str, Any]],
        secret_resolver: step_mod.SecretResolver | None,
        secret_values: list[str],
        emit: Callable[..., None],
        previous_attempts: Mapping[tuple[str, str | None], int] | None = None,
    ) -> None:
        self.plan = plan
        self.params = params
        self.run_id = run_id
        self.run_date = run_date
        self.root = root
        self.outputs = outputs
        self.secret_resolver = secret_resolver
        self.secret_values = secret_values
        self.emit = emit
        # resume: attempts go on numbering from the run's recorded ones (a new log each)
        self.previous_attempts = dict(previous_attempts or {})
        self.ctx_values: dict[str, Any] = {}
        self._run_dir = os.path.join(str(root), "runs", run_id)  # step folders, plan
        self._plan_path: Path | None = None
        self._plan_lock = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """The run is interrupted: no new attempt or retry starts; child processes are killed."""
        self._stopping.set()
        for proc in list(self._children):
            step_mod._kill_group(proc)

    def run(
        self,
        name: str,
        data: StepData,
        index: int | None,
        item: Any,
        upstream: Mapping[str, Mapping[str, Any]] | None = None,
        run_extra: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run the instance's attempts; return ``(outputs, attempt records)``. Raises
        ``_Failed`` after the last failed attempt, ``_Skipped`` when the instance skipped
        itself. ``upstream``: its upstream values (default: the run's outputs of its upstream
        steps); ``run_extra``: more ``run.*`` values (finally steps)."""
        retries = int(data.get("retries") or 0)
        records: list[dict[str, Any]] = []
        if upstream is None:
            upstream = upstream_outputs(self.outputs, data)
        instance = None if index is None else str(index)
        base = self.previous_attempts.get((name, instance), 0)
        for attempt in range(base + 1, base + retries + 2):
            started = time.time()
            log = self._log_path(name, index, attempt)
            try:
                outs = self._attempt(name, data, index, item, attempt, log, upstream, run_extra)
            except Skip as e:
                reason = self.mask(str(e.reason or e) or "skipped by the step")
                records.append(
                    {
                        "instance": instance,
                        "attempt": attempt,
                        "status": "skipped",
                        "started": started,
                        "ended": time.time(),
                        "error": reason,
                        "log": log if self._log_written(data) else None,
                    }
                )
                raise _Skipped(reason, records) from None
            except (Exception, SystemExit) as e:  # sys.exit() in a step fails the step only
                err, tb = self.describe(e)
                self._append_log(log, tb)
                records.append(
                    {
                        "instance": instance,
                        "attempt": attempt,
                        "status": "failed",
                        "started": started,
                        "ended": time.time(),
                        "error": err,
                        "log": log,
                    }
                )
                if attempt - base <= retries and not self._stopping.is_set():
                    self.emit(name, "retry", attempt=attempt, error=err)
                    delay = retry_delay(data, attempt - base + 1)
                    if not (delay and self._stopping.wait(delay)):
                        continue
                failure = StepFailure(name, attempt, err, log, instance, tb)
                raise _Failed(failure, records) from None
            records.append(
                {
                    "instance": instance,
                    "attempt": attempt,
                    "status": "success",
                    "started": started,
                    "ended": time.time(),
                    "log": log if self._log_written(data) else None,
                }
            )
            return outs, records
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        name: str,
        data: StepData,
        index: int | None,
        item: Any,
        attempt: int,
        log: str,
        upstream: Mapping[str, Mapping[str, Any]],
        run_extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if not _runs_isolated(data):
            return step_mod.execute(
                self.plan,
                name,
                params=self.params,
                upstream=upstream,
                run_id=self.run_id,
                run_date=self.run_date,
                item=item,
                ctx_extra={**self.ctx_values, "artifact_dir": os.path.join(self._run_dir, name)},
                secret_resolver=self.secret_resolver,
                log_path=log,
                timeout=data.get("timeout"),
                attempt=attempt,
                index=index,
                mask_values=self.secret_values,
                run_extra=run_extra,
            )
        return self._isolated(name, data, index, item, attempt, log, upstream, run_extra)

    def _isolated(
        self,
        name: str,
        data: StepData,
        index: int | None,
        item: Any,
        attempt: int,
        log: str,
        upstream: Mapping[str, Mapping[str, Any]],
        run_extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Run the attempt as ``replicas`` child processes; kill them all on timeout."""
        replicas = int(data.get("replicas") or 1)
        if self._stopping.is_set():
            raise step_mod.StepError(name, "the run was interrupted")
        plan_path = self._write_plan()
        step_dir = Path(self._run_dir, name)
        step_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": _child_pythonpath(),
            "FLOWC_PARENT_PID": str(os.getpid()),
        }
        timeout = data.get("timeout")
        procs = []
        files: list[Any] = []
        pumps: list[threading.Thread] = []
        tag = ("" if index is None else f"{index}-") + f"a{attempt}"
        for r in range(replicas):
            replica = r if replicas > 1 else None
            rtag = tag + ("" if replica is None else f"-r{replica}")
            inp, out = step_dir / f".{rtag}.in.pkl", step_dir / f".{rtag}.out.pkl"
            payload: dict[str, Any] = {
                "params": self.params,
                "upstream": dict(upstream),
                "run_id": self.run_id,
                "run_date": self.run_date,
                "index": index,
                "replica": replica,
                "attempt": attempt,
                "artifact_dir": str(step_dir),
                "root": str(self.root),
                "timeout": timeout,
            }
            if run_extra:
                payload["run_extra"] = dict(run_extra)
            if item is not step_mod.MISSING:
                payload["item"] = item
            atomic_write(inp, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
            out.unlink(missing_ok=True)
            rlog = Path(log if replica is None else log.replace(".log", f".r{replica}.log"))
            rlog.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "flowc.runtime", "step", "--plan", str(plan_path)]
            argv += ["--step", name, "--inputs", str(inp), "--outputs", str(out)]
            fh = open(rlog, "ab")  # noqa: SIM115 - closed once the pump is done
            files.append(fh)
            # everything the process writes (its subprocesses, raw fd writes included) goes
            # through a pipe and is masked here while it is written
            read_end, write_end = os.pipe()
            try:
                proc = subprocess.Popen(  # noqa: S603
                    argv,
                    stdout=write_end,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=die_with_runner(),  # noqa: PLW1509 - only prctl and getppid
                )
            except OSError:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)
            pumps.append(pump(read_end, file_writer(fh), self.secret_values))
            self._children.add(proc)
            procs.append((proc, inp, out, rlog))
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        results: list[dict[str, Any]] = []
        try:
            for proc, _inp, out, _rlog in procs:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    rc = proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    raise step_mod.StepError(
                        name, f"timed out after {timeout or 0.0:g}s (process killed)"
                    ) from None
                try:
                    value = pickle.loads(out.read_bytes())  # noqa: S301
                except (OSError, EOFError, pickle.UnpicklingError):
                    raise step_mod.StepError(
                        name, f"step process exited with code {rc} and wrote no outputs"
                    ) from None
                if isinstance(value, dict) and "$skip" in value:
                    raise Skip(str(value["$skip"]))
                if isinstance(value, dict) and "$error" in value:
                    e = value["$error"]
                    raise _ChildError(e["type"], e["message"], e["traceback"])
                results.append(value)
        finally:
            for proc, inp, out, _rlog in procs:
                if proc.poll() is None:
                    step_mod._kill_group(proc)
                self._children.discard(proc)
                inp.unlink(missing_ok=True)
                out.unlink(missing_ok=True)
            for thread in pumps:
                thread.join(_DRAIN_SECONDS)  # a daemon it left may keep the pipe open
            for fh in files:
                fh.close()
        if replicas == 1:
            return results[0]
        declared = list(data.get("outputs") or ())
        return {o: [r[o] for r in results] for o in declared}

    def _log_path(self, name: str, index: int | None, attempt: int) -> str:
        prefix = "" if index is None else f"item-{index}."
        return os.path.join(self._run_dir, name, f"{prefix}attempt-{attempt}.log")

    def _write_plan(self) -> Path:
        with self._plan_lock:
            if self._plan_path is None:
                path = Path(self._run_dir, "plan.json")
                atomic_write(path, json.dumps(self.plan, indent=1).encode("utf-8"))
                self._plan_path = path
            return self._plan_path

    def describe(self, e: BaseException) -> tuple[str, str]:
        if isinstance(e, _ChildError):
            return self.mask(f"{e.type_name}: {e.message}"), self.mask(e.tb)
        if isinstance(e, step_mod.StepError):
            text = e.message
        else:
            text = f"{type(e).__name__}: {e}"
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return self.mask(text), self.mask(tb)

    def mask(self, text: str) -> str:
        return step_mod.mask(text, self.secret_values)

    @staticmethod
    def _log_written(data: StepData) -> bool:
        """Whether the attempt just run in this thread wrote its log (a child process's log
        file always exists; a command always writes one)."""
        return _runs_isolated(data) or step_mod.log_was_written()

    def _append_log(self, log: str, text: str) -> None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(text)


def _runs_isolated(data: StepData) -> bool:
    """Whether a step's attempts run as child processes (``python -m flowc.runtime step``):
    replicas; a callable with a timeout (to be killable) or an ``env:`` (its own environment).
    A command is its own process already: it runs in-thread unless it has replicas."""
    if int(data.get("replicas") or 1) > 1:
        return True
    return data.get("kind") != "command" and (
        data.get("timeout") is not None or bool(data.get("env"))
    )


def _child_pythonpath() -> str:
    """This process' import path for child processes (user modules found here are found
    there: the flow's folder, the current directory, PYTHONPATH)."""
    parts = [os.getcwd(), *(os.path.abspath(p) for p in sys.path if p and os.path.isdir(p))]
    return os.pathsep.join(dict.fromkeys(parts))
