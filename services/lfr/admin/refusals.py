"""Which errors the command line reports as a refusal (a message and exit 1) rather than a crash.

The same errors the API answers with a 4xx or 503 (lfr.api.errors): a rule refused the request, the thing
named does not exist, or a store the command needs is unreachable. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from pymilvus.exceptions import MilvusException
from redis.exceptions import RedisError

from lfr.vision.cards import CardError
from lfr.watchlist.enrol import EnrolmentRejected
from lfr.watchlist.errors import AuditUnavailable, DeploymentNotFound, SubjectNotFound
from lfr.watchlist.store import StoreError

REFUSED = (
    EnrolmentRejected,
    SubjectNotFound,
    DeploymentNotFound,
    AuditUnavailable,
    StoreError,
    CardError,
    RedisError,
    KafkaError,
    MilvusException,
    TimeoutError,
    OSError,
    ValueError,
)


def refusal(exc: BaseException) -> tuple[str, str | None] | None:
    """(message, reason code) for a refusal, None for an error that is not one."""
    if not isinstance(exc, REFUSED):
        return None
    if isinstance(exc, SubjectNotFound | DeploymentNotFound):
        return (str(exc.args[0]) if exc.args else "not found"), None
    code = str(exc.code) if isinstance(exc, EnrolmentRejected) else None
    return str(exc), code
