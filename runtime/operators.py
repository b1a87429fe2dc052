"""Streaming operators (pypz): start every operator step of a run together, one process per
replica, drive each operator's lifecycle, and supervise them.

Lifecycle of one replica (a process, ``FLOWC_REPLICA``/``FLOWC_REPLICAS`` in its environment):

1. the user's class is built with the step's ``with:`` as keyword arguments (a constructor
   parameter missing from ``with:`` but named like a pipeline param takes that param: the
   pipeline -> operator cascade; ``ctx`` gets the step context);
2. ``self.ports[CHANNEL]`` is set for every produced / consumed channel (the channel's
   ``location`` reaches every port on it);
3. ``on_init()`` (called again while it returns ``False``), then ``on_running()`` until it returns
   ``True`` or returns ``None`` while every consumed port is ``done`` (an operator without
   consumed ports that returns ``None`` finishes); the records retrieved during one
   ``on_running`` call are acknowledged once it returns;
4. ``on_shutdown()``; its output ports are closed and it is marked finished.

``on_interrupt(signal)`` is called on SIGTERM / SIGINT (the replica then stops), ``on_error(exc)``
when a hook raises. When one replica fails, the others are interrupted and
:func:`run_operators` raises :class:`OperatorError` with the first error. pypz spellings
(``_on_init`` ...) are accepted too. Hooks are optional.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import channels as ch
from flowc.runtime.plan import Plan

HOOKS = ("on_init", "on_running", "on_shutdown", "on_interrupt", "on_error")
GRACE_SECONDS = 10.0
"""How long interrupted replicas get to shut down before they are killed."""


class OperatorError(Exception):
    """An operator replica failed; ``step``/``replica`` name it, the message is its error."""

    def __init__(self, step: str, replica: int, message: str):
        self.step = step
        self.replica = replica
        self.message = message
        super().__init__(f"operator '{step}' (replica {replica}) failed: {message}")


class Interrupted(BaseException):
    """Raised inside a replica when it receives SIGTERM / SIGINT."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Operator:
    """An optional base class: every hook is a no-op; ``ports`` is set by the runtime."""

    ports: dict[str, Any]

    def on_init(self) -> bool | None:
        return True

    def on_running(self) -> bool | None:
        return None

    def on_shutdown(self) -> bool | None:
        return True

    def on_interrupt(self, system_signal: int | None = None) -> None:
        return None

    def on_error(self, error: BaseException | None = None) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Helpers shared by the parent and the replicas
# ---------------------------------------------------------------------------------------------


def _get(run: Any, key: str, default: Any = None) -> Any:
    if isinstance(run, Mapping):
        return run.get(key, default)
    value = getattr(run, key, None)
    if value is None:
        extra = getattr(run, "extra", None) or {}
        value = extra.get(key, default) if isinstance(extra, Mapping) else default
    return default if value is None else value


def run_dir_of(run: Any) -> Path:
    """The run's folder: ``run.run_dir`` (or ``extra["run_dir"]``), else ``ROOT/runs/RUN_ID``."""
    explicit = _get(run, "run_dir")
    if explicit:
        return Path(explicit)
    return Path(_get(run, "root", ".flowc")) / "runs" / str(_get(run, "run_id", "run"))


def channel_db(plan: Plan, run_dir: Path) -> Path:
    """The local transport's database of a run."""
    return run_dir / ch.DB_NAME


def replicas_of(plan: Plan, step: str) -> int:
    return max(1, int(plan["steps"][step].get("replicas") or 1))


def channel_spec(plan: Plan, name: str, location: str | None, run_id: str) -> ch.ChannelSpec:
    data = plan["channels"][name]
    return ch.ChannelSpec(
        name,
        data["schema"],
        transport=data.get("transport") or "local",
        location=location,
        producers={p: replicas_of(plan, p) for p in data.get("producers") or []},
        consumers={c: replicas_of(plan, c) for c in data.get("consumers") or []},
        flow=str(plan.get("name") or "flow"),
        run_id=run_id,
    )


def _call_hook(obj: Any, name: str, *args: Any) -> Any:
    fn = getattr(obj, name, None) or getattr(obj, f"_{name}", None)
    if fn is None:
        return None
    if args:
        try:
            sig = inspect.signature(fn)
            positional = [
                p
                for p in sig.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            ]
            if not positional:
                args = ()
        except (TypeError, ValueError):
            pass
    return fn(*args)


def load_class(ref: str) -> type:
    """``"pkg.mod:Class"`` -> the class."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{ref}' is not a 'module:Class' reference")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"'{ref}' is not a class")
    return obj


def constructor_parameters(cls: type) -> tuple[list[str], list[str], bool]:
    """(required, optional, accepts **kwargs) of an operator class's constructor: the operator's
    own parameters (checked at compile time against ``with:`` and the pipeline params)."""
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return [], [], True
    required: list[str] = []
    optional: list[str] = []
    var_kw = False
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL or p.name == "ctx":
            continue
        elif p.default is p.empty:
            required.append(p.name)
        else:
            optional.append(p.name)
    return required, optional, var_kw


# ---------------------------------------------------------------------------------------------
# One replica (the child process)
# ---------------------------------------------------------------------------------------------


def _inputs(spec: Mapping[str, Any], step: str) -> Any:
    from flowc.runtime.step import Inputs

    return Inputs(
        spec["plan"],
        step,
        params=spec.get("params") or {},
        upstream=spec.get("upstream") or {},
        run_id=spec["run_id"],
        run_date=spec.get("run_date"),
    )


def _build(spec: Mapping[str, Any], step: str, replica: int) -> tuple[Any, Any]:
    plan = spec["plan"]
    data = plan["steps"][step]
    inputs = _inputs(spec, step)
    cls = load_class(data["run"])
    kwargs = inputs.kwargs(data)
    required, optional, _ = constructor_parameters(cls)
    params = spec.get("params") or {}
    for name in [*required, *optional]:  # pipeline -> operator cascade
        if name not in kwargs and name in params:
            kwargs[name] = params[name]
    try:
        wants_ctx = "ctx" in inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    except (TypeError, ValueError):
        wants_ctx = False
    if wants_ctx:
        from flowc.runtime.context import Context

        kwargs["ctx"] = Context(
            run_id=spec["run_id"],
            step=step,
            flow=str(plan.get("name")),
            params=dict(params),
            run_date=spec.get("run_date"),
            replica=replica,
            replicas=replicas_of(plan, step),
        )
    return cls(**kwargs), inputs


def _open_ports(
    spec: Mapping[str, Any], step: str, replica: int, inputs: Any
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    plan = spec["plan"]
    data = plan["steps"][step]
    cons: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    ins: dict[str, Any] = {}
    owner = f"{step}/{replica}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    for direction, names in (
        ("out", data.get("produces") or []),
        ("in", data.get("consumes") or []),
    ):
        for name in names:
            loc_enc = plan["channels"][name].get("location")
            location = os.environ.get(f"{ch.env_prefix(name)}_LOCATION") or (
                None if loc_enc is None else inputs.eval(loc_enc)
            )
            cspec = channel_spec(
                plan, name, None if location is None else str(location), spec["run_id"]
            )
            if cspec.transport == "kafka":
                ch.ensure_kafka_topics(cspec)  # idempotent: pods may start in any order
                port: Any = (
                    ch.KafkaOutputPort(cspec, step, replica)
                    if direction == "out"
                    else ch.KafkaInputPort(cspec, step, replica)
                )
            else:
                db = cspec.location or spec["db"]
                if db not in cons:
                    cons[db] = ch.connect(db)
                con = cons[db]
                port = (
                    ch.LocalOutputPort(cspec, con, step, replica, capacity=int(spec["capacity"]))
                    if direction == "out"
                    else ch.LocalInputPort(cspec, con, step, replica, owner)
                )
            (outputs if direction == "out" else ins)[name] = port
    return outputs, ins, cons


def run_replica(spec: Mapping[str, Any], step: str, replica: int) -> int:
    """Run one replica to its end; the exit code of the process (0 ok, 1 failed, 143 stopped)."""
    db = spec["db"]
    status_path = Path(spec["status_dir"]) / f"{step}.{replica}.json"
    obj: Any = None
    outputs: dict[str, Any] = {}
    ins: dict[str, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ch.set_instance_state(db, step, replica, "running")
    try:
        _die_with_parent(spec.get("parent_pid"))
        obj, inputs = _build(spec, step, replica)
        outputs, ins, _con = _open_ports(spec, step, replica, inputs)
        obj.ports = {**outputs, **ins}
        while _call_hook(obj, "on_init") is False:
            time.sleep(0.05)
        idle = 0.002
        counter = _KafkaCounter(db, step, replica, {**outputs, **ins})
        while True:
            before = sum(p.retrieved for p in ins.values())
            result = _call_hook(obj, "on_running")
            for p in ins.values():
                counter.acked(p.name, p.ack())
            counter.flush()
            if result is True:
                break
            got = sum(p.retrieved for p in ins.values()) - before
            if result is None and all(p.done for p in ins.values()):
                break
            if got == 0 and ins:
                time.sleep(idle)  # nothing arrived: do not spin
                idle = min(idle * 2, 0.01)
            else:
                idle = 0.002
        _call_hook(obj, "on_shutdown")
        for p in outputs.values():
            p.close()
        for p in ins.values():
            p.close()
        counter.flush(force=True)
        ch.set_instance_state(db, step, replica, "finished")
        _write_status(status_path, {"state": "finished"})
        return 0
    except Interrupted as e:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if obj is not None:
            with contextlib.suppress(Exception):
                _call_hook(obj, "on_interrupt", e.signum)
            with contextlib.suppress(Exception):
                _call_hook(obj, "on_shutdown")
        ch.set_instance_state(db, step, replica, "interrupted")
        _write_status(status_path, {"state": "interrupted"})
        return 128 + e.signum
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        if not isinstance(e, ch.SchemaViolation):
            traceback.print_exc()
        print(f"flowc: operator '{step}' (replica {replica}) failed: {message}", file=sys.stderr)
        if obj is not None:
            with contextlib.suppress(Exception):
                _call_hook(obj, "on_error", e)
        ch.set_instance_state(db, step, replica, "failed", message)
        _write_status(status_path, {"state": "failed", "error": message})
        return 1


class _KafkaCounter:
    """The sniffer's counters for kafka ports, written to the run's database at most twice a
    second (the local transport counts in its own transactions)."""

    def __init__(self, db: str, step: str, replica: int, ports: Mapping[str, Any]):
        self.db, self.step, self.replica = db, step, replica
        self.kafka = {n: p for n, p in ports.items() if getattr(p, "transport", "") == "kafka"}
        self.sent = {n: 0 for n in self.kafka}
        self.pending: dict[tuple[str, str], int] = {}
        self.last = time.monotonic()

    def acked(self, channel: str, n: int) -> None:
        if channel in self.kafka and n:
            self.pending[(channel, "in")] = self.pending.get((channel, "in"), 0) + n

    def flush(self, force: bool = False) -> None:
        if not self.kafka or (not force and time.monotonic() - self.last < 0.5):
            return
        for n, p in self.kafka.items():
            if hasattr(p, "sent") and p.sent > self.sent[n]:
                self.pending[(n, "out")] = p.sent - self.sent[n]
                self.sent[n] = p.sent
        ch.bump_port_stats(self.db, self.step, self.pending, self.replica)
        self.pending = {}
        self.last = time.monotonic()


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: get SIGTERM when the supervising process dies (even by SIGKILL), so no replica
    outlives its run."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if parent_pid and os.getppid() != parent_pid:  # it died before prctl took effect
        raise Interrupted(signal.SIGTERM)


def _write_status(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def child_main(argv: list[str] | None = None) -> int:
    """``python -m flowc.runtime.operators SPEC.json STEP REPLICA`` (a replica started by
    :func:`run_operators`), or ``python -m flowc.runtime.operators --plan PLAN.json --step STEP
    [--param k=v]... [--root DIR]`` (one replica on its own, e.g. a Kubernetes pod: replica from
    ``FLOWC_REPLICA``, run id from ``FLOWC_RUN_ID``, params from the plan's defaults)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0].startswith("--"):
        import argparse

        ap = argparse.ArgumentParser(prog="python -m flowc.runtime.operators")
        ap.add_argument("--plan", required=True)
        ap.add_argument("--step", required=True)
        ap.add_argument("--param", action="append", default=[], metavar="K=V")
        ap.add_argument("--root", default=".flowc")
        ns = ap.parse_args(args)
        from flowc.runtime.k8s import read_mounted  # a mounted plan may be split in parts

        plan = json.loads(read_mounted(ns.plan))
        if ns.step not in plan.get("steps", {}) or not plan["steps"][ns.step].get("operator"):
            print(f"flowc: '{ns.step}' is not an operator step of this plan", file=sys.stderr)
            return 2
        from flowc.runtime import params as params_mod

        try:
            params = params_mod.resolve(plan, params_mod.parse_cli(plan, ns.param))
        except Exception as e:
            print(f"flowc: {e}", file=sys.stderr)
            return 1
        run_id = os.environ.get("FLOWC_RUN_ID") or "run"
        run_dir = Path(ns.root) / "runs" / run_id
        spec = {
            "plan": plan,
            "params": params,
            "run_id": run_id,
            "run_date": None,
            "upstream": {},
            "db": str(run_dir / ch.DB_NAME),
            "status_dir": str(run_dir / "operators"),
            "capacity": int(os.environ.get("FLOWC_CHANNEL_CAPACITY") or ch.DEFAULT_CAPACITY),
            "parent_pid": None,
        }
        return run_replica(spec, ns.step, int(os.environ.get("FLOWC_REPLICA") or 0))
    if len(args) != 3:
        print("usage: python -m flowc.runtime.operators SPEC.json STEP REPLICA", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return run_replica(spec, args[1], int(args[2]))


# ---------------------------------------------------------------------------------------------
# The supervisor (the parent)
# ---------------------------------------------------------------------------------------------


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
            procs[(step, r)] = subprocess.Popen(
                [sys.executable, "-m", "flowc.runtime.operators", str(spec_path), step, str(r)],
                env=env,
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


if __name__ == "__main__":
    from flowc.runtime.operators import child_main as _main

    sys.exit(_main())
