"""The vectorisable exp(−x) of the membrane update against numpy's exp."""

import numpy as np
from numba import njit

from model._fastmath import exp_neg


@njit
def _apply(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = exp_neg(x[i])
    return out


def test_exp_neg_matches_numpy_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(0.0, 1.0, 20001), np.linspace(0.0, 700.0, 20001),
        rng.exponential(0.05, 20000), [0.0, 1e-300, 0.5 * np.log(2), np.log(2)],
    ])  # fmt: skip
    ref = np.exp(-x)
    np.testing.assert_allclose(_apply(x), ref, rtol=4e-16, atol=0)


def test_exp_neg_clamps_huge_arguments():
    out = _apply(np.array([700.0, 750.0, 1e6, np.inf]))
    np.testing.assert_allclose(out, np.exp(-700.0), rtol=4e-16)
