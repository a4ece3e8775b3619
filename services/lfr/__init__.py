"""LFR: live and retrospective facial recognition for police deployments."""

__version__ = "0.1.0"
