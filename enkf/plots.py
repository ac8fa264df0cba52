"""``spikeda plot``: PNG figures of any spikeda result store.

A result store says what it holds in ``attrs["kind"]``; each kind has a plotting module
with ``plot(ds, out_dir, **options) -> list[Path]`` that writes its PNG files into
``out_dir`` and returns their paths. matplotlib is an optional extra (``spikeda[plot]``)
and is imported only here and in those modules.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from enkf.config import ConfigError

#: kind → module holding ``plot(ds, out_dir, **options)``
PLOTTERS = {
    "connectivity": "inference.connectivity_plot",
    "triplets": "inference.triplet_plot",
    "run": "enkf.run_plot",
}


def require_matplotlib():
    """matplotlib's pyplot on the non-interactive Agg backend, or one clear error."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'spikeda[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_store(path: Path, out_dir: Path | None = None, **options) -> list[Path]:
    """Write the figures of the result store at ``path``; returns the PNG paths.

    ``out_dir`` defaults to a folder ``<store>.plots`` beside the store (never inside it:
    the store stays as it was written).
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such store")
    try:
        ds = xr.open_zarr(path, consolidated=False)
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise ConfigError(f"{path}: not a readable Zarr store ({exc})") from None
    kind = ds.attrs.get("kind")
    if kind not in PLOTTERS:
        raise ConfigError(
            f"{path}: attrs['kind'] is {kind!r}; spikeda plot knows {sorted(PLOTTERS)}"
        )
    require_matplotlib()
    out_dir = Path(out_dir) if out_dir is not None else path.with_name(path.name + ".plots")
    out_dir.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(PLOTTERS[kind])
    return module.plot(ds, out_dir, **options)
