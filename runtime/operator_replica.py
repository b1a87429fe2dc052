"""One operator replica, in its own process (``python -m flowc.runtime.operators``): build the
operator, open its ports, drive its lifecycle (init, running, shutdown; interrupt and error
hooks), write its status file, and die with its parent."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowc.runtime import channels as ch
from flowc.runtime.operator_base import (
    Interrupted,
    _call_hook,
    _inputs,
    channel_spec,
    constructor_parameters,
    declared_parameters,
    load_class,
    operator_signature,
    replicas_of,
)
from flowc.runtime.step_common import known_secret_values, mask

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """An operator's logger level, as pypz's logger plugins have it (default INFO, one level per
    operator): the step's ``log_level:``, else ``$LOG_LEVEL`` (the step's ``env:`` is in the
    replica's environment), else INFO. An unknown ``$LOG_LEVEL`` counts as unset."""
    env = os.environ if environ is None else environ
    for value in (data.get("log_level"), env.get("LOG_LEVEL")):
        if value and str(value).upper() in LOG_LEVELS:
            return str(value).upper()
    return "INFO"


def operator_logger(step: str, replica: int, level: str) -> logging.Logger:
    """``ctx.logger`` and ``get_logger()`` of one replica: lines on its stdout (the replica's log
    under the run folder), at ``level`` and above."""
    logger = logging.Logger(f"flowc.{step}.r{replica}")  # not registered globally
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger


class _MaskedStream(io.TextIOBase):
    """A text stream that writes to ``base`` with every secret value replaced by ``***``."""

    def __init__(self, base: Any, secrets: list[str]):
        self.base = base
        self.secrets = secrets

    def write(self, text: str) -> int:
        self.base.write(mask(text, self.secrets))
        return len(text)

    def flush(self) -> None:
        self.base.flush()


def _mask_output(plan: Mapping[str, Any]) -> None:
    """Mask the plan's secrets readable here in what the replica prints (Python-level writes;
    output a library writes to the file descriptors directly is not masked)."""
    secrets = known_secret_values(plan)  # type: ignore[arg-type]
    if secrets:
        sys.stdout = _MaskedStream(sys.stdout, secrets)
        sys.stderr = _MaskedStream(sys.stderr, secrets)


def _build(spec: Mapping[str, Any], step: str, replica: int) -> tuple[Any, Any]:
    plan = spec["plan"]
    data = plan["steps"][step]
    logger = operator_logger(step, replica, log_level(data))
    inputs = _inputs(spec, step)
    cls = load_class(data["run"])
    _named, aliases, _ = operator_signature(cls)
    kwargs = {aliases.get(k, k): v for k, v in inputs.kwargs(data).items()}
    required, optional, _ = constructor_parameters(cls)
    declared = declared_parameters(cls)
    params = spec.get("params") or {}
    for name in [*required, *optional, *declared]:  # pipeline -> operator cascade
        if name not in kwargs and name in params:
            kwargs[name] = params[name]
    in_init = {*required, *optional}
    later = {n: kwargs.pop(n) for n in list(kwargs) if n in declared and n not in in_init}
    missing = [n for n, d in declared.items() if d.required and n not in later and n not in in_init]
    if missing:
        raise TypeError(f"{cls.__name__} misses required parameter(s) {', '.join(missing)}")
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
            logger=logger,
        )
    obj = cls(**kwargs)
    for name, value in later.items():  # declared parameters: set once the constructor ran
        want = declared[name].parameter_type
        if want is not None and value is not None and not isinstance(value, want):
            raise TypeError(
                f"parameter '{name}' of {cls.__name__} expects {want.__name__}, "
                f"got {type(value).__name__}"
            )
        setattr(obj, name, value)
    if not callable(getattr(obj, "get_logger", None)):  # pypz operators log via get_logger()
        with contextlib.suppress(AttributeError, TypeError):
            obj.get_logger = lambda: logger
    return obj, inputs


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
        _mask_output(spec["plan"])
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


STATS_LINE = "flowc-stats "
"""Prefix of the counter lines an operator pod prints (``FLOWC_STATS_LOG=1``, set by the k8s
target): ``flowc sniff --deployed`` reads the last one of each pod through the API server."""


class _KafkaCounter:
    """The sniffer's counters for kafka ports, written to the run's database at most twice a
    second (the local transport counts in its own transactions); in a Kubernetes operator pod
    (``FLOWC_STATS_LOG=1``) also printed as a :data:`STATS_LINE` with the running totals."""

    def __init__(self, db: str, step: str, replica: int, ports: Mapping[str, Any]):
        self.db, self.step, self.replica = db, step, replica
        self.kafka = {n: p for n, p in ports.items() if getattr(p, "transport", "") == "kafka"}
        self.sent = {n: 0 for n in self.kafka}
        self.pending: dict[tuple[str, str], int] = {}
        self.last = time.monotonic()
        self.log_totals = os.environ.get("FLOWC_STATS_LOG") == "1"
        self.totals: dict[tuple[str, str], int] = {}
        self.printed: dict[tuple[str, str], int] | None = None

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
        for key, count in self.pending.items():
            self.totals[key] = self.totals.get(key, 0) + count
        if self.log_totals and (force or self.totals != self.printed):
            ports = [[c, d, total] for (c, d), total in sorted(self.totals.items())]
            line = json.dumps({"step": self.step, "replica": self.replica, "ports": ports})
            print(STATS_LINE + line, flush=True)
            self.printed = dict(self.totals)
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
