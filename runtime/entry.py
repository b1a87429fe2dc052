"""``python -m flowc.runtime step --plan PLAN.json --step NAME --inputs IN.json --outputs OUT.json``

Runs one attempt of one step instance in this process (what KFP/Vertex containers, Kubernetes
Jobs and the local executor's isolated attempts use).

``IN.json`` holds ``{"params": {...}, "upstream": {step: {output: value}}, "run_id": "...",
"run_date": "...", "item": ..., "index": 0, "replica": 0, "attempt": 1, "log_path": "...",
"artifact_dir": "..."}`` (only ``params``/``upstream``/``run_id`` are required; no ``item`` key
means "not a foreach instance"). ``OUT.json`` receives ``{output: value}``; on failure it receives
``{"$error": {"type", "message", "traceback"}}`` and the exit code is 1; a skipped instance
(:class:`flowc.runtime.Skip`) writes ``{"$skip": reason}`` with exit code 0. Values that are not
JSON-safe are written as ``{"$flowc_pickle": "<base64>"}`` in JSON files; a path ending in
``.pkl`` is read/written as one pickle instead. ``FLOWC_REPLICA``/``FLOWC_REPLICAS`` in the
environment set the replica when the inputs do not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any

from flowc.runtime import services
from flowc.runtime.step import MISSING, Skip, execute, known_secret_values, mask
from flowc.runtime.store import atomic_write, encode

PICKLE_KEY = "$flowc_pickle"
SKIP_KEY = "$skip"
"""The outputs file of a skipped instance: ``{"$skip": reason}``."""


def to_jsonable(value: Any) -> Any:
    """``value`` itself when JSON-safe, else ``{"$flowc_pickle": base64}`` (per top-level key of
    a dict, so mostly-JSON outputs stay readable)."""
    fmt, data = encode(value)
    if fmt == "json":
        return value
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_jsonable(v) for k, v in value.items()}
    return {PICKLE_KEY: base64.b64encode(data).decode("ascii")}


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {PICKLE_KEY}:
            return pickle.loads(base64.b64decode(value[PICKLE_KEY]))  # noqa: S301
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def read_data(path: str | Path) -> Any:
    p = Path(path)
    if p.suffix == ".pkl":
        return pickle.loads(p.read_bytes())  # noqa: S301
    return from_jsonable(json.loads(p.read_text(encoding="utf-8")))


def write_data(path: str | Path, value: Any) -> None:
    p = Path(path)
    if p.suffix == ".pkl":
        atomic_write(p, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    else:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=1)
        atomic_write(p, text.encode("utf-8"))


def _die_with_parent() -> None:
    """Linux: when started by the local executor (``FLOWC_PARENT_PID``), get SIGKILL if it
    dies, even by SIGKILL, so no attempt outlives its run."""
    parent = os.environ.get("FLOWC_PARENT_PID")
    if not parent:
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # pragma: no cover - best effort
            pass
    if str(os.getppid()) != parent:  # it died before prctl took effect
        os._exit(137)


_SECRETS: list[str] = []


class _Masked:
    """A text stream that replaces secret values with ``***`` before writing."""

    def __init__(self, stream: Any, secrets: list[str]):
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._stream.write(mask(text, self._secrets))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _mask_streams(plan: Any) -> None:
    """Mask the values of the plan's secrets (those set in this environment) in everything
    this process prints."""
    values = known_secret_values(plan)
    _SECRETS[:] = values
    if values:
        sys.stdout = _Masked(sys.stdout, values)  # type: ignore[assignment]
        sys.stderr = _Masked(sys.stderr, values)  # type: ignore[assignment]


def run_step(plan_path: str, step: str, inputs_path: str, outputs_path: str) -> int:
    """Run the step; write outputs (or the error); return the exit code."""
    _die_with_parent()
    try:
        plan = read_data(plan_path)
        _mask_streams(plan)
        inputs = read_data(inputs_path)
        replica = inputs.get("replica")
        if replica is None and os.environ.get("FLOWC_REPLICA") is not None:
            replica = int(os.environ["FLOWC_REPLICA"])
        run = services.RunInfo(
            run_id=inputs["run_id"],
            flow=str(plan.get("name")),
            params=inputs.get("params") or {},
            run_date=inputs.get("run_date"),
            root=inputs.get("root") or ".flowc",
        )
        with services.running(plan, run) as ctx_extra:
            if inputs.get("artifact_dir"):
                ctx_extra = {**ctx_extra, "artifact_dir": inputs["artifact_dir"]}
            outputs = execute(
                plan,
                step,
                params=inputs.get("params") or {},
                upstream=inputs.get("upstream") or {},
                run_id=inputs["run_id"],
                run_date=inputs.get("run_date"),
                item=inputs["item"] if "item" in inputs else MISSING,
                replica=replica,
                ctx_extra=ctx_extra,
                log_path=inputs.get("log_path"),
                timeout=inputs.get("timeout"),
                attempt=int(inputs.get("attempt") or 1),
                index=inputs.get("index"),
                run_extra=inputs.get("run_extra"),
            )
    except Skip as e:
        write_data(outputs_path, {SKIP_KEY: mask(str(e.reason or e), _SECRETS)})
        return 0
    except BaseException as e:  # report everything, including SystemExit from user code
        if isinstance(e, KeyboardInterrupt):
            raise
        tb = mask(traceback.format_exc(), _SECRETS)
        sys.stderr.write(tb)
        try:
            message = mask(str(e), _SECRETS)
            write_data(
                outputs_path,
                {"$error": {"type": type(e).__name__, "message": message, "traceback": tb}},
            )
        except Exception:  # pragma: no cover - nothing more we can do
            pass
        return 1
    write_data(outputs_path, outputs)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowc.runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("step", help="run one attempt of one step")
    p.add_argument("--plan", required=True)
    p.add_argument("--step", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--outputs", required=True)
    args = parser.parse_args(argv)
    return run_step(args.plan, args.step, args.inputs, args.outputs)
