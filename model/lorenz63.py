"""The Lorenz (1963) model: dx/dt = σ(y − x), dy/dt = x(ρ − z) − y, dz/dt = xy − βz."""

from __future__ import annotations

import numpy as np

from model._toy_kernels import l63_rk4


class Lorenz63:
    """Lorenz-63 with the classic parameters σ = 10, ρ = 28, β = 8/3 by default."""

    n = 3

    def __init__(self, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0):
        self.sigma, self.rho, self.beta = float(sigma), float(rho), float(beta)

    def __repr__(self):
        return f"Lorenz63(sigma={self.sigma}, rho={self.rho}, beta={self.beta:.6g})"

    def _ensemble(self, E) -> tuple[np.ndarray, bool]:
        E = np.asarray(E, dtype=np.float64)
        single = E.ndim == 1
        E = np.atleast_2d(E)
        if E.ndim != 2 or E.shape[1] != 3:
            raise ValueError(f"E must be (members, 3) or (3,), got {np.shape(E)}")
        return np.ascontiguousarray(E), single

    def dxdt(self, E) -> np.ndarray:
        """Tendency (members, 3) of ensemble ``E`` (members, 3)."""
        E, single = self._ensemble(E)
        x, y, z = E.T
        out = np.stack(
            [self.sigma * (y - x), x * (self.rho - z) - y, x * y - self.beta * z], axis=1
        )
        return out[0] if single else out

    def fixed_points(self) -> np.ndarray:
        """The three equilibria (3, 3): the origin and C± = (±√(β(ρ−1)), ±√(β(ρ−1)), ρ − 1)."""
        q = np.sqrt(self.beta * (self.rho - 1.0))
        return np.array([[0.0, 0.0, 0.0], [q, q, self.rho - 1.0], [-q, -q, self.rho - 1.0]])

    def step(self, E, dt: float, n_steps: int = 1) -> np.ndarray:
        """Advance ``E`` (members, 3) by ``n_steps`` RK4 steps of length ``dt``."""
        E, single = self._ensemble(E)
        out = l63_rk4(E, self.sigma, self.rho, self.beta, float(dt), int(n_steps))
        return out[0] if single else out
