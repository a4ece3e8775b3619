"""Thin, typed Kafka wrappers: lazy clients built from settings, topic provisioning, and the faust factory.

Serialisation lives in ``serde``; delivery semantics (commit after produce) live in ``stage``. Defaults
here are documented in README's configuration reference: acks=all, gzip, short linger, manual commits,
``auto_offset_reset=earliest`` (a new group must never skip crops that are already on the topic).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from lfr.core.config import Settings
from lfr.core.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    k = settings.kafka
    if k.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return create_ssl_context(
        cafile=str(k.ssl_cafile) if k.ssl_cafile else None,
        certfile=str(k.ssl_certfile) if k.ssl_certfile else None,
        keyfile=str(k.ssl_keyfile) if k.ssl_keyfile else None,
    )


def client_kwargs(settings: Settings, client_suffix: str) -> dict[str, Any]:
    """Connection arguments shared by producers, consumers and admin clients."""
    k = settings.kafka
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{k.client_id}-{client_suffix}",
        "security_protocol": k.security_protocol,
        "request_timeout_ms": k.request_timeout_ms,
    }
    ctx = _ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = k.sasl_mechanism
        kwargs["sasl_plain_username"] = k.sasl_username
        kwargs["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    return kwargs


def make_producer(settings: Settings, client_suffix: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer (not started). Idempotence only where the broker supports InitProducerId."""
    k = settings.kafka
    acks: int | str = "all" if k.acks == "all" else int(k.acks)
    kwargs: dict[str, Any] = {
        **client_kwargs(settings, client_suffix),
        "acks": acks,
        "enable_idempotence": k.idempotent_producer,
        "compression_type": None if k.compression == "none" else k.compression,
        "linger_ms": k.linger_ms,
        "max_batch_size": k.max_batch_bytes,
    }
    kwargs.update(overrides)
    return AIOKafkaProducer(**kwargs)


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, client_suffix: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer (not started) with manual commits; group timings suit both Tansu and Apache Kafka."""
    k = settings.kafka
    kwargs: dict[str, Any] = {
        **client_kwargs(settings, client_suffix),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": k.session_timeout_ms,
        "heartbeat_interval_ms": k.heartbeat_interval_ms,
        "rebalance_timeout_ms": k.rebalance_timeout_ms,
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "fetch_max_wait_ms": k.fetch_max_wait_ms,
    }
    kwargs.update(overrides)
    return AIOKafkaConsumer(*topics, **kwargs)


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> dict[str, str]:
    """Create every topic that does not exist; report each as 'created' or 'exists (N partitions)'.

    An existing topic with fewer partitions than configured is reported, never silently altered: adding
    partitions changes key placement, which operators must plan (docs/operations.md).
    """
    specs = specs if specs is not None else topic_specs(settings)
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "admin"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        result: dict[str, str] = {}
        if wanted:
            new = [
                NewTopic(s.name, s.partitions, settings.kafka.replication_factor, topic_configs=s.config())
                for s in wanted
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            for s in wanted:
                result[s.name] = "created"
        counts = await _partition_counts(admin, [s.name for s in specs])
        for s in specs:
            n = counts.get(s.name, 0)
            if s.name not in result:
                result[s.name] = f"exists ({n} partitions)"
            if n < s.partitions:
                log.warning("topic %s has %d partitions, %d configured", s.name, n, s.partitions)
        return result
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions per topic that exists (topics the broker reports an error for are left out)."""
    described = await admin.describe_topics(names)
    return {d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0}


async def describe_partitions(settings: Settings, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "admin"))
    await admin.start()
    try:
        return await _partition_counts(admin, names)
    finally:
        await admin.close()


async def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the broker answers metadata requests, or raise TimeoutError naming the address."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Exception | None = None
    while loop.time() < deadline:
        admin = AIOKafkaAdminClient(**client_kwargs(settings, "probe"))
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.25)
        finally:
            await admin.close()
    raise TimeoutError(f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout_s}s: {last}")


def make_faust_app(settings: Settings, app_id: str, **overrides: Any) -> Any:
    """A faust-streaming App configured from the same settings as the aiokafka clients.

    The operations monitor (:mod:`lfr.monitor.stage`) runs on it behind an offset guard, because faust
    0.15.3 was measured skipping offsets after restarts (docs/stream-processing.md); the crop and hit
    stages run on :class:`lfr.core.stage.Stage` instead.
    """
    import faust

    k = settings.kafka
    servers = ";".join(f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",") if s.strip())
    credentials: Any = None
    ctx = _ssl_context(settings)
    if k.security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=k.sasl_username or "",
            password=k.sasl_password.get_secret_value() if k.sasl_password else "",
            mechanism=k.sasl_mechanism,
            ssl_context=ctx,
        )
    elif ctx is not None:
        credentials = faust.SSLCredentials(ctx)
    options: dict[str, Any] = {
        "broker": servers,
        "broker_credentials": credentials,
        "broker_client_id": f"{k.client_id}-{app_id}",
        "broker_session_timeout": k.session_timeout_ms / 1000,
        "broker_heartbeat_interval": k.heartbeat_interval_ms / 1000,
        "broker_rebalance_timeout": k.rebalance_timeout_ms / 1000,
        "producer_acks": -1 if k.acks == "all" else int(k.acks),
        "topic_replication_factor": k.replication_factor,
        "topic_allow_declare": False,
        "consumer_auto_offset_reset": "earliest",
        "datadir": str(settings.data_dir / "faust" / app_id),
        "web_enabled": False,
    }
    options.update(overrides)
    return faust.App(app_id, **options)
