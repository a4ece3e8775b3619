"""The field-number lock for the v1 wire contracts.

``proto/lfr/v1/fields.lock.json`` records every message's fields (number, name, type). Within a version
only additive changes are allowed: a locked field may not change number or type, and may disappear only
when its number and name are reserved. ``python -m lfr.core.wire_lock --update`` adds new fields to the
lock after review; the compatibility test fails until it is run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from lfr.v1 import (
    adjudication_pb2,
    alert_pb2,
    audit_pb2,
    common_pb2,
    crop_pb2,
    dead_letter_pb2,
    gallery_import_pb2,
    hit_pb2,
)

MODULES = (
    common_pb2,
    crop_pb2,
    hit_pb2,
    alert_pb2,
    adjudication_pb2,
    audit_pb2,
    dead_letter_pb2,
    gallery_import_pb2,
)
LOCK = Path(__file__).resolve().parents[3] / "proto" / "lfr" / "v1" / "fields.lock.json"


def _type_name(f: FieldDescriptor) -> str:
    if f.message_type is not None:
        return f.message_type.full_name
    if f.enum_type is not None:
        return f.enum_type.full_name
    return str(f.type)


def _walk(desc: Descriptor, out: dict[str, Any]) -> None:
    if desc.GetOptions().map_entry:
        return
    out[desc.full_name] = {
        "fields": {
            str(f.number): {"name": f.name, "type": _type_name(f), "repeated": bool(f.is_repeated)}
            for f in desc.fields
        },
    }
    numbers, names = _reserved(desc)
    out[desc.full_name]["reserved_numbers"] = numbers
    out[desc.full_name]["reserved_names"] = names
    for nested in desc.nested_types:
        _walk(nested, out)


def _reserved(desc: Descriptor) -> tuple[list[int], list[str]]:
    """The message's reserved field numbers (ranges expanded) and reserved names, sorted."""
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    numbers = sorted(n for r in proto.reserved_range for n in range(r.start, r.end))
    return numbers, sorted(proto.reserved_name)


def current() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mod in MODULES:
        for desc in mod.DESCRIPTOR.message_types_by_name.values():
            _walk(desc, out)
    return out


def violations(locked: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Breaking changes between the lock and the current descriptors."""
    problems = []
    for msg, spec in locked.items():
        if msg not in now:
            problems.append(f"message {msg} was removed")
            continue
        cur = now[msg]
        for number, field in spec["fields"].items():
            if number in cur["fields"]:
                c = cur["fields"][number]
                if c["type"] != field["type"] or c["repeated"] != field["repeated"]:
                    problems.append(f"{msg} field {number} ({field['name']}) changed type")
                if c["name"] != field["name"]:
                    problems.append(f"{msg} field {number} renamed {field['name']} -> {c['name']}")
            elif int(number) not in cur["reserved_numbers"] or field["name"] not in cur["reserved_names"]:
                problems.append(
                    f"{msg} field {number} ({field['name']}) removed without reserving number and name"
                )
    return problems


def unlocked(locked: dict[str, Any], now: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for msg, spec in now.items():
        known = locked.get(msg, {"fields": {}})["fields"]
        out.extend(f"{msg}.{f['name']} = {n}" for n, f in spec["fields"].items() if n not in known)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--update", action="store_true", help="add new fields to the lock (never removes)")
    args = p.parse_args()
    now = current()
    locked = json.loads(LOCK.read_text()) if LOCK.exists() else {}
    bad = violations(locked, now)
    if bad:
        raise SystemExit("breaking wire changes:\n  " + "\n  ".join(bad))
    if args.update:
        merged = {**locked}
        for msg, spec in now.items():
            merged[msg] = spec
        LOCK.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        print(f"lock updated: {len(merged)} messages")
    else:
        print("\n".join(unlocked(locked, now)) or "lock up to date")


if __name__ == "__main__":
    main()
