"""The ``local`` datastream plugin: queues as append-only JSON-lines files in a folder.

No server: processes on one machine share queues through ``config.path`` (default
``<run root>/streams``). Each message is one line; a reader claims lines under an exclusive
``fcntl`` lock and advances a per-queue offset file, so every message is delivered once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowc.runtime.plugins import DataStreamPlugin


class LocalStreamPlugin(DataStreamPlugin):
    plugin_type = "datastream"

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path else None

    def on_run_start(self, run: Any) -> None:
        if self.path is None:
            self.path = Path(run.root) / "streams"

    def initialize(self) -> None:
        self.connect()

    def connect(self) -> None:
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)

    def disconnect(self) -> None:
        return None

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        base = self.path or Path(".flowc") / "streams"
        try:
            base.mkdir(parents=True, exist_ok=True)
            ok = os.access(base, os.W_OK)
            return ok, {"status": "ok" if ok else "not writable", "path": str(base)}
        except OSError as e:
            return False, {"status": "error", "message": str(e), "path": str(base)}

    def _files(self, queue: str) -> tuple[Path, Path]:
        if self.path is None:
            self.path = Path(".flowc") / "streams"
        self.path.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in queue)
        return self.path / f"{safe}.jsonl", self.path / f"{safe}.offset"

    @contextmanager
    def _locked(self, queue: str) -> Iterator[tuple[Path, Path]]:
        import fcntl

        data, offset = self._files(queue)
        with open(data.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield data, offset
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def create_queue(self, queue: str) -> None:
        with self._locked(queue) as (data, _):
            data.touch()

    def publish(self, queue: str, data: Any) -> None:
        line = json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._locked(queue) as (path, _):
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line)

    def pull_data(self, queue: str) -> Any:
        with self._locked(queue) as (path, offset_file):
            pos = int(offset_file.read_text() or 0) if offset_file.exists() else 0
            if not path.exists():
                return None
            with open(path, encoding="utf-8") as fh:
                fh.seek(pos)
                line = fh.readline()
                if not line.endswith("\n"):
                    return None
                offset_file.write_text(str(fh.tell()))
        return json.loads(line)

    def subscribe(
        self, queue: str, max_messages: int | None = None, timeout: float = 1.0
    ) -> Iterator[Any]:
        got = 0
        deadline = time.monotonic() + timeout
        while max_messages is None or got < max_messages:
            msg = self.pull_data(queue)
            if msg is None:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.02)
                continue
            got += 1
            deadline = time.monotonic() + timeout
            yield msg

    def flush_queue(self, queue: str) -> None:
        with self._locked(queue) as (path, offset_file):
            path.write_text("")
            offset_file.write_text("0")
