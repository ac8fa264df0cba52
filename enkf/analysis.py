"""Ensemble analysis updates: stochastic EnKF, ETKF and LETKF.

All functions take the forecast ensemble ``E`` (N members, M state entries), the
predicted observations ``HE`` (N, P), the observations ``y`` (P,) and the
observation-error covariance ``R`` — 1-D variances (diagonal R) or a (P, P) matrix — and
return the analysis ensemble (N, M). They never form an M×M or, for the global filters,
a P×P matrix: everything is solved in the N-dimensional ensemble space, so a state of
10⁶ entries and 10⁴ observations costs O(N²(M + P)).

References
----------
Burgers, van Leeuwen & Evensen (1998), Mon. Wea. Rev. 126, 1719 — perturbed observations.
Bishop, Etherton & Majumdar (2001), Mon. Wea. Rev. 129, 420 — ETKF.
Hunt, Kostelich & Szunyogh (2007), Physica D 230, 112 — ETKF in ensemble space, LETKF.
Sakov & Oke (2008), Mon. Wea. Rev. 136, 1042 — symmetric square root, mean preservation.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from enkf import _checks
from enkf._kernels import local_analyses_parallel, local_analyses_serial, transform_weights

# Work (≈ domains · N² · (N + observations per domain)) below which the LETKF runs its
# local analyses on one thread: Lorenz-96 with N = 7 (40 domains, about 7·10⁴) takes
# 0.33 ms serially and 0.25 ms on two threads when idle, but ten times longer on two
# threads when another process holds a core. From about 1 ms of work up, two threads
# win by 1.6–1.7× and the wake-up cost no longer matters.
_PARALLEL_WORK = 5e5

# Columns of the state processed at once when applying ensemble-space weights: bounds the
# temporary anomaly blocks to N × 2¹⁶ doubles (52 MB at N = 100) instead of a copy of E.
_CHUNK = 1 << 16


@cache
def _blas() -> ThreadpoolController:
    """The BLAS/LAPACK thread pools of numpy and scipy (found once, reused every call)."""
    return ThreadpoolController()


def _moments(E: np.ndarray, HE: np.ndarray):
    """Ensemble mean x̄ (M,), observation mean ȳ (P,) and anomalies Y = HE − ȳ (N, P)."""
    xb = E.mean(axis=0)
    yb = HE.mean(axis=0)
    return xb, yb, HE - yb


def _apply(E: np.ndarray, xb: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Return ``x̄ + W @ (E − x̄)`` one block of columns at a time.

    The output is first filled with x̄ row by row: writing a fresh 0.8-GB array in column
    blocks (100 rows apart) made its first-touch page faults 15× slower than a sequential
    fill on our VMs. The two block buffers are allocated once and reused for the same
    reason.
    """
    N, M = E.shape
    Ea = np.empty_like(E)
    Ea[:] = xb
    width = min(_CHUNK, M)
    A = np.empty((N, width))
    WA = np.empty((N, width))
    for c0 in range(0, M, width):
        n = min(width, M - c0)
        c = slice(c0, c0 + n)
        np.subtract(E[:, c], xb[c], out=A[:, :n])
        np.matmul(W, A[:, :n], out=WA[:, :n])
        Ea[:, c] += WA[:, :n]
    return Ea


def etkf(E, HE, y, R) -> np.ndarray:
    """Deterministic ensemble transform Kalman filter (symmetric square root).

    Parameters
    ----------
    E : (N, M) array
        Forecast ensemble, members in rows.
    HE : (N, P) array
        Observation operator applied to each member.
    y : (P,) array
        Observations.
    R : (P,) or (P, P) array
        Observation-error variances or covariance.

    Returns
    -------
    (N, M) ndarray
        Analysis ensemble. Its mean is x̄ + K (y − ȳ) with the ensemble Kalman gain
        K = Aᵀ Y [Yᵀ Y + (N−1) R]⁻¹, and its anomalies stay centred (Sakov & Oke 2008).
    """
    E = _checks.ensemble(E, "E")
    HE, y, obs = _checks.observations(E, HE, y, R)
    xb, yb, Y = _moments(E, HE)
    W = transform_weights(obs.whiten(Y), obs.whiten(y - yb))
    return _apply(E, xb, W)


def enkf_pertobs(E, HE, y, R, rng: np.random.Generator) -> np.ndarray:
    """Stochastic EnKF with perturbed observations (Burgers et al. 1998).

    Each member is updated towards its own perturbed observation y + Dₙ, Dₙ ~ N(0, R);
    the perturbations are centred (zero ensemble mean), so that the analysis mean equals
    the Kalman update of the forecast mean.

    Parameters
    ----------
    E, HE, y, R :
        As in :func:`etkf`.
    rng : numpy.random.Generator
        Source of the observation perturbations.

    Returns
    -------
    (N, M) ndarray
        Analysis ensemble E + D̃ Ỹᵀ [(N−1)I + Ỹ Ỹᵀ]⁻¹ A, with Ỹ and D̃ = y + D − HE
        whitened by R^{-1/2}: the gain of the perturbed-observation EnKF written in
        ensemble space (push-through identity), so no P×P system is solved.
    """
    E = _checks.ensemble(E, "E")
    HE, y, obs = _checks.observations(E, HE, y, R)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    N = E.shape[0]
    xb, _, Y = _moments(E, HE)
    D = obs.sample(rng, N)
    D -= D.mean(axis=0)
    Yt = obs.whiten(Y)
    Dt = obs.whiten(y + D - HE)
    S = (N - 1) * np.eye(N) + Yt @ Yt.T
    W = np.linalg.solve(S, Yt @ Dt.T).T  # S is symmetric, so (Dt Ytᵀ S⁻¹)ᵀ = S⁻¹ Yt Dtᵀ
    W[np.diag_indices(N)] += 1.0
    return _apply(E, xb, W)


def letkf(E, HE, y, R, localizer) -> np.ndarray:
    """Local ETKF with R-localisation (Hunt et al. 2007).

    The state is split into the localizer's domains; each domain is analysed by an ETKF
    that sees only the observations the localizer assigns to it, with R⁻¹ multiplied by
    their taper weights. The local analyses run in parallel (numba threads).

    Parameters
    ----------
    E, HE, y, R :
        As in :func:`etkf`.
    localizer :
        An object with a ``domains(n_state, n_obs)`` method returning a
        :class:`enkf.localization.Domains` (e.g. :class:`enkf.localization.DistanceLocalizer`).

    Returns
    -------
    (N, M) ndarray
        Analysis ensemble. With one domain that sees every observation at weight 1 it
        equals :func:`etkf`.
    """
    E = _checks.ensemble(E, "E")
    HE, y, obs = _checks.observations(E, HE, y, R)
    dom = localizer.domains(E.shape[1], HE.shape[1])
    xb, yb, Y = _moments(E, HE)
    d = y - yb
    if obs.diagonal:
        YT, d, rfull = obs.whiten(Y).T, obs.whiten(d), np.empty((0, 0))
    else:
        YT, rfull = Y.T, obs.full
    Ea = np.empty_like(E)
    # The local analyses already use every core (numba prange); a multi-threaded BLAS
    # inside each of them oversubscribes the cores and ran 3× slower at 10⁴ domains.
    N = E.shape[0]
    work = N * N * (dom.n_domains * N + dom.obs_idx.size)
    kernel = local_analyses_parallel if work >= _PARALLEL_WORK else local_analyses_serial
    with _blas().limit(limits=1, user_api="blas"):
        kernel(
            E,
            xb,
            np.ascontiguousarray(YT),
            d,
            rfull,
            dom.state_ptr,
            dom.state_idx,
            dom.obs_ptr,
            dom.obs_idx,
            dom.obs_weight,
            Ea,
        )
    return Ea


def random_rotation(E, rng: np.random.Generator) -> np.ndarray:
    """Rotate the anomalies by a random mean-preserving orthogonal matrix.

    Returns x̄ + Ω A with Ω orthogonal and Ω 1 = 1, drawn uniformly (Haar) on the group of
    such matrices: mean and ensemble covariance are unchanged, but the members are mixed.
    Applied after a deterministic square-root analysis it breaks the alignment of the
    ensemble with a few directions that small ensembles develop over many cycles
    (Sakov & Oke 2008b, Mon. Wea. Rev. 136, 1042; DAPPER's ``rot=True``).

    Parameters
    ----------
    E : (N, M) array
    rng : numpy.random.Generator

    Returns
    -------
    (N, M) ndarray
    """
    E = _checks.ensemble(E, "E")
    N = E.shape[0]
    # An orthonormal basis of the subspace orthogonal to 1: the last N−1 columns of the
    # Q factor of [1, I] (the first column spans 1).
    Q, _ = np.linalg.qr(np.column_stack([np.ones(N), np.eye(N)[:, : N - 1]]))
    U = Q[:, 1:]
    G, Rg = np.linalg.qr(rng.standard_normal((N - 1, N - 1)))
    O = G * np.sign(np.diag(Rg))  # sign fix makes the QR draw Haar-distributed
    Omega = np.full((N, N), 1.0 / N) + U @ O @ U.T
    return _apply(E, E.mean(axis=0), Omega)
