"""Operators for bench/streaming_bench.py: a writer sending N small records in batches, a reader
counting what it gets (no output), and the plain multiprocessing baseline's two ends."""

from __future__ import annotations

import json
import os
from typing import Any


class Writer:
    def __init__(self, count: int, batch: int = 100):
        self.count, self.batch, self.sent = count, batch, 0
        self.ports: dict[str, Any] = {}
        self.replica = int(os.environ.get("FLOWC_REPLICA", "0"))

    def on_running(self) -> bool:
        n = min(self.batch, self.count - self.sent)
        recs = [{"text": f"r{self.replica}_{self.sent + i}", "n": self.sent + i} for i in range(n)]
        self.ports["records"].send(recs)
        self.sent += n
        return self.sent >= self.count


class Reader:
    def __init__(self) -> None:
        self.ports: dict[str, Any] = {}
        self.got = 0

    def on_running(self) -> None:
        self.got += len(self.ports["records"].retrieve())
        return None


def baseline_writer(conn: Any, count: int, batch: int) -> None:
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        conn.send_bytes(
            json.dumps([{"text": f"r0_{sent + i}", "n": sent + i} for i in range(n)]).encode()
        )
        sent += n
    conn.send_bytes(b"")


def baseline_reader(conn: Any, result: Any) -> None:
    got = 0
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        got += len(json.loads(data))
    result.value = got
