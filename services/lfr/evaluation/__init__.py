"""Accuracy evaluation and threshold governance for the configured face models.

:mod:`metrics` holds the figures (pure numpy, hand-checked in tests), :mod:`verify` and :mod:`identify`
run the 1:1 and 1:N protocols on labelled folders, :mod:`threshold` turns a saved run into a threshold
recommendation for a watchlist size, and :mod:`cli` exposes them as ``lfr eval`` and ``lfr threshold``.
"""
