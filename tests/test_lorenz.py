"""The toy models against their closed forms and conservation laws."""

import numpy as np
import pytest

from model.lorenz63 import Lorenz63
from model.lorenz96 import Lorenz96


def _rk4_numpy(f, x, dt, n):
    """Textbook RK4 on a tendency function: the independent reference for the kernels."""
    for _ in range(n):
        k1 = f(x)
        k2 = f(x + dt / 2 * k1)
        k3 = f(x + dt / 2 * k2)
        k4 = f(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _l96_tendency(x, F):
    """dxᵢ/dt written with explicit cyclic indices, one variable at a time."""
    n = x.shape[-1]
    out = np.empty_like(x)
    for i in range(n):
        out[..., i] = (
            (x[..., (i + 1) % n] - x[..., (i - 2) % n]) * x[..., (i - 1) % n] - x[..., i] + F
        )
    return out


def test_l96_uniform_forcing_state_is_a_fixed_point():
    m = Lorenz96(40, 8.0)
    x = np.full(40, 8.0)
    np.testing.assert_allclose(m.dxdt(x), 0.0, atol=1e-14)
    np.testing.assert_allclose(m.step(x, 0.05, n_steps=100), x, atol=1e-12)


def test_l96_energy_budget(rng):
    """The advection term conserves ½Σx²: d/dt ½Σx² = −Σx² + FΣx exactly."""
    m = Lorenz96(36, 10.0)
    x = rng.normal(size=(5, 36)) * 3
    np.testing.assert_allclose(
        (m.dxdt(x) * x).sum(1), -(x**2).sum(1) + 10.0 * x.sum(1), rtol=1e-12, atol=1e-10
    )


def test_l96_kernel_matches_textbook_rk4(rng):
    m = Lorenz96(40, 8.0)
    E = rng.normal(size=(4, 40)) + 8
    F = np.array([7.0, 8.0, 8.5, 9.0])
    got = m.step(E, 0.01, forcing=F, n_steps=50)
    ref = _rk4_numpy(lambda x: _l96_tendency(x, F), E, 0.01, 50)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.dxdt(E, F), _l96_tendency(E, F), atol=1e-12)


@pytest.mark.parametrize("model", ["l96", "l63"])
def test_rk4_is_fourth_order(model, rng):
    """Halving dt divides the error at a fixed time by 2⁴."""
    if model == "l96":
        m, x0 = Lorenz96(40, 8.0), 8 + rng.normal(size=40)

        def run(dt):
            return m.step(x0, dt, n_steps=round(0.4 / dt))
    else:
        m, x0 = Lorenz63(), np.array([1.0, 2.0, 20.0])

        def run(dt):
            return m.step(x0, dt, n_steps=round(0.2 / dt))

    ref = run(1e-4)
    e1 = np.abs(run(0.02) - ref).max()
    e2 = np.abs(run(0.01) - ref).max()
    assert 13 < e1 / e2 < 19


def test_l63_fixed_points_and_volume_contraction():
    m = Lorenz63()
    for p in m.fixed_points():
        np.testing.assert_allclose(m.dxdt(p), 0.0, atol=1e-12)
        np.testing.assert_allclose(m.step(p, 0.01, n_steps=10), p, atol=1e-12)
    # Divergence of the flow is −(σ + 1 + β) everywhere: check the Jacobian's trace.
    x = np.array([3.0, -2.0, 17.0])
    h = 1e-6
    J = np.stack([(m.dxdt(x + h * e) - m.dxdt(x - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    assert np.trace(J) == pytest.approx(-(10 + 1 + 8 / 3), rel=1e-8)


def test_l63_kernel_matches_textbook_rk4(rng):
    m = Lorenz63()
    E = rng.normal(size=(3, 3)) * 5 + [0, 0, 25]
    np.testing.assert_allclose(
        m.step(E, 0.01, n_steps=25), _rk4_numpy(m.dxdt, E, 0.01, 25), rtol=1e-12, atol=1e-12
    )


def test_per_member_forcing_changes_only_that_member():
    m = Lorenz96(40, 8.0)
    x = np.tile(np.linspace(-1, 1, 40), (2, 1))
    out = m.step(x, 0.05, forcing=[8.0, 9.0], n_steps=5)
    np.testing.assert_allclose(out[0], m.step(x[0], 0.05, n_steps=5))
    assert not np.allclose(out[0], out[1])


def test_shape_errors():
    with pytest.raises(ValueError, match=r"E must be \(members, 40\)"):
        Lorenz96(40).step(np.zeros((2, 39)), 0.05)
    with pytest.raises(ValueError, match="n ≥ 4"):
        Lorenz96(3)
    with pytest.raises(ValueError, match=r"E must be \(members, 3\)"):
        Lorenz63().step(np.zeros(4), 0.01)
