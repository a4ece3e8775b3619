"""JSON Schemas of the ``lfr.v1`` messages in the form LFR writes them as JSON.

That form is protobuf's canonical JSON mapping as produced by ``lfr.core.serde.to_json_dict``: field names
as in the ``.proto`` (not camelCase), every scalar, repeated and map field always present (zero values
included), message fields present only when set, 64-bit integers as decimal strings, enums by name,
``bytes`` as base64 and ``google.protobuf.Timestamp`` as an RFC 3339 string. The same schemas describe the
protobuf topics' payloads field for field (their records are the binary encoding of these messages).

Unknown properties are allowed on purpose: within ``v1`` LFR may add fields, and a subscriber validating
with these schemas must keep accepting records that carry them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto

from lfr.contracts.descriptors import ContractError, ProtoModel

Schema = dict[str, Any]
F = FieldDescriptorProto

_INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
_UINT32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
_INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64}
_UINT64 = {F.TYPE_UINT64, F.TYPE_FIXED64}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time in UTC, e.g. 2026-12-05T16:50:00.123Z",
    },
}


def _scalar(fd: FieldDescriptorProto, model: ProtoModel, ref: str) -> Schema:
    t = fd.type
    if t == F.TYPE_STRING:
        return {"type": "string"}
    if t == F.TYPE_BOOL:
        return {"type": "boolean"}
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return {"type": "number"}
    if t in _INT32:
        return {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    if t in _UINT32:
        return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    if t in _INT64:
        return {
            "type": "string",
            "pattern": "^-?[0-9]+$",
            "description": "64-bit integer as a decimal string",
        }
    if t in _UINT64:
        return {"type": "string", "pattern": "^[0-9]+$", "description": "64-bit integer as a decimal string"}
    if t == F.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    if t == F.TYPE_ENUM:
        name = fd.type_name.lstrip(".")
        if name not in model.enums:
            raise ContractError(f"enum {name} is not defined in proto/")
        return {"$ref": ref + name}
    if t == F.TYPE_MESSAGE:
        name = fd.type_name.lstrip(".")
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in model.messages:
            raise ContractError(f"message {name} is not defined in proto/")
        return {"$ref": ref + name}
    raise ContractError(f"field {fd.name}: protobuf type {t} has no JSON Schema mapping here")


def _map_entry(msg: DescriptorProto, fd: FieldDescriptorProto) -> DescriptorProto | None:
    if fd.type != F.TYPE_MESSAGE or fd.label != F.LABEL_REPEATED:
        return None
    short = fd.type_name.rsplit(".", 1)[-1]
    for nested in msg.nested_type:
        if nested.name == short and nested.options.map_entry:
            return nested
    return None


def _field(msg: DescriptorProto, fd: FieldDescriptorProto, model: ProtoModel, ref: str) -> Schema:
    entry = _map_entry(msg, fd)
    if entry is not None:
        key, value = entry.field
        if key.type != F.TYPE_STRING:
            raise ContractError(f"map field {fd.name}: only string keys are mapped")
        return {"type": "object", "additionalProperties": _scalar(value, model, ref)}
    item = _scalar(fd, model, ref)
    if fd.label == F.LABEL_REPEATED:
        return {"type": "array", "items": item}
    return item


def _has_presence(fd: FieldDescriptorProto) -> bool:
    """Fields that JSON omits when unset: messages (timestamps included) and proto3 ``optional``."""
    return (fd.type == F.TYPE_MESSAGE and fd.label != F.LABEL_REPEATED) or fd.proto3_optional


def message_schemas(model: ProtoModel, ref: str) -> dict[str, Schema]:
    """One schema per message and enum, keyed by full name; references point at ``ref + full name``."""
    out: dict[str, Schema] = {}
    for name, enum in sorted(model.enums.items()):
        schema: Schema = {"title": name, "type": "string", "enum": [v.name for v in enum.proto.value]}
        if enum.comment:
            schema["description"] = enum.comment
        out[name] = schema
    for name, m in sorted(model.messages.items()):
        props: dict[str, Schema] = {}
        required: list[str] = []
        for fd in m.proto.field:
            prop = _field(m.proto, fd, model, ref)
            note = m.field_comments.get(fd.name, "")
            if note:
                prop["description"] = f"{prop['description']}; {note}" if "description" in prop else note
            props[fd.name] = prop
            if not _has_presence(fd):
                required.append(fd.name)
        schema = {"title": name, "type": "object"}
        if m.comment:
            schema["description"] = m.comment
        schema["properties"] = props
        schema["required"] = required
        out[name] = schema
    return out


def reachable(schemas: dict[str, Schema], roots: list[str], ref: str) -> list[str]:
    """The names ``roots`` refer to, directly or not (for self-contained standalone documents)."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo.extend(_refs(schemas[name], ref))
    return sorted(seen)


def _refs(node: Any, ref: str) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"][len(ref) :]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            found.extend(_refs(v, ref))
        return found
    if isinstance(node, list):
        return [r for v in node for r in _refs(v, ref)]
    return []
