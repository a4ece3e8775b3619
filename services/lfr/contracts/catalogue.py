"""What each topic carries and how a reader should treat it: the facts the generated documents state.

Names, partitions, keys and retention come from :func:`lfr.core.topics.topic_specs` (at default settings);
this table adds what the topic specs do not say: the message type, the encoding, who may read the topic,
which field identifies a record for de-duplication, and the delivery rule a reader must apply.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lfr.contracts.descriptors import ContractError
from lfr.core import topics
from lfr.core.topics import TopicSpec

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

AT_LEAST_ONCE = (
    "Delivery is at least once: a record can arrive more than once (after a producer crash or a "
    "consumer rebalance). Records with the same key are ordered within their partition."
)


@dataclass(frozen=True)
class TopicContract:
    topic: str
    channel_id: str
    message: str  # full protobuf name, or "" for a topic whose payload is a JSON model or opaque
    content_type: str
    audience: str  # "subscribers" or "internal"
    identity: str  # payload field that identifies a record (correlation id); "" when none
    semantics: str
    consumer_group: str = ""  # LFR's own consumer group, for topics LFR reads
    json_schema: str = ""  # "module:name" of a pydantic model, or of a function returning a JSON Schema
    opaque: bool = False  # the payload belongs to a library (faust table changelogs)

    @property
    def message_name(self) -> str:
        """The payload's name in the document: the protobuf type, the model class, or the channel."""
        if self.message:
            return self.message
        if self.json_schema:
            return str(payload_schema(self.json_schema).get("title") or self.json_schema.rsplit(":", 1)[-1])
        return self.channel_id[:1].upper() + self.channel_id[1:]


def payload_schema(path: str, ref_template: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a JSON topic's records: a pydantic model's, or what a schema function returns."""
    module, _, name = path.partition(":")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ContractError(f"payload schema {path} not found: {exc}") from exc
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        if ref_template is None:
            return obj.model_json_schema()
        return obj.model_json_schema(ref_template=ref_template)
    return dict(obj())


ALERT_SEMANTICS_RAISED = (
    f"{AT_LEAST_ONCE} Each alert is raised here once; after a crash the same alert_id can appear again "
    "(same revision): de-duplicate by alert_id. Its later revisions follow on lfr.alert-updates.v1."
)
ALERT_SEMANTICS_UPDATES = (
    f"{AT_LEAST_ONCE} Later revisions of raised alerts (more sightings, an officer's decision). Revisions "
    "written by the API and by the alerting stage can interleave, and an update can be read before the "
    "raise on the other topic: keep the highest revision per alert_id and ignore lower ones."
)

CONTRACTS: tuple[TopicContract, ...] = (
    TopicContract(
        topics.ALERTS,
        "alerts",
        "lfr.v1.Alert",
        PROTOBUF,
        "subscribers",
        "alert_id",
        ALERT_SEMANTICS_RAISED,
    ),
    TopicContract(
        topics.ALERTS_JSON,
        "alertsJson",
        "lfr.v1.Alert",
        JSON,
        "subscribers",
        "alert_id",
        f"The JSON mirror of lfr.alerts.v1, record for record (same key, same rules). "
        f"{ALERT_SEMANTICS_RAISED}",
    ),
    TopicContract(
        topics.ALERT_UPDATES,
        "alertUpdates",
        "lfr.v1.Alert",
        PROTOBUF,
        "subscribers",
        "alert_id",
        ALERT_SEMANTICS_UPDATES,
    ),
    TopicContract(
        topics.ALERT_UPDATES_JSON,
        "alertUpdatesJson",
        "lfr.v1.Alert",
        JSON,
        "subscribers",
        "alert_id",
        f"The JSON mirror of lfr.alert-updates.v1, record for record. {ALERT_SEMANTICS_UPDATES}",
    ),
    TopicContract(
        topics.ADJUDICATIONS,
        "adjudications",
        "lfr.v1.Adjudication",
        PROTOBUF,
        "subscribers",
        "adjudication_id",
        f"{AT_LEAST_ONCE} One record per officer's decision; de-duplicate by adjudication_id. The same "
        "decision also reaches lfr.alert-updates.v1 as a revision of its alert.",
    ),
    TopicContract(
        topics.AUDIT,
        "audit",
        "lfr.v1.AuditEvent",
        PROTOBUF,
        "subscribers",
        "event_id",
        "One partition, so the order is total; records carry no key. seq starts at 1 and each hash covers "
        "the previous one (lfr audit verify checks the chain). For auditors' and evidence systems.",
    ),
    TopicContract(
        topics.DEADLETTER,
        "deadLetters",
        "lfr.v1.DeadLetter",
        PROTOBUF,
        "internal",
        "source_offset",
        f"{AT_LEAST_ONCE} Records a stage could not process, with the reason; for operations staff. "
        "Keyed by the stage name.",
    ),
    TopicContract(
        topics.HITS,
        "hits",
        "lfr.v1.Hit",
        PROTOBUF,
        "internal",
        "hit_id",
        f"{AT_LEAST_ONCE} Internal: read by the alerting stage only (hit_id is derived from the crop and "
        "subject, so a redelivered crop yields the same hit). Subscribers read alerts instead; broker ACLs "
        "should deny them this topic.",
        consumer_group="lfr-alerting",
    ),
    TopicContract(
        topics.CROPS,
        "crops",
        "lfr.v1.FaceCrop",
        PROTOBUF,
        "internal",
        "crop_id",
        f"{AT_LEAST_ONCE} Internal: read by the embedder only. Chips are encrypted under data keys that "
        "expire within minutes and the topic keeps 10 minutes (privacy rule 1); broker ACLs should deny "
        "every subscriber this topic.",
        consumer_group="lfr-embedder",
    ),
    TopicContract(
        topics.OPS_EVENTS,
        "opsEvents",
        "",
        JSON,
        "subscribers",
        "",
        f"{AT_LEAST_ONCE} Operations events from the monitor (a camera going silent or recovering, a "
        "deployment's alert rate jumping or returning to normal), for operations dashboards and paging.",
        json_schema="lfr.contracts.json_payloads:ops_event_record",
    ),
    TopicContract(
        topics.CAMERA_STATS,
        "cameraStats",
        "",
        JSON,
        "internal",
        "",
        f"{AT_LEAST_ONCE} Internal: per-camera counts (frames, faces, crops) that ingest reports every few "
        "seconds for the monitor stage. Counts only, no biometric data; the record shape is internal and may "
        "change within v1.",
        consumer_group="lfr-monitor",
        opaque=True,
    ),
    TopicContract(
        topics.GALLERY_IMPORT,
        "galleryImport",
        "lfr.v1.GalleryImportItem",
        PROTOBUF,
        "internal",
        "seq",
        f"{AT_LEAST_ONCE} Internal: one record per image of a custody gallery import job (`lfr gallery "
        "submit`), read by the import workers (`lfr gallery worker`). Records name an image path below a "
        "shared import root and never carry image bytes; a redelivered record enrols nothing twice (a "
        "done-bitmap per job in Redis, indexed by seq, and a gallery row id derived from gallery and item).",
        consumer_group=topics.GALLERY_IMPORT_GROUP,
    ),
)

CHANGELOG_SEMANTICS = (
    "Internal: a faust table changelog of the operations monitor (compacted), written and read only by "
    "the monitor stage in faust's own encoding. Not for subscribers."
)


def contract_for(spec: TopicSpec) -> TopicContract:
    """The contract of one topic; a topic without one stops generation (every topic is documented)."""
    for c in CONTRACTS:
        if c.topic == spec.name:
            return c
    if spec.name.endswith("-changelog"):
        words = spec.name.removesuffix("-changelog").replace(".", "-").split("-")
        channel = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:]) + "Changelog"
        return TopicContract(spec.name, channel, "", JSON, "internal", "", CHANGELOG_SEMANTICS, opaque=True)
    raise ContractError(f"topic {spec.name} has no contract: add it to lfr.contracts.catalogue.CONTRACTS")


WIRE_VERSION_HEADER = "lfr-wire-version"
WIRE_VERSION_NOTE = (
    "Optional. Names the payload's wire version. A record without it is of its topic's version (v1); a "
    "reader skips a record that names another version instead of half-understanding it. Stage outputs "
    "(hits, dead letters) carry it; other records may."
)
