"""Input checks shared by the analysis functions.

Every check raises a ``ValueError`` that names the argument and the first offending
index, so that a user with a 10⁶-entry state knows where to look.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from enkf._kernels import first_nonfinite


def ensemble(E, name: str) -> np.ndarray:
    """Return ``E`` as a C-contiguous float64 (members, entries) array with finite values."""
    E = np.ascontiguousarray(E, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"{name} must be 2-D (members, entries), got shape {E.shape}")
    if E.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 members, got {E.shape[0]}")
    finite(E, name)
    return E


def finite(X: np.ndarray, name: str) -> None:
    """Raise if ``X`` holds NaN or ±inf, naming the member (row) and entry (column)."""
    i, j = first_nonfinite(np.ascontiguousarray(X, dtype=np.float64).reshape(X.shape[0], -1))
    if i < 0:
        return
    where = f"member {i}, entry {j}" if X.ndim == 2 else f"index {i}"
    value = X[i, j] if X.ndim == 2 else X[i]
    raise ValueError(f"{name} is not finite at {where} (value {value})")


def vector(y, n: int, name: str) -> np.ndarray:
    """Return ``y`` as a finite float64 vector of length ``n``."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    finite(y, name)
    return y


class ObsError:
    """The observation-error covariance ``R`` and its whitening ``R^{-1/2}``.

    ``R`` is either a 1-D array of variances (diagonal R) or a 2-D symmetric positive
    definite matrix. A 2-D R that happens to be diagonal is treated as diagonal.

    Attributes
    ----------
    var : (P,) float64 or None
        The variances when R is diagonal.
    chol : (P, P) float64 or None
        Lower Cholesky factor L (R = L Lᵀ) when R is a full matrix.
    """

    def __init__(self, R, n_obs: int):
        R = np.asarray(R, dtype=np.float64)
        self.full = None
        self.chol = None
        if R.ndim == 1:
            var = R
        elif R.ndim == 2:
            if R.shape != (n_obs, n_obs):
                raise ValueError(
                    f"R must have shape ({n_obs},) or ({n_obs}, {n_obs}), got {R.shape}"
                )
            finite(R, "R")
            off = R - np.diag(np.diag(R))
            var = np.diag(R).copy() if not off.any() else None
            if var is None:
                self._factor_full(R)
        else:
            raise ValueError(f"R must be 1-D (variances) or 2-D (covariance), got {R.ndim}-D")
        if var is not None:
            if var.shape[0] != n_obs:
                raise ValueError(f"R must have {n_obs} variances, got {var.shape[0]}")
            bad = np.flatnonzero(~(np.isfinite(var) & (var > 0)))
            if bad.size:
                i = bad[0]
                raise ValueError(
                    f"R must be positive: variance at index {i} is {var[i]} "
                    f"({bad.size} such entries)"
                )
        self.var = var

    def _factor_full(self, R: np.ndarray) -> None:
        asym = np.abs(R - R.T)
        if asym.max() > 1e-10 * max(np.abs(R).max(), 1e-300):
            i, j = np.unravel_index(np.argmax(asym), asym.shape)
            raise ValueError(
                f"R is not symmetric: R[{i}, {j}] = {R[i, j]} but R[{j}, {i}] = {R[j, i]}"
            )
        try:
            self.chol = scipy.linalg.cholesky(R, lower=True)
        except np.linalg.LinAlgError:
            w, V = np.linalg.eigh(R)
            k = int(np.argmin(w))
            raise ValueError(
                f"R is not positive definite: smallest eigenvalue {w[k]:.3g}, "
                f"its eigenvector is largest at index {int(np.argmax(np.abs(V[:, k])))}"
            ) from None
        self.full = R

    @property
    def diagonal(self) -> bool:
        return self.var is not None

    def whiten(self, X: np.ndarray) -> np.ndarray:
        """Apply R^{-1/2} along the last axis of ``X`` (shape (..., P))."""
        if self.diagonal:
            return X / np.sqrt(self.var)
        flat = X.reshape(-1, X.shape[-1])
        out = scipy.linalg.solve_triangular(self.chol, flat.T, lower=True).T
        return out.reshape(X.shape)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` samples of N(0, R), shape (n, P)."""
        Z = rng.standard_normal((n, self.var.shape[0] if self.diagonal else self.chol.shape[0]))
        return Z * np.sqrt(self.var) if self.diagonal else Z @ self.chol.T


def observations(E: np.ndarray, HE, y, R) -> tuple[np.ndarray, np.ndarray, ObsError]:
    """Check ``HE`` (members, obs), ``y`` (obs,) and ``R`` against the ensemble ``E``."""
    HE = np.ascontiguousarray(HE, dtype=np.float64)
    if HE.ndim != 2:
        raise ValueError(f"HE must be 2-D (members, obs), got shape {HE.shape}")
    if HE.shape[0] != E.shape[0]:
        raise ValueError(f"HE has {HE.shape[0]} members but E has {E.shape[0]}")
    finite(HE, "HE")
    y = vector(y, HE.shape[1], "y")
    return HE, y, ObsError(R, HE.shape[1])
