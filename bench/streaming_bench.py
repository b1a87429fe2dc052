"""Streaming channels throughput, side by side with a baseline.

1. ``local`` transport (SQLite WAL, Avro-validated, durable, acknowledged, back-pressured):
   one writer process -> one reader process through ``run_operators``, N records in batches of
   100, vs a baseline of the same records as JSON over a ``multiprocessing`` pipe between two
   processes (no validation, no durability, no acks). Prints records/s and the ratio.
2. The same with replicas (3 writers, 2 readers).
3. Per-record cost of Avro validation + binary encoding (fastavro) vs ``json.dumps``.

Usage: python bench/streaming_bench.py [--records 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stream_ops  # noqa: E402

from flowc.runtime import channels as ch  # noqa: E402
from flowc.runtime.operators import run_operators  # noqa: E402
from flowc.runtime.services import RunInfo  # noqa: E402

SCHEMA = {
    "type": "record",
    "name": "BenchRecord",
    "fields": [{"name": "text", "type": "string"}, {"name": "n", "type": "long"}],
}


def plan(count: int, writers: int, readers: int) -> dict:
    def step(run: str, with_: dict, replicas: int, **ports: list[str]) -> dict:
        return {
            "kind": "run",
            "run": run,
            "with": with_,
            "replicas": replicas,
            "env": {},
            "operator": True,
            "produces": ports.get("produces", []),
            "consumes": ports.get("consumes", []),
        }

    return {
        "name": "bench",
        "params": {},
        "secrets": {},
        "steps": {
            "writer": step(
                "bench_stream_ops:Writer", {"count": count}, writers, produces=["records"]
            ),
            "reader": step("bench_stream_ops:Reader", {}, readers, consumes=["records"]),
        },
        "channels": {
            "records": {
                "schema": SCHEMA,
                "transport": "local",
                "location": None,
                "producers": ["writer"],
                "consumers": ["reader"],
            }
        },
    }


def flowc_local(count: int, writers: int, readers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_operators(
            plan(count, writers, readers),
            ["writer", "reader"],
            RunInfo(run_id="b", flow="bench", params={}, root=d),
        )
        took = time.perf_counter() - t0
        stats = ch.local_stats(Path(d) / "runs" / "b" / ch.DB_NAME)
        assert stats["groups"][0]["acked"] == count * writers, stats["groups"]
        return took


def baseline(count: int) -> float:
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    result = ctx.Value("q", 0)
    t0 = time.perf_counter()
    w = ctx.Process(target=bench_stream_ops.baseline_writer, args=(a, count, 100))
    r = ctx.Process(target=bench_stream_ops.baseline_reader, args=(b, result))
    w.start()
    r.start()
    w.join()
    r.join()
    took = time.perf_counter() - t0
    assert result.value == count
    return took


def best(fn, repeat: int, *args: int) -> float:  # noqa: ANN001
    return min(fn(*args) for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    n = a.records

    base = best(baseline, a.repeat, n)
    one = best(flowc_local, a.repeat, n, 1, 1)
    print(f"1 writer -> 1 reader, {n} records (best of {a.repeat}, process start included)")
    print(f"  baseline mp.Pipe+JSON : {base:7.3f}s  {n / base:10.0f} rec/s")
    print(
        f"  flowc local channel   : {one:7.3f}s  {n / one:10.0f} rec/s   ratio {one / base:5.1f}x"
    )

    rep = best(flowc_local, a.repeat, n // 3, 3, 2)
    total = (n // 3) * 3
    print(f"3 writers -> 2 readers, {total} records")
    print(
        f"  flowc local channel   : {rep:7.3f}s  {total / rep:10.0f} rec/s   "
        f"ratio vs 1->1 baseline {rep / base * n / total:5.1f}x"
    )

    parsed = ch.parse_schema("records", SCHEMA)
    recs = [{"text": f"r0_{i}", "n": i} for i in range(n)]
    t0 = time.perf_counter()
    for r in recs:
        ch.validate_record("records", parsed, r)
        ch.encode(parsed, r)
    avro = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in recs:
        json.dumps(r)
    js = time.perf_counter() - t0
    print(
        f"per record: validate+Avro encode {avro / n * 1e6:6.2f} us vs json.dumps "
        f"{js / n * 1e6:6.2f} us   ratio {avro / js:5.1f}x"
    )


if __name__ == "__main__":
    main()
