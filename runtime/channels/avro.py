"""Avro for channels: parsing a channel's schema, validating records (a violation names the
channel and the field), binary encoding and decoding. fastavro is imported lazily, on first use.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from flowc.runtime.channels.errors import ChannelError, SchemaViolation

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
