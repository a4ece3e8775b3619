"""How the alert API finds a watchlist subject's reference image and display name.

The routes call ``ctx.extras["subject_lookup"]``: an async callable ``(subject_id, watchlist_id) -> dict |
None`` returning at least ``thumbnail`` (base64 JPEG) and ``display_name``. Injected so the API and its
tests do not depend on Milvus; when absent, the watchlist service in the same API process answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lfr.api.context import ApiContext

SubjectLookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]
EXTRAS_KEY = "subject_lookup"


def subject_lookup(ctx: ApiContext) -> SubjectLookup:
    found = ctx.extras.get(EXTRAS_KEY)
    if found is not None:
        return found
    lookup = watchlist_lookup(ctx)
    ctx.extras[EXTRAS_KEY] = lookup
    return lookup


def watchlist_lookup(ctx: ApiContext) -> SubjectLookup:
    """A lookup through lfr.watchlist's service (Milvus), built lazily on first use."""

    async def lookup(subject_id: str, watchlist_id: str) -> dict[str, Any] | None:
        from lfr.watchlist.service import SubjectNotFound, get_service

        try:
            record = await get_service(ctx).get_subject(watchlist_id, subject_id)
        except SubjectNotFound:
            return None
        return record.model_dump()

    return lookup
