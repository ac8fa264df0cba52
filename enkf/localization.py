"""Localisation of the analysis: which observations each part of the state sees.

A localizer splits the state into *domains* (state entries analysed together) and assigns
each domain its observations with taper weights in (0, 1]; :func:`enkf.analysis.letkf`
multiplies R⁻¹ by those weights (R-localisation, Hunt et al. 2007). Any object with a
``domains(n_state, n_obs) -> Domains`` method is a localizer; :class:`DistanceLocalizer`
is the one for state entries and observations placed in space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# DAPPER's convention (Raanes et al.): the Gaspari–Cohn half-width is 1.82 × radius, so
# that the taper at distance = radius is close to exp(−1/2), like a Gaussian of sd radius.
GC_HALF_WIDTH_PER_RADIUS = 1.82


def gaspari_cohn(r) -> np.ndarray:
    """Gaspari & Cohn (1999, eq. 4.10) fifth-order piecewise rational taper.

    Parameters
    ----------
    r : array_like
        Distance divided by the half-width c (dimensionless, ≥ 0).

    Returns
    -------
    ndarray
        Taper in [0, 1]: 1 at r = 0, 0 for r ≥ 2, compactly supported and C² smooth.
    """
    r = np.abs(np.asarray(r, dtype=np.float64))
    out = np.zeros_like(r)
    inner = r <= 1.0
    ri = r[inner]
    out[inner] = (((-0.25 * ri + 0.5) * ri + 0.625) * ri - 5.0 / 3.0) * ri**2 + 1.0
    outer = (r > 1.0) & (r < 2.0)
    ro = r[outer]
    out[outer] = (
        ((((ro / 12.0 - 0.5) * ro + 0.625) * ro + 5.0 / 3.0) * ro - 5.0) * ro
        + 4.0
        - 2.0 / (3.0 * ro)
    )
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class Domains:
    """Local analysis domains in CSR form.

    Attributes
    ----------
    state_ptr : (D+1,) int64
        ``state_idx[state_ptr[k]:state_ptr[k+1]]`` are the state entries of domain k.
    state_idx : (M,) int64
        Every state entry exactly once.
    obs_ptr : (D+1,) int64
        ``obs_idx[obs_ptr[k]:obs_ptr[k+1]]`` are the observations domain k sees.
    obs_idx : (K,) int64
    obs_weight : (K,) float64
        Taper weights in (0, 1] that multiply R⁻¹.
    """

    state_ptr: np.ndarray
    state_idx: np.ndarray
    obs_ptr: np.ndarray
    obs_idx: np.ndarray
    obs_weight: np.ndarray

    @property
    def n_domains(self) -> int:
        return self.state_ptr.shape[0] - 1

    def local_obs(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Observation indices and weights of domain ``k``."""
        s = slice(self.obs_ptr[k], self.obs_ptr[k + 1])
        return self.obs_idx[s], self.obs_weight[s]

    def local_state(self, k: int) -> np.ndarray:
        """State indices of domain ``k``."""
        return self.state_idx[self.state_ptr[k] : self.state_ptr[k + 1]]


def _coords(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be (n,) or (n, n_dims) with n > 0, got shape {x.shape}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"{name} is not finite at index {bad[0][0]}")
    return x


def _csr(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Row pointer of a CSR structure whose entries are sorted by ``rows``."""
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr


class DistanceLocalizer:
    """Localisation by distance between state entries and observations.

    Parameters
    ----------
    state_coords : (M,) or (M, n_dims) array
        Position of every state entry (any unit, e.g. grid index or µm). Entries that share
        a position form one local domain and are analysed together.
    obs_coords : (P,) or (P, n_dims) array
        Position of every observation, same unit.
    radius : float
        Localisation radius, > 0 (``numpy.inf`` for no localisation). With
        ``taper="gaspari_cohn"`` the half-width is c = 1.82·radius (so the taper is ≈ e^{-1/2}
        at the radius, DAPPER's convention) and observations farther than 2c are ignored;
        with ``taper="step"`` observations within ``radius`` get weight 1.
    period : None, float or sequence of (float or None)
        Domain length of periodic dimensions (e.g. 40 for Lorenz-96); None means not periodic.
    taper : {"gaspari_cohn", "step"}
    """

    TAPERS = ("gaspari_cohn", "step")

    def __init__(self, state_coords, obs_coords, radius, period=None, taper="gaspari_cohn"):
        xs = _coords(state_coords, "state_coords")
        xo = _coords(obs_coords, "obs_coords")
        if xs.shape[1] != xo.shape[1]:
            raise ValueError(
                f"state_coords has {xs.shape[1]} dimensions but obs_coords has {xo.shape[1]}"
            )
        radius = float(radius)
        if not radius > 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        if taper not in self.TAPERS:
            raise ValueError(f"taper must be one of {self.TAPERS}, got {taper!r}")
        self.radius, self.taper = radius, taper
        self.period = self._periods(period, xs.shape[1])
        self.cutoff = 2 * GC_HALF_WIDTH_PER_RADIUS * radius if taper == "gaspari_cohn" else radius
        self.n_state, self.n_obs = xs.shape[0], xo.shape[0]
        self._domains = self._build(xs, xo)

    @staticmethod
    def _periods(period, n_dims: int) -> np.ndarray:
        """Per-dimension period, ``inf`` for non-periodic dimensions."""
        if period is None:
            return np.full(n_dims, np.inf)
        p = np.broadcast_to(
            np.array([np.inf if v is None else v for v in np.atleast_1d(period)], dtype=float),
            (n_dims,),
        ).copy()
        if np.any(p <= 0):
            raise ValueError(f"period must be > 0 (or None), got {period}")
        return p

    def distance(self, a, b) -> np.ndarray:
        """Euclidean distance between points ``a`` (..., n_dims) and ``b``, periodic where set."""
        diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
        periodic = np.isfinite(self.period)
        diff = np.where(
            periodic, np.minimum(diff % self.period, self.period - diff % self.period), diff
        )
        return np.sqrt((diff**2).sum(axis=-1))

    def weight(self, dist) -> np.ndarray:
        """Taper weight at distance ``dist`` (same unit as the coordinates)."""
        dist = np.asarray(dist, dtype=float)
        if self.taper == "step":
            return (dist <= self.radius).astype(float)
        if np.isinf(self.radius):
            return np.ones_like(dist)
        return gaspari_cohn(dist / (GC_HALF_WIDTH_PER_RADIUS * self.radius))

    def _build(self, xs: np.ndarray, xo: np.ndarray) -> Domains:
        periodic = np.isfinite(self.period)
        xs = np.where(periodic, xs % self.period, xs)
        xo = np.where(periodic, xo % self.period, xo)
        centres, state_domain = np.unique(xs, axis=0, return_inverse=True)
        state_domain = state_domain.reshape(-1)
        order = np.argsort(state_domain, kind="stable")
        state_ptr = _csr(state_domain[order], centres.shape[0])
        if np.isinf(self.cutoff):
            dom = np.repeat(np.arange(centres.shape[0]), xo.shape[0])
            obs = np.tile(np.arange(xo.shape[0]), centres.shape[0])
            dist = self.distance(centres[dom], xo[obs])
        else:
            dom, obs, dist = self._pairs_within(centres, xo, periodic)
        w = self.weight(dist)
        keep = w > 0
        dom, obs, w = dom[keep], obs[keep], w[keep]
        by = np.lexsort((obs, dom))
        return Domains(
            state_ptr=state_ptr,
            state_idx=order.astype(np.int64),
            obs_ptr=_csr(dom[by], centres.shape[0]),
            obs_idx=obs[by].astype(np.int64),
            obs_weight=w[by],
        )

    def _pairs_within(self, centres, xo, periodic):
        """All (domain, observation, distance) with distance ≤ cutoff, via k-d trees."""
        boxsize = None
        if periodic.any():
            # cKDTree is periodic in all dimensions or none: give the open dimensions a box
            # so wide that wrapping around it is always farther than the cutoff.
            lo = np.minimum(centres.min(axis=0), xo.min(axis=0))
            span = np.maximum(centres.max(axis=0), xo.max(axis=0)) - lo
            shift = np.where(periodic, 0.0, lo)
            centres, xo = centres - shift, xo - shift
            boxsize = np.where(periodic, self.period, span + 2 * self.cutoff + 1.0)
        t_dom = cKDTree(centres, boxsize=boxsize)
        t_obs = cKDTree(xo, boxsize=boxsize)
        pairs = t_dom.sparse_distance_matrix(t_obs, self.cutoff, output_type="ndarray")
        return pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"]

    def domains(self, n_state: int | None = None, n_obs: int | None = None) -> Domains:
        """The local domains; checks they fit a state of ``n_state`` and ``n_obs`` observations."""
        if n_state is not None and n_state != self.n_state:
            raise ValueError(
                f"localizer was built for {self.n_state} state entries, E has {n_state}"
            )
        if n_obs is not None and n_obs != self.n_obs:
            raise ValueError(f"localizer was built for {self.n_obs} observations, HE has {n_obs}")
        return self._domains
