"""Small statistics the slope fit needs: Student's t quantile, a rolling median, and the
autocorrelation correction of the slope's standard error (the reasoning is in `qasr.lab.verdict`).

The t quantile comes from SciPy (``scipy.special.stdtrit``), imported on first use. Measured on
this 2-core machine: ``import scipy.stats`` costs 0.9-1.3 s, ``from scipy.special import stdtrit``
0.25-0.33 s, and neither is paid by the lab's child process, which only records samples: verdicts
are computed in the parent (and in the pytest plugin), once per analysis.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

#: Width of the rolling median that removes single-iteration spikes.
SMOOTH_WIDTH = 5


def warmup_count(n_total: int) -> int:
    """How many first iterations a verdict drops as warm-up: max(5, 0.2 N) (GUIDE §4)."""
    return max(5, int(0.2 * n_total))


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` (> 0, may be fractional) degrees of freedom.

    Above 1e7 degrees of freedom the normal quantile is returned (SciPy agrees to 1e-9 there).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if df <= 0 or math.isnan(df):
        raise ValueError(f"df must be positive, got {df!r}")
    if df > 1e7:
        return NormalDist().inv_cdf(p)
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def rolling_median(y: np.ndarray, width: int = SMOOTH_WIDTH) -> np.ndarray:
    """Centred rolling median, 'valid' part only (len(y) - width + 1 points): no edge effects."""
    if width <= 1 or len(y) < width:
        return y.copy()
    windows = np.lib.stride_tricks.sliding_window_view(y, width)
    return np.asarray(np.median(windows, axis=1), dtype=float)


def lag1_autocorrelation(resid: np.ndarray) -> float:
    """Lag-1 autocorrelation of the residuals in [0, 0.95] (anticorrelation earns no credit)."""
    r = resid - resid.mean()
    denom = float(r @ r)
    if denom <= 0.0 or len(r) < 3:
        return 0.0
    return min(max(float(r[1:] @ r[:-1]) / denom, 0.0), 0.95)


def variance_inflation(resid: np.ndarray, width: int) -> float:
    """n / n_eff: how much autocorrelation inflates the OLS variance of the slope.

    max(width, (1 + r1) / (1 - r1)): the smoothing alone shares each input point among ``width``
    outputs, and an AR(1) reading of the residuals (r1 = lag-1 autocorrelation) covers correlation
    that is in the data itself.
    """
    r1 = lag1_autocorrelation(resid)
    return max(float(max(width, 1)), (1.0 + r1) / (1.0 - r1))
