"""Enrolment: from a photo to a watchlist entry, one image at a time or in bulk, every change audited.

The modules, one job each: ``photos`` (checking, decoding and analysing one photo, the reason codes of a
refusal), ``sources`` (the rows of a CSV or the sub-folders of a folder that a bulk import enrols) and
``enroller`` (writing to the watchlist store with an audit record, and the import summary). The names below
are the package's public face.
"""

from lfr.watchlist.enrol.enroller import Enroller, ImportSummary, Rejection
from lfr.watchlist.enrol.photos import (
    EnrolmentRejected,
    FaceEnroller,
    PreparedImage,
    RejectCode,
    decode_checked,
    image_size,
    make_thumbnail,
    prepare,
)
from lfr.watchlist.enrol.sources import CSV_COLUMNS, ImportItem, read_source

__all__ = [
    "CSV_COLUMNS",
    "Enroller",
    "EnrolmentRejected",
    "FaceEnroller",
    "ImportItem",
    "ImportSummary",
    "PreparedImage",
    "RejectCode",
    "Rejection",
    "decode_checked",
    "image_size",
    "make_thumbnail",
    "prepare",
    "read_source",
]
