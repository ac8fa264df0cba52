"""``spikeda plot`` for a triplet store: the map of motif regions with the data's triplets.

The regions are the theory's predictions (:func:`inference.triplet_theory.motif_map`) in the
plane (mean pairwise θ, θ_123) for the store's bin and the median rate of its units,
traced over a sweep of input amplitude and source rate; each triplet is a point with its
95 % delta-method confidence ellipse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.triplet_theory import MAP_MOTIFS, motif_map

COLOURS = {"E-all": "tab:red", "E-pairs": "tab:orange", "E-pair": "gold", "I-all": "tab:blue",
           "I-pairs": "tab:cyan", "I-pair": "tab:purple"}  # fmt: skip
CHI2_2DOF_95 = 5.991


def _ellipse(x, y, vxx, vyy, vxy, n=48):
    """Points (2, n) of the 95 % ellipse of a bivariate normal with that covariance."""
    cov = np.array([[vxx, vxy], [vxy, vyy]])
    w, V = np.linalg.eigh(cov)
    w = np.sqrt(np.maximum(w, 0.0) * CHI2_2DOF_95)
    a = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(a), np.sin(a)])
    return (V * w) @ circle + np.array([[x], [y]])


def _baseline_hz(ds, bin_ms: float) -> float:
    th = np.asarray(ds.theta_i.values, dtype=np.float64)  # (triplet, member)
    units = np.asarray(ds.triplet_units.values)
    ok = np.isfinite(th)
    if not ok.any():
        return 1.0
    rate = 1e3 / bin_ms / (1.0 + np.exp(-th[ok]))  # P(x_i = 1 | others silent) / Δ
    ids, inverse = np.unique(units[ok], return_inverse=True)
    per_unit = [np.median(rate[inverse == k]) for k in range(ids.size)]
    return float(max(np.median(per_unit), 0.05))


def plot(ds, out_dir, baseline_hz=None, max_triplets: int = 400, ellipses: bool = True,
         filename: str = "triplet_map.png", **_ignored) -> list[Path]:  # fmt: skip
    """Write the triplet map PNG into ``out_dir``; returns [path].

    ``baseline_hz`` (default: the median over units of each unit's rate when the other two
    units of its triplets are silent, e^{θ_i}/(1 + e^{θ_i})/Δ — the marginal rates would
    include the spikes the hidden sources cause) sets the neurons of the theory; at most ``max_triplets`` triplets are drawn (those with the largest |Wald z|).
    """
    from enkf.plots import require_matplotlib

    plt = require_matplotlib()
    from matplotlib.collections import PolyCollection

    bin_ms = float(ds.attrs["bin_ms"])
    tau, theta = float(ds.attrs.get("tau_m_ms", 20.0)), float(ds.attrs.get("theta_mv", 20.0))
    if baseline_hz is None:
        baseline_hz = _baseline_hz(ds, bin_ms)
    regions = motif_map(baseline_hz, bin_ms, tau_ms=tau, theta_mv=theta)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    for motif in MAP_MOTIFS:
        px, py = regions[motif]
        quads = np.stack([np.stack([px[:-1, :-1], py[:-1, :-1]], -1),
                          np.stack([px[1:, :-1], py[1:, :-1]], -1),
                          np.stack([px[1:, 1:], py[1:, 1:]], -1),
                          np.stack([px[:-1, 1:], py[:-1, 1:]], -1)], axis=2)  # fmt: skip
        quads = quads.reshape(-1, 4, 2)
        quads = quads[np.isfinite(quads).all(axis=(1, 2))]
        ax.add_collection(PolyCollection(quads, facecolors=COLOURS[motif], edgecolors="none",
                                         alpha=0.25, label=motif))  # fmt: skip
        # The swept points too: regions of zero area (θ_123 ≡ 0 for one pair) stay visible.
        ax.plot(px.ravel(), py.ravel(), ".", ms=1.5, color=COLOURS[motif], alpha=0.6)
    status = ds.status.values
    usable = np.flatnonzero((status == "ok") | (status == "sparse"))
    z = np.abs(np.nan_to_num(ds.wald_z.values[usable]))
    pick = usable[np.argsort(-z, kind="stable")[:max_triplets]]
    x = ds.theta_pair_mean.values[pick]
    y = ds.theta_123.values[pick]
    labels = ds.motif.values[pick] if "motif" in ds else np.full(pick.size, "")
    if ellipses:
        vxx = ds.se_theta_pair_mean.values[pick] ** 2
        vyy = ds.se_theta_123.values[pick] ** 2
        vxy = ds.cov_pair_mean_123.values[pick]
        for k in range(pick.size):
            e = _ellipse(x[k], y[k], vxx[k], vyy[k], vxy[k])
            ax.plot(e[0], e[1], color="0.3", lw=0.5, alpha=0.6)
    colours = [COLOURS.get(str(lab).split("-pair-")[0], "k") for lab in labels]
    ax.scatter(x, y, s=10, c=colours, edgecolors="k", linewidths=0.4, zorder=3,
               label=f"data ({pick.size} of {status.size} triplets)")  # fmt: skip
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    all_x = np.concatenate([regions[m][0].ravel() for m in MAP_MOTIFS] + [x])
    all_y = np.concatenate([regions[m][1].ravel() for m in MAP_MOTIFS] + [y])
    fx, fy = all_x[np.isfinite(all_x)], all_y[np.isfinite(all_y)]
    if fx.size and fy.size:
        pad_x, pad_y = 0.05 * (np.ptp(fx) + 1), 0.05 * (np.ptp(fy) + 1)
        ax.set_xlim(fx.min() - pad_x, fx.max() + pad_x)
        ax.set_ylim(fy.min() - pad_y, fy.max() + pad_y)
    ax.set_xlabel("pairwise interaction (mean of θ_12, θ_13, θ_23)")
    ax.set_ylabel("triple-wise interaction θ_123")
    ax.set_title(f"Triplet map: Δ = {bin_ms:g} ms, baseline {baseline_hz:.2g} Hz "
                 f"(τ = {tau:g} ms, θ_V = {theta:g} mV)", fontsize=10)  # fmt: skip
    ax.legend(loc="best", fontsize=8)
    out = Path(out_dir) / filename
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [out]
