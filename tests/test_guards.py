"""Bad inputs to the filters: one ValueError naming the argument and the index."""

import numpy as np
import pytest

from enkf import enkf_pertobs, etkf


def _ok(rng):
    E = rng.normal(size=(6, 5))
    return E, E[:, :3].copy(), np.zeros(3), np.ones(3)


def _with(rng, **changes):
    E, HE, y, R = _ok(rng)
    args = {"E": E, "HE": HE, "y": y, "R": R}
    for k, fn in changes.items():
        args[k] = fn(args[k])
    return args


def _set(index, value):
    def change(a):
        a = np.array(a, dtype=float)
        a[index] = value
        return a

    return change


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"E": _set((2, 4), np.nan)}, "E is not finite at member 2, entry 4"),
        ({"HE": _set((5, 1), np.inf)}, "HE is not finite at member 5, entry 1"),
        ({"y": _set(2, np.nan)}, "y is not finite at index 2"),
        ({"R": _set(1, 0.0)}, "variance at index 1 is 0.0"),
        ({"R": _set(2, -1.0)}, "variance at index 2 is -1.0"),
        ({"R": lambda R: np.array([[1.0, 2, 0], [2, 1, 0], [0, 0, 1]])}, "not positive definite"),
        ({"R": lambda R: np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]])}, r"R\[0, 1\] = 0.5"),
        ({"R": lambda R: np.ones(4)}, "R must have 3 variances"),
        ({"y": lambda y: np.zeros(4)}, r"y must have shape \(3,\)"),
        ({"HE": lambda HE: HE[:4]}, "HE has 4 members but E has 6"),
        ({"E": lambda E: E[:1]}, "E needs at least 2 members"),
        ({"E": lambda E: E[0]}, "E must be 2-D"),
    ],
)
@pytest.mark.parametrize("filt", ["etkf", "enkf"])
def test_bad_input_is_named(changes, message, filt, rng):
    args = _with(rng, **changes)
    before = {k: np.array(v, copy=True) for k, v in args.items()}
    with pytest.raises(ValueError, match=message):
        if filt == "etkf":
            etkf(**args)
        else:
            enkf_pertobs(**args, rng=rng)
    for k, v in args.items():  # the caller's arrays are never modified
        np.testing.assert_array_equal(v, before[k])


def test_enkf_needs_a_generator(rng):
    E, HE, y, R = _ok(rng)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        enkf_pertobs(E, HE, y, R, 42)


def test_filters_do_not_modify_their_inputs(rng):
    E, HE, y, R = _ok(rng)
    copies = [a.copy() for a in (E, HE, y, R)]
    etkf(E, HE, y, R)
    enkf_pertobs(E, HE, y, R, rng)
    for a, b in zip((E, HE, y, R), copies, strict=True):
        np.testing.assert_array_equal(a, b)
