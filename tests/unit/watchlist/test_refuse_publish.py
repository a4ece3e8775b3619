"""Refusal and publication of deployments, as pure rules: who may do them, and in which states."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lfr.watchlist.deployments import (
    DeploymentStatus,
    GovernanceError,
    TransitionError,
    authorise_rule,
    publish_rule,
    refuse_rule,
    start_rule,
    stop_rule,
)

from ..deployment_builders import T0, deployment


def test_named_officer_refuses_a_draft_with_a_reason_and_it_can_never_run() -> None:
    refused = refuse_rule(deployment(), "supt khan", "  watchlist too broad  ", T0)
    assert refused.status == DeploymentStatus.REFUSED
    assert (refused.refused_by, refused.refusal_reason) == ("supt khan", "watchlist too broad")
    with pytest.raises(TransitionError, match="only a draft can be authorised"):
        authorise_rule(refused, "Supt Khan", T0)
    with pytest.raises(TransitionError):
        start_rule(refused, "pc.smith", T0 + timedelta(hours=1))
    with pytest.raises(TransitionError, match="never ran"):
        stop_rule(refused, "pc.smith", False, T0)


def test_refusal_needs_the_named_officer_a_reason_and_a_draft() -> None:
    with pytest.raises(GovernanceError, match="cannot refuse"):
        refuse_rule(deployment(), "Insp Other", "no", T0)
    with pytest.raises(GovernanceError, match="reason"):
        refuse_rule(deployment(), "Supt Khan", "   ", T0)
    authorised = authorise_rule(deployment(), "Supt Khan", T0)
    with pytest.raises(TransitionError, match="only a draft can be refused"):
        refuse_rule(authorised, "Supt Khan", "changed my mind", T0)


def test_only_the_authorising_officer_publishes_and_never_a_draft() -> None:
    with pytest.raises(TransitionError, match="nothing to publish"):
        publish_rule(deployment(), "Supt Khan", True, T0)
    stopped = stop_rule(
        authorise_rule(deployment(), "Supt Khan", T0), "pc.smith", False, T0 + timedelta(hours=1)
    )
    with pytest.raises(GovernanceError, match="only 'Supt Khan'"):
        publish_rule(stopped, "pc.smith", True, T0)
    published = publish_rule(stopped, "Supt Khan", True, T0 + timedelta(hours=2))
    assert published.published and published.published_by == "Supt Khan"
    assert not publish_rule(published, "Supt Khan", False, T0).published
