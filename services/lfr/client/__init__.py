"""Client kit for systems that subscribe to LFR alerts (install with ``pip install 'lfr[client]'``).

Needs only aiokafka and protobuf: :class:`AlertSubscriber` reads the alert topics with the delivery rules
built in (de-duplicate by ``alert_id``, keep the highest ``revision``, commit after the handler returns);
:func:`verify_request` and :class:`ReplayGuard` check signed webhooks; :func:`parse_webhook` reads their body.
docs/subscribers.md describes the topics, keys, headers and payloads.
"""

from lfr.client.latest import LatestRevisions
from lfr.client.payloads import (
    PayloadError,
    WebhookEvent,
    alert_from_json,
    decode_alert,
    decode_alert_json,
    parse_webhook,
)
from lfr.client.subscriber import AlertDelivery, AlertHandler, AlertSubscriber
from lfr.client.topics import ALERT_UPDATES, ALERT_UPDATES_JSON, ALERTS, ALERTS_JSON, VERSION_HEADER
from lfr.client.webhooks import (
    DEFAULT_TOLERANCE_S,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    sign,
    verify_request,
    verify_signature,
)

__all__ = [
    "ALERTS",
    "ALERTS_JSON",
    "ALERT_UPDATES",
    "ALERT_UPDATES_JSON",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "VERSION_HEADER",
    "AlertDelivery",
    "AlertHandler",
    "AlertSubscriber",
    "LatestRevisions",
    "PayloadError",
    "ReplayGuard",
    "WebhookEvent",
    "alert_from_json",
    "decode_alert",
    "decode_alert_json",
    "parse_webhook",
    "sign",
    "verify_request",
    "verify_signature",
]
