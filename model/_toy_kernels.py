"""numba kernels of the toy models: fourth-order Runge–Kutta steps, vectorised over members."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _l96_tendency(x, forcing, out):
    n = x.shape[0]
    for i in range(n):
        out[i] = (x[(i + 1) % n] - x[i - 2]) * x[i - 1] - x[i] + forcing


@njit(cache=True, nogil=True)
def l96_rk4(E, forcing, dt, n_steps):
    """Advance every member of a Lorenz-96 ensemble by ``n_steps`` RK4 steps.

    Parameters
    ----------
    E : (N, n) float64
        Members in rows.
    forcing : (N,) float64
        Forcing F of each member.
    dt : float
        Step (model time units).
    n_steps : int

    Returns
    -------
    (N, n) float64
    """
    N, n = E.shape
    out = E.copy()
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    tmp = np.empty(n)
    for m in range(N):
        x = out[m]
        F = forcing[m]
        for _ in range(n_steps):
            _l96_tendency(x, F, k1)
            for i in range(n):
                tmp[i] = x[i] + 0.5 * dt * k1[i]
            _l96_tendency(tmp, F, k2)
            for i in range(n):
                tmp[i] = x[i] + 0.5 * dt * k2[i]
            _l96_tendency(tmp, F, k3)
            for i in range(n):
                tmp[i] = x[i] + dt * k3[i]
            _l96_tendency(tmp, F, k4)
            for i in range(n):
                x[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    return out


@njit(cache=True, nogil=True, inline="always")
def _l63_tendency(x, y, z, sigma, rho, beta):
    return sigma * (y - x), x * (rho - z) - y, x * y - beta * z


@njit(cache=True, nogil=True)
def l63_rk4(E, sigma, rho, beta, dt, n_steps):
    """Advance every member of a Lorenz-63 ensemble (N, 3) by ``n_steps`` RK4 steps."""
    out = E.copy()
    h = 0.5 * dt
    for m in range(E.shape[0]):
        x, y, z = out[m, 0], out[m, 1], out[m, 2]
        for _ in range(n_steps):
            a1, b1, c1 = _l63_tendency(x, y, z, sigma, rho, beta)
            a2, b2, c2 = _l63_tendency(x + h * a1, y + h * b1, z + h * c1, sigma, rho, beta)
            a3, b3, c3 = _l63_tendency(x + h * a2, y + h * b2, z + h * c2, sigma, rho, beta)
            a4, b4, c4 = _l63_tendency(x + dt * a3, y + dt * b3, z + dt * c3, sigma, rho, beta)
            x += dt / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
            y += dt / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4)
            z += dt / 6.0 * (c1 + 2.0 * c2 + 2.0 * c3 + c4)
        out[m, 0], out[m, 1], out[m, 2] = x, y, z
    return out
