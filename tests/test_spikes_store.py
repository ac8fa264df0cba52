"""SpikeTrains and the observation store: round trips, validation, atomic writes."""

import numpy as np
import pytest
import zarr

from observations import SpikeTrainError, SpikeTrains, StoreError, open_store, write_store


@pytest.fixture
def trains(rng):
    lists = [np.sort(rng.uniform(0, 10, size=k)) for k in (0, 5, 40, 1)]
    return SpikeTrains.from_lists(lists, unit_ids=[7, 3, 11, 2], t_start_s=0.0, t_stop_s=10.0)


def test_from_pairs_equals_from_lists(trains, rng):
    ids = np.repeat(trains.unit_ids, trains.counts())
    perm = rng.permutation(trains.n_spikes)
    again = SpikeTrains.from_pairs(
        trains.times_s[perm], ids[perm], 0.0, 10.0, unit_ids=trains.unit_ids
    )
    np.testing.assert_array_equal(again.times_s, trains.times_s)
    np.testing.assert_array_equal(again.offsets, trains.offsets)
    assert again.train(0).size == 0  # a silent unit is kept


def test_binned_counts_every_spike_once(trains):
    dense = trains.binned(0.25)
    assert dense.shape == (4, 40)
    np.testing.assert_array_equal(dense.sum(axis=1), trains.counts())
    np.testing.assert_array_equal(trains.binned(0.25, sparse=True).toarray(), dense)
    k = 2
    expected = np.histogram(trains.train(k), bins=np.linspace(0, 10, 41))[0]
    np.testing.assert_array_equal(dense[k], expected)


def test_select_and_between(trains):
    sub = trains.select([2, 0])
    np.testing.assert_array_equal(sub.unit_ids, [11, 7])
    np.testing.assert_array_equal(sub.train(0), trains.train(2))
    part = trains.between(2.0, 5.0)
    t = trains.train(2)
    np.testing.assert_array_equal(part.train(2), t[(t > 2.0) & (t <= 5.0)])


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: SpikeTrains.from_lists([[0.1, 0.3, 0.2]], t_stop_s=1),
            "unit 0: spike times are not sorted at index 2",
        ),
        (
            lambda: SpikeTrains.from_pairs([0.5, -0.1], [0, 1], 0.0, 1.0),
            r"times_s\[1\] = -0.1 is negative",
        ),
        (
            lambda: SpikeTrains.from_pairs([0.5, np.nan], [0, 1], 0.0, 1.0),
            r"times_s\[1\] is not finite",
        ),
        (
            lambda: SpikeTrains.from_pairs([0.5, 2.0], [0, 1], 0.0, 1.0),
            r"times_s\[1\] = 2.0 s is outside \[0.0, 1.0\]",
        ),
        (
            lambda: SpikeTrains.from_pairs([0.5], [4], 0.0, 1.0, unit_ids=[1, 2]),
            r"ids\[0\] = 4 is not among unit_ids",
        ),
        (
            lambda: SpikeTrains(np.array([0.2, 0.1]), np.array([0, 2]), np.array([5]), 0.0, 1.0),
            "unit 5 .* not sorted at spike 1",
        ),
        (
            lambda: SpikeTrains(np.array([0.2]), np.array([0, 2]), np.array([5]), 0.0, 1.0),
            "offsets must run from 0 to 1",
        ),
    ],
)
def test_bad_spike_trains_are_named(make, message):
    with pytest.raises(SpikeTrainError, match=message):
        make()


def test_store_round_trip(tmp_path, trains):
    units = {
        "cell_type": np.array(["E", "I", "unknown", "E"]),
        "position_um": np.arange(12.0).reshape(4, 3),
    }
    path = write_store(tmp_path / "obs.zarr", trains, units, {"rates/rate_hz": (np.ones((2, 3)), {"bin_s": 0.001})},
                       attrs={"note": "test"})  # fmt: skip
    store = open_store(path)
    assert store.attrs["schema"] == "spikeda.observations/1" and store.attrs["note"] == "test"
    np.testing.assert_array_equal(store.spikes.times_s, trains.times_s)
    np.testing.assert_array_equal(store.spikes.offsets, trains.offsets)
    np.testing.assert_array_equal(store.spikes.unit_ids, trains.unit_ids)
    assert list(store.units["cell_type"]) == ["E", "I", "unknown", "E"]
    np.testing.assert_array_equal(store.array("rates/rate_hz"), np.ones((2, 3)))
    assert not list(tmp_path.glob(".*incomplete*"))


def test_store_is_never_overwritten(tmp_path, trains):
    path = write_store(tmp_path / "obs.zarr", trains)
    before = sorted(p.name for p in path.rglob("*"))
    with pytest.raises(StoreError, match="exists already"):
        write_store(path, trains)
    assert sorted(p.name for p in path.rglob("*")) == before


def test_failed_write_leaves_nothing(tmp_path, trains):
    with pytest.raises(StoreError, match=r"units/cell_type\[1\] = 'X'"):
        write_store(tmp_path / "obs.zarr", trains, {"cell_type": np.array(["E", "X", "I", "E"])})
    assert list(tmp_path.iterdir()) == []


def _corrupt(path, array, index, value):
    arr = zarr.open_array(path / array, mode="r+")
    data = arr[...]
    data[index] = value
    arr[...] = data


@pytest.mark.parametrize(
    "array, index, value, message",
    [
        ("spikes/times", 3, -1.0, r"spikes: times_s\[3\] = -1.0 is negative"),
        ("spikes/times", 9, 0.0, "spikes: unit 11 .* not sorted"),
        ("spikes/offsets", 2, 99, "offsets decrease at unit 2"),
    ],
)
def test_open_store_names_the_bad_array(tmp_path, trains, array, index, value, message):
    path = write_store(tmp_path / "obs.zarr", trains)
    _corrupt(path, array, index, value)
    with pytest.raises(StoreError, match=message):
        open_store(path)


def test_open_store_rejects_foreign_groups(tmp_path):
    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["schema"] = "something/2"
    with pytest.raises(StoreError, match="attrs.schema is 'something/2'"):
        open_store(tmp_path / "other.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a Zarr group"):
        open_store(tmp_path / "plain")


def test_crash_during_write_leaves_nothing(tmp_path, trains, monkeypatch):
    """A write that dies half way (here: the third array) leaves no store and no temporary."""
    from observations import store

    real_put, calls = store._put, []

    def failing_put(group, name, values, dims=None):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_put(group, name, values, dims)

    monkeypatch.setattr(store, "_put", failing_put)
    with pytest.raises(OSError, match="disk full"):
        write_store(tmp_path / "obs.zarr", trains, {"cell_type": np.array(["E", "I", "E", "E"])})
    assert list(tmp_path.iterdir()) == []
