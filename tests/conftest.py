"""Shared test settings: hypothesis without deadlines (the first call compiles numba)."""

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("spikeda", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("spikeda")


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)


def kalman_mean(E, HE, y, R):
    """Closed-form Kalman update of the ensemble mean with the ensemble covariances.

    x̄ₐ = x̄ + Pxy (Pyy + R)⁻¹ (y − ȳ), Pxy = Aᵀ Y/(N−1), Pyy = Yᵀ Y/(N−1), solved densely
    in observation space: a formulation independent of the ensemble-space code under test.
    """
    N = E.shape[0]
    A = E - E.mean(0)
    Y = HE - HE.mean(0)
    R = np.diag(R) if np.ndim(R) == 1 else R
    Pxy = A.T @ Y / (N - 1)
    Pyy = Y.T @ Y / (N - 1)
    K = np.linalg.solve(Pyy + R, Pxy.T).T
    return E.mean(0) + K @ (y - HE.mean(0)), K


def reference_gc(r):
    """Gaspari & Cohn (1999) eq. 4.10, written out branch by branch."""
    if r <= 1:
        return -(r**5) / 4 + r**4 / 2 + 5 * r**3 / 8 - 5 * r**2 / 3 + 1
    if r < 2:
        return r**5 / 12 - r**4 / 2 + 5 * r**3 / 8 + 5 * r**2 / 3 - 5 * r + 4 - 2 / (3 * r)
    return 0.0


def reference_distance(a, b, period):
    """Euclidean distance, each dimension wrapped when its period (or None) says so."""
    d = np.abs(np.asarray(a, float) - np.asarray(b, float))
    for k, L in enumerate(period):
        if L is not None:
            d[..., k] = np.minimum(d[..., k] % L, L - d[..., k] % L)
    return np.sqrt((d**2).sum(-1))
