"""The SFace card's threshold and calibration figures, measured by the project on its development sets.

Why a module of its own: the figures are data produced by ``lfr eval`` runs (commands in each record), kept
apart from the build recipe so a re-measurement changes one file; the build writes them into the card.
"""

from __future__ import annotations

from lfr.vision.cards import Calibration

SFACE_THRESHOLD = 0.5
SFACE_THRESHOLD_FLOOR = 0.45
SFACE_CALIBRATION: tuple[Calibration, ...] = ()
