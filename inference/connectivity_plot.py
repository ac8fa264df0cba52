"""Figures of a connectivity result (GLMCC or a baseline), written by ``spikeda plot``.

- ``connectivity.png``: the directed connection matrix, pre on the rows and post on the
  columns, significant excitatory links red and inhibitory blue, the colour's depth the
  PSP in mV (GLMCC) or the effect size (baselines).
- ``pair_<pre>_<post>.png`` (GLMCC only, for the pairs asked for): the cross-correlogram
  of lags t = t_post − t_pre in 1-ms bins, the fitted slow part exp(a(t)) and the full
  fitted rate exp(a(t) + J₊ f(t) + J₋ f(−t)) with its synaptic kernels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from enkf.config import ConfigError
from enkf.plots import require_matplotlib


def plot(ds: xr.Dataset, out_dir: Path, pairs=()) -> list[Path]:
    """Write the matrix and the requested pairs' correlograms; returns the PNG paths.

    ``pairs``: (pre, post) unit ids. Raises ConfigError for a pair the result has not
    fitted or a result without correlograms.
    """
    plt = require_matplotlib()
    out_dir = Path(out_dir)
    paths = [_matrix(ds, out_dir / "connectivity.png", plt)]
    for pre, post in pairs:
        paths.append(_pair(ds, int(pre), int(post), out_dir / f"pair_{pre}_{post}.png", plt))
    return paths


def _matrix(ds, path, plt):
    sig = ds.significant.values & (ds.status.values == "ok")
    value = ds.psp_mv.values if "psp_mv" in ds else ds.J.values
    shown = np.where(sig, np.nan_to_num(value), np.nan)
    lim = float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 1.0
    n = ds.sizes["pre"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(shown, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    n_e, n_i = int((sig & (value > 0)).sum()), int((sig & (value < 0)).sum())
    ax.set_title(f"{ds.attrs.get('method', 'connectivity')}\n"
                 f"{n_e} excitatory (red), {n_i} inhibitory (blue) of {n * (n - 1)} directed pairs",
                 fontsize=9)  # fmt: skip
    ticks = np.linspace(0, n - 1, min(n, 6)).round().astype(int)
    ax.set_xticks(ticks, ds.post.values[ticks])
    ax.set_yticks(ticks, ds.pre.values[ticks])
    ax.set_xlabel("post (unit id)")
    ax.set_ylabel("pre (unit id)")
    fig.colorbar(im, ax=ax, label="PSP (mV)" if "psp_mv" in ds else "effect J")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pair_curves(ds: xr.Dataset, pre: int, post: int, n_points: int = 4001) -> dict:
    """The fitted cross-correlogram of units ``pre`` → ``post`` of a GLMCC result.

    Returns a dict: ``edges`` (M + 1,) bin edges of the lag t = t_post − t_pre (ms),
    ``counts`` (M,) lags per bin, ``a`` (M,) the fitted slow part, ``t`` (n_points,) a fine
    lag grid (ms) and ``rate`` (n_points,) the fitted c(t) = exp(a(t) + J₊ f(t) + J₋ f(−t))
    in lags per ms, and ``J`` (J pre→post, J post→pre), ``delay_ms``.
    """
    if "a" not in ds or "counts" not in ds:
        raise ConfigError(
            "pair plots need a GLMCC result (it keeps the fitted a(t) and correlograms)"
        )
    ids = {int(u): k for k, u in enumerate(ds.pre.values)}
    if pre not in ids or post not in ids:
        raise ConfigError(f"--pair {pre},{post}: unit ids not in this result")
    i, j = ids[pre], ids[post]
    index = ds.pair_index.values
    p = np.flatnonzero((index[:, 0] == i) & (index[:, 1] == j))
    flip = p.size == 0
    if flip:
        p = np.flatnonzero((index[:, 0] == j) & (index[:, 1] == i))
    if p.size == 0:
        raise ConfigError(f"--pair {pre},{post}: this pair was not fitted")
    counts = ds.counts.values[p[0]].astype(float)
    a = ds.a.values[p[0]].astype(float)
    if flip:  # the fit's lags are t_i − t_j: mirror them to t_post − t_pre
        counts, a = counts[::-1], a[::-1]
    W = float(ds.attrs["window_ms"])
    tau = float(ds.attrs["tau_ms"])
    d = float(ds.delay_ms.values[i, j])
    J = (float(ds.J.values[i, j]), float(ds.J.values[j, i]))
    t = np.linspace(-W, W, n_points)
    k = np.clip(np.floor(t + W).astype(int), 0, counts.size - 1)

    def kernel(s):
        return np.where(s >= d, np.exp(-(s - d) / tau), 0.0)

    rate = np.exp(a[k] + J[0] * kernel(t) + J[1] * kernel(-t))
    return {"edges": np.arange(-W, W + 1.0), "counts": counts, "a": a, "t": t, "rate": rate,
            "J": J, "delay_ms": d}  # fmt: skip


def _pair(ds, pre, post, path, plt):
    c = pair_curves(ds, pre, post)
    edges, counts, a, t, rate, (J_fwd, J_back), d = (
        c["edges"], c["counts"], c["a"], c["t"], c["rate"], c["J"], c["delay_ms"]
    )  # fmt: skip
    ids = {int(u): k for k, u in enumerate(ds.pre.values)}
    i, j = ids[pre], ids[post]
    W = float(ds.attrs["window_ms"])
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    ax.bar(edges[:-1], counts, width=1.0, align="edge", color="0.75", label="lags per 1-ms bin")
    ax.step(edges, np.r_[np.exp(a), np.exp(a[-1])], where="post", color="k", lw=1.0,
            label="exp a(t) (slow part)")  # fmt: skip
    ax.plot(t, rate, color="tab:purple", lw=1.2, label="fitted rate with J kernels")
    sig = ds.significant.values
    verdict = [f"J {pre}→{post} = {J_fwd:+.3f}" + (" *" if sig[i, j] else ""),
               f"J {post}→{pre} = {J_back:+.3f}" + (" *" if sig[j, i] else "")]  # fmt: skip
    ax.set_title(f"units {pre} → {post}: " + ", ".join(verdict) + f" (d = {d:g} ms; * significant)",
                 fontsize=9)  # fmt: skip
    ax.set_xlabel(f"lag t = t({post}) − t({pre}) (ms)")
    ax.set_ylabel("lags per bin")
    ax.set_xlim(-W, W)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
