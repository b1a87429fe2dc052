"""Step callables of tests/test_airflow_control_flow.py (imported inside Airflow tasks: the test
puts this folder on the Airflow interpreter's PYTHONPATH)."""

from __future__ import annotations

import json
import os
import time


def _record(step: str, **values: object) -> None:
    """One JSON line per call in ``$FLOWC_CF_OUT`` (what ran, with what, when)."""
    out = os.environ["FLOWC_CF_OUT"]
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": step, "time": time.time(), **values}, default=str) + "\n")


def value(name: str, v: object = None) -> object:
    _record(name, v=v)
    return v


def fail(name: str) -> None:
    _record(name)
    raise RuntimeError(f"{name} fails by design")


def skip(name: str) -> None:
    import flowc.runtime

    # flowc.runtime.Skip; a runtime without it: a class of that name in flowc.runtime (what the
    # Airflow glue also recognises)
    Skip = getattr(flowc.runtime, "Skip", None) or type(  # noqa: N806
        "Skip", (Exception,), {"__module__": "flowc.runtime.skip"}
    )
    _record(name)
    raise Skip(f"{name} skips by design")


def prep(shard: str) -> str:
    _record("prep", shard=shard)
    if shard == "bad":
        raise RuntimeError("prep fails on the shard 'bad'")
    return f"rows-{shard}"


def score(rows: str) -> int:
    _record("score", rows=rows)
    return len(rows)


def report(status: object = None, failed: object = None) -> dict:
    _record("report", status=status, failed=failed)
    return {"status": status, "failed": failed}


def flaky(name: str, fails: int) -> int:
    """Fails its first ``fails`` calls (counted in a file beside ``$FLOWC_CF_OUT``)."""
    counter = os.environ["FLOWC_CF_OUT"] + f".{name}.calls"
    calls = int(open(counter).read()) + 1 if os.path.exists(counter) else 1  # noqa: SIM115
    with open(counter, "w") as fh:
        fh.write(str(calls))
    _record(name, call=calls)
    if calls <= fails:
        raise RuntimeError(f"{name}: call {calls} fails by design")
    return calls


def maybe_skip(v: object) -> object:
    """``v``, or skipped when ``v == "skip"``."""
    if v == "skip":
        skip("maybe_skip")
    _record("maybe_skip", v=v)
    return v
