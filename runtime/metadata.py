"""Run history in SQLite (``<root>/metadata.db``): runs, steps, attempts.

Stored: status, start/end times and durations, the resolved params, the plan, output URIs, error
messages (secret values masked by the executor before they get here). Never a secret value.
WAL journal + a busy timeout make it safe for several ``flowc run`` processes at once. One
:class:`MetadataStore` object is used from one thread at a time (the executor's scheduler
thread); separate processes each open their own.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METADATA_STORES: dict[str, str] = {"sqlite": "flowc.runtime.metadata:MetadataStore"}
"""Stack ``metadata_store.type`` -> ``"module:Class"``; ``Class(settings: dict, root: Path)``."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL, params TEXT,
    started REAL, ended REAL, duration REAL, error TEXT, plan TEXT, pid INTEGER
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL, started REAL, ended REAL,
    duration REAL, attempts INTEGER DEFAULT 0, outputs TEXT, error TEXT, log TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step TEXT NOT NULL,
    instance TEXT, attempt INTEGER, status TEXT NOT NULL, started REAL, ended REAL,
    duration REAL, error TEXT, log TEXT
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id, step);
CREATE TABLE IF NOT EXISTS items (
    run_id TEXT NOT NULL, step TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT, outputs TEXT,
    PRIMARY KEY (run_id, step, idx)
);
"""


class MetadataStore:
    """SQLite run history. ``settings["path"]`` overrides ``<root>/metadata.db``."""

    def __init__(self, settings: Mapping[str, Any] | None = None, root: str | Path = ".flowc"):
        path = (settings or {}).get("path")
        self.path = Path(path) if path else Path(root) / "metadata.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA busy_timeout = 60000")
        with self._lock:
            # Switching a new database to WAL can report "locked" at once (the busy handler does
            # not cover it) when several `flowc run`s create it together: retried like writes.
            self._retry(lambda: self.db.execute("PRAGMA journal_mode = WAL"))
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._retry(lambda: self.db.executescript(_SCHEMA))

    # -- plumbing ------------------------------------------------------------------------------

    def _retry(self, fn: Any) -> Any:
        for i in range(50):
            try:
                return fn()
            except sqlite3.OperationalError as e:  # "database is locked" past the busy timeout
                if "locked" not in str(e) or i == 49:
                    raise
                time.sleep(0.05 * (i + 1))
        return None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._retry(lambda: self.db.execute(sql, args))

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- writes --------------------------------------------------------------------------------

    def start_run(
        self, run_id: str, flow: str, params: Mapping[str, Any], plan: Mapping[str, Any]
    ) -> None:
        self._write(
            "INSERT INTO runs (run_id, flow, status, params, started, plan, pid) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET "
            "status='running', ended=NULL, duration=NULL, error=NULL, pid=excluded.pid",
            (
                run_id,
                flow,
                json.dumps(dict(params), default=repr),
                time.time(),
                json.dumps(plan, default=repr),
                os.getpid(),
            ),
        )

    def end_run(self, run_id: str, status: str, error: str | None) -> None:
        now = time.time()
        self._write(
            "UPDATE runs SET status=?, ended=?, duration=?-started, error=? WHERE run_id=?",
            (status, now, now, error, run_id),
        )

    def steps_started(self, run_id: str, steps: list[tuple[str, float]]) -> None:
        """Mark steps as running (one transaction)."""
        self.batch([("steps_started", (run_id, steps), {})])

    def step_finished(self, run_id: str, step: str, status: str, **kw: Any) -> None:
        """Record a step's end and its attempts (see :meth:`_op_step_finished`)."""
        self.batch([("step_finished", (run_id, step, status), kw)])

    def batch(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        """Apply several writes (``(op name, args, kwargs)``, ops ``steps_started``,
        ``item_finished`` and ``step_finished``) in ONE transaction: the executor's writer thread batches this way.
        """
        if not calls:
            return

        def tx() -> None:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for name, args, kw in calls:
                    getattr(self, f"_op_{name}")(db, *args, **kw)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        with self._lock:
            self._retry(tx)

    @staticmethod
    def _op_steps_started(
        db: sqlite3.Connection, run_id: str, steps: list[tuple[str, float]]
    ) -> None:
        db.executemany(
            "INSERT INTO steps (run_id, step, status, started) VALUES (?, ?, 'running', ?) "
            "ON CONFLICT(run_id, step) DO UPDATE SET status='running', "
            "started=excluded.started, ended=NULL, duration=NULL, error=NULL",
            [(run_id, name, t) for name, t in steps],
        )

    @staticmethod
    def _op_item_finished(
        db: sqlite3.Connection,
        run_id: str,
        step: str,
        idx: int,
        key: str,
        *,
        outputs: Mapping[str, str],
    ) -> None:
        """One finished foreach item (so ``resume`` can skip it)."""
        db.execute(
            "INSERT OR REPLACE INTO items (run_id, step, idx, key, outputs) VALUES (?, ?, ?, ?, ?)",
            (run_id, step, idx, key, json.dumps(dict(outputs))),
        )

    @staticmethod
    def _op_step_finished(
        db: sqlite3.Connection,
        run_id: str,
        step: str,
        status: str,
        *,
        started: float | None,
        ended: float,
        attempts: list[dict[str, Any]] = (),  # type: ignore[assignment]
        outputs: Mapping[str, str] | None = None,
        error: str | None = None,
        log: str | None = None,
    ) -> None:
        duration = None if started is None else ended - started
        if attempts:
            db.executemany(
                "INSERT INTO attempts (run_id, step, instance, attempt, status, started, "
                "ended, duration, error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        step,
                        a.get("instance"),
                        a.get("attempt"),
                        a["status"],
                        a.get("started"),
                        a.get("ended"),
                        (a["ended"] - a["started"]) if a.get("started") else None,
                        a.get("error"),
                        a.get("log"),
                    )
                    for a in attempts
                ],
            )
        db.execute(
            "INSERT INTO steps (run_id, step, status, started, ended, duration, attempts, "
            "outputs, error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(run_id, step) DO UPDATE SET status=excluded.status, "
            "started=excluded.started, ended=excluded.ended, duration=excluded.duration, "
            "attempts=steps.attempts+excluded.attempts, outputs=excluded.outputs, "
            "error=excluded.error, log=excluded.log",
            (
                run_id,
                step,
                status,
                started,
                ended,
                duration,
                len(attempts),
                json.dumps(dict(outputs)) if outputs is not None else None,
                error,
                log,
            ),
        )

    # -- reads ---------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._retry(lambda: self.db.execute(sql, args))
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            return None
        row = rows[0]
        row["params"] = json.loads(row["params"] or "{}")
        row["plan"] = json.loads(row["plan"]) if row.get("plan") else None
        return row

    def runs(self, limit: int = 50, flow: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, flow, status, started, ended, duration, error, pid FROM runs"
        args: tuple[Any, ...] = ()
        if flow:
            sql += " WHERE flow=?"
            args = (flow,)
        return self._rows(sql + " ORDER BY started DESC, run_id DESC LIMIT ?", (*args, limit))

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM steps WHERE run_id=? ORDER BY started, step", (run_id,))
        for r in rows:
            r["outputs"] = json.loads(r["outputs"]) if r.get("outputs") else {}
        return rows

    def items(self, run_id: str) -> list[dict[str, Any]]:
        """Finished foreach items: ``{"step", "idx", "key", "outputs"}``."""
        rows = self._rows("SELECT step, idx, key, outputs FROM items WHERE run_id=?", (run_id,))
        for r in rows:
            r["outputs"] = json.loads(r["outputs"] or "{}")
        return rows

    def attempts(self, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
        if step is None:
            return self._rows("SELECT * FROM attempts WHERE run_id=? ORDER BY id", (run_id,))
        return self._rows(
            "SELECT * FROM attempts WHERE run_id=? AND step=? ORDER BY id", (run_id, step)
        )


def open_metadata_store(
    settings: Mapping[str, Any] | None, root: str | Path = ".flowc"
) -> MetadataStore:
    """Build the store named by a stack ``metadata_store`` component (``None``: sqlite). Another
    type is looked up among the stack component types (``components:``, entry points...): the
    run records go to SQLite at that component's ``location(root)``."""
    import importlib

    kind = (settings or {}).get("type", "sqlite")
    target = METADATA_STORES.get(kind)
    if target is None:
        return MetadataStore({"path": str(_component_location(settings or {}, root))}, root)
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(dict(settings or {}), Path(root))


def _component_location(settings: Mapping[str, Any], root: str | Path) -> Path:
    """Where a registered metadata store component keeps the local runtime's SQLite records."""
    from flowc.runtime.stack import ComponentError, build_component

    kind = settings.get("type")
    try:
        comp = build_component("metadata_store", settings)
        location = comp.location(root)  # type: ignore[attr-defined]
    except ComponentError as e:
        raise ValueError(f"metadata store type {kind!r}: {e}") from e
    except NotImplementedError:
        raise ValueError(
            f"metadata store type {kind!r} ({type(comp).__qualname__}) does not implement "
            "location(root): the local runtime needs the path of its SQLite records"
        ) from None
    return Path(location)
