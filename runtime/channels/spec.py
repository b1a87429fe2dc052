"""What a port knows about its channel (:class:`ChannelSpec`: name, schema, transport, location,
producers and consumers) and the port protocol both transports implement (:class:`OutputPort`,
:class:`InputPort`, the shared :class:`_Port` base)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from flowc.runtime.channels.avro import (
    _fastavro,
    _nullable,
    _record_fields,
    parse_schema,
    validate_record,
)

DEFAULT_BATCH = 500
"""Most records one ``retrieve()`` returns."""


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


class OutputPort(Protocol):
    """What an operator's output port offers, whatever the transport."""

    name: str
    transport: str

    def send(self, records: Sequence[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class InputPort(Protocol):
    """What an operator's input port offers, whatever the transport: ``retrieve()`` returns what
    arrived since the last call (possibly empty), ``ack()`` acknowledges it, ``done`` tells that
    every producer finished and everything was retrieved."""

    name: str
    transport: str

    def retrieve(self) -> list[dict[str, Any]]: ...

    def ack(self) -> int: ...

    @property
    def done(self) -> bool: ...

    def close(self) -> None: ...
