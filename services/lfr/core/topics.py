"""Every Kafka topic LFR uses, with its partitioning, retention and key, in one place.

Topics are always created explicitly (``lfr topics create``): the embedded broker auto-creates topics with
four partitions, and production clusters usually forbid auto-creation. Partition counts come from settings
because they bound how many embedder and alerting replicas can do useful work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lfr.core.config import Settings

CROPS = "lfr.crops.v1"
HITS = "lfr.hits.v1"
ALERTS = "lfr.alerts.v1"
ALERTS_JSON = "lfr.alerts.json.v1"
ALERT_UPDATES = "lfr.alert-updates.v1"
ALERT_UPDATES_JSON = "lfr.alert-updates.json.v1"
ADJUDICATIONS = "lfr.adjudications.v1"
AUDIT = "lfr.audit.v1"
DEADLETTER = "lfr.deadletter.v1"
CAMERA_STATS = "lfr.camera-stats.v1"
OPS_EVENTS = "lfr.ops-events.v1"
GALLERY_IMPORT = "lfr.gallery-import.v1"
GALLERY_IMPORT_GROUP = "lfr-gallery-import"  # the import workers' consumer group
# Partitions of the gallery import topic: the most import workers that can share one job.
GALLERY_IMPORT_PARTITIONS = 24

# The operations monitor's faust tables (lfr.monitor.stage): name -> the topic each one aggregates. faust
# names a table's changelog "<app id>-<table>-changelog" and needs it partitioned like its source topic.
MONITOR_TABLES = {
    "camera-minutes": CAMERA_STATS,
    "deployment-alerts": ALERTS,
    "deployment-outcomes": ADJUDICATIONS,
}

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    retention_ms: int
    cleanup_policy: str = "delete"
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.extra_config,
        }


def topic_specs(settings: Settings) -> list[TopicSpec]:
    k = settings.kafka
    alert_retention = settings.alerting.retention_days * DAY_MS
    specs = [
        TopicSpec(
            CROPS,
            k.crops_partitions,
            "camera_id",
            k.crops_retention_ms,
            description="encrypted face crops; short retention and expiring keys (privacy rule 1)",
        ),
        TopicSpec(
            HITS,
            k.hits_partitions,
            "deployment_id",
            alert_retention,
            description="watchlist matches above threshold",
        ),
        TopicSpec(
            ALERTS,
            k.alerts_partitions,
            "deployment_id",
            alert_retention,
            description="one record per alert, when it is raised (protobuf); after a crash the same "
            "alert_id can appear again: subscribers de-duplicate by alert_id",
        ),
        TopicSpec(
            ALERTS_JSON,
            k.alerts_partitions,
            "deployment_id",
            alert_retention,
            description="JSON mirror of lfr.alerts.v1",
        ),
        TopicSpec(
            ALERT_UPDATES,
            k.alerts_partitions,
            "deployment_id",
            alert_retention,
            description="later revisions of raised alerts (more sightings, adjudication); keep the highest "
            "revision per alert_id",
        ),
        TopicSpec(
            ALERT_UPDATES_JSON,
            k.alerts_partitions,
            "deployment_id",
            alert_retention,
            description="JSON mirror of lfr.alert-updates.v1",
        ),
        TopicSpec(ADJUDICATIONS, k.hits_partitions, "deployment_id", -1, description="officers' decisions"),
        TopicSpec(
            AUDIT,
            1,
            "none (single partition: total order for the hash chain)",
            -1,
            description="append-only hash-chained audit log",
        ),
        TopicSpec(DEADLETTER, 3, "stage", 14 * DAY_MS, description="records a stage could not process"),
        TopicSpec(
            CAMERA_STATS,
            k.alerts_partitions,
            "camera_id",
            DAY_MS,
            description="per-camera counts from ingest every few seconds (JSON; frames, faces, crops)",
        ),
        TopicSpec(
            OPS_EVENTS,
            3,
            "camera_id or deployment_id",
            14 * DAY_MS,
            description="operations events from the monitor (JSON; camera silent, alert rate jump)",
        ),
        TopicSpec(
            GALLERY_IMPORT,
            GALLERY_IMPORT_PARTITIONS,
            "item (image path below the import root)",
            7 * DAY_MS,
            description="custody gallery import jobs, one record per image path (no image bytes), read by "
            "`lfr gallery worker`",
        ),
    ]
    return specs + monitor_changelog_specs(settings, specs)


def monitor_changelog_specs(settings: Settings, sources: list[TopicSpec]) -> list[TopicSpec]:
    """The monitor's table changelogs, compacted and partitioned like the topics the tables aggregate."""
    partitions = {s.name: s.partitions for s in sources}
    return [
        TopicSpec(
            f"{settings.monitor.app_id}-{table}-changelog",
            partitions[source],
            "table key (camera or deployment, window)",
            7 * DAY_MS,
            cleanup_policy="compact,delete",
            description=f"changelog of the monitor's {table} table",
        )
        for table, source in MONITOR_TABLES.items()
    ]


def spec_for(settings: Settings, name: str) -> TopicSpec:
    for spec in topic_specs(settings):
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name}")
