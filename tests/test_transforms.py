"""Parameter transforms: exact inverses, bounds, and the member-wise physical mean."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enkf import Identity, Log, Logit

# Beyond |u| ≈ 15 a logit's θ sits within 1e-7 of a bound and float64 cannot carry u back.
finite = st.floats(-15, 15, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=20))
def test_round_trips(u):
    u = np.array(u)
    for t in (Identity(), Log(), Logit(-2.0, 5.0)):
        np.testing.assert_allclose(t.forward(t.inverse(u)), u, rtol=1e-9, atol=1e-9)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
def test_logit_stays_inside_its_bounds(u):
    theta = Logit(0.0, 1.0).inverse(np.array(u))
    assert np.all((theta >= 0.0) & (theta <= 1.0))


def test_logit_known_values():
    t = Logit(2.0, 4.0)
    assert t.forward(3.0) == pytest.approx(0.0)
    assert t.inverse(np.log(3.0)) == pytest.approx(3.5)  # (θ−2)/(4−θ) = 3


def test_physical_mean_is_mean_of_members():
    """For log-normal members the physical mean is exp(μ + σ²/2), not exp(μ)."""
    rng = np.random.default_rng(1)
    mu, sd = np.log(5.0), 0.5
    U = mu + sd * rng.standard_normal(200_000)
    theta = Log().inverse(U)
    assert theta.mean() == pytest.approx(np.exp(mu + sd**2 / 2), rel=5e-3)
    assert abs(theta.mean() - np.exp(U.mean())) > 0.5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Log().forward([1.0, 0.0]), "flat index 1 is 0.0"),
        (lambda: Logit(0, 1).forward([0.5, 1.0]), "flat index 1 is 1.0"),
        (lambda: Logit(1, 1), "low < high"),
        (lambda: Identity().forward([np.nan]), "not finite"),
        (lambda: Log().inverse([0.0, np.inf]), "flat index 1"),
    ],
)
def test_transform_errors_name_the_index(call, message):
    with pytest.raises(ValueError, match=message):
        call()
