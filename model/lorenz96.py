"""The Lorenz (1996) model, the standard test bed of ensemble filters.

dxᵢ/dt = (xᵢ₊₁ − xᵢ₋₂) xᵢ₋₁ − xᵢ + F, i = 0..n−1, cyclic indices.
With n = 40 and F = 8 it is chaotic with about 13 positive Lyapunov exponents and an
error-doubling time of about 0.4 time units (Lorenz & Emanuel 1998).
"""

from __future__ import annotations

import numpy as np

from model._toy_kernels import l96_rk4


class Lorenz96:
    """Lorenz-96 with ``n`` variables and forcing ``forcing``.

    Parameters
    ----------
    n : int
        Number of variables (≥ 4).
    forcing : float
        Default forcing F, used when :meth:`step` gets no per-member forcing.
    """

    def __init__(self, n: int = 40, forcing: float = 8.0):
        if int(n) < 4:
            raise ValueError(f"Lorenz96 needs n ≥ 4 variables, got {n}")
        self.n = int(n)
        self.forcing = float(forcing)

    def __repr__(self):
        return f"Lorenz96(n={self.n}, forcing={self.forcing})"

    def _ensemble(self, E) -> tuple[np.ndarray, bool]:
        E = np.asarray(E, dtype=np.float64)
        single = E.ndim == 1
        E = np.atleast_2d(E)
        if E.ndim != 2 or E.shape[1] != self.n:
            raise ValueError(f"E must be (members, {self.n}) or ({self.n},), got {np.shape(E)}")
        return np.ascontiguousarray(E), single

    def _forcing(self, forcing, n_members: int) -> np.ndarray:
        F = np.broadcast_to(
            np.asarray(self.forcing if forcing is None else forcing, float), (n_members,)
        )
        return np.ascontiguousarray(F)

    def dxdt(self, E, forcing=None) -> np.ndarray:
        """Tendency (members, n) of ensemble ``E`` (members, n); ``forcing`` scalar or (members,)."""
        E, single = self._ensemble(E)
        F = self._forcing(forcing, E.shape[0])[:, None]
        out = (np.roll(E, -1, axis=1) - np.roll(E, 2, axis=1)) * np.roll(E, 1, axis=1) - E + F
        return out[0] if single else out

    def step(self, E, dt: float, forcing=None, n_steps: int = 1) -> np.ndarray:
        """Advance ``E`` (members, n) by ``n_steps`` RK4 steps of length ``dt``.

        ``forcing`` is the default F, a scalar, or one value per member (members,) — the
        parameter of the parameter-estimation twin.
        """
        E, single = self._ensemble(E)
        out = l96_rk4(E, self._forcing(forcing, E.shape[0]), float(dt), int(n_steps))
        return out[0] if single else out
