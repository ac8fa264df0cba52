"""Motif classification of a triplet: constrained maximum likelihood of each hidden-source
mixture on the 8 pattern counts, choice by BIC.

Each motif is the finite mixture of :func:`inference.triplet_theory.mixture_patterns` with
free, sign-constrained parameters rather than a particular neuron model: a baseline firing
probability b_i per neuron, a firing probability π_k ≤ π_max per hidden source, and a
response ρ_i of each targeted neuron when any of its sources fired, with ρ_i ≥ b_i for an
excitatory motif and ρ_i ≤ b_i for an inhibitory one. The cap π_max = 1 − e^{−ν_max Δ}
(≤ 1/2) is what separates excitation from inhibition at all: without it a two-class mixture
is the same with the classes swapped (E with π ↔ I with 1 − π).

BIC = −2 log L + k log N with k the dimension of the motif's family of distributions
(independent 3, one pair 4, all three or each pair 7); posterior weights ∝ exp(−BIC/2).
Shared inhibition at low rates changes the pattern probabilities by about its source
probability π (≈ νΔ), far below what short recordings resolve, and the family contains the
independent model: BIC then prefers "independent" without evidence against inhibition. So a
triplet is called "independent" only where the data exclude a strong shared inhibition (ν =
``strong_inhibition_hz`` silencing all its targets) by a likelihood-ratio test; otherwise
it is reported as "inhibitory or none".

Conversely, shared inhibition of low-rate threshold-regime neurons silences them together for
≈ τ log(A/ℓ) ≫ Δ and releases them together, a slow shared state that the mixture fits as a
weak excitatory source. A released neuron fires in any one bin with probability at most
:func:`inference.triplet_theory.release_probability_bound` (0.12 at Δ = 5 ms, τ = 20 ms), so an
excitatory label needs the counts to reject, by a likelihood ratio, the same motif with its
responses g capped at that bound; otherwise the triplet is "undetermined".
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import minimize
from scipy.stats import chi2
from threadpoolctl import threadpool_limits

from inference.triplet_theory import ThresholdLIF, mixture_patterns, release_probability_bound

PAIR_MASKS = {"12": (1, 1, 0), "13": (1, 0, 1), "23": (0, 1, 1)}
# model → (target masks of its sources, sign, dimension k of its family)
MODELS = {
    "independent": ((), 0, 3),
    "E-all": (((1, 1, 1),), 1, 7),
    "I-all": (((1, 1, 1),), -1, 7),
    "E-pairs": (tuple(PAIR_MASKS.values()), 1, 7),
    "I-pairs": (tuple(PAIR_MASKS.values()), -1, 7),
    **{f"E-pair-{p}": ((m,), 1, 4) for p, m in PAIR_MASKS.items()},
    **{f"I-pair-{p}": ((m,), -1, 4) for p, m in PAIR_MASKS.items()},
}
#: the motifs weighed and reported; "E-pair"/"I-pair" sum their three pair variants
MOTIF_LABELS = ("independent", "E-all", "I-all", "E-pairs", "I-pairs", "E-pair", "I-pair")
EXCITATORY = ("E-all", "E-pairs", "E-pair")
INHIBITORY = ("I-all", "I-pairs", "I-pair")
EPS = 1e-9


def _fire_table(masks, b, rho):
    """Firing probability (2^K, 3) of each neuron given the set F of fired sources."""
    K = len(masks)
    F = (np.arange(2**K)[:, None] >> np.arange(K)) & 1
    hit = (F @ np.asarray(masks, dtype=np.int64).reshape(K, 3)) > 0 if K else np.zeros((1, 3), bool)
    return np.where(hit, rho, b)


def model_patterns(name: str, params) -> np.ndarray:
    """Pattern probabilities (8,) of model ``name`` at unconstrained-box ``params``:
    [b_1, b_2, b_3, π_1..π_K, g_1, g_2, g_3] with ρ = b + (1 − b)g (E) or b·g (I)."""
    masks, sign, _ = MODELS[name]
    K = len(masks)
    b = params[:3]
    if K == 0:
        return mixture_patterns(np.empty(0), b[None, :])
    pi = params[3 : 3 + K]
    g = params[3 + K : 6 + K]
    rho = b + (1.0 - b) * g if sign > 0 else b * g
    return mixture_patterns(pi, _fire_table(masks, b, rho))


def _loglik(P, n):
    return float(n @ np.log(np.maximum(P, 1e-300)))


_X = (np.arange(8)[:, None] >> np.arange(3)) & 1  # (8, 3) bits of each pattern


def _negll_and_grad(params, name, n):
    """−log L and its gradient in the box parameters of model ``name`` (see
    :func:`model_patterns`), for L-BFGS-B."""
    masks, sign, _ = MODELS[name]
    K = len(masks)
    b = params[:3]
    pi = params[3 : 3 + K]
    g = params[3 + K : 6 + K]
    rho = b + (1.0 - b) * g if sign > 0 else b * g
    F = (np.arange(2**K)[:, None] >> np.arange(K)) & 1  # (2^K, K)
    hit = (F @ np.asarray(masks, dtype=np.int64).reshape(K, 3)) > 0  # (2^K, 3)
    r = np.where(hit, rho, b)  # (2^K, 3)
    fac = np.where(F == 1, pi, 1.0 - pi)  # (2^K, K)
    w = fac.prod(axis=1)  # (2^K,)
    bern = np.where(_X[None, :, :] == 1, r[:, None, :], 1.0 - r[:, None, :])  # (2^K, 8, 3)
    px = bern.prod(axis=2)  # (2^K, 8)
    P = np.maximum(w @ px, 1e-300)
    c = n / P  # dLL/dP
    grad = np.zeros_like(params)
    for k in range(K):
        # ∂w_F/∂π_k = ±Π_{j≠k} (…): drop source k's factor, sign by whether it fired
        others = np.delete(fac, k, axis=1).prod(axis=1)
        grad[3 + k] = ((others * (2 * F[:, k] - 1)) @ px) @ c
    sgn = 2.0 * _X - 1.0  # ∂Bern(x; r)/∂r
    for i in range(3):
        others = np.delete(bern, i, axis=2).prod(axis=2)  # (2^K, 8)
        dP_dr = w[:, None] * others * sgn[None, :, i]  # (2^K, 8): ∂P/∂r_iF
        d = dP_dr @ c  # (2^K,)
        d_rho = d[hit[:, i]].sum()
        d_b = d[~hit[:, i]].sum()
        if sign > 0:
            grad[i] = d_b + d_rho * (1.0 - g[i])
            grad[3 + K + i] = d_rho * (1.0 - b[i])
        else:
            grad[i] = d_b + d_rho * g[i]
            grad[3 + K + i] = d_rho * b[i]
    return -float(n @ np.log(P)), -grad


def fit_model(name: str, n, pi_max: float, fixed_pi: float | None = None,
              fixed_g: float | None = None, g_max: float = 1.0):  # fmt: skip
    """Constrained ML of model ``name`` on raw pattern counts ``n`` (8,).

    Returns (log-likelihood, params). ``fixed_pi``/``fixed_g`` pin every π_k and g_i (the
    strong-inhibition alternative); the baselines are then the only free parameters.
    ``g_max`` caps the responses g_i (for E: the probability that a source adds a spike to
    a bin in which the neuron would not have fired; the rebound alternative caps it).
    """
    n = np.asarray(n, dtype=np.float64)
    N = n.sum()
    X = (np.arange(8)[:, None] >> np.arange(3)) & 1
    marg = np.clip((n @ X) / N, 1e-4, 1 - 1e-4)
    masks, sign, _ = MODELS[name]
    K = len(masks)
    if K == 0:  # the product of the marginals, in closed form
        return _loglik(model_patterns(name, marg), n), marg
    if fixed_pi is not None:

        def full(x):
            return np.concatenate([x, np.full(K, fixed_pi), np.full(3, fixed_g)])

        res = minimize(lambda x: -_loglik(model_patterns(name, full(x)), n), marg,
                       method="L-BFGS-B", bounds=[(EPS, 1 - EPS)] * 3)  # fmt: skip
        return -res.fun, full(res.x)
    bounds = [(EPS, 1 - EPS)] * 3 + [(0.0, pi_max)] * K + [(0.0, g_max)] * 3
    best = (-np.inf, None)
    # Two starts: a rare source with a strong response, a frequent one with a weak response.
    for pi0, g0 in ((0.2 * pi_max, 0.8 * g_max), (0.8 * pi_max, 0.3 * g_max)):
        b0 = marg * (0.7 if sign > 0 else 1.0)
        x0 = np.concatenate([np.clip(b0, 1e-4, 1 - 1e-4), np.full(K, pi0), np.full(3, g0)])
        res = minimize(_negll_and_grad, x0, args=(name, n), jac=True, method="L-BFGS-B",
                       bounds=bounds, options={"maxiter": 500})  # fmt: skip
        if -res.fun > best[0]:
            best = (-res.fun, res.x)
    return best


def classify_counts(n, bin_ms: float, **options) -> dict:
    """Classify one triplet from its raw pattern counts ``n`` (8,); see :func:`_classify`."""
    # The fits are tiny: BLAS threads inside L-BFGS-B cost ~10× their work.
    with threadpool_limits(1):
        return _classify(n, bin_ms, **options)


def _classify(n, bin_ms: float, max_source_hz: float = 50.0,
                    strong_inhibition_hz: float = 20.0, confidence: float = 0.9,
                    alpha: float = 0.01, gof_alpha: float = 1e-3, tau_m_ms: float = 20.0,
                    release_alpha: float = 1e-3) -> dict:  # fmt: skip
    """Classify one triplet from its raw pattern counts ``n`` (8,).

    ``max_source_hz`` caps the hidden sources' rate (π ≤ 1 − e^{−νΔ}, ≤ 1/2);
    ``confidence`` is the BIC weight a label needs; ``alpha`` the level of the test that
    excludes strong inhibition; ``gof_alpha`` that of the best motif's goodness of fit;
    ``release_alpha`` that of the test excluding the inhibitory-rebound reading of an
    excitatory motif (responses g ≤ :func:`release_probability_bound` at ``tau_m_ms``).

    Returns a dict: ``label`` (a motif of MOTIF_LABELS, "inhibitory or none" or
    "undetermined": the weights are not decisive, the best motif misfits the counts at
    level ``gof_alpha``, or an excitatory best motif whose responses are no stronger than a
    release from shared inhibition can produce), ``weights`` (7,) BIC posterior weights over
    MOTIF_LABELS, ``pair`` (the pair of an "E-pair"/"I-pair" label, else ""),
    ``source_rate_hz`` (mean ν of the
    best model's sources, −log(1 − π)/Δ), ``loglik`` (7,), ``inhibition_excluded``,
    ``fit_p`` (goodness-of-fit p-value of the best motif; NaN for k = 7), ``release_p``
    (p-value of the rebound test for an excitatory best motif, else NaN).
    """
    n = np.asarray(n, dtype=np.float64)
    N = n.sum()
    pi_max = min(0.5, -np.expm1(-max_source_hz * bin_ms * 1e-3))
    bic, fits = {}, {}
    for name, (_, _, k) in MODELS.items():
        ll, x = fit_model(name, n, pi_max)
        fits[name] = (ll, x)
        bic[name] = -2.0 * ll + k * np.log(N)
    # Collapse the pair variants: weights add, the best variant names the pair.
    motif_bic, motif_ll, best_variant = {}, {}, {}
    for lab in MOTIF_LABELS:
        names = [f"{lab}-{p}" for p in PAIR_MASKS] if lab in ("E-pair", "I-pair") else [lab]
        b = np.array([bic[m] for m in names])
        lo = b.min()
        motif_bic[lab] = lo - 2.0 * np.log(np.exp(-(b - lo) / 2.0).sum())
        best_variant[lab] = names[int(np.argmin(b))]
        motif_ll[lab] = fits[best_variant[lab]][0]
    B = np.array([motif_bic[lab] for lab in MOTIF_LABELS])
    w = np.exp(-(B - B.min()) / 2.0)
    w /= w.sum()
    W = dict(zip(MOTIF_LABELS, w, strict=True))
    best = MOTIF_LABELS[int(np.argmax(w))]
    # Could a strong shared inhibition be told from none at this length and these rates?
    pi_s = -np.expm1(-strong_inhibition_hz * bin_ms * 1e-3)
    ll_strong = max(fit_model(m, n, pi_max, pi_s, 0.0)[0] for m in ("I-all", "I-pairs"))
    excluded = 2.0 * (fits["independent"][0] - ll_strong) > chi2.isf(alpha, 1)
    quiet = W["independent"] + sum(W[m] for m in INHIBITORY)
    # Goodness of fit of the best motif against the saturated model (none for k = 7): the
    # best of a set of motifs that all misfit is no answer.
    k_best = MODELS[best_variant[best]][2]
    ll_sat = float(n[n > 0] @ np.log(n[n > 0] / N))
    deviance = max(2.0 * (ll_sat - motif_ll[best]), 0.0)
    misfit = k_best < 7 and chi2.sf(deviance, 7 - k_best) < gof_alpha
    # Excitation or release from shared inhibition? A neuron released from a long inhibition
    # fires in any one bin with probability ≤ g_rel (a first passage from far above
    # threshold, spread over ≈ τ), and a slow shared silencing followed by a joint release is
    # a shared hidden state of the three neurons just like an excitatory source. Excitation
    # is claimed only where the counts need a source adding spikes with probability > g_rel:
    # the best excitatory model with g ≤ g_rel is rejected by a likelihood ratio (boundary:
    # χ²₁ is conservative).
    release_p = np.nan
    if best in EXCITATORY:
        g_rel = release_probability_bound(bin_ms, tau_m_ms)
        ll_rel = fit_model(best_variant[best], n, pi_max, g_max=g_rel)[0]
        release_p = float(chi2.sf(max(2.0 * (motif_ll[best] - ll_rel), 0.0), 1))
    if misfit:
        label = "undetermined"
    elif best in EXCITATORY:
        strong = release_p < release_alpha
        label = best if W[best] >= confidence and strong else "undetermined"
    elif best in INHIBITORY and W[best] >= confidence:
        label = best
    elif best == "independent" and W[best] >= confidence and excluded:
        label = "independent"
    elif quiet >= confidence:
        label = "inhibitory or none"
    else:
        label = "undetermined"
    ll_b, x_b = fits[best_variant[best]]
    masks_b, sign_b, _ = MODELS[best_variant[best]]
    K = len(masks_b)
    rate = float(np.mean(-np.log1p(-x_b[3 : 3 + K])) / (bin_ms * 1e-3)) if K else 0.0
    baseline = x_b[:3]
    response = np.full(3, np.nan)
    if K:
        g = x_b[3 + K : 6 + K]
        rho = baseline + (1.0 - baseline) * g if sign_b > 0 else baseline * g
        targeted = np.asarray(masks_b).reshape(K, 3).any(axis=0)
        response[targeted] = rho[targeted]
    return {
        "label": label,
        "weights": w,
        "pair": best_variant[best].rsplit("-", 1)[1] if best in ("E-pair", "I-pair") else "",
        "source_rate_hz": rate,
        "loglik": np.array([motif_ll[lab] for lab in MOTIF_LABELS]),
        "inhibition_excluded": bool(excluded),
        "fit_p": float(chi2.sf(deviance, 7 - k_best)) if k_best < 7 else np.nan,
        "release_p": release_p,
        "baseline": baseline,
        "response": response,
    }


def _response_gap(a, neuron, bin_ms, rho):
    return float(neuron.rbar(a, bin_ms)) - rho


def amplitude_from_response(response, baseline, bin_ms: float, tau_ms: float = 20.0,
                            theta_mv: float = 20.0) -> np.ndarray:  # fmt: skip
    """Source amplitude A (mV) of the threshold-regime LIF neuron
    (:class:`inference.triplet_theory.ThresholdLIF`) that gives firing probability
    ``response`` in the bin after a source spike, for a neuron whose spontaneous firing
    probability per bin is ``baseline``: R̄(A, Δ) = response, solved for A in [0, θ].

    Broadcasts ``response`` and ``baseline`` (probabilities per bin of ``bin_ms``); NaN in,
    NaN out; 0 where the response is not above the spontaneous probability.
    """
    from scipy.optimize import brentq

    response, baseline = np.broadcast_arrays(np.asarray(response, float), np.asarray(baseline, float))
    out = np.full(response.shape, np.nan)
    for idx in zip(*np.nonzero(np.isfinite(response) & np.isfinite(baseline)), strict=True):
        rho, b = float(response[idx]), float(baseline[idx])
        if not 0.0 < b < 1.0:
            continue
        try:
            neuron = ThresholdLIF.from_rate(-np.log1p(-b) / (bin_ms * 1e-3), tau_ms, theta_mv)
        except ValueError:  # a rate the threshold-regime neuron cannot represent
            continue
        r0 = neuron.spontaneous_probability(bin_ms)
        if rho <= r0:
            out[idx] = 0.0
        elif rho >= float(neuron.rbar(theta_mv, bin_ms)):
            out[idx] = theta_mv
        else:
            out[idx] = brentq(_response_gap, 0.0, theta_mv, args=(neuron, bin_ms, rho), xtol=1e-6)
    return out


def classify_dataset(ds: xr.Dataset, **options) -> xr.Dataset:
    """Add the motif variables to a :meth:`inference.TripletMap.fit` Dataset: ``motif``,
    ``motif_weight`` (triplet, candidate), ``motif_pair``, ``motif_source_rate_hz``,
    ``inhibition_excluded``, ``motif_release_p`` (the rebound test of an excitatory best
    motif, NaN otherwise; τ from ``attrs["tau_m_ms"]``), ``motif_response`` (triplet,
    member): the best motif's firing probability per bin of each targeted neuron when a
    source fired (NaN for neurons it does not target), and ``motif_amplitude_mv`` (triplet,
    member): the source amplitude of the threshold-regime LIF neuron (τ_m, θ from attrs)
    that gives that response (:func:`amplitude_from_response`). Triplets with a silent
    unit get motif "" (see ``status``)."""
    counts = ds.pattern_count.values
    status = ds.status.values
    T = counts.shape[0]
    label = np.full(T, "", dtype=object)
    weights = np.full((T, len(MOTIF_LABELS)), np.nan)
    pair = np.full(T, "", dtype=object)
    rate = np.full(T, np.nan)
    excl = np.zeros(T, bool)
    release_p = np.full(T, np.nan)
    response = np.full((T, 3), np.nan)
    baseline = np.full((T, 3), np.nan)
    options.setdefault("tau_m_ms", float(ds.attrs.get("tau_m_ms", 20.0)))
    limit = threadpool_limits(1)
    for t in range(T):
        if status[t] == "silent_unit":
            continue
        r = _classify(counts[t], ds.attrs["bin_ms"], **options)
        label[t], weights[t], pair[t] = r["label"], r["weights"], r["pair"]
        rate[t], excl[t] = r["source_rate_hz"], r["inhibition_excluded"]
        release_p[t] = r["release_p"]
        response[t], baseline[t] = r["response"], r["baseline"]
    limit.restore_original_limits()
    # Amplitudes only where they are used: the triplets with an excitatory label.
    exc = np.isin(label, EXCITATORY)
    amplitude = np.full((T, 3), np.nan)
    amplitude[exc] = amplitude_from_response(
        response[exc], baseline[exc], ds.attrs["bin_ms"], options["tau_m_ms"],
        float(ds.attrs.get("theta_mv", 20.0)),
    )  # fmt: skip
    out = ds.assign_coords(candidate=list(MOTIF_LABELS))
    out["motif"] = ("triplet", label.astype(str))
    out["motif_weight"] = (("triplet", "candidate"), weights)
    out["motif_pair"] = ("triplet", pair.astype(str))
    out["motif_source_rate_hz"] = ("triplet", rate)
    out["inhibition_excluded"] = ("triplet", excl)
    out["motif_release_p"] = ("triplet", release_p)
    out["motif_response"] = (("triplet", "member"), response)
    out["motif_amplitude_mv"] = (("triplet", "member"), amplitude)
    return out
