"""The slope fit behind every verdict: y = a + b (1 - e^(-j/tau)) + c j by least squares.

For each tau of a log grid the warm-up model is fitted; the best tau wins, and the warm-up term is
kept only when it is significant (`warmup_significant`), else the straight line y = a + c j is
used. The covariance of the coefficients carries the autocorrelation correction of
`qasr.lab.stats.variance_inflation`. `qasr.lab.verdict` explains both choices and turns the fit
into a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qasr.lab.stats import variance_inflation

#: A per-iteration series: a list (None for a missing reading) or a numpy array.
Series = Sequence[float | None] | np.ndarray

N_TAU = 40
TAU_MIN = 0.5
#: |b| / se(b) above which the warm-up term is kept (tau is searched, so stricter than 1.96).
WARMUP_T = 3.5


def clean_series(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the finite points (None / NaN readings are skipped, not zeroed)."""
    values = np.array([np.nan if v is None else float(v) for v in series], dtype=float)
    index = np.arange(len(values), dtype=float)
    keep = np.isfinite(values)
    return index[keep], values[keep]




@dataclass(frozen=True)
class Fit:
    """A least-squares fit of one model on the smoothed window."""

    coef: np.ndarray  # (a, c) or (a, b, c)
    cov: np.ndarray  # corrected covariance of coef
    rss: float
    tau: float | None
    dof: float

    @property
    def slope(self) -> float:
        return float(self.coef[-1])

    @property
    def slope_se(self) -> float:
        return float(math.sqrt(max(self.cov[-1, -1], 0.0)))


def design(j: np.ndarray, tau: float | None) -> np.ndarray:
    if tau is None:
        return np.column_stack([np.ones_like(j), j])
    return np.column_stack([np.ones_like(j), -np.expm1(-j / tau), j])


def fit_fixed_tau(j: np.ndarray, y: np.ndarray, tau: float | None, width: int) -> Fit:
    """OLS for a fixed tau, with the autocorrelation-corrected covariance (see module doc)."""
    x = design(j, tau)
    n, p = x.shape
    # Scale columns so that the normal equations stay well conditioned for any tau and N.
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
    xs = x / scale
    coef_s, *_ = np.linalg.lstsq(xs, y, rcond=None)
    resid = y - xs @ coef_s
    rss = float(resid @ resid)
    xtx_inv = np.linalg.pinv(xs.T @ xs)
    inflation = variance_inflation(resid, width)
    n_eff = n / inflation
    sigma2 = rss / max(n - p, 1)
    cov = xtx_inv * sigma2 * inflation / np.outer(scale, scale)
    return Fit(coef=coef_s / scale, cov=cov, rss=rss, tau=tau, dof=max(n_eff - p, 1.0))


def best_tau(j: np.ndarray, y: np.ndarray, taus: np.ndarray) -> float:
    """The tau of the grid whose warm-up model leaves the least residual (all taus in one batch)."""
    exp_col = -np.expm1(-j[None, :] / taus[:, None])  # (T, n)
    ones = np.ones_like(exp_col)
    jj = np.broadcast_to(j, exp_col.shape)
    x = np.stack([ones, exp_col, jj / max(float(j[-1]), 1.0)], axis=2)  # (T, n, 3)
    xtx = np.einsum("tni,tnk->tik", x, x)
    xty = np.einsum("tni,n->ti", x, y)
    # Tiny ridge: long taus make the warm-up column nearly collinear with j; RSS is unaffected.
    ridge = 1e-12 * np.einsum("tii->ti", xtx)[:, :, None] * np.eye(3)
    coef = np.linalg.solve(xtx + ridge, xty[:, :, None])[:, :, 0]
    resid = y[None, :] - np.einsum("tni,ti->tn", x, coef)
    rss = np.einsum("tn,tn->t", resid, resid)
    return float(taus[int(np.argmin(rss))])


def best_fits(
    j: np.ndarray, y: np.ndarray, n_total: int, width: int, n_tau: int
) -> tuple[Fit, Fit]:
    """(best warm-up fit over the tau grid, straight-line fit)."""
    taus = np.geomspace(TAU_MIN, 5.0 * n_total, n_tau)
    return fit_fixed_tau(j, y, best_tau(j, y, taus), width), fit_fixed_tau(j, y, None, width)


def warmup_significant(fit: Fit, y: np.ndarray) -> bool:
    """Keep the warm-up term only if b is well above both its error and float resolution.

    The resolution floor (1e-9 of the series' magnitude) matters for exact series (a constant
    live heap, a noiseless line): there b and se(b) are both rounding noise and their ratio is
    meaningless.
    """
    b = abs(float(fit.coef[1]))
    if b <= 1e-9 * float(np.max(np.abs(y))):
        return False
    se_b = math.sqrt(max(float(fit.cov[1, 1]), 0.0))
    return se_b == 0.0 or b / se_b > WARMUP_T
