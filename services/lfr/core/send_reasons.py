"""What a crop's ``FaceCrop.send_reason`` says about its face, for every reader of the crops topic.

Why one place: the embedder's track fusion leaves fallback faces out of a template once a passed one exists,
and the load generator splits latency by whether the face passed the quality gate; both read the same enum
and must agree on which values mean "failed the gate". An older producer leaves the field UNSPECIFIED: the
verdict is then unknown here, and a reader decides (the embedder treats it as passed, the load generator
recomputes it from the measures the record carries).
"""

from __future__ import annotations

from lfr.v1 import crop_pb2

# Send reasons of crops whose face failed ingest's quality gate (a track's fallback searches).
UNPASSED_REASONS: frozenset[int] = frozenset(
    {crop_pb2.SEND_REASON_UNPASSED_LIVE, crop_pb2.SEND_REASON_UNPASSED_END}
)


def passed_by_reason(reason: int) -> bool | None:
    """Whether the crop's face passed the gate, as its send reason says; None for an older producer's crop."""
    if reason == crop_pb2.SEND_REASON_UNSPECIFIED:
        return None
    return reason not in UNPASSED_REASONS
