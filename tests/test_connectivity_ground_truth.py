"""The connectivity estimators on a network whose synapses we know (short version of
benchmarks/connectivity.py): GLMCC finds true links with fewer false calls than the CC test."""

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # simulates 3 min of a 1000-neuron network (~40 s)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import connectivity as gt  # noqa: E402

from inference import GLMCC, CrossCorrelogramTest  # noqa: E402

MINUTES = 3.0


@pytest.fixture(scope="module")
def recording():
    spec, pre, post, w = gt.network_spec(seed=1)
    spikes, _ = gt.recording(spec, MINUTES, seed=1, cache=None)
    return spikes, gt.truth_matrix(spikes.unit_ids, pre, post, w)


def test_the_ground_truth_network_is_in_the_paper_regime(recording):
    spikes, truth = recording
    rates = spikes.rates_hz()
    assert spikes.n_units == 100 and 1.0 < np.median(rates) < 10.0
    off = ~np.eye(100, dtype=bool)
    # p = 0.1 from E, 0.2 from I: ~790 excitatory and ~400 inhibitory recorded links
    assert 650 < (truth[off] > 0).sum() < 950 and 300 < (truth[off] < 0).sum() < 500


def test_glmcc_recovers_true_links_with_fewer_false_calls_than_the_cc_test(recording):
    spikes, truth = recording
    glmcc = gt.score(GLMCC().fit(spikes), truth)  # the defaults: Wald, d = 3 ms
    cc = gt.score(CrossCorrelogramTest(alpha=1e-3).fit(spikes), truth)
    # 3 minutes find the strongest links only (the benchmark's hour finds most). Measured
    # here: GLMCC E MCC 0.23 at precision 0.94 with no false call; I MCC 0.83, precision 0.99;
    # the CC test E precision 0.70 with 0.5 % of unconnected pairs called excitatory.
    assert glmcc["E"]["mcc"] > 0.15 and glmcc["I"]["mcc"] > 0.7
    assert glmcc["E"]["precision"] > 0.85 and glmcc["I"]["precision"] > 0.95
    assert glmcc["E"]["precision"] > cc["E"]["precision"] + 0.15
    assert glmcc["E"]["fp_rate"] < 0.002 and glmcc["E"]["fp_rate"] < cc["E"]["fp_rate"]
