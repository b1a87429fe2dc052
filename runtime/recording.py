"""Recording a local run: artifacts, cache entries and metadata rows, written on one thread in
submission order (:class:`Writer`), so the scheduler never waits for the disk."""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from typing import Any

from flowc.runtime.metadata import MetadataStore
from flowc.runtime.step import MISSING
from flowc.runtime.store import ArtifactStore, Cache, decode


class Writer:
    """Writes artifacts, cache entries and metadata in submission order on its own thread, so
    the scheduler never waits for the disk. Metadata writes queued together are committed in
    one transaction, after the artifact files they refer to exist: a step is "completed" (for
    ``resume``) once its metadata row says so, and then its outputs are on disk."""

    def __init__(self, meta: MetadataStore, store: ArtifactStore, cache: Cache, run_id: str):
        self.meta = meta
        self.store = store
        self.cache = cache
        self.run_id = run_id
        self.error: tuple[str, BaseException] | None = None
        self._pool: cf.ThreadPoolExecutor | None = None
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="flowc-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def meta_op(self, op: str, *args: Any, **kw: Any) -> None:
        self.q.put(("meta", op, args, kw))

    def outputs(
        self,
        step: str,
        outputs: dict[str, Any],
        encoded: dict[str, tuple[str, bytes]],
        cache_key: str | None,
        **finished: Any,
    ) -> None:
        self.q.put(("outputs", step, (outputs, encoded, cache_key), finished))

    def item(self, step: str, idx: int, key: str, encoded: dict[str, tuple[str, bytes]]) -> None:
        """A finished foreach item: its outputs as ``<output>.item<idx>`` artifacts."""
        self.q.put(("item", step, (idx, key, encoded), {}))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch = [self.q.get()]
            while True:
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is None:
                stop = True
                batch.pop()
            files = [item for item in batch if item[0] != "meta"]
            if len(files) > 1:  # disk latency: write a batch's files in parallel
                if self._pool is None:
                    self._pool = cf.ThreadPoolExecutor(4, thread_name_prefix="flowc-io")
                chunks = [files[i::4] for i in range(min(4, len(files)))]  # 4 slices, not N tasks
                done = {
                    id(item): result
                    for chunk, results in zip(
                        chunks, self._pool.map(self._write_chunk, chunks), strict=True
                    )
                    for item, result in zip(chunk, results, strict=True)
                }
            else:
                done = {id(item): self._try_write(item) for item in files}
            calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
            for item in batch:
                kind, name, args, kw = item
                if kind == "meta":
                    calls.append((name, args, kw))
                elif done[id(item)] is not None:
                    calls.append(done[id(item)])
            # a step that starts and finishes within one batch needs no "running" row
            finished = {c[1][1] for c in calls if c[0] == "step_finished"}
            calls = [
                c
                for c in calls
                if c[0] != "steps_started" or any(n not in finished for n, _ in c[1][1])
            ]
            try:
                self.meta.batch(calls)
            except Exception as e:
                if self.error is None:
                    self.error = ("<metadata>", e)
        if self._pool is not None:
            self._pool.shutdown()

    def _write_chunk(self, items: list[Any]) -> list[Any]:
        return [self._try_write(item) for item in items]

    def _try_write(self, item: Any) -> Any:
        kind, name, args, kw = item
        try:
            if kind == "item":
                return self._write_item(name, *args)
            return self._write_outputs(name, *args, **dict(kw))
        except Exception as e:
            if self.error is None:
                self.error = (name, e)
            return None

    def _write_item(
        self, step: str, idx: int, key: str, encoded: dict[str, tuple[str, bytes]]
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        uris = {o: self._put(step, f"{o}.item{idx}", encoded[o]) for o in encoded}
        return ("item_finished", (self.run_id, step, idx, key), {"outputs": uris})

    def _put(self, step: str, name: str, encoded: tuple[str, bytes], value: Any = MISSING) -> str:
        """Store one value already serialized by :func:`encode` (``value``: the value itself,
        when at hand, for stores without ``put_encoded``); return its URI."""
        put_encoded = getattr(self.store, "put_encoded", None)
        if put_encoded is not None:
            return str(put_encoded(self.run_id, step, name, *encoded))
        if value is MISSING:
            value = decode(*encoded)
        return self.store.put(self.run_id, step, name, value)

    def _write_outputs(
        self,
        step: str,
        outputs: dict[str, Any],
        encoded: dict[str, tuple[str, bytes]],
        cache_key: str | None,
        **finished: Any,
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        uris = {o: self._put(step, o, encoded[o], value) for o, value in outputs.items()}
        if cache_key is not None:
            self.cache.put(cache_key, outputs)
        return (
            "step_finished",
            (self.run_id, step, finished.pop("status")),
            {**finished, "outputs": uris},
        )
