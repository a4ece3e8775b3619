"""One table turns domain errors into HTTP answers: each kind of refusal gets its status and message."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from lfr.alerting.adjudication import NotYetPublished
from lfr.alerting.store import AlertNotFound
from lfr.api.errors import domain_errors, error_status
from lfr.core.crypto import DecryptFailed, KeyExpired
from lfr.ingest.cameras import CameraConfigError
from lfr.retro.gallery import GalleryError
from lfr.retro.video import VideoTooLongError
from lfr.vision.cards import CardError
from lfr.watchlist.enrol import EnrolmentRejected, RejectCode
from lfr.watchlist.errors import (
    AuditUnavailable,
    DeploymentNotFound,
    GovernanceError,
    SubjectNotFound,
    TransitionError,
)
from lfr.watchlist.store import StoreError


class _Form(BaseModel):
    age: int


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (SubjectNotFound("no subject s-1 on watchlist wl"), 404),
        (DeploymentNotFound("no deployment dep-1"), 404),
        (AlertNotFound("a1"), 404),
        (GalleryError("gallery 'x' does not exist"), 404),
        (TransitionError("deployment dep-1 is stopped"), 409),
        (CameraConfigError("camera cam-1 exists"), 409),
        (KeyExpired("gone"), 410),
        (VideoTooLongError("the video runs 900 s"), 413),
        (DecryptFailed("tag"), 500),
        (AuditUnavailable("rolled back"), 503),
        (NotYetPublished("send the same decision again"), 503),
        (StoreError("cannot connect"), 503),
        (CardError("no card"), 503),
        (RedisConnectionError("down"), 503),
        (KafkaConnectionError("down"), 503),
        (TimeoutError("locked"), 503),
        (GovernanceError("the officer must be named"), 422),
        (ValueError("bad"), 422),
    ],
)
def test_each_domain_error_has_its_status(exc: BaseException, status: int) -> None:
    mapped = error_status(exc)
    assert mapped is not None and mapped.status == status


def test_enrolment_refusals_carry_their_reason_code() -> None:
    big = error_status(EnrolmentRejected(RejectCode.OVERSIZED, "the image is 90 MB"))
    blurred = error_status(EnrolmentRejected(RejectCode.POOR_QUALITY, "the face is blurred"))
    assert big is not None and (big.status, big.code) == (413, "oversized")
    assert blurred is not None and (blurred.status, blurred.code, blurred.detail) == (
        422,
        "poor_quality",
        "the face is blurred",
    )


def test_validation_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        _Form.model_validate({"age": "old"})
    mapped = error_status(caught.value)
    assert mapped is not None and mapped.status == 422 and mapped.detail.startswith("age: ")


def test_a_bug_is_not_mapped() -> None:
    assert error_status(KeyError("x")) is None
    assert error_status(RuntimeError("unexpected")) is None
    with pytest.raises(KeyError), domain_errors():
        raise KeyError("x")


def test_domain_errors_answers_with_the_mapped_status_and_header() -> None:
    with pytest.raises(HTTPException) as caught, domain_errors():
        raise EnrolmentRejected(RejectCode.SEVERAL_FACES, "two faces")
    assert caught.value.status_code == 422 and caught.value.detail == "two faces"
    assert caught.value.headers == {"X-Error-Code": "several_faces"}
    with pytest.raises(HTTPException) as passed, domain_errors():
        raise HTTPException(418, "a route's own answer")
    assert passed.value.status_code == 418
