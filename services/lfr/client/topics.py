"""The alert topics a subscriber reads, and the record header that marks a payload's wire version.

Kept here rather than imported from ``lfr.core.topics`` so the client installs without the service's
settings tree; a unit test holds the two lists equal.
"""

from __future__ import annotations

ALERTS = "lfr.alerts.v1"
ALERT_UPDATES = "lfr.alert-updates.v1"
ALERTS_JSON = "lfr.alerts.json.v1"
ALERT_UPDATES_JSON = "lfr.alert-updates.json.v1"

PROTOBUF_TOPICS = (ALERTS, ALERT_UPDATES)
JSON_TOPICS = (ALERTS_JSON, ALERT_UPDATES_JSON)

# Optional Kafka record header naming the payload's wire version ("v1"). A record without it is of its
# topic's version; a record that names another version is skipped rather than half-understood.
VERSION_HEADER = "lfr-wire-version"


def topic_version(topic: str) -> str:
    """``lfr.alerts.v1`` -> ``v1``."""
    last = topic.rsplit(".", 1)[-1]
    return last if last[:1] == "v" and last[1:].isdigit() else ""
