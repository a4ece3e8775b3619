"""Client factories map settings onto aiokafka and faust without a broker."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust

from lfr.core.bus import client_kwargs, make_consumer, make_faust_app, make_producer
from lfr.core.config import load_settings


async def test_plaintext_defaults(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, kafka={"bootstrap_servers": "k1:9092,k2:9092"})
    kw = client_kwargs(s, "x")
    assert kw["bootstrap_servers"] == "k1:9092,k2:9092" and kw["client_id"] == "lfr-x"
    assert "ssl_context" not in kw and "sasl_mechanism" not in kw
    producer = make_producer(s, "p")
    assert producer.client._bootstrap_servers == "k1:9092,k2:9092"
    consumer = make_consumer(s, "t", group_id="g", client_suffix="c")
    assert consumer._enable_auto_commit is False and consumer._group_id == "g"
    assert consumer._fetch_max_wait_ms == s.kafka.fetch_max_wait_ms


async def test_sasl_ssl_settings_reach_every_client(tmp_path: Path) -> None:
    s = load_settings(
        data_dir=tmp_path,
        kafka={
            "bootstrap_servers": "k:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "lfr",
            "sasl_password": "pw",
            "idempotent_producer": True,
        },
    )
    kw = client_kwargs(s, "x")
    assert kw["security_protocol"] == "SASL_SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == "pw"
    assert make_producer(s, "p")._txn_manager is not None  # idempotence on (Apache Kafka)
    app = make_faust_app(s, "lfr-stats")
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "lfr"


def test_faust_app_uses_the_same_broker_and_group_timings(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, kafka={"bootstrap_servers": "127.0.0.1:9092"})
    app = make_faust_app(s, "lfr-stats")
    assert [str(u) for u in app.conf.broker] == ["kafka://127.0.0.1:9092"]
    assert app.conf.broker_session_timeout == s.kafka.session_timeout_ms / 1000
    assert app.conf.broker_heartbeat_interval == s.kafka.heartbeat_interval_ms / 1000
    assert app.conf.topic_allow_declare is False  # topics come from `lfr topics create`, never auto-declared
    assert app.conf.consumer_auto_offset_reset == "earliest"
    assert str(tmp_path) in str(app.conf.datadir)
