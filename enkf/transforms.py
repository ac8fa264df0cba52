"""Parameter transforms for augmented-state estimation.

Parameters with bounds (a rate > 0, a probability in (0, 1)) are estimated in an
unbounded space u = forward(θ), where the Gaussian assumption of the Kalman update is
reasonable. The transforms act member-wise; the physical-space ensemble mean is the mean
of the back-transformed members, ``inverse(U).mean(axis=0)``, never ``inverse(U.mean(0))``.
"""

from __future__ import annotations

import numpy as np


def _finite(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(x.reshape(-1)))
    if bad.size:
        raise ValueError(
            f"{name}: value at flat index {bad[0]} is not finite ({x.reshape(-1)[bad[0]]})"
        )
    return x


class Identity:
    """u = θ, for unbounded parameters."""

    def forward(self, theta):
        return _finite(theta, "Identity.forward").copy()

    def inverse(self, u):
        return _finite(u, "Identity.inverse").copy()

    def __repr__(self):
        return "Identity()"


class Log:
    """u = log θ, for positive parameters (rates, conductances, time constants)."""

    def forward(self, theta):
        theta = _finite(theta, "Log.forward")
        bad = np.flatnonzero(theta.reshape(-1) <= 0)
        if bad.size:
            raise ValueError(
                f"Log.forward needs θ > 0; value at flat index {bad[0]} is {theta.reshape(-1)[bad[0]]}"
            )
        return np.log(theta)

    def inverse(self, u):
        return np.exp(_finite(u, "Log.inverse"))

    def __repr__(self):
        return "Log()"


class Logit:
    """u = log((θ − low) / (high − θ)), for parameters bounded in the open interval (low, high)."""

    def __init__(self, low: float, high: float):
        low, high = float(low), float(high)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"Logit needs finite low < high, got low={low}, high={high}")
        self.low, self.high = low, high

    def forward(self, theta):
        theta = _finite(theta, "Logit.forward")
        flat = theta.reshape(-1)
        bad = np.flatnonzero((flat <= self.low) | (flat >= self.high))
        if bad.size:
            raise ValueError(
                f"Logit.forward needs {self.low} < θ < {self.high}; "
                f"value at flat index {bad[0]} is {flat[bad[0]]}"
            )
        return np.log(theta - self.low) - np.log(self.high - theta)

    def inverse(self, u):
        u = _finite(u, "Logit.inverse")
        # expit written to stay finite for |u| large; the result is clipped into the open
        # interval only by floating-point rounding, never by design.
        return self.low + (self.high - self.low) * (0.5 * (1.0 + np.tanh(0.5 * u)))

    def __repr__(self):
        return f"Logit(low={self.low}, high={self.high})"
