"""The operator supervisor (the parent): start every operator replica of a run as a process,
prepare Kafka topics, watch the replicas' status files and timeouts, interrupt the rest when
one fails, and stop them all on :func:`interrupt_all`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import channels as ch
from flowc.runtime.operator_base import (
    GRACE_SECONDS,
    OperatorError,
    _get,
    _inputs,
    channel_db,
    channel_spec,
    replicas_of,
    run_dir_of,
)
from flowc.runtime.plan import Plan


def run_operators(
    plan: Plan,
    step_names: Iterable[str],
    run: Any,
    *,
    capacity: int | None = None,
    on_start: Any = None,
) -> dict[str, dict[str, Any]]:
    """Start every replica of every operator step in ``step_names`` together and wait for all.

    ``run`` is a :class:`flowc.runtime.services.RunInfo` or anything with ``run_id``, ``params``,
    ``run_date``, ``root`` / ``run_dir`` and optionally ``upstream`` (``{step: {output: value}}``
    of non-operator steps the operators' ``with:`` refers to), as attributes, ``extra`` keys or
    mapping keys. Replicas recorded ``finished`` in the run's channel database by an earlier
    attempt of the same run are not started again; records they retrieved but did not acknowledge
    are redelivered. Returns ``{step: {}}`` (operators have no outputs); raises
    :class:`OperatorError` when a replica fails.
    """
    steps = list(step_names)
    run_id = str(_get(run, "run_id", "run"))
    run_dir = run_dir_of(run).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    db = channel_db(plan, run_dir)
    states = ch.prepare_local(db)
    status_dir = run_dir / "operators"
    status_dir.mkdir(parents=True, exist_ok=True)
    cap = capacity or int(os.environ.get("FLOWC_CHANNEL_CAPACITY") or ch.DEFAULT_CAPACITY)
    spec = {
        "plan": plan,
        "params": dict(_get(run, "params", {}) or {}),
        "run_id": run_id,
        "run_date": _get(run, "run_date"),
        "upstream": dict(_get(run, "upstream", {}) or {}),
        "db": str(db),
        "status_dir": str(status_dir),
        "capacity": cap,
        "parent_pid": os.getpid(),
    }
    spec_path = status_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, default=str), encoding="utf-8")
    _prepare_kafka(plan, steps, spec)

    procs: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
    for step in steps:
        n = replicas_of(plan, step)
        for r in range(n):
            if states.get((step, r)) == "finished":
                continue
            status = status_dir / f"{step}.{r}.json"
            status.unlink(missing_ok=True)
            env = dict(os.environ)
            env["PYTHONPATH"] = _child_pythonpath()
            env.update(_step_env(spec, step))
            env["FLOWC_REPLICA"] = str(r)
            env["FLOWC_REPLICAS"] = str(n)
            env["FLOWC_RUN_ID"] = run_id
            log = replica_log(run_dir, step, r)
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:  # the replica's stdout and stderr, kept with the run
                procs[(step, r)] = subprocess.Popen(
                    [sys.executable, "-m", "flowc.runtime.operators", str(spec_path), step, str(r)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
    if on_start is not None:
        on_start({k: p.pid for k, p in procs.items()})
    failure: tuple[str, int, str] | None = None
    interrupted = False
    stop = threading.Event()
    _ACTIVE.add(stop)
    try:
        timeouts = {
            s: float(t) for s in steps if (t := plan["steps"][s].get("timeout")) is not None and t
        }
        failure = _supervise(procs, status_dir, stop, timeouts)
    except KeyboardInterrupt:
        interrupted = True
        _stop(procs)
    finally:
        _ACTIVE.discard(stop)
    if failure is not None:
        raise OperatorError(*failure)
    if interrupted:
        raise KeyboardInterrupt
    return {s: {} for s in steps}


def replica_log(run_dir: Path, step: str, replica: int) -> Path:
    """Where one operator replica's output is kept: ``RUN_DIR/STEP/operator.rR.log`` (appended
    to when a resumed run starts the replica again)."""
    return run_dir / step / f"operator.r{replica}.log"


def _child_pythonpath() -> str:
    """The replicas import what this process can: its ``sys.path`` entries outside the Python
    installation (e.g. the flow file's folder ``flowc run`` adds) go before ``$PYTHONPATH``."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = []
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if any(real == q or real.startswith(q + os.sep) for q in prefixes):
            continue
        if p not in extra:
            extra.append(os.path.abspath(p))
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([*extra, *current]))


_ACTIVE: set[threading.Event] = set()


def interrupt_all() -> None:
    """Interrupt every replica of every :func:`run_operators` call in this process (SIGTERM:
    ``on_interrupt``, then ``on_shutdown``); those calls then raise :class:`OperatorError`. For a
    caller whose main thread catches Ctrl-C while run_operators runs in a worker thread."""
    for event in list(_ACTIVE):
        event.set()


def _step_env(spec: Mapping[str, Any], step: str) -> dict[str, str]:
    data = spec["plan"]["steps"][step]
    if not data.get("env"):
        return {}
    return _inputs(spec, step).env(data)


def _prepare_kafka(plan: Plan, steps: list[str], spec: Mapping[str, Any]) -> None:
    done: set[str] = set()
    for step in steps:
        data = plan["steps"][step]
        for name in [*(data.get("produces") or []), *(data.get("consumes") or [])]:
            cdata = plan["channels"][name]
            if name in done or (cdata.get("transport") or "local") != "kafka":
                continue
            done.add(name)
            loc = cdata.get("location")
            location = None if loc is None else _inputs(spec, step).eval(loc)
            ch.ensure_kafka_topics(
                channel_spec(
                    plan, name, None if location is None else str(location), spec["run_id"]
                )
            )


def _failure_of(status_dir: Path, step: str, r: int, rc: int) -> tuple[str, int, str]:
    path = status_dir / f"{step}.{r}.json"
    message = f"exited with code {rc}"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        message = data.get("error") or message
    if rc < 0:
        message = f"killed by {signal.Signals(-rc).name}"
    return step, r, message


def _supervise(
    procs: dict[tuple[str, int], subprocess.Popen[bytes]],
    status_dir: Path,
    stop: threading.Event,
    timeouts: Mapping[str, float] | None = None,
) -> tuple[str, int, str] | None:
    live = dict(procs)
    failure: tuple[str, int, str] | None = None
    in_worker = threading.current_thread() is not threading.main_thread()
    started = time.monotonic()
    while live:
        if stop.is_set() or (in_worker and not threading.main_thread().is_alive()):
            # interrupt_all() (e.g. Ctrl-C in `flowc run`) or the caller's main thread ended
            _stop(live)
            return failure or ("<operators>", 0, "interrupted")
        elapsed = time.monotonic() - started
        limits = timeouts or {}
        late = [k for k in live if limits.get(k[0]) and elapsed > limits[k[0]]]
        if late and failure is None:  # a step's `timeout:` bounds its replicas' whole life
            step, replica = late[0]
            failure = (step, replica, f"timed out after {timeouts[step]:g}s")  # type: ignore[index]
            _stop(live)
        for key, p in list(live.items()):
            rc = p.poll()
            if rc is None:
                continue
            del live[key]
            if rc != 0 and failure is None:
                failure = _failure_of(status_dir, key[0], key[1], rc)
                _stop(live)  # one failed: interrupt the others
        if live:
            time.sleep(0.05)
    return failure


def _stop(procs: Mapping[tuple[str, int], subprocess.Popen[bytes]]) -> None:
    for p in procs.values():
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for p in procs.values():
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
