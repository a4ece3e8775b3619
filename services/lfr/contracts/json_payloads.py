"""Schemas of the JSON topics whose records are plain dicts rather than protobuf messages or models.

Each is built from the code that owns the vocabulary (event kinds come from :mod:`lfr.monitor.schema`), and
a unit test feeds documents valid under the schema to the reader that LFR itself uses, so the schema and
the reader cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any, get_args


def ops_event_record() -> dict[str, Any]:
    """One record of lfr.ops-events.v1, as the monitor stage writes it (keyed by ``subject``)."""
    from lfr.monitor.schema import EventKind

    return {
        "title": "OpsEventRecord",
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": list(get_args(EventKind))},
            "subject": {
                "type": "string",
                "description": "the camera id or deployment id the event is about (also the record key)",
            },
            "at_ms": {"type": "integer", "description": "when the monitor raised it, Unix time in ms"},
            "detail": {
                "type": "object",
                "description": "figures behind the event (e.g. seconds silent, alerts per minute, baseline)",
            },
        },
        "required": ["kind", "subject", "at_ms", "detail"],
    }
