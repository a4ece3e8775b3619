"""Threshold governance and the deployment state machine, as pure rules (no Redis, no models)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lfr.watchlist.deployments import (
    Deployment,
    DeploymentStatus,
    GovernanceError,
    ThresholdError,
    TransitionError,
    authorise_rule,
    check_threshold,
    effective_threshold,
    is_live,
    start_rule,
    stop_rule,
    threshold_rule,
)

from ..deployment_builders import T0, deployment


def _dep(card_name: str = "fake-l2", **over: object) -> Deployment:
    return deployment(**{"watchlist_ids": ["wl-a", "wl-b"], "embedder_model": card_name, **over})


# ---- threshold governance -----------------------------------------------------------------------------


def test_default_and_stricter_thresholds_need_no_reason(l2_card, cos_card) -> None:
    check_threshold(l2_card, None, "")
    check_threshold(l2_card, 0.6, "")  # at the floor
    check_threshold(l2_card, 0.5, "")  # L2: smaller distance = stricter
    check_threshold(cos_card, 0.5, "")  # COSINE: larger similarity = stricter


def test_looser_than_floor_l2_needs_a_reason(l2_card) -> None:
    with pytest.raises(ThresholdError, match=r"looser than model fake-l2's floor 0\.6.*reason"):
        check_threshold(l2_card, 0.65, "")
    with pytest.raises(ThresholdError):
        check_threshold(l2_card, 0.65, "   ")
    check_threshold(l2_card, 0.65, "poor lighting at the gate; approved by Supt Khan")


def test_looser_than_floor_cosine_is_a_smaller_similarity(cos_card) -> None:
    with pytest.raises(ThresholdError, match="below it for COSINE"):
        check_threshold(cos_card, 0.30, "")
    check_threshold(cos_card, 0.30, "trial")
    check_threshold(cos_card, 0.36, "")  # stricter than the floor 0.35 though looser than the default


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_nonsense_l2_thresholds_are_refused(l2_card, bad: float) -> None:
    with pytest.raises(ThresholdError):
        check_threshold(l2_card, bad, "some reason")


def test_cosine_threshold_must_be_a_similarity(cos_card) -> None:
    with pytest.raises(ThresholdError, match=r"\[-1, 1\]"):
        check_threshold(cos_card, 1.5, "reason")


def test_effective_threshold_uses_card_default_and_refuses_other_models(l2_card, cos_card) -> None:
    assert effective_threshold(_dep(), l2_card) == 0.6
    assert effective_threshold(_dep(threshold=0.55), l2_card) == 0.55
    with pytest.raises(GovernanceError, match="not comparable"):
        effective_threshold(_dep(), cos_card)


# ---- state machine ------------------------------------------------------------------------------------


def test_full_lifecycle() -> None:
    dep = _dep()
    authorised = authorise_rule(dep, "supt khan", T0 - timedelta(hours=1))  # case-insensitive name match
    assert authorised.status == DeploymentStatus.AUTHORISED and authorised.authorised_by == "supt khan"
    assert not is_live(authorised, T0 + timedelta(minutes=5))
    running = start_rule(authorised, "pc.jones", T0 + timedelta(minutes=1))
    assert running.status == DeploymentStatus.RUNNING and running.started_by == "pc.jones"
    assert is_live(running, T0 + timedelta(hours=1))
    assert not is_live(running, T0 + timedelta(hours=8))  # the window end applies even while "running"
    assert not is_live(running, T0 - timedelta(seconds=1))
    stopped = stop_rule(running, "pc.jones", purge=False, now=T0 + timedelta(hours=2))
    assert stopped.status == DeploymentStatus.STOPPED and not is_live(stopped, T0 + timedelta(hours=2))


def test_only_the_named_officer_authorises_and_not_the_creator() -> None:
    with pytest.raises(GovernanceError, match="cannot authorise"):
        authorise_rule(_dep(), "Insp Brown", T0)
    with pytest.raises(GovernanceError, match="created the deployment"):
        authorise_rule(_dep(created_by="Supt Khan"), "Supt Khan", T0)
    with pytest.raises(GovernanceError, match="named"):
        authorise_rule(_dep(), "  ", T0)


def test_cannot_start_without_authorisation_or_outside_the_window() -> None:
    with pytest.raises(TransitionError, match="not authorised"):
        start_rule(_dep(), "pc", T0 + timedelta(hours=1))
    authorised = authorise_rule(_dep(), "Supt Khan", T0 - timedelta(hours=2))
    with pytest.raises(TransitionError, match="authorised from"):
        start_rule(authorised, "pc", T0 - timedelta(minutes=1))
    with pytest.raises(TransitionError, match="ended"):
        start_rule(authorised, "pc", T0 + timedelta(hours=8))


def test_no_second_authorisation_start_or_stop() -> None:
    authorised = authorise_rule(_dep(), "Supt Khan", T0)
    with pytest.raises(TransitionError, match="only a draft"):
        authorise_rule(authorised, "Supt Khan", T0)
    running = start_rule(authorised, "pc", T0)
    with pytest.raises(TransitionError, match="running"):
        start_rule(running, "pc", T0)
    stopped = stop_rule(running, "pc", purge=False, now=T0)
    with pytest.raises(TransitionError, match="already stopped"):
        stop_rule(stopped, "pc", purge=False, now=T0)
    assert stop_rule(stopped, "pc", purge=True, now=T0).status == DeploymentStatus.STOPPED  # purge later
    with pytest.raises(TransitionError):
        start_rule(stopped, "pc", T0)


def test_an_expired_draft_cannot_be_authorised() -> None:
    with pytest.raises(TransitionError, match="ended"):
        authorise_rule(_dep(), "Supt Khan", T0 + timedelta(days=1))


def test_threshold_changes_after_authorisation_need_a_reason(l2_card) -> None:
    draft = _dep()
    assert threshold_rule(draft, l2_card, 0.5, "").threshold == 0.5
    authorised = authorise_rule(draft, "Supt Khan", T0)
    with pytest.raises(ThresholdError, match="recorded reason"):
        threshold_rule(authorised, l2_card, 0.5, "")
    changed = threshold_rule(authorised, l2_card, 0.5, "too many false alerts")
    assert changed.threshold == 0.5 and changed.threshold_reason == "too many false alerts"
    with pytest.raises(ThresholdError, match="looser"):
        threshold_rule(draft, l2_card, 0.7, "")
    stopped = stop_rule(authorised, "pc", purge=False, now=T0)
    with pytest.raises(TransitionError, match="stopped"):
        threshold_rule(stopped, l2_card, 0.5, "reason")


def test_threshold_rule_refuses_another_model(cos_card) -> None:
    with pytest.raises(GovernanceError, match="uses model"):
        threshold_rule(_dep(), cos_card, 0.5, "x")
