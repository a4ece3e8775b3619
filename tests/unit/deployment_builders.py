"""A valid ``Deployment`` for rule tests: a cup-final deployment planned from ``T0`` for eight hours.

Several unit test modules check pure rules (governance, reports, the public page) against one plausible
deployment and change only the fields a test is about; keeping the record in one place means a new required
field is added once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lfr.watchlist.deployments import Deployment

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def deployment(**over: object) -> Deployment:
    """A draft deployment (``Supt Khan`` authorises, ``pc.smith`` created it a day before ``T0``) with
    ``over`` applied."""
    base: dict[str, object] = dict(
        deployment_id="dep-1",
        name="Cup final",
        location="North gate",
        purpose="wanted persons",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=8),
        authorising_officer="Supt Khan",
        watchlist_ids=["wl-a"],
        embedder_model="fake-l2",
        created_by="pc.smith",
        created_at=T0 - timedelta(days=1),
        updated_at=T0 - timedelta(days=1),
    )
    base.update(over)
    return Deployment.model_validate(base)
