"""Consumer-group lag, members and topic end offsets, read from the broker.

Committed offsets are read with a consumer of each group that never subscribes (so it never joins the
group or disturbs its members): aiokafka's admin ``list_consumer_group_offsets`` cannot decode the embedded
broker's OffsetFetch reply, while ``consumer.committed`` can. End offsets come from ListOffsets, whose
answers were checked against the last record read on the embedded broker (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from lfr.core import topics
from lfr.core.bus import client_kwargs, make_consumer
from lfr.core.config import Settings
from lfr.monitor.schema import GroupStatus, Member, PartitionLag

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KnownGroup:
    group: str
    role: str
    topics: tuple[str, ...]


def known_groups(settings: Settings) -> list[KnownGroup]:
    """The groups LFR's own services run, with the topics each consumes."""
    return [
        KnownGroup(settings.embedder.group_id, "embedder", (topics.CROPS,)),
        KnownGroup(settings.alerting.group_id, "alerting", (topics.HITS,)),
        KnownGroup(
            settings.monitor.app_id, "monitor", (topics.CAMERA_STATS, topics.ALERTS, topics.ADJUDICATIONS)
        ),
        KnownGroup(topics.GALLERY_IMPORT_GROUP, "gallery-import", (topics.GALLERY_IMPORT,)),
    ]


async def _partitions(consumer: AIOKafkaConsumer, names: Iterable[str]) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()  # fresh partition lists, not a cache
    tps = []
    for name in names:
        for p in sorted(consumer.partitions_for_topic(name) or ()):
            tps.append(TopicPartition(name, p))
    return tps


async def end_offsets(settings: Settings, names: Iterable[str]) -> dict[TopicPartition, tuple[int, int]]:
    """(beginning, end) offsets of every partition of ``names`` that exists."""
    consumer = make_consumer(settings, group_id=None, client_suffix="ops-offsets")
    await consumer.start()
    try:
        tps = await _partitions(consumer, names)
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return {tp: (int(starts[tp]), int(ends[tp])) for tp in tps}
    finally:
        await consumer.stop()


async def committed_offsets(
    settings: Settings, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    consumer = make_consumer(settings, group_id=group, client_suffix="ops-lag")
    await consumer.start()
    try:
        values = await asyncio.gather(*(consumer.committed(tp) for tp in tps))
        return {tp: (int(v) if v is not None and v >= 0 else None) for tp, v in zip(tps, values, strict=True)}
    finally:
        await consumer.stop()


class _DropDecodeErrors(logging.Filter):
    """Keeps one known undecodable reply (below) from logging a traceback on every status call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected exception in AIOKafkaConnection")


async def describe_groups(settings: Settings, groups: list[str]) -> dict[str, tuple[str, list[Member]]]:
    """State and members per group, one group per request; groups the broker does not know are absent.

    The embedded broker's DescribeGroups reply for a group with a live faust member cannot be decoded by
    aiokafka 0.14 (a buffer underrun in the member list): such a group is reported with state
    "Unknown (undecodable reply)" and no members, and the others are unaffected.
    """
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "ops-admin"))
    conn_log = logging.getLogger("aiokafka.conn")
    quiet = _DropDecodeErrors()
    conn_log.addFilter(quiet)
    await admin.start()
    try:
        listed = {g for g, _ in await admin.list_consumer_groups()}
        wanted = [g for g in groups if g in listed] + sorted(listed - set(groups))
        out: dict[str, tuple[str, list[Member]]] = {}
        for name in wanted:
            try:
                responses = await admin.describe_consumer_groups([name])
            except (KafkaError, ValueError, OSError):
                out[name] = ("Unknown (undecodable reply)", [])
                continue
            for response in responses:
                for entry in response.groups:
                    error_code, group, state = entry[0], entry[1], entry[2]
                    if error_code:
                        continue
                    members = [Member(member_id=m[0], client_id=m[1], host=m[2]) for m in entry[5]]
                    out[group] = (state, members)
        return out
    finally:
        await admin.close()
        conn_log.removeFilter(quiet)


def partition_lag(tp: TopicPartition, committed: int | None, bounds: tuple[int, int]) -> PartitionLag:
    start, end = bounds
    base = committed if committed is not None else start
    return PartitionLag(
        topic=tp.topic,
        partition=tp.partition,
        committed=committed,
        end=end,
        lag=max(0, end - max(base, start)),
    )


async def group_status(
    settings: Settings, offsets: dict[TopicPartition, tuple[int, int]]
) -> list[GroupStatus]:
    """Lag per partition for LFR's groups, plus every other group the broker lists (members only)."""
    groups = known_groups(settings)
    try:
        described = await describe_groups(settings, [g.group for g in groups])
    except (KafkaError, OSError, ValueError):
        described = {}
    out: list[GroupStatus] = []
    for g in groups:
        tps = [tp for tp in offsets if tp.topic in g.topics]
        committed = await committed_offsets(settings, g.group, tps) if tps else {}
        parts = [partition_lag(tp, committed.get(tp), offsets[tp]) for tp in tps]
        state, members = described.get(g.group, ("absent", []))
        out.append(
            GroupStatus(
                group=g.group,
                role=g.role,
                topics=list(g.topics),
                state=state,
                members=members,
                lag=sum(p.lag for p in parts),
                partitions=parts,
            )
        )
    own = {g.group for g in groups}
    for name, (state, members) in sorted(described.items()):
        if name not in own:
            out.append(
                GroupStatus(
                    group=name, role="other", topics=[], state=state, members=members, lag=0, partitions=[]
                )
            )
    return out
