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

The package, one module per seam: :mod:`.errors`, :mod:`.avro` (schemas, validation, encoding),
:mod:`.spec` (what a port knows, the port protocol), :mod:`.local` (the SQLite transport),
:mod:`.kafka` (the Kafka transport) and :mod:`.stats` (the sniffer's counters). Every name is
re-exported here: ``from flowc.runtime import channels as ch`` is the way to use them.
"""

from __future__ import annotations

from flowc.runtime.channels.avro import decode, encode, parse_schema, validate_record
from flowc.runtime.channels.errors import ChannelError, SchemaViolation
from flowc.runtime.channels.kafka import (
    DRAIN_QUIET_SECONDS,
    FETCH_SETTLE_SECONDS,
    NO_FETCH_TRUST_SECONDS,
    KafkaInputPort,
    KafkaOutputPort,
    ensure_kafka_topics,
    kafka_common_config,
    kafka_consumer_config,
    kafka_control_topic,
    kafka_group,
    kafka_producer_config,
    kafka_topic,
)
from flowc.runtime.channels.local import (
    DB_NAME,
    DEFAULT_CAPACITY,
    LocalInputPort,
    LocalOutputPort,
    connect,
    prepare_local,
    set_instance_state,
)
from flowc.runtime.channels.spec import (
    DEFAULT_BATCH,
    ChannelSpec,
    InputPort,
    OutputPort,
    env_prefix,
)
from flowc.runtime.channels.stats import bump_port_stats, format_stats, local_stats, read_local

__all__ = [
    "DB_NAME",
    "DEFAULT_BATCH",
    "DEFAULT_CAPACITY",
    "DRAIN_QUIET_SECONDS",
    "FETCH_SETTLE_SECONDS",
    "NO_FETCH_TRUST_SECONDS",
    "ChannelError",
    "ChannelSpec",
    "InputPort",
    "KafkaInputPort",
    "KafkaOutputPort",
    "LocalInputPort",
    "LocalOutputPort",
    "OutputPort",
    "SchemaViolation",
    "bump_port_stats",
    "connect",
    "decode",
    "encode",
    "ensure_kafka_topics",
    "env_prefix",
    "format_stats",
    "kafka_common_config",
    "kafka_consumer_config",
    "kafka_control_topic",
    "kafka_group",
    "kafka_producer_config",
    "kafka_topic",
    "local_stats",
    "parse_schema",
    "prepare_local",
    "read_local",
    "set_instance_state",
    "validate_record",
]
