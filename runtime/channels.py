"""Channel transports for streaming operators (pypz): ports that carry Avro-validated records.

Owns the ``local`` transport (one SQLite database in WAL mode, shared by every operator process
of a run on one machine) and the ``kafka`` transport (confluent-kafka, imported lazily), the
Avro validation of records (fastavro, imported lazily) and the per-port counters the sniffer
reads.

Semantics shared by both transports (docs/streaming.md):

* An output port has ``send(records)``; an input port has ``retrieve()`` (what arrived since the
  last call, possibly empty) and ``done`` (every producer replica finished and everything was
  retrieved).
* Every record sent is retrieved by exactly one replica of each consuming operator (a consumer
  group per consuming step).
* At-least-once: the records a ``retrieve()`` returned are acknowledged after the operator's
  ``on_running`` call that retrieved them returns (:meth:`InputPort.ack`). Unacknowledged records
  go back to the group when the run is started again (``release_unacked``) and are redelivered.
* Back-pressure (local): ``send`` waits while the slowest consuming group has more than
  ``capacity`` records sent but not acknowledged.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_CAPACITY = 1000
"""Local back-pressure bound: records sent but not yet acked by the slowest consumer group."""

DEFAULT_BATCH = 500
"""Most records one ``retrieve()`` returns."""

DB_NAME = "channels.sqlite"

DRAIN_QUIET_SECONDS = 2.0
"""Kafka: a consumer is done only after this long without a new record (with every producer
finished and its partitions read to their high watermark)."""

NO_FETCH_TRUST_SECONDS = 15.0
"""Kafka: a partition this consumer never fetched from is judged by a ListOffsets query only
after this long."""

FETCH_SETTLE_SECONDS = 1.0
"""Kafka: how long after every producer announced its end a consumer keeps fetching before it
trusts the high watermarks (librdkafka fetches at least every ``fetch.wait.max.ms``, 500 ms)."""


class ChannelError(Exception):
    """A channel could not be used (bad schema, violating record, missing library, broker)."""


class SchemaViolation(ChannelError):
    """A record does not match its channel's Avro schema. ``channel`` and ``field`` name it."""

    def __init__(self, channel: str, field: str | None, message: str):
        self.channel = channel
        self.field = field
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Avro (fastavro, lazily)
# ---------------------------------------------------------------------------------------------


_FASTAVRO: Any = None


def _fastavro() -> Any:
    global _FASTAVRO
    if _FASTAVRO is not None:
        return _FASTAVRO
    try:
        import fastavro
        import fastavro.validation  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ChannelError(
            "streaming channels need fastavro: pip install 'flowc[streaming]'"
        ) from e
    _FASTAVRO = fastavro
    return fastavro


def parse_schema(channel: str, schema: Any) -> Any:
    """The fastavro-parsed schema of ``channel`` (``schema`` as JSON data or a JSON string)."""
    fastavro = _fastavro()
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            pass  # a bare type name such as "string"
    try:
        return fastavro.parse_schema(schema)
    except Exception as e:
        raise ChannelError(f"channel '{channel}': invalid Avro schema: {e}") from e


def _record_fields(parsed: Any) -> list[dict[str, Any]] | None:
    if isinstance(parsed, dict) and parsed.get("type") == "record":
        return list(parsed.get("fields") or [])
    return None


def _nullable(ftype: Any) -> bool:
    return ftype == "null" or (isinstance(ftype, list) and "null" in ftype)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_record(channel: str, parsed: Any, record: Any, index: int = 0) -> None:
    """Raise :class:`SchemaViolation` naming the channel and the field when ``record`` does not
    match the parsed Avro schema."""
    fastavro = _fastavro()
    fields = _record_fields(parsed)
    where = f"channel '{channel}': record #{index}"
    if fields is not None:
        name = parsed.get("name", "record")
        if not isinstance(record, Mapping):
            raise SchemaViolation(
                channel,
                None,
                f"{where} must be a dict matching {name}, got {type(record).__name__}",
            )
        known = [f["name"] for f in fields]
        for key in record:
            if key not in known:
                raise SchemaViolation(
                    channel,
                    str(key),
                    f"{where}: field '{key}' is not in schema {name} (fields: {', '.join(known)})",
                )
        for f in fields:
            if f["name"] not in record and "default" not in f and not _nullable(f["type"]):
                raise SchemaViolation(
                    channel,
                    f["name"],
                    f"{where}: required field '{f['name']}' of {name} is missing",
                )
    try:
        fastavro.validation.validate(record, parsed, raise_errors=True)
    except fastavro.validation.ValidationError as e:
        err = e.errors[0] if getattr(e, "errors", None) else None
        field = getattr(err, "field", "") or ""
        if fields is not None and field.startswith(f"{parsed.get('name')}."):
            field = field[len(parsed.get("name")) + 1 :]
        expected = getattr(err, "schema", None)
        if isinstance(expected, dict):
            expected = expected.get("name") or expected.get("type")
        datum = getattr(err, "datum", record)
        raise SchemaViolation(
            channel,
            field or None,
            f"{where}: field '{field or '(record)'}' is {_short(datum)} "
            f"({type(datum).__name__}), expected {expected}",
        ) from None


def encode(parsed: Any, record: Any) -> bytes:
    """Avro binary (schemaless) encoding of one validated record."""
    buf = io.BytesIO()
    _fastavro().schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def decode(parsed: Any, payload: bytes) -> Any:
    return _fastavro().schemaless_reader(io.BytesIO(payload), parsed, parsed)


# ---------------------------------------------------------------------------------------------
# Channel configuration (what a port knows)
# ---------------------------------------------------------------------------------------------


def env_prefix(channel: str) -> str:
    """``records`` -> ``FLOWC_CHANNEL_RECORDS``: ``<prefix>_LOCATION`` in an operator's
    environment overrides the channel's location (set by the k8s target)."""
    return "FLOWC_CHANNEL_" + "".join(c if c.isalnum() else "_" for c in channel).upper()


class ChannelSpec:
    """One channel as a port sees it: name, schema, transport, location (cascaded to every port
    on the channel), producer and consumer steps with their replica counts."""

    def __init__(
        self,
        name: str,
        schema: Any,
        *,
        transport: str = "local",
        location: str | None = None,
        producers: Mapping[str, int] | None = None,
        consumers: Mapping[str, int] | None = None,
        flow: str = "flow",
        run_id: str = "run",
    ):
        self.name = name
        self.schema = schema
        self.transport = transport
        self.location = location
        self.producers = dict(producers or {})  # step -> replicas
        self.consumers = dict(consumers or {})
        self.flow = flow
        self.run_id = run_id
        self.parsed = parse_schema(name, schema)
        fields = _record_fields(self.parsed)
        self._known = None if fields is None else {f["name"] for f in fields}
        self._required = (
            []
            if fields is None
            else [f["name"] for f in fields if "default" not in f and not _nullable(f["type"])]
        )

    def validate(self, records: Sequence[Any]) -> None:
        """Raise :class:`SchemaViolation` for the first record that does not match (fast path:
        one ``validate_many`` call for the batch; the detailed check only on failure)."""
        known, required = self._known, self._required
        if known is not None:
            for i, r in enumerate(records):
                if (
                    not isinstance(r, Mapping)
                    or not known.issuperset(r)
                    or any(f not in r for f in required)
                ):
                    validate_record(self.name, self.parsed, r, i)
        fastavro = _fastavro()
        try:
            fastavro.validation.validate_many(records, self.parsed, raise_errors=True)
        except fastavro.validation.ValidationError:
            for i, r in enumerate(records):
                validate_record(self.name, self.parsed, r, i)
            raise


# ---------------------------------------------------------------------------------------------
# The local transport: SQLite in WAL mode
# ---------------------------------------------------------------------------------------------

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


class _Port:
    """What every port shows: its channel (``name``, ``schema``, ``location``), its transport and
    the operator replica it belongs to."""

    transport = ""

    def __init__(self, spec: ChannelSpec, step: str, replica: int):
        self.spec = spec
        self.name = spec.name
        self.schema = spec.schema
        self.location = spec.location
        self.step = step
        self.replica = replica


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
                fresh = con.execute(
                    "SELECT id, payload FROM records WHERE channel=? AND id>=? ORDER BY id LIMIT ?",
                    (ch, self._next_id(), room),
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


def local_stats(db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """What the sniffer shows: per port and replica counts, per group progress, instance states."""
    con = connect(db_path)
    try:
        ports = [
            {"step": s, "channel": c, "replica": r, "direction": d, "count": n}
            for s, c, r, d, n in con.execute(
                "SELECT step, channel, replica, direction, count FROM port_stats"
                " ORDER BY channel, direction DESC, step, replica"
            )
        ]
        produced = dict(con.execute("SELECT channel, count FROM produced ORDER BY channel"))
        groups = [
            {"channel": c, "consumer": g, "acked": n}
            for c, g, n in con.execute(
                "SELECT channel, consumer, acked FROM groups ORDER BY channel, consumer"
            )
        ]
        inflight = dict(
            ((c, g), n)
            for c, g, n in con.execute(
                "SELECT channel, consumer, count(*) FROM claims WHERE acked=0"
                " GROUP BY channel, consumer"
            )
        )
        for g in groups:
            g["in_flight"] = inflight.get((g["channel"], g["consumer"]), 0)
            g["lag"] = produced.get(g["channel"], 0) - g["acked"]
        instances = [
            {"step": s, "replica": r, "state": st, "error": e}
            for s, r, st, e in con.execute(
                "SELECT step, replica, state, error FROM instances ORDER BY step, replica"
            )
        ]
        return {"ports": ports, "produced": produced, "groups": groups, "instances": instances}
    finally:
        con.close()


def bump_port_stats(
    db_path: str | os.PathLike[str], step: str, counts: Mapping[tuple[str, str], int], replica: int
) -> None:
    """Add ``{(channel, "out"|"in"): n}`` to the sniffer's counters (used for kafka ports; the
    local transport counts inside its own transactions)."""
    counts = {k: n for k, n in counts.items() if n}
    if not counts:
        return
    con = connect(db_path)
    try:
        with _Tx(con):
            for (channel, direction), n in sorted(counts.items()):
                _bump(con, step, channel, replica, direction, n)
    finally:
        con.close()


def format_stats(stats: Mapping[str, Any], title: str = "") -> str:
    """The sniffer's text: per channel, records produced / consumed per port and replica, each
    consumer group's progress, then the state of every operator replica."""
    lines = [title] if title else []
    channels = sorted(
        {p["channel"] for p in stats["ports"]}
        | set(stats["produced"])
        | {g["channel"] for g in stats["groups"]}
    )
    for c in channels:
        lines.append(f"channel {c}: {stats['produced'].get(c, 0)} record(s) in the channel")
        for p in stats["ports"]:
            if p["channel"] == c:
                arrow = "produced" if p["direction"] == "out" else "consumed"
                who = f"{p['step']}[{p['replica']}]"
                lines.append(f"  {who:<24} {arrow:<9} {p['count']:>8}")
        for g in stats["groups"]:
            if g["channel"] == c:
                lines.append(
                    f"  group {g['consumer']}: acknowledged {g['acked']}, "
                    f"in flight {g['in_flight']}, lag {g['lag']}"
                )
    if stats["instances"]:
        states = ", ".join(f"{i['step']}[{i['replica']}] {i['state']}" for i in stats["instances"])
        lines.append(f"operators: {states}")
        for i in stats["instances"]:
            if i.get("error"):
                lines.append(f"  {i['step']}[{i['replica']}] error: {i['error']}")
    return "\n".join(lines)


def read_local(db_path: str | os.PathLike[str], channel: str, schema: Any) -> list[dict[str, Any]]:
    """Every record ever sent on ``channel`` (decoded), in order: for tests and debugging."""
    parsed = parse_schema(channel, schema)
    con = connect(db_path)
    try:
        return [
            decode(parsed, bytes(p))
            for (p,) in con.execute(
                "SELECT payload FROM records WHERE channel=? ORDER BY id", (channel,)
            )
        ]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# The kafka transport (confluent-kafka, lazily)
# ---------------------------------------------------------------------------------------------


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ChannelError(
            "the kafka transport needs confluent-kafka: pip install 'flowc[streaming]'"
        ) from e
    return confluent_kafka


def _kafka_name(*parts: str) -> str:
    text = ".".join(parts)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:240]


def kafka_topic(spec: ChannelSpec) -> str:
    """The topic of a channel in one run: ``<flow>.<run id>.<channel>``. Like the local
    transport's per-run database, every run has its own stream; ``--resume`` (same run id)
    continues it, so unacknowledged records are redelivered."""
    return _kafka_name(spec.flow, spec.run_id, spec.name)


def kafka_control_topic(spec: ChannelSpec) -> str:
    """Where producer replicas announce they finished (pypz keeps a control plane too)."""
    return _kafka_name(spec.flow, spec.run_id, spec.name, "control")


def kafka_group(spec: ChannelSpec, step: str) -> str:
    """One consumer group per consuming operator (and run)."""
    return _kafka_name(spec.flow, spec.run_id, step)


def _require_location(spec: ChannelSpec) -> str:
    if not spec.location:
        raise ChannelError(
            f"channel '{spec.name}': the kafka transport needs a location (bootstrap servers)"
        )
    return str(spec.location)


def kafka_common_config(spec: ChannelSpec) -> dict[str, Any]:
    return {"bootstrap.servers": _require_location(spec)}


def kafka_consumer_config(spec: ChannelSpec, step: str, replica: int) -> dict[str, Any]:
    """Manual commits (ack after ``on_running``), earliest offset for a new group."""
    return {
        **kafka_common_config(spec),
        "group.id": kafka_group(spec, step),
        "client.id": f"{step}-{replica}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 300000,
    }


def kafka_producer_config(spec: ChannelSpec, step: str, replica: int) -> dict[str, Any]:
    return {**kafka_common_config(spec), "client.id": f"{step}-{replica}", "acks": "all"}


def ensure_kafka_topics(spec: ChannelSpec, timeout: float = 30.0) -> None:
    """Create the channel's data topic (one partition per consumer replica, at least one) and its
    control topic when missing."""
    ck = _kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka_common_config(spec))
    parts = max([1, *spec.consumers.values()])
    existing = admin.list_topics(timeout=timeout).topics
    new = [
        NewTopic(t, num_partitions=n, replication_factor=1)
        for t, n in ((kafka_topic(spec), parts), (kafka_control_topic(spec), 1))
        if t not in existing
    ]
    if not new:
        return
    for topic, fut in admin.create_topics(new).items():
        try:
            fut.result(timeout)
        except ck.KafkaException as e:
            if (
                e.args
                and getattr(e.args[0], "code", lambda: None)() == ck.KafkaError.TOPIC_ALREADY_EXISTS
            ):
                continue
            raise ChannelError(f"channel '{spec.name}': cannot create topic {topic}: {e}") from e


class KafkaOutputPort(_Port):
    """Avro-binary records to ``<flow>.<channel>``; ``close()`` flushes and announces this
    replica finished on the control topic."""

    transport = "kafka"

    def __init__(self, spec: ChannelSpec, step: str, replica: int):
        ck = _kafka()
        super().__init__(spec, step, replica)
        self.sent = 0
        self._producer = ck.Producer(kafka_producer_config(spec, step, replica))
        self._errors: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(self, records: Sequence[dict[str, Any]]) -> None:
        records = list(records)
        if not records:
            return
        self.spec.validate(records)
        topic = kafka_topic(self.spec)
        for r in records:
            payload = encode(self.spec.parsed, r)
            while True:
                try:
                    self._producer.produce(topic, value=payload, on_delivery=self._on_delivery)
                    break
                except BufferError:  # back-pressure: the local queue is full
                    self._producer.poll(0.1)
            self._producer.poll(0)
        self.sent += len(records)
        if self._errors:
            raise ChannelError(f"channel '{self.name}': delivery failed: {self._errors[0]}")

    def close(self, finished: bool = True) -> None:
        left = self._producer.flush(60)
        if left or self._errors:
            raise ChannelError(
                f"channel '{self.name}': {left} record(s) not delivered"
                + (f": {self._errors[0]}" if self._errors else "")
            )
        if finished:
            marker = {
                "run": self.spec.run_id,
                "producer": self.step,
                "replica": self.replica,
                "sent": self.sent,
            }
            self._producer.produce(kafka_control_topic(self.spec), value=json.dumps(marker))
            self._producer.flush(60)


class KafkaInputPort(_Port):
    """A consumer in the group ``<flow>.<step>``; ``ack()`` commits the offsets of what was
    retrieved; ``done`` once every producer replica announced it finished and this replica's
    partitions are read to their end."""

    transport = "kafka"

    def __init__(self, spec: ChannelSpec, step: str, replica: int, *, batch: int = DEFAULT_BATCH):
        ck = _kafka()
        self._ck = ck
        super().__init__(spec, step, replica)
        self.batch = batch
        self.retrieved = 0
        self._consumer = ck.Consumer(kafka_consumer_config(spec, step, replica))
        self._joined = False
        self._consumer.subscribe([kafka_topic(spec)], on_assign=self._on_assign)
        self._control = ck.Consumer(
            {
                **kafka_common_config(spec),
                "group.id": f"{kafka_group(spec, step)}.control.{replica}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._control.assign([ck.TopicPartition(kafka_control_topic(spec), 0, ck.OFFSET_BEGINNING)])
        self._finished: set[tuple[str, int]] = set()
        self._finished_seen: float | None = None
        self._debug_at = 0.0
        self._last_message = 0.0
        self._pending: list[Any] = []

    def retrieve(self) -> list[dict[str, Any]]:
        out = []
        for msg in self._consumer.consume(self.batch, 0.2):
            if msg.error():
                if msg.error().code() == self._ck.KafkaError._PARTITION_EOF:
                    continue
                raise ChannelError(f"channel '{self.name}': {msg.error()}")
            out.append(decode(self.spec.parsed, msg.value()))
            self._pending.append(msg)
            self._last_message = time.monotonic()
        self.retrieved += len(out)
        return out

    def ack(self) -> int:
        if not self._pending:
            return 0
        n = len(self._pending)
        offsets: dict[tuple[str, int], int] = {}
        for m in self._pending:
            key = (m.topic(), m.partition())
            offsets[key] = max(offsets.get(key, -1), m.offset() + 1)
        self._pending = []
        self._consumer.commit(
            offsets=[self._ck.TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())],
            asynchronous=False,
        )
        return n

    def _poll_control(self) -> None:
        for msg in self._control.consume(100, 0.05):
            if msg.error():
                continue
            data = json.loads(msg.value())
            if data.get("run") == self.spec.run_id:  # markers of earlier runs do not count
                self._finished.add((data["producer"], int(data["replica"])))

    def _on_assign(self, _consumer: Any, _partitions: Any) -> None:
        self._joined = True

    @property
    def done(self) -> bool:
        """Every producer replica announced it finished, this replica joined its group, and every
        partition assigned to it is read up to its end."""
        why = self._why_not_done()
        if why and os.environ.get("FLOWC_KAFKA_DEBUG"):
            now = time.monotonic()
            if now - self._debug_at > 1.0:
                self._debug_at = now
                print(f"flowc kafka {self.step}[{self.replica}]: not done: {why}", file=sys.stderr)
        return why is None

    def _why_not_done(self) -> str | None:
        self._poll_control()
        expected = {(p, r) for p, n in self.spec.producers.items() for r in range(n)}
        if not expected <= self._finished:
            return f"producers finished: {sorted(self._finished)} of {sorted(expected)}"
        if self._finished_seen is None:
            self._finished_seen = time.monotonic()
        if time.monotonic() - self._finished_seen < FETCH_SETTLE_SECONDS:
            return "settling"  # let a fetch response after the producers' last record arrive
        if not self._joined:
            self._consumer.poll(0)  # serve the group join
            return "not joined"
        assignment = self._consumer.assignment()
        if not assignment:
            return None
        quiet = time.monotonic() - self._last_message
        if quiet < DRAIN_QUIET_SECONDS:
            # records still arrived lately: not drained yet, whatever the watermarks say (a
            # high watermark is only as good as the broker's; this does not depend on it)
            return f"last record {quiet:.1f}s ago"
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in self._consumer.committed(assignment, timeout=10)
        }
        for tp in self._consumer.position(assignment):
            # the high watermark of this consumer's last fetch response for the partition (a
            # ListOffsets query is not trusted alone: some Kafka-compatible brokers answer it
            # per batch, not per record); none yet: keep fetching, or after a while use both
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            cached = self._consumer.get_watermark_offsets(tp, cached=True)
            if cached and cached[1] >= 0:
                high = max(high, cached[1])
            elif time.monotonic() - self._finished_seen < NO_FETCH_TRUST_SECONDS:
                return f"partition {tp.partition}: no fetched watermark yet"
            pos = tp.offset
            if pos < 0:
                pos = committed.get((tp.topic, tp.partition), -1)
            if pos < 0:
                pos = low
            if pos < high:
                return f"partition {tp.partition}: at {pos} of {high}"
        return None

    def close(self) -> None:
        self._consumer.close()
        self._control.close()
