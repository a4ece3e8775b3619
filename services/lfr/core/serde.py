"""Protobuf (de)serialisation, kept apart from transport so stages can be tested without a broker."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


class SerdeError(ValueError):
    """A payload that is not a valid message of the expected type; goes to the dead-letter topic."""


def encode(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def decode(cls: type[M], payload: bytes | None) -> M:
    if payload is None:
        raise SerdeError(f"empty payload where {cls.__name__} was expected")
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise SerdeError(f"payload is not a valid {cls.__name__}: {exc}") from None
    return msg


def to_json_dict(message: Message) -> dict:
    """JSON mirror for subscribers that cannot read protobuf; field names stay as in the .proto."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def require(message: Message, *fields: str) -> None:
    """Reject messages that parse but lack the fields a stage cannot work without."""
    missing = [f for f in fields if not getattr(message, f)]
    if missing:
        raise SerdeError(f"{type(message).__name__} lacks required field(s): {', '.join(missing)}")
