"""Forward operators: a member's spikes → what the microscope or the probe would record.

Each operator keeps explicit state across assimilation windows —
``predict(spikes, state, frame_times) -> (values, state)`` — and gives the observation-error
variance R it implies.
"""

from observations.operators.calcium import (
    INDICATORS,
    CalciumOperator,
    CalciumState,
    FitResult,
    fit_kinetics,
    load_ground_truth,
    noise_level_nu,
)
from observations.operators.counts import SpikeCountOperator

__all__ = [
    "INDICATORS",
    "CalciumOperator",
    "CalciumState",
    "FitResult",
    "SpikeCountOperator",
    "fit_kinetics",
    "load_ground_truth",
    "noise_level_nu",
]
