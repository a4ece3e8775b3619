"""Decoding what LFR sends: protobuf alert records, their JSON mirrors and webhook bodies.

Additive changes are the only ones allowed within ``v1``, so every decoder ignores fields it does not
know: a subscriber built against an older schema keeps working when LFR adds a field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from lfr.v1.alert_pb2 import Alert

WEBHOOK_TYPE = "lfr.alert.v1"
WEBHOOK_CHANGES = ("created", "updated", "adjudicated")


class PayloadError(ValueError):
    """A record or request body that is not an LFR alert of this version."""


def decode_alert(payload: bytes | None) -> Alert:
    """An ``lfr.v1.Alert`` from a record of ``lfr.alerts.v1`` or ``lfr.alert-updates.v1``."""
    if payload is None:
        raise PayloadError("empty record where an Alert was expected")
    alert = Alert()
    try:
        alert.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PayloadError(f"not an lfr.v1.Alert: {exc}") from None
    if not alert.alert_id:
        raise PayloadError("Alert without alert_id")
    return alert


def alert_from_json(doc: Any) -> Alert:
    """An ``lfr.v1.Alert`` from its JSON form (the mirror topics and the ``alert`` of a webhook body)."""
    if not isinstance(doc, dict):
        raise PayloadError("an alert must be a JSON object")
    alert = Alert()
    try:
        json_format.ParseDict(doc, alert, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise PayloadError(f"not an lfr.v1.Alert in JSON: {exc}") from None
    if not alert.alert_id:
        raise PayloadError("Alert without alert_id")
    return alert


def decode_alert_json(payload: bytes | None) -> Alert:
    """An ``lfr.v1.Alert`` from a record of ``lfr.alerts.json.v1`` or ``lfr.alert-updates.json.v1``."""
    if payload is None:
        raise PayloadError("empty record where an Alert was expected")
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise PayloadError(f"record is not JSON: {exc}") from None
    return alert_from_json(doc)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook body: what changed and the alert revision it carries."""

    change: str
    alert: Alert


def parse_webhook(body: bytes | str) -> WebhookEvent:
    """Parse a webhook body *after* :func:`lfr.client.webhooks.verify_request` has accepted it."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"webhook body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != WEBHOOK_TYPE:
        raise PayloadError(f"webhook body is not of type {WEBHOOK_TYPE}")
    change = doc.get("change")
    if change not in WEBHOOK_CHANGES:
        raise PayloadError(f"unknown change {change!r}")
    return WebhookEvent(str(change), alert_from_json(doc.get("alert")))
