"""``spikeda plot RUN``: the figures of an assimilation run (attrs["kind"] = "run").

- ``parameters.png``: every parameter over the cycles, the ensemble's mean with its 50 %
  and 95 % bands (forecast and analysis), the prior's 95 % interval and the truth when the
  run is a twin;
- ``traces.png``: the observed ΔF/F (or counts) of a few neurons frame by frame beside
  the forecast ensemble's mean ± 2 sd (and the truth's noise-free trace for a twin);
- ``rates.png``: population rates of the members over the cycles (median and 95 % band)
  with the truth's rates;
- ``diagnostics.png``: spread, RMSE against the observations and the innovation ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enkf.plots import require_matplotlib


def plot(ds, out_dir: Path, neurons: int = 4, dpi: int = 120) -> list[Path]:
    """Write the PNG files of a run Dataset ``ds`` into ``out_dir``; returns their paths.

    Only complete cycles are drawn (``attrs["completed_cycles"]``), so a run in progress
    can be plotted. Options: ``neurons`` (traces to draw, at most those stored), ``dpi``.
    """
    plt = require_matplotlib()
    out_dir = Path(out_dir)
    n = int(ds.attrs.get("completed_cycles", ds.sizes["cycle"]))
    ds = ds.isel(cycle=slice(0, n))
    if n == 0:
        from enkf.config import ConfigError

        raise ConfigError("the run has no complete cycle yet; nothing to plot")
    t = ds["window_end_s"].values
    paths = []

    # -- parameters -------------------------------------------------------------------------
    names = [str(v) for v in ds["parameter"].values]
    units = [str(v) for v in ds["param_units"].values]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    param = ds["param"].values  # (cycle, stage, member, parameter)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        for stage, colour, label in ((0, "tab:orange", "forecast"), (1, "tab:blue", "analysis")):
            x = param[:, stage, :, i]
            q = np.percentile(x, [2.5, 25, 50, 75, 97.5], axis=1)
            ax.fill_between(t, q[0], q[4], color=colour, alpha=0.15, lw=0)
            ax.fill_between(t, q[1], q[3], color=colour, alpha=0.3, lw=0)
            ax.plot(t, x.mean(axis=1), color=colour, lw=1.5, label=f"{label} mean")
        ax.axhspan(float(ds["prior_low"][i]), float(ds["prior_high"][i]), color="0.85",
                   zorder=0, label="prior 95 %")  # fmt: skip
        if "param_truth" in ds:
            ax.axhline(float(ds["param_truth"][i]), color="k", ls="--", lw=1.2, label="truth")
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(units[i] if units[i] != "1" else "scale")
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"{ds.attrs.get('name', 'run')}: parameters ({param.shape[2]} members, 50 % and 95 % bands)"
    )
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "parameters.png", dpi, plt))

    # -- traces -----------------------------------------------------------------------------
    if "trace_y" in ds and ds.sizes.get("trace_neuron", 0) and ds.sizes.get("frame", 0):
        k = min(neurons, ds.sizes["trace_neuron"])
        fig, axes = plt.subplots(k, 1, figsize=(10, 1.9 * k), sharex=True, squeeze=False)
        tt = ds["trace_time"].values.ravel()
        unit = ds["y"].attrs.get("units", "")
        for j in range(k):
            ax = axes[j, 0]
            y = ds["trace_y"].values[:, :, j].ravel()
            m = ds["trace_hx_mean"].values[:, :, j].ravel()
            s = ds["trace_hx_sd"].values[:, :, j].ravel()
            ok = np.isfinite(tt)
            ax.fill_between(tt[ok], (m - 2 * s)[ok], (m + 2 * s)[ok], color="tab:blue", alpha=0.25,
                            lw=0, label="forecast ±2 sd")  # fmt: skip
            ax.plot(tt[ok], m[ok], color="tab:blue", lw=1, label="forecast mean")
            ax.plot(tt[ok], y[ok], color="k", lw=0.6, label="observed")
            if "trace_truth" in ds:
                tr = ds["trace_truth"].values[:, :, j].ravel()
                ax.plot(tt[ok], tr[ok], color="tab:red", lw=0.8, ls=":", label="truth (noise-free)")
            neuron = int(ds["trace_neuron"].values[j])
            ax.set_ylabel(f"neuron {neuron}\n{unit}")
        axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle("observed vs predicted, frame by frame")
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "traces.png", dpi, plt))

    # -- rates ------------------------------------------------------------------------------
    pops = [str(p) for p in ds["population"].values]
    fig, axes = plt.subplots(1, len(pops), figsize=(4.5 * len(pops), 3), squeeze=False)
    rate = ds["rate_hz"].values  # (cycle, member, population)
    for k, pop in enumerate(pops):
        ax = axes[0, k]
        q = np.percentile(rate[:, :, k], [2.5, 50, 97.5], axis=1)
        ax.fill_between(t, q[0], q[2], color="tab:green", alpha=0.25, lw=0, label="members 95 %")
        ax.plot(t, q[1], color="tab:green", label="members median")
        if "rate_truth_hz" in ds:
            ax.plot(t, ds["rate_truth_hz"].values[:, k], "k--", label="truth")
        ax.set_title(f"population {pop}")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("rate (Hz)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "rates.png", dpi, plt))

    # -- diagnostics ------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(13, 3))
    axes[0].plot(t, ds["spread_f"].values, label="forecast")
    axes[0].plot(t, ds["spread_a"].values, label="analysis")
    axes[0].set_title("parameter spread (transformed)")
    axes[0].legend(fontsize=7)
    if "rmse_obs" in ds and np.isfinite(ds["rmse_obs"].values).any():
        axes[1].plot(t, ds["rmse_obs"].values, label="RMSE(y − mean H(x))")
        axes[1].plot(t, ds["obs_spread"].values, label="sd of H(x)")
        axes[1].legend(fontsize=7)
        axes[2].plot(t, ds["innovation_ratio"].values)
        axes[2].axhline(1.0, color="k", lw=0.8, ls=":")
    axes[1].set_title("observation space")
    axes[2].set_title("innovation ratio (≈ 1 when consistent)")
    for ax in axes:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "diagnostics.png", dpi, plt))
    return paths


def _save(fig, path: Path, dpi: int, plt) -> Path:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
