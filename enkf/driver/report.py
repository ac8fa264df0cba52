"""The table a run ends with: truth, prior and posterior of every parameter, and the
posterior correlations (so that a trade-off between parameters shows instead of hiding in
the marginals). Everything is computed from run.zarr alone."""

from __future__ import annotations

import numpy as np
import xarray as xr

from enkf.driver.params import Z95

_TRANSFORMS = {"identity": (lambda x: x, lambda u: u), "log": (np.log, np.exp)}


def _transform(cfg_param: dict):
    kind = cfg_param["transform"]
    if kind == "logit":
        low, high = cfg_param["bounds"]
        return (
            lambda x: np.log(x - low) - np.log(high - x),
            lambda u: low + (high - low) / (1.0 + np.exp(-u)),
        )
    return _TRANSFORMS[kind]


def posterior(ds: xr.Dataset, cycle: int = -1) -> dict:
    """Summaries of the prior (the forecast of cycle 0) and the posterior (the analysis of
    ``cycle``) per parameter.

    The 95 % intervals are those of a Normal fitted to the members in the transformed space
    (the filter's own Gaussian assumption), mapped back through the monotone transform.

    Returns a dict of (P,) arrays: prior_mean, prior_sd, prior_lo, prior_hi, post_mean,
    post_sd, post_lo, post_hi, truth (NaN without a twin), and corr (P, P), the posterior
    correlations in the transformed space.
    """
    import json

    cfg = json.loads(ds.attrs["config_json"])
    specs = cfg["parameters"]
    prior = ds["param"].isel(cycle=0).sel(stage="forecast").values
    post = ds["param"].isel(cycle=cycle).sel(stage="analysis").values
    out = {k: np.empty(len(specs)) for k in
           ("prior_mean", "prior_sd", "prior_lo", "prior_hi", "post_mean", "post_sd", "post_lo", "post_hi")}  # fmt: skip
    U = np.empty_like(post)
    for i, p in enumerate(specs):
        fwd, inv = _transform(p)
        for name, E in (("prior", prior[:, i]), ("post", post[:, i])):
            u = fwd(E)
            out[f"{name}_mean"][i] = E.mean()
            out[f"{name}_sd"][i] = E.std(ddof=1)
            out[f"{name}_lo"][i] = inv(u.mean() - Z95 * u.std(ddof=1))
            out[f"{name}_hi"][i] = inv(u.mean() + Z95 * u.std(ddof=1))
        U[:, i] = fwd(post[:, i])
    out["corr"] = np.corrcoef(U, rowvar=False) if U.shape[1] > 1 else np.ones((1, 1))
    U0 = np.column_stack([_transform(p)[0](prior[:, i]) for i, p in enumerate(specs)])
    out["U_prior"], out["U_post"] = U0, U
    out["truth"] = ds["param_truth"].values if "param_truth" in ds else np.full(len(specs), np.nan)
    out["u_truth"] = np.array(
        [_transform(p)[0](t) for p, t in zip(specs, out["truth"], strict=True)]
    )
    out["names"] = [p["name"] for p in specs]
    out["units"] = [str(u) for u in ds["param_units"].values]
    return out


def directions(s: dict) -> list[dict]:
    """The combinations of parameters the data identify: the generalized eigenvectors of
    the posterior covariance against the prior's, in the transformed space (C_post v =
    λ C_prior v), most constrained first. For each: the coefficients (unit length), the sd
    ratio prior/posterior along it (1/√λ), the posterior mean and the truth of d·u."""
    import scipy.linalg

    U0, U1 = s["U_prior"], s["U_post"]
    if U0.shape[1] < 2:
        return []
    C0, C1 = np.cov(U0, rowvar=False), np.cov(U1, rowvar=False)
    lam, V = scipy.linalg.eigh(C1, C0)
    out = []
    for k in range(lam.size):
        d = V[:, k] / np.linalg.norm(V[:, k])
        d = d if d[np.argmax(np.abs(d))] > 0 else -d
        out.append({
            "coef": d,
            "sd_ratio": float(np.sqrt(d @ C0 @ d / (d @ C1 @ d))),
            "post_mean": float(U1.mean(axis=0) @ d),
            "post_sd": float(np.sqrt(d @ C1 @ d)),
            "truth": float(s["u_truth"] @ d),
        })  # fmt: skip
    return out


def report(ds: xr.Dataset, cycle: int = -1) -> str:
    """The text table of :func:`posterior` and the correlation matrix."""
    s = posterior(ds, cycle)
    twin = np.isfinite(s["truth"]).any()
    head = f"{'parameter':<12}{'unit':>5}" + (f"{'truth':>9}" if twin else "")
    head += f"{'prior mean [95 %]':>28}{'posterior mean [95 %]':>30}{'sd ratio':>10}"
    if twin:
        head += f"{'err %':>8}{'in 95 %':>9}"
    lines = [head, "-" * len(head)]
    for i, name in enumerate(s["names"]):
        row = f"{name:<12}{s['units'][i]:>5}"
        if twin:
            row += f"{s['truth'][i]:>9.4g}"
        row += f"{_iv(s['prior_mean'][i], s['prior_lo'][i], s['prior_hi'][i]):>28}"
        row += f"{_iv(s['post_mean'][i], s['post_lo'][i], s['post_hi'][i]):>30}"
        row += f"{s['prior_sd'][i] / s['post_sd'][i]:>10.2f}"
        if twin:
            t = s["truth"][i]
            inside = s["post_lo"][i] <= t <= s["post_hi"][i]
            row += f"{100 * (s['post_mean'][i] - t) / t:>8.1f}{'yes' if inside else 'NO':>9}"
        lines.append(row)
    n = len(s["names"])
    if n > 1:
        lines.append("")
        lines.append("posterior correlations (transformed space)")
        lines.append(" " * 12 + "".join(f"{nm[:8]:>9}" for nm in s["names"]))
        for i, nm in enumerate(s["names"]):
            lines.append(f"{nm:<12}" + "".join(f"{s['corr'][i, j]:>9.2f}" for j in range(n)))
        lines.append("")
        lines.append("combinations the data identify (transformed space, most constrained first)")
        for d in directions(s):
            combo = " ".join(f"{c:+.2f}·{nm}" for c, nm in zip(d["coef"], s["names"], strict=True))
            row = (
                f"  sd ÷{d['sd_ratio']:5.1f}  {combo}  = {d['post_mean']:.3f} ± {d['post_sd']:.3f}"
            )
            if twin:
                row += f" (truth {d['truth']:.3f}, z {(d['post_mean'] - d['truth']) / d['post_sd']:+.1f})"
            lines.append(row)
    return "\n".join(lines)


def _iv(mean, lo, hi) -> str:
    return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"
