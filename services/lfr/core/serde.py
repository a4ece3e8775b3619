"""Protobuf (de)serialisation, kept apart from transport so stages can be tested without a broker.

Every consumed record is hostile until decoded: anything on a topic may have been written by a buggy or
compromised producer. So decoding refuses oversized payloads before parsing them, turns every parser failure
into :class:`SerdeError` (whose ``reason`` becomes the DeadLetter reason), and records that a producer marked
with another wire version than the topic's are refused instead of being half-understood.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)

# Far above any record LFR writes (a FaceCrop with chip and context crop is tens of KB), below what would
# let one record pin a worker's memory. Brokers also cap records (message.max.bytes): this is the reader's.
MAX_RECORD_BYTES = 4 * 1024 * 1024
# Optional record header naming the wire version of the payload ("v1"). Records without it are of their
# topic's version; a producer of a later version marks its records so that v1 readers refuse them cleanly.
VERSION_HEADER = "lfr-wire-version"


class SerdeError(ValueError):
    """A payload that is not a valid message of the expected type; goes to the dead-letter topic."""

    reason = "bad_payload"


class OversizedRecord(SerdeError):
    reason = "oversized"


class UnknownVersion(SerdeError):
    reason = "unknown_version"


def encode(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def decode(cls: type[M], payload: bytes | None, max_bytes: int = MAX_RECORD_BYTES) -> M:
    if payload is None:
        raise SerdeError(f"empty payload where {cls.__name__} was expected")
    if len(payload) > max_bytes:
        raise OversizedRecord(f"{cls.__name__} payload of {len(payload):,} bytes exceeds {max_bytes:,}")
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        # DecodeError for malformed wire data and invalid UTF-8; RuntimeError/ValueError for nesting
        # beyond the parser's recursion limit, depending on the protobuf backend.
        raise SerdeError(f"payload is not a valid {cls.__name__}: {exc}") from None
    return msg


def topic_version(topic: str) -> str:
    """``lfr.crops.v1`` -> ``v1``; topics without a version suffix have none ("")."""
    last = topic.rsplit(".", 1)[-1]
    return last if last[:1] == "v" and last[1:].isdigit() else ""


def check_version(topic: str, headers: Iterable[tuple[str, bytes]] | None) -> None:
    """Raise UnknownVersion when the record's version header names another version than its topic's."""
    expected = topic_version(topic)
    for name, value in headers or ():
        if name != VERSION_HEADER:
            continue
        got = bytes(value or b"").decode("ascii", errors="replace")
        if got != expected:
            raise UnknownVersion(f"record is wire version {got[:20]!r}; {topic} carries {expected!r}")


def version_header(topic: str) -> tuple[str, bytes]:
    return (VERSION_HEADER, topic_version(topic).encode())


def to_json_dict(message: Message) -> dict:
    """JSON mirror for subscribers that cannot read protobuf; field names stay as in the .proto."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def require(message: Message, *fields: str) -> None:
    """Reject messages that parse but lack the fields a stage cannot work without."""
    missing = [f for f in fields if not getattr(message, f)]
    if missing:
        raise SerdeError(f"{type(message).__name__} lacks required field(s): {', '.join(missing)}")
