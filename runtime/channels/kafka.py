"""The ``kafka`` transport (confluent-kafka, imported lazily): topic, control-topic and group
names, client configuration, topic creation, and the Kafka output and input ports (a consumer
is done once every producer announced its end and its partitions are read to the end)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from flowc.runtime.channels.avro import decode, encode
from flowc.runtime.channels.errors import ChannelError
from flowc.runtime.channels.spec import DEFAULT_BATCH, ChannelSpec, _Port

DRAIN_QUIET_SECONDS = 2.0
"""Kafka: a consumer is done only after this long without a new record (with every producer
finished and its partitions read to their high watermark)."""

NO_FETCH_TRUST_SECONDS = 15.0
"""Kafka: a partition this consumer never fetched from is judged by a ListOffsets query only
after this long."""

FETCH_SETTLE_SECONDS = 1.0
"""Kafka: how long after every producer announced its end a consumer keeps fetching before it
trusts the high watermarks (librdkafka fetches at least every ``fetch.wait.max.ms``, 500 ms)."""


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
            # no partition of its own: more replicas than partitions, or a rebalance in progress
            # (another replica left, every assignment revoked): done only when the group as a
            # whole has read every partition to its end
            return self._group_not_drained()
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

    def _group_not_drained(self) -> str | None:
        """Why the consumer group has not committed every partition of the topic up to its high
        watermark (None: it has)."""
        ck, topic = self._ck, kafka_topic(self.spec)
        meta = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or not meta.partitions:
            return f"topic {topic}: no partitions listed yet"
        tps = [ck.TopicPartition(topic, p) for p in sorted(meta.partitions)]
        for tp in self._consumer.committed(tps, timeout=10):
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            pos = tp.offset if tp.offset >= 0 else low
            if pos < high:
                return f"group: partition {tp.partition} committed at {pos} of {high}"
        return None

    def close(self) -> None:
        self._consumer.close()
        self._control.close()
