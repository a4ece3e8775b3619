"""The watchlist domain's refusals, in one place so the API (lfr.api.errors) and the command line
(lfr.admin.refusals) answer each the same way. Messages say which rule refused and what to do.
"""

from __future__ import annotations


class SubjectNotFound(LookupError):
    pass


class DeploymentError(ValueError):
    """A deployment request breaks a rule; the message says which and what to do."""


class DeploymentNotFound(LookupError):
    pass


class TransitionError(DeploymentError):
    """The requested change does not fit the deployment's current state or time window (HTTP 409)."""


class GovernanceError(DeploymentError):
    """Authorisation or threshold rules refuse the change (HTTP 422)."""


class ThresholdError(GovernanceError):
    pass


class AuditUnavailable(RuntimeError):
    """The change was rolled back because its audit record could not be written."""
