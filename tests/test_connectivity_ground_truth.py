"""The connectivity estimators on a network whose synapses we know (short version of
benchmarks/connectivity.py): GLMCC finds the true links and beats the CC test."""

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


def test_glmcc_recovers_true_links_and_beats_the_cc_test(recording):
    spikes, truth = recording
    lr = gt.score(GLMCC(delay_ms="scan", test="lr").fit(spikes), truth)
    cc = gt.score(CrossCorrelogramTest(alpha=1e-3).fit(spikes), truth)
    # 3 minutes find the strong links only (the benchmark's 1 h finds most; measured here:
    # E MCC 0.32, precision 0.83, I MCC 0.90). Precision is what a user acts on.
    assert lr["E"]["mcc"] > 0.25 and lr["I"]["mcc"] > 0.8
    assert lr["E"]["precision"] > 0.75 and lr["I"]["precision"] > 0.95
    # the CC test (E precision 0.70, I recall 0.69 here) calls more false excitatory links
    # and misses more inhibitory ones
    assert lr["E"]["precision"] > cc["E"]["precision"] + 0.05
    assert lr["I"]["recall"] > cc["I"]["recall"] + 0.05
    # unconnected pairs called excitatory: well under 1 %
    assert lr["E"]["fp_rate"] < 0.005
