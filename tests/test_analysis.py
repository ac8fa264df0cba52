"""The analysis updates against the Kalman filter's closed forms and their own invariants."""

import numpy as np
import pytest
from conftest import kalman_mean
from hypothesis import given
from hypothesis import strategies as st

from enkf import DistanceLocalizer, enkf_pertobs, etkf, letkf


@st.composite
def problems(draw, full_r=None):
    """A random linear-Gaussian analysis problem: E (N, M), H (P, M), y, R."""
    N = draw(st.integers(3, 12))
    M = draw(st.integers(1, 8))
    P = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    full = draw(st.booleans()) if full_r is None else full_r
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(N, M)) * rng.uniform(0.1, 3, size=M) + rng.normal(size=M) * 5
    H = rng.normal(size=(P, M))
    y = rng.normal(size=P) * 3
    if full:
        B = rng.normal(size=(P, P))
        R = B @ B.T + P * np.eye(P) * rng.uniform(0.1, 2)
    else:
        R = rng.uniform(0.1, 3, size=P)
    return E, E @ H.T, H, y, R, rng


def _everywhere(M, P):
    """A localizer that gives every domain every observation at weight 1."""
    return DistanceLocalizer(np.arange(M), np.zeros(P), np.inf)


@given(problems())
def test_etkf_mean_is_the_kalman_update(prob):
    E, HE, _, y, R, _ = prob
    xa, _ = kalman_mean(E, HE, y, R)
    np.testing.assert_allclose(etkf(E, HE, y, R).mean(0), xa, rtol=1e-9, atol=1e-9)


@given(problems())
def test_etkf_covariance_is_the_kalman_covariance(prob):
    """For linear H the square-root update reproduces Pₐ = (I − KH) P exactly."""
    E, HE, H, y, R, _ = prob
    N = E.shape[0]
    _, K = kalman_mean(E, HE, y, R)
    A = E - E.mean(0)
    P = A.T @ A / (N - 1)
    Ea = etkf(E, HE, y, R)
    Aa = Ea - Ea.mean(0)
    np.testing.assert_allclose(Aa.T @ Aa / (N - 1), P - K @ H @ P, rtol=1e-8, atol=1e-9)


@given(problems())
def test_etkf_is_symmetric_in_members(prob):
    """The symmetric square root does not depend on the order of the members."""
    E, HE, _, y, R, rng = prob
    perm = rng.permutation(E.shape[0])
    np.testing.assert_allclose(etkf(E[perm], HE[perm], y, R), etkf(E, HE, y, R)[perm], atol=1e-9)


@given(problems())
def test_enkf_mean_is_the_kalman_update(prob):
    """Centred perturbations leave the mean update exactly Kalman's."""
    E, HE, _, y, R, rng = prob
    xa, _ = kalman_mean(E, HE, y, R)
    np.testing.assert_allclose(enkf_pertobs(E, HE, y, R, rng).mean(0), xa, rtol=1e-9, atol=1e-9)


@given(problems())
def test_letkf_without_localisation_is_etkf(prob):
    E, HE, _, y, R, _ = prob
    loc = _everywhere(E.shape[1], HE.shape[1])
    np.testing.assert_allclose(letkf(E, HE, y, R, loc), etkf(E, HE, y, R), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("filt", ["etkf", "enkf", "letkf"])
def test_huge_observation_error_leaves_the_forecast(filt, rng):
    E = rng.normal(size=(8, 5)) + 3.0
    HE = E[:, [0, 2, 4]] ** 2  # nonlinear H: the update does not care
    y = rng.normal(size=3)
    R = np.full(3, 1e16)
    if filt == "etkf":
        Ea = etkf(E, HE, y, R)
    elif filt == "enkf":
        Ea = enkf_pertobs(E, HE, y, R, rng)
    else:
        Ea = letkf(E, HE, y, R, DistanceLocalizer(np.arange(5), [0, 2, 4], 2.0))
    np.testing.assert_allclose(Ea, E, atol=1e-6)


def test_single_observation_closed_form(rng):
    """One observation of x₀: x̄ₐ = x̄ + P₀ⱼ (y − x̄₀)/(P₀₀ + r), written out by hand."""
    N, M = 20, 4
    E = rng.normal(size=(N, M)) @ rng.normal(size=(M, M)) + 1.0
    y, r = np.array([2.5]), 0.7
    A = E - E.mean(0)
    P = A.T @ A / (N - 1)
    expected = E.mean(0) + P[:, 0] * (y[0] - E[:, 0].mean()) / (P[0, 0] + r)
    HE = E[:, :1]
    loc = DistanceLocalizer(np.zeros(M), np.zeros(1), np.inf)
    for Ea in (
        etkf(E, HE, y, [r]),
        enkf_pertobs(E, HE, y, [r], rng),
        letkf(E, HE, y, [r], loc),
    ):
        np.testing.assert_allclose(Ea.mean(0), expected, rtol=1e-12, atol=1e-12)
    # The square-root update also gets the analysis variance of x₀ exactly.
    Ea = etkf(E, HE, y, [r])
    np.testing.assert_allclose(Ea[:, 0].var(ddof=1), P[0, 0] * r / (P[0, 0] + r), rtol=1e-12)


def test_enkf_covariance_is_kalman_on_average():
    """The perturbed-observation EnKF matches Pₐ = (I − KH)P in expectation over draws."""
    rng = np.random.default_rng(5)
    N, M = 30, 3
    E = rng.normal(size=(N, M)) * [1.0, 2.0, 0.5]
    H = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    HE = E @ H.T
    y, R = np.array([0.3, -0.2]), np.array([0.5, 1.5])
    _, K = kalman_mean(E, HE, y, R)
    A = E - E.mean(0)
    Pf = A.T @ A / (N - 1)
    draws = [enkf_pertobs(E, HE, y, R, rng) for _ in range(4000)]
    Pa = np.mean([(Ea - Ea.mean(0)).T @ (Ea - Ea.mean(0)) / (N - 1) for Ea in draws], axis=0)
    # With centred perturbations the expectation of the sample Pₐ is (I−KH)P plus a small
    # O(1/N) term; 4000 draws put the Monte Carlo error near 1 %.
    np.testing.assert_allclose(Pa, Pf - K @ H @ Pf, rtol=0.08, atol=0.02)


def test_diagonal_r_as_matrix_equals_vector(rng):
    E = rng.normal(size=(9, 6))
    HE = E[:, :4] + 0.1
    y = rng.normal(size=4)
    r = rng.uniform(0.5, 2.0, size=4)
    np.testing.assert_allclose(etkf(E, HE, y, np.diag(r)), etkf(E, HE, y, r), atol=1e-12)


def test_full_r_agrees_with_whitened_problem(rng):
    """Correlated R: transforming y and HE by L⁻¹ (R = LLᵀ) and using R = I is the same."""
    E = rng.normal(size=(10, 5))
    H = rng.normal(size=(3, 5))
    HE = E @ H.T
    y = rng.normal(size=3)
    B = rng.normal(size=(3, 3))
    R = B @ B.T + np.eye(3)
    L = np.linalg.cholesky(R)
    Li = np.linalg.inv(L)
    np.testing.assert_allclose(
        etkf(E, HE, y, R), etkf(E, HE @ Li.T, Li @ y, np.ones(3)), rtol=1e-10, atol=1e-10
    )
