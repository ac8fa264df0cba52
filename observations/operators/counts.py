"""Spike counts in bins, with a variance-stabilising transform."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from observations.spikes import SpikeTrains

TRANSFORMS = ("anscombe", "sqrt", "none")


@dataclass(frozen=True)
class SpikeCountOperator:
    """Spike counts of each unit in contiguous bins of ``bin_s`` on a fixed grid.

    Bin k covers (origin_s + k·bin_s, origin_s + (k+1)·bin_s]. A window's values are the
    bins that *end* inside it; the spikes of a bin that is still open at the window's end
    are the operator's state, so consecutive windows give exactly the counts of one pass.

    Transforms make Poisson counts x roughly homoscedastic: ``anscombe`` 2√(x + 3/8)
    (variance ≈ 1 for counts ≳ 4; Anscombe 1948), ``sqrt`` √x (variance ≈ 1/4), ``none``
    (variance = the expected count).

    Parameters
    ----------
    bin_s : float
        Bin width (s), > 0.
    transform : {"anscombe", "sqrt", "none"}
    origin_s : float
        A bin edge (s).
    """

    bin_s: float
    transform: str = "anscombe"
    origin_s: float = 0.0

    def __post_init__(self):
        if not (np.isfinite(self.bin_s) and self.bin_s > 0):
            raise ValueError(f"bin_s must be > 0, got {self.bin_s}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")

    def initial_state(self, n_units: int) -> np.ndarray:
        """Counts in the open bin: none yet, (n_units,) int64."""
        return np.zeros(int(n_units), np.int64)

    def bin_ends(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Ends (s) of the bins that close in (t0_s, t1_s]."""
        k0 = int(np.floor((t0_s - self.origin_s) / self.bin_s + 1e-9)) + 1
        k1 = int(np.floor((t1_s - self.origin_s) / self.bin_s + 1e-9))
        return self.origin_s + self.bin_s * np.arange(k0, k1 + 1)

    def predict(self, spikes: SpikeTrains, state, frame_times_s=None):
        """Transformed counts of the bins that end in (t_start_s, t_stop_s].

        Parameters
        ----------
        spikes : SpikeTrains
            A member's spikes over the window.
        state : (n_units,) int64
            Counts of the bin open at t_start_s (from the previous window, or zeros).
        frame_times_s : array, optional
            The bin ends to report; must be those of :meth:`bin_ends` (given for symmetry
            with the calcium operator).

        Returns
        -------
        values : (n_bins, n_units) float64
        state : (n_units,) int64
        """
        ends = self.bin_ends(spikes.t_start_s, spikes.t_stop_s)
        if frame_times_s is not None and not np.allclose(
            np.asarray(frame_times_s), ends, rtol=0, atol=1e-9
        ):
            raise ValueError(f"frame_times_s must be the bin ends {ends[:3]}… of this window")
        state = np.asarray(state, dtype=np.int64)
        if state.shape != (spikes.n_units,):
            raise ValueError(f"state must have shape ({spikes.n_units},), got {state.shape}")
        # Every spike goes to the bin that contains it: index of the first bin end ≥ t.
        edges = np.concatenate([ends, [np.inf]])
        b = np.searchsorted(edges, spikes.times_s, side="left")
        unit = np.repeat(np.arange(spikes.n_units), spikes.counts())
        counts = np.zeros((ends.size + 1, spikes.n_units), np.int64)
        np.add.at(counts, (b, unit), 1)
        counts[0] += state
        return self.apply_transform(counts[:-1]), counts[-1].copy()

    def apply_transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.transform == "anscombe":
            return 2.0 * np.sqrt(x + 0.375)
        if self.transform == "sqrt":
            return np.sqrt(x)
        return x

    def R(self, expected_count=None) -> np.ndarray | float:
        """Observation-error variance of one transformed bin.

        1 (Anscombe) or 1/4 (sqrt), the variance-stabilised values for Poisson counts; for
        ``none`` the Poisson variance, which is the ``expected_count`` (floored at 1).
        """
        if self.transform == "anscombe":
            return 1.0
        if self.transform == "sqrt":
            return 0.25
        if expected_count is None:
            raise ValueError("transform 'none' needs the expected count for its variance")
        return np.maximum(np.asarray(expected_count, dtype=np.float64), 1.0)
