"""The subscriber contracts: committed files equal what the generator makes now, the AsyncAPI document is
valid AsyncAPI 3.0 (official schema, offline), and the schemas accept what LFR writes and refuse what it
does not."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from lfr.alerting.webhooks import envelope
from lfr.client.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from lfr.contracts.catalogue import contract_for
from lfr.contracts.descriptors import PROTO_DIR, ContractError
from lfr.contracts.documents import (
    ASYNCAPI_FILE,
    DEFAULT_DIR,
    WEBHOOK_BODY_FILE,
    WEBHOOK_HEADERS_FILE,
    render,
    stale,
    topic_schema_file,
)
from lfr.core import topics
from lfr.core.config import Settings
from lfr.core.serde import to_json_dict
from lfr.v1 import adjudication_pb2, alert_pb2, audit_pb2, crop_pb2, dead_letter_pb2, hit_pb2

ASYNCAPI_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json.gz"
MESSAGES: dict[str, type[Message]] = {
    "lfr.v1.Alert": alert_pb2.Alert,
    "lfr.v1.Hit": hit_pb2.Hit,
    "lfr.v1.FaceCrop": crop_pb2.FaceCrop,
    "lfr.v1.Adjudication": adjudication_pb2.Adjudication,
    "lfr.v1.AuditEvent": audit_pb2.AuditEvent,
    "lfr.v1.DeadLetter": dead_letter_pb2.DeadLetter,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(yaml.safe_load((DEFAULT_DIR / ASYNCAPI_FILE).read_text()))


def _filled(cls: type[Message]) -> Message:
    """A message with every field set to a non-default value (nested messages too, maps with an entry)."""
    msg = cls()
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            getattr(msg, fd.name)["k"] = "v"
        elif fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Timestamp":
            getattr(msg, fd.name).FromMilliseconds(1_800_000_000_123)
        elif fd.message_type is not None:
            target = getattr(msg, fd.name).add() if fd.is_repeated else getattr(msg, fd.name)
            target.CopyFrom(_filled(type(target)))
        else:
            value = _scalar(fd)
            if fd.is_repeated:
                getattr(msg, fd.name).extend([value, value])
            else:
                setattr(msg, fd.name, value)
    return msg


def _scalar(fd: FieldDescriptor) -> Any:
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return fd.enum_type.values[-1].number
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xffbytes"
    if fd.type == FieldDescriptor.TYPE_STRING:
        return "text"
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return True
    if fd.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 0.75
    return 7


def _validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def _component_schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A component schema with the document's components alongside, so its $refs resolve."""
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def test_committed_contracts_are_fresh() -> None:
    behind = stale(DEFAULT_DIR)
    assert not behind, f"stale contract files {behind}: run `lfr contracts generate` and commit them"


def test_asyncapi_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(gzip.decompress(ASYNCAPI_SCHEMA.read_bytes())))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    broken = copy.deepcopy(doc)
    broken["operations"]["sendAlerts"]["action"] = "publish"  # the AsyncAPI 2 verb
    assert list(validator.iter_errors(broken)), "the official schema should refuse a v2 operation"


def test_every_topic_has_a_channel_with_its_partitions_key_and_retention(doc: dict[str, Any]) -> None:
    specs = {s.name: s for s in topics.topic_specs(Settings.model_construct())}
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == set(specs)
    messages = doc["components"]["messages"]
    for name, spec in specs.items():
        kafka = channels[name]["bindings"]["kafka"]
        assert (kafka["topic"], kafka["partitions"]) == (name, spec.partitions)
        assert kafka["topicConfiguration"]["retention.ms"] == spec.retention_ms
        assert kafka["topicConfiguration"]["cleanup.policy"] == spec.cleanup_policy.split(",")
        [ref] = channels[name]["messages"].values()
        message = messages[ref["$ref"].rsplit("/", 1)[-1]]
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "null" if spec.key.startswith("none") else spec.key in key["description"]
        assert message["headers"]["$ref"].endswith("RecordHeaders")
    for alert_topic in (topics.ALERTS, topics.ALERT_UPDATES, topics.ALERTS_JSON, topics.ALERT_UPDATES_JSON):
        assert "alert_id" in channels[alert_topic]["description"]
        assert "at least once" in channels[alert_topic]["description"]
    assert "highest revision" in channels[topics.ALERT_UPDATES]["description"]
    assert messages["alert"]["correlationId"]["location"] == "$message.payload#/alert_id"


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_schemas_accept_lfr_json_and_describe_every_field(doc: dict[str, Any], name: str) -> None:
    validator = _validator(_component_schema(doc, name))
    produced = to_json_dict(_filled(MESSAGES[name]))
    assert list(validator.iter_errors(produced)) == []
    assert list(validator.iter_errors(to_json_dict(MESSAGES[name]()))) == [], "zero values are valid"
    props = doc["components"]["schemas"][name]["properties"]
    assert set(produced) == set(props), "every field of the message is described, and nothing else"


def test_alert_schema_refuses_what_lfr_never_writes(doc: dict[str, Any]) -> None:
    validator = _validator(_component_schema(doc, "lfr.v1.Alert"))
    good = to_json_dict(_filled(alert_pb2.Alert))
    for field, bad in (
        ("revision", "2"),
        ("revision", -1),
        ("status", "ALERT_STATUS_MAYBE"),
        ("camera_ids", "cam-1"),
        ("first_seen", "yesterday"),
    ):
        assert list(validator.iter_errors({**good, field: bad})), f"{field}={bad!r} should be refused"
    missing = {k: v for k, v in good.items() if k != "alert_id"}
    assert list(validator.iter_errors(missing))
    assert list(validator.iter_errors({**good, "future_field": 1})) == [], "additive changes stay valid"


def test_standalone_schemas_match_the_document(doc: dict[str, Any]) -> None:
    alert = to_json_dict(_filled(alert_pb2.Alert))
    for topic in (topics.ALERTS_JSON, topics.ALERT_UPDATES_JSON):
        schema = json.loads((DEFAULT_DIR / topic_schema_file(topic)).read_text())
        validator = _validator(schema)
        assert list(validator.iter_errors(alert)) == []
        assert list(validator.iter_errors({**alert, "hit_count": "many"}))
        assert schema["definitions"]["lfr.v1.Alert"]["properties"].keys() == (
            doc["components"]["schemas"]["lfr.v1.Alert"]["properties"].keys()
        )


def test_webhook_schemas_accept_a_signed_delivery_and_refuse_a_broken_one() -> None:
    body_schema = _validator(json.loads((DEFAULT_DIR / WEBHOOK_BODY_FILE).read_text()))
    header_schema = _validator(json.loads((DEFAULT_DIR / WEBHOOK_HEADERS_FILE).read_text()))
    body = envelope("adjudicated", to_json_dict(_filled(alert_pb2.Alert)))
    assert list(body_schema.iter_errors(json.loads(body))) == []
    assert list(body_schema.iter_errors({**json.loads(body), "change": "deleted"}))
    assert list(body_schema.iter_errors({**json.loads(body), "type": "lfr.alert.v2"}))
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: "alert",
        DELIVERY_HEADER: "d-1",
        TIMESTAMP_HEADER: "1800000000",
        SIGNATURE_HEADER: sign("secret", 1_800_000_000, body),
    }
    assert list(header_schema.iter_errors(headers)) == []
    assert list(header_schema.iter_errors({**headers, SIGNATURE_HEADER: "md5=abc"}))
    assert list(header_schema.iter_errors({k: v for k, v in headers.items() if k != TIMESTAMP_HEADER}))


def test_generator_refuses_protos_the_code_was_not_built_from(tmp_path: Path) -> None:
    protos = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, protos)
    alert = protos / "lfr" / "v1" / "alert.proto"
    alert.write_text(
        alert.read_text().replace("TraceContext trace = 16;", "TraceContext trace = 16;\n  string x = 17;")
    )
    with pytest.raises(ContractError, match="make proto"):
        render(protos)
    assert {
        ASYNCAPI_FILE,
        WEBHOOK_BODY_FILE,
        WEBHOOK_HEADERS_FILE,
        topic_schema_file(topics.ALERTS_JSON),
        topic_schema_file(topics.ALERT_UPDATES_JSON),
    } <= render(PROTO_DIR).keys()


def test_a_topic_without_a_contract_stops_generation() -> None:
    with pytest.raises(ContractError, match="no contract"):
        contract_for(topics.TopicSpec("lfr.something-new.v1", 3, "camera_id", 1000))
    changelog = contract_for(topics.TopicSpec("lfr-monitor-x-changelog", 3, "k", 1000, "compact,delete"))
    assert changelog.opaque and changelog.audience == "internal"


def test_ops_events_schema_matches_what_lfr_reads_back() -> None:
    """Documents valid under the published schema are what the status reader (lfr status) understands."""
    from lfr.monitor.status import _event

    schema = json.loads((DEFAULT_DIR / topic_schema_file(topics.OPS_EVENTS)).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    kinds = schema["properties"]["kind"]["enum"]
    assert kinds
    for kind in kinds:
        doc = {"kind": kind, "subject": "cam-1", "at_ms": 1_800_000_000_000, "detail": {"silent_s": 61}}
        assert list(validator.iter_errors(doc)) == []
        event = _event(doc)
        assert event is not None and event.kind == kind and event.subject == "cam-1"
    assert list(validator.iter_errors({"kind": "camera_exploded", "subject": "c", "at_ms": 1, "detail": {}}))
    assert list(validator.iter_errors({"kind": kinds[0], "subject": "c", "at": "now", "detail": {}}))
