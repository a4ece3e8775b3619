"""How domain errors become HTTP responses: one table for every route.

The domain packages raise their own exceptions (a rule refused, a thing not found, a store unreachable) and
know nothing of HTTP; routes run domain calls inside :func:`domain_errors`, which answers each with the
status below and the exception's own message, the same message the command line prints. An exception not
in the table is a bug and stays a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymilvus.exceptions import MilvusException
from redis.exceptions import RedisError

from lfr.alerting.adjudication import NotYetPublished
from lfr.alerting.store import AlertNotFound, AlreadyAdjudicated
from lfr.core.crypto import DecryptFailed, KeyExpired
from lfr.ingest.cameras import CameraConfigError
from lfr.retro.gallery import GalleryError
from lfr.retro.video import VideoTooLongError
from lfr.vision.cards import CardError
from lfr.watchlist.enrol import EnrolmentRejected, RejectCode
from lfr.watchlist.errors import AuditUnavailable, DeploymentNotFound, SubjectNotFound, TransitionError
from lfr.watchlist.schemas import ErrorOut
from lfr.watchlist.store import StoreError

# OpenAPI documentation of the error responses the watchlist, deployment and audit routes give.
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}

# A store or broker the request needs is unreachable, or refused the write: try again later.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    AuditUnavailable,
    NotYetPublished,
    StoreError,
    CardError,
    RedisError,
    KafkaError,
    MilvusException,
    TimeoutError,
    OSError,
)


@dataclass(frozen=True)
class ErrorStatus:
    status: int
    detail: str
    code: str | None = None  # machine-readable reason, sent as the X-Error-Code header


def error_status(exc: BaseException) -> ErrorStatus | None:
    """The HTTP answer to a domain error; None for an exception that is not one (a bug: 500)."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return ErrorStatus(422, f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    if isinstance(exc, EnrolmentRejected):
        return ErrorStatus(413 if exc.code == RejectCode.OVERSIZED else 422, str(exc), str(exc.code))
    if isinstance(exc, SubjectNotFound | DeploymentNotFound):
        return ErrorStatus(404, str(exc.args[0]) if exc.args else "not found")
    if isinstance(exc, AlertNotFound):
        return ErrorStatus(404, "no such alert (or purged under retention)")
    if isinstance(exc, GalleryError):
        return ErrorStatus(404, str(exc))
    if isinstance(exc, AlreadyAdjudicated):
        return ErrorStatus(409, f"already decided: {exc.state.adj_outcome} by {exc.state.adj_officer}")
    if isinstance(exc, TransitionError | CameraConfigError):
        return ErrorStatus(409, str(exc))
    if isinstance(exc, KeyExpired):
        return ErrorStatus(410, "the probe image is deleted: its deployment was purged")
    if isinstance(exc, VideoTooLongError):
        return ErrorStatus(413, str(exc))
    if isinstance(exc, DecryptFailed):
        return ErrorStatus(500, "probe image cannot be decrypted")
    if isinstance(exc, UNAVAILABLE):
        return ErrorStatus(503, str(exc))
    if isinstance(exc, ValueError):
        return ErrorStatus(422, str(exc))
    return None


def http_error(exc: BaseException) -> HTTPException | None:
    mapped = error_status(exc)
    if mapped is None:
        return None
    headers = {"X-Error-Code": mapped.code} if mapped.code else None
    return HTTPException(mapped.status, mapped.detail, headers=headers)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Run domain calls inside this: their errors leave as HTTP responses, from the table above."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        mapped = http_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def install(app: FastAPI) -> None:
    """A ValueError that escapes a route outside :func:`domain_errors` is the request's fault: 422."""

    async def value_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.add_exception_handler(ValueError, value_error)
