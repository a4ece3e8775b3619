"""ROC and DET plots as small PNGs (matplotlib's Agg backend: no display, safe on servers and in CI).

DET axes are logarithmic on both sides because the operating points that matter for live facial recognition
(FPIR 1e-3 and below) are invisible on linear axes. Zero rates cannot sit on a log axis: they are clipped to
half of the smallest resolvable rate (0.5 / n), which the axis label says.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lfr.evaluation.metrics import Curve

DPI = 100
SIZE = (5.0, 4.0)


def _floor(n: int) -> float:
    return 0.5 / max(n, 1)


def plot_roc(
    curve: Curve, impostors: int, out: Path, title: str, mark: tuple[float, float] | None = None
) -> Path:
    """TAR against FAR (log x); ``mark`` = (FAR, TAR) of the card threshold."""
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    lo = _floor(impostors)
    ax.plot(np.maximum(curve.x, lo), curve.y, lw=1.6, label="ROC")
    if mark is not None:
        ax.plot([max(mark[0], lo)], [mark[1]], "o", color="C3", label="card threshold")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel(f"false accept rate (0 drawn at {lo:.1g}; {impostors} impostor pairs)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out)


def plot_det(
    curve: Curve,
    negatives: int,
    positives: int,
    out: Path,
    title: str,
    x_label: str = "false accept rate (FAR)",
    y_label: str = "false reject rate (FRR)",
    mark: tuple[float, float] | None = None,
    verticals: tuple[float, ...] = (),
) -> Path:
    """Miss rate (1 - y) against false rate (x), both log; ``mark`` = (false, miss) at the card threshold."""
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    xlo, ylo = _floor(negatives), _floor(positives)
    ax.plot(np.maximum(curve.x, xlo), np.maximum(1.0 - curve.y, ylo), lw=1.6, label="DET")
    if mark is not None:
        ax.plot([max(mark[0], xlo)], [max(mark[1], ylo)], "o", color="C3", label="card threshold")
    for v in verticals:
        if v >= xlo:
            ax.axvline(v, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xlo, 1.0)
    ax.set_ylim(ylo, 1.0)
    ax.set_xlabel(f"{x_label}; n={negatives}, 0 drawn at {xlo:.1g}", fontsize=8)
    ax.set_ylabel(f"{y_label}; n={positives}, 0 drawn at {ylo:.1g}", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
