"""Deployments: where, why, when and against which watchlists live recognition may run, and who said so.

The aggregate's modules, one job each: ``model`` (the record, its states, what governance needs from a
model card), ``rules`` (pure state and threshold rules), ``store`` (Redis, locked and audited changes) and
``live`` (the per-process cache the embedder and ingest consult per crop). The names below are the
aggregate's public face, so callers need not know which module holds what.
"""

from lfr.watchlist.deployments.live import LiveDeployment, LiveDeployments
from lfr.watchlist.deployments.model import (
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    PurgeAlerts,
    RateAtAuthorisation,
    ThresholdCard,
)
from lfr.watchlist.deployments.rules import (
    authorise_rule,
    check_threshold,
    effective_threshold,
    is_live,
    publish_rule,
    refuse_rule,
    start_rule,
    stop_rule,
    threshold_rule,
)
from lfr.watchlist.deployments.store import DeploymentStore
from lfr.watchlist.errors import (
    AuditUnavailable,
    DeploymentError,
    DeploymentNotFound,
    GovernanceError,
    ThresholdError,
    TransitionError,
)

__all__ = [
    "AuditUnavailable",
    "Deployment",
    "DeploymentError",
    "DeploymentNotFound",
    "DeploymentSpec",
    "DeploymentStatus",
    "DeploymentStore",
    "GovernanceError",
    "LiveDeployment",
    "LiveDeployments",
    "PurgeAlerts",
    "RateAtAuthorisation",
    "ThresholdCard",
    "ThresholdError",
    "TransitionError",
    "authorise_rule",
    "check_threshold",
    "effective_threshold",
    "is_live",
    "publish_rule",
    "refuse_rule",
    "start_rule",
    "stop_rule",
    "threshold_rule",
]
