"""The ``local`` transport: one SQLite database in WAL mode shared by every operator process of
a run on one machine (records, consumer-group cursors and claims, instance states), with
back-pressure on ``send`` and at-least-once delivery through claims acknowledged after use."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowc.runtime.channels.avro import decode, encode
from flowc.runtime.channels.spec import DEFAULT_BATCH, ChannelSpec, _Port

DEFAULT_CAPACITY = 1000
"""Local back-pressure bound: records sent but not yet acked by the slowest consumer group."""

DB_NAME = "channels.sqlite"


_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,  -- never deleted: ids only grow
  channel TEXT NOT NULL, producer TEXT NOT NULL, replica INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_channel ON records(channel, id);
CREATE TABLE IF NOT EXISTS cursors (
  channel TEXT NOT NULL, consumer TEXT NOT NULL, next_id INTEGER NOT NULL,
  PRIMARY KEY (channel, consumer));
CREATE TABLE IF NOT EXISTS claims (
  channel TEXT NOT NULL, consumer TEXT NOT NULL, record_id INTEGER NOT NULL,
  replica INTEGER, owner TEXT, acked INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (channel, consumer, record_id));
CREATE INDEX IF NOT EXISTS claims_open ON claims(channel, consumer, acked, owner, record_id);
CREATE TABLE IF NOT EXISTS groups (
  channel TEXT NOT NULL, consumer TEXT NOT NULL, acked INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (channel, consumer));
CREATE TABLE IF NOT EXISTS produced (
  channel TEXT PRIMARY KEY, count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS instances (
  step TEXT NOT NULL, replica INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER,
  error TEXT, updated REAL, PRIMARY KEY (step, replica));
CREATE TABLE IF NOT EXISTS port_stats (
  step TEXT NOT NULL, channel TEXT NOT NULL, replica INTEGER NOT NULL, direction TEXT NOT NULL,
  count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (step, channel, replica, direction));
"""


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection to a local channel database (created on first use), WAL mode."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 60000")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.executescript(_SCHEMA_SQL)
    return con


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), retried while locked."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        for attempt in range(200):
            try:
                self.con.execute("BEGIN IMMEDIATE")
                return self.con
            except sqlite3.OperationalError as e:  # pragma: no cover - heavy contention
                if "locked" not in str(e) or attempt == 199:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")


def prepare_local(db_path: str | os.PathLike[str]) -> dict[tuple[str, int], str]:
    """Before (re)starting a run's operators: hand every unacknowledged claim back to its group
    (so it is redelivered), mark instances left ``running`` by a crash as ``crashed``, and
    return ``{(step, replica): state}`` of what is recorded (``finished`` ones need no restart).
    """
    con = connect(db_path)
    try:
        with _Tx(con):
            con.execute("UPDATE claims SET owner = NULL WHERE acked = 0")
            con.execute("UPDATE instances SET state = 'crashed' WHERE state = 'running'")
        rows = con.execute("SELECT step, replica, state FROM instances").fetchall()
        return {(s, r): st for s, r, st in rows}
    finally:
        con.close()


def set_instance_state(
    db_path: str | os.PathLike[str], step: str, replica: int, state: str, error: str | None = None
) -> None:
    con = connect(db_path)
    try:
        with _Tx(con):
            con.execute(
                "INSERT INTO instances(step, replica, state, pid, error, updated) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(step, replica) DO UPDATE SET state=excluded.state, pid=excluded.pid,"
                " error=excluded.error, updated=excluded.updated",
                (step, replica, state, os.getpid(), error, time.time()),
            )
    finally:
        con.close()


class LocalOutputPort(_Port):
    """``send(records)``: validate against the Avro schema, wait while consumers lag (bounded
    queue), then append in one transaction (a record is durable once ``send`` returns)."""

    transport = "local"

    def __init__(
        self,
        spec: ChannelSpec,
        con: sqlite3.Connection,
        step: str,
        replica: int,
        *,
        capacity: int = DEFAULT_CAPACITY,
    ):
        super().__init__(spec, step, replica)
        self.capacity = max(1, capacity)
        self.sent = 0
        self._con = con

    def _pending(self) -> int:
        if not self.spec.consumers:
            return 0
        row = self._con.execute(
            "SELECT count FROM produced WHERE channel = ?", (self.name,)
        ).fetchone()
        produced = row[0] if row else 0
        acked = dict(
            self._con.execute(
                "SELECT consumer, acked FROM groups WHERE channel = ?", (self.name,)
            ).fetchall()
        )
        slowest = min(acked.get(c, 0) for c in self.spec.consumers)
        return produced - slowest

    def send(self, records: Sequence[dict[str, Any]]) -> None:
        records = list(records)
        if not records:
            return
        self.spec.validate(records)
        payloads = [encode(self.spec.parsed, r) for r in records]
        delay = 0.002
        while True:
            with _Tx(self._con) as con:  # the check and the append in one write transaction
                pending = self._pending()
                if pending == 0 or pending + len(payloads) <= self.capacity:
                    con.executemany(
                        "INSERT INTO records(channel, producer, replica, payload) VALUES (?,?,?,?)",
                        [(self.name, self.step, self.replica, p) for p in payloads],
                    )
                    con.execute(
                        "INSERT INTO produced(channel, count) VALUES (?, ?) ON CONFLICT(channel)"
                        " DO UPDATE SET count = count + excluded.count",
                        (self.name, len(payloads)),
                    )
                    _bump(con, self.step, self.name, self.replica, "out", len(payloads))
                    break
            time.sleep(delay)  # back-pressure: the slowest consumer group lags
            delay = min(delay * 2, 0.01)
        self.sent += len(payloads)

    def close(self) -> None:
        """Nothing to flush: every ``send`` is committed."""


def _bump(con: sqlite3.Connection, step: str, channel: str, replica: int, d: str, n: int) -> None:
    con.execute(
        "INSERT INTO port_stats(step, channel, replica, direction, count) VALUES (?,?,?,?,?)"
        " ON CONFLICT(step, channel, replica, direction) DO UPDATE SET count = count + excluded.count",
        (step, channel, replica, d, n),
    )


class LocalInputPort(_Port):
    """``retrieve()`` claims up to ``batch`` records for this replica (redelivered ones first),
    ``ack()`` acknowledges what was claimed, ``done`` tells the stream is over."""

    transport = "local"

    def __init__(
        self,
        spec: ChannelSpec,
        con: sqlite3.Connection,
        step: str,
        replica: int,
        owner: str,
        *,
        batch: int = DEFAULT_BATCH,
    ):
        super().__init__(spec, step, replica)
        self.batch = batch
        self.owner = owner
        self.retrieved = 0
        self._con = con
        self._claimed: list[int] = []
        self._done = False

    def retrieve(self) -> list[dict[str, Any]]:
        ch, me = self.name, self.step
        with _Tx(self._con) as con:
            redo = [
                r[0]
                for r in con.execute(
                    "SELECT record_id FROM claims INDEXED BY claims_open WHERE channel=? AND consumer=? AND owner IS NULL"
                    " AND acked=0 ORDER BY record_id LIMIT ?",
                    (ch, me, self.batch),
                )
            ]
            if redo:
                con.executemany(
                    "UPDATE claims SET owner=?, replica=? WHERE channel=? AND consumer=?"
                    " AND record_id=?",
                    [(self.owner, self.replica, ch, me, rid) for rid in redo],
                )
            rows: list[tuple[int, bytes]] = []
            if redo:
                marks = ",".join("?" * len(redo))
                rows = con.execute(
                    f"SELECT id, payload FROM records WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
                    redo,
                ).fetchall()
            room = self.batch - len(rows)
            if room > 0:
                start = self._next_id()
                room = self._fair_share(con, start, room)
                fresh = con.execute(
                    "SELECT id, payload FROM records WHERE channel=? AND id>=? ORDER BY id LIMIT ?",
                    (ch, start, room),
                ).fetchall()
                if fresh:
                    con.executemany(
                        "INSERT INTO claims(channel, consumer, record_id, replica, owner)"
                        " VALUES (?,?,?,?,?)",
                        [(ch, me, rid, self.replica, self.owner) for rid, _ in fresh],
                    )
                    con.execute(
                        "INSERT INTO cursors(channel, consumer, next_id) VALUES (?,?,?)"
                        " ON CONFLICT(channel, consumer) DO UPDATE SET next_id=excluded.next_id",
                        (ch, me, fresh[-1][0] + 1),
                    )
                    rows.extend(fresh)
        self._claimed.extend(rid for rid, _ in rows)
        self.retrieved += len(rows)
        return [decode(self.spec.parsed, bytes(p)) for _, p in rows]

    def ack(self) -> int:
        """Acknowledge everything this replica retrieved and did not acknowledge yet; returns
        how many records."""
        if not self._claimed:
            return 0
        self._claimed = []
        with _Tx(self._con) as con:
            n = con.execute(
                "UPDATE claims INDEXED BY claims_open SET acked=1 WHERE channel=? AND consumer=?"
                " AND acked=0 AND owner=?",
                (self.name, self.step, self.owner),
            ).rowcount
            con.execute(
                "INSERT INTO groups(channel, consumer, acked) VALUES (?,?,?)"
                " ON CONFLICT(channel, consumer) DO UPDATE SET acked = acked + excluded.acked",
                (self.name, self.step, n),
            )
            _bump(con, self.step, self.name, self.replica, "in", n)
        return n

    def _fair_share(self, con: sqlite3.Connection, start: int, room: int) -> int:
        """How many unclaimed records one ``retrieve()`` may take: an even share of what is
        waiting among the group's replicas (rounded up, at most ``room``), so a replica that comes
        first does not take a fast writer's whole backlog while the others get nothing."""
        readers = int(self.spec.consumers.get(self.step) or 1)
        if readers <= 1:
            return room
        waiting = con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM records WHERE channel=? AND id>=? LIMIT ?)",
            (self.name, start, room * readers),
        ).fetchone()[0]
        return max(1, min(room, -(-waiting // readers)))

    def _next_id(self) -> int:
        """The id where this group's records not yet claimed start (0 before any claim)."""
        cur = self._con.execute(
            "SELECT next_id FROM cursors WHERE channel=? AND consumer=?", (self.name, self.step)
        ).fetchone()
        return cur[0] if cur else 0

    def _producers_finished(self) -> bool:
        states = dict(
            ((s, r), st)
            for s, r, st in self._con.execute("SELECT step, replica, state FROM instances")
        )
        return all(
            states.get((p, r)) == "finished"
            for p, n in self.spec.producers.items()
            for r in range(n)
        )

    @property
    def done(self) -> bool:
        """Every producer replica finished and every record was retrieved by this group."""
        if self._done:
            return True
        if not self._producers_finished():
            return False
        ch, me = self.name, self.step
        left = self._con.execute(
            "SELECT 1 FROM records WHERE channel=? AND id>=? LIMIT 1", (ch, self._next_id())
        ).fetchone()
        redo = self._con.execute(
            "SELECT 1 FROM claims INDEXED BY claims_open WHERE channel=? AND consumer=? AND owner IS NULL AND acked=0"
            " LIMIT 1",
            (ch, me),
        ).fetchone()
        self._done = left is None and redo is None
        return self._done

    def close(self) -> None:
        """Nothing to release: unacked claims are handed back when the run restarts."""
