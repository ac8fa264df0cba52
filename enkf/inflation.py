"""Covariance inflation: counter the spread lost to sampling error and model error.

All functions return a new (N, M) ensemble with the same mean as the one inflated.

References
----------
Anderson & Anderson (1999), Mon. Wea. Rev. 127, 2741 — multiplicative inflation.
Zhang, Snyder & Sun (2004), Mon. Wea. Rev. 132, 1238 — relaxation to prior perturbations.
Whitaker & Hamill (2012), Mon. Wea. Rev. 140, 3078 — relaxation to prior spread.
"""

from __future__ import annotations

import numpy as np

from enkf import _checks


def multiplicative(E, factor: float) -> np.ndarray:
    """Scale the anomalies by ``factor`` (≥ 1 inflates): x̄ + factor·(E − x̄).

    ``factor`` multiplies the standard deviation, so the covariance grows by factor².
    """
    E = _checks.ensemble(E, "E")
    factor = float(factor)
    if not (np.isfinite(factor) and factor > 0):
        raise ValueError(f"inflation factor must be finite and > 0, got {factor}")
    xb = E.mean(axis=0)
    return xb + factor * (E - xb)


def _pair(E_f, E_a, alpha: float):
    E_f = _checks.ensemble(E_f, "E_f")
    E_a = _checks.ensemble(E_a, "E_a")
    if E_f.shape != E_a.shape:
        raise ValueError(f"E_f has shape {E_f.shape} but E_a has shape {E_a.shape}")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return E_f, E_a, alpha


def rtpp(E_f, E_a, alpha: float) -> np.ndarray:
    """Relaxation to prior perturbations (Zhang et al. 2004).

    A_a ← (1 − α) A_a + α A_f; α = 0 keeps the analysis, α = 1 restores the forecast anomalies.
    """
    E_f, E_a, alpha = _pair(E_f, E_a, alpha)
    xa = E_a.mean(axis=0)
    return xa + (1 - alpha) * (E_a - xa) + alpha * (E_f - E_f.mean(axis=0))


def rtps(E_f, E_a, alpha: float) -> np.ndarray:
    """Relaxation to prior spread (Whitaker & Hamill 2012).

    Each entry's analysis anomalies are scaled so that its spread becomes
    σ_a + α(σ_f − σ_a); entries with zero analysis spread are left as they are.
    """
    E_f, E_a, alpha = _pair(E_f, E_a, alpha)
    xa = E_a.mean(axis=0)
    A_a = E_a - xa
    sd_f = E_f.std(axis=0, ddof=1)
    sd_a = A_a.std(axis=0, ddof=1)
    scale = np.ones_like(sd_a)
    ok = sd_a > 0
    scale[ok] = 1.0 + alpha * (sd_f[ok] - sd_a[ok]) / sd_a[ok]
    return xa + A_a * scale
