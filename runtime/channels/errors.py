"""The exceptions of the channel transports (raised by every module of this package)."""

from __future__ import annotations


class ChannelError(Exception):
    """A channel could not be used (bad schema, violating record, missing library, broker)."""


class SchemaViolation(ChannelError):
    """A record does not match its channel's Avro schema. ``channel`` and ``field`` name it."""

    def __init__(self, channel: str, field: str | None, message: str):
        self.channel = channel
        self.field = field
        super().__init__(message)
