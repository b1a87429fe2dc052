"""Run history in SQLite (``<root>/metadata.db``): runs, steps, attempts.

Stored: status, start/end times and durations, the resolved params, the plan, output URIs, the
flow's outputs (``run_outputs``), error messages (secret values masked by the executor before they get here). Never a secret value.
WAL journal + a busy timeout make it safe for several ``flowc run`` processes at once. One
:class:`MetadataStore` object is used from one thread at a time (the executor's scheduler
thread); separate processes each open their own.

The schema is versioned (``schema_version`` table, :data:`SCHEMA_VERSION`); opening a store
written by an older flowc applies :data:`MIGRATIONS` in order, one transaction. A store without
the table predates versioning and is version 1. A store that is not SQLite, is damaged, or was
written by a newer flowc raises :class:`MetadataError` (a message with a recovery hint).
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

#: The schema version this flowc writes (``_SCHEMA`` is version 1; later ones are migrations).
SCHEMA_VERSION = 1
#: ``{version: SQL script}``: the script takes a store from ``version - 1`` to ``version``.
MIGRATIONS: dict[int, str] = {}


class MetadataError(Exception):
    """The run history cannot be used (damaged, not a flowc store, newer schema)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_outputs (
    run_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, name)
);
"""
# run_outputs (the flow's ``outputs:``) is a table of its own, created by every flowc that knows
# it (CREATE TABLE IF NOT EXISTS): a store gains it without a schema migration, and a flowc
# that predates it ignores it.


class MetadataStore:
    """SQLite run history. ``settings["path"]`` overrides ``<root>/metadata.db``."""

    def __init__(self, settings: Mapping[str, Any] | None = None, root: str | Path = ".flowc"):
        path = (settings or {}).get("path")
        self.path = Path(path) if path else Path(root) / "metadata.db"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from None
        with self._lock:
            self._retry(lambda: self.db.execute("PRAGMA busy_timeout = 60000"))
            # Switching a new database to WAL can report "locked" at once (the busy handler does
            # not cover it) when several `flowc run`s create it together: retried like writes.
            self._retry(lambda: self.db.execute("PRAGMA journal_mode = WAL"))
            self._retry(lambda: self.db.execute("PRAGMA synchronous = NORMAL"))
            self._retry(self._migrate)

    # -- plumbing ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Create the tables and bring the schema to :data:`SCHEMA_VERSION` (one transaction)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row and row[0] is not None else 1
            if version > SCHEMA_VERSION:
                raise MetadataError(
                    f"{self.path} was written by a newer flowc (run history schema {version}; "
                    f"this flowc reads up to {SCHEMA_VERSION})",
                    "upgrade flowc, or use another --root",
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _error(self, e: BaseException) -> MetadataError:
        if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
            return MetadataError(
                f"the run history {self.path} is damaged or not a flowc store ({e})",
                f"move it aside to start a new history (mv {self.path} {self.path}.broken); "
                f"`sqlite3 {self.path}.broken .recover` may save the old runs",
            )
        return MetadataError(
            f"cannot use the run history {self.path}: {e}",
            "check the folder's permissions and free space, or use another --root",
        )

    def _retry(self, fn: Any) -> Any:
        for i in range(50):
            try:
                return fn()
            except sqlite3.OperationalError as e:  # "database is locked" past the busy timeout
                if "locked" not in str(e) or i == 49:
                    raise self._error(e) from None
                time.sleep(0.05 * (i + 1))
            except sqlite3.Error as e:
                raise self._error(e) from None
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

    def set_outputs(self, run_id: str, outputs: Mapping[str, Any]) -> None:
        """Store the run's flow outputs (JSON; a value JSON cannot hold is stored as its
        ``repr``), replacing those of an earlier execution of the run (``--resume``)."""

        def tx() -> None:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM run_outputs WHERE run_id=?", (run_id,))
                db.executemany(
                    "INSERT INTO run_outputs (run_id, name, value) VALUES (?, ?, ?)",
                    [(run_id, k, json.dumps(v, default=repr)) for k, v in outputs.items()],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        with self._lock:
            self._retry(tx)

    def outputs(self, run_id: str) -> dict[str, Any]:
        """The run's flow outputs (``{}`` when the flow declares none)."""
        rows = self._rows(
            "SELECT name, value FROM run_outputs WHERE run_id=? ORDER BY rowid", (run_id,)
        )
        return {r["name"]: json.loads(r["value"]) for r in rows}

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
            "attempts=excluded.attempts, outputs=excluded.outputs, "
            "error=excluded.error, log=excluded.log",
            (
                run_id,
                step,
                status,
                started,
                ended,
                duration,
                # the most attempts one instance took (this run and the runs it resumes), not
                # the number of attempt rows (a foreach has one per item)
                db.execute(
                    "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE run_id=? AND step=?",
                    (run_id, step),
                ).fetchone()[0],
                json.dumps(dict(outputs)) if outputs is not None else None,
                error,
                log,
            ),
        )

    # -- reads ---------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:

            def read() -> list[dict[str, Any]]:
                cur = self.db.execute(sql, args)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

            return self._retry(read)

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            return None
        row = rows[0]
        row["params"] = json.loads(row["params"] or "{}")
        row["plan"] = json.loads(row["plan"]) if row.get("plan") else None
        row["outputs"] = self.outputs(run_id)
        return row

    def runs(self, limit: int = 50, flow: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, flow, status, started, ended, duration, error, pid FROM runs"
        args: tuple[Any, ...] = ()
        if flow:
            sql += " WHERE flow=?"
            args = (flow,)
        return self._rows(sql + " ORDER BY started DESC, run_id DESC LIMIT ?", (*args, limit))

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's steps in graph order (the plan's ``order``; steps it does not know last)."""
        rows = self._rows("SELECT * FROM steps WHERE run_id=? ORDER BY started, step", (run_id,))
        for r in rows:
            r["outputs"] = json.loads(r["outputs"]) if r.get("outputs") else {}
        plan = self._rows("SELECT plan FROM runs WHERE run_id=?", (run_id,))
        try:
            data = json.loads(plan[0]["plan"]) if plan and plan[0]["plan"] else {}
            order = list(data.get("order") or data.get("steps") or ())
        except (ValueError, AttributeError, TypeError):
            order = []
        rank = {name: i for i, name in enumerate(order)}
        return sorted(rows, key=lambda r: rank.get(r["step"], len(rank)))

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
