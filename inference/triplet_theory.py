"""The exact input-output relation behind the triplet map (Shomali et al. 2023).

A leaky integrate-and-fire neuron in the threshold regime, dV = (−V/τ + μ)dt + σ dW with
μτ = θ_V (the mean drive holds V at threshold) and reset to 0: X = θ_V − V is a zero-mean
Ornstein–Uhlenbeck process, dX = −X/τ dt − σ dW, started at x₀ = θ_V and absorbed at 0 (a
spike). Write ℓ = σ√τ (mV) for its noise scale and z = x/ℓ. By the method of images

    q(x, t | x₀) = N(x; x₀e^{−t/τ}, s²) − N(x; −x₀e^{−t/τ}, s²),  s² = (ℓ²/2)(1 − e^{−2t/τ}),
    S(t) = erf(x₀ / (ℓ √(e^{2t/τ} − 1))),   f(t) = −dS/dt,
    E[T] = τ √π ∫₀^{z₀} erfcx(u) du   (the integral of S, by z = x₀/(ℓ√(e^{2t/τ}−1))),

and the stationary density of X over a renewal cycle (reinjection at x₀, flux J = 1/E[T])
solves the stationary Fokker–Planck equation in closed form with Dawson's function D:

    p(x) = (2Jτ/ℓ) D(x/ℓ)                      for 0 < x ≤ x₀,
    p(x) = (2Jτ/ℓ) D(z₀) e^{z₀² − (x/ℓ)²}        for x > x₀.

A transient input of amplitude A (mV; > 0 excitatory) at a random phase shifts X by −A; the
probability of ≥ 1 output spike in the window Δ that follows is

    R̄(A, Δ) = P(X ≤ A) + ∫_{x > max(A, 0)} p(x) [1 − S(Δ | x − A)] dx,
    1 − S(Δ | y) = erfc(y / (ℓ √(e^{2Δ/τ} − 1))),

with R̄(0, Δ) the spontaneous probability of a spike in a window Δ. Excitation can push R̄ to
≈ 1; inhibition can only lower it to 0, from a spontaneous value that is small at low rates.

Hidden Poisson sources (rate ν) fire in a bin with probability π = 1 − e^{−νΔ}; given the
set F of sources that fired, the neurons are independent and neuron i fires with
probability R̄_i(Σ_{k∈F} A_ki) (inputs in the same bin add), so the 8 pattern probabilities
are the finite mixture Σ_F Π_k π_k^{[k∈F]}(1−π_k)^{[k∉F]} Π_i r_iF^{x_i}(1 − r_iF)^{1−x_i}.

Units: times in ms, voltages in mV, rates in Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.special import dawsn, erf, erfc, erfcx

from inference.triplets import CONTRAST

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_SPLIT = 4.0  # integrals over z split here: Gauss–Legendre below, in log z above


def _gl(f, a, b):
    """∫_a^b f over broadcast interval ends by 64-point Gauss–Legendre."""
    a = np.asarray(a, dtype=np.float64)[..., None]
    b = np.asarray(b, dtype=np.float64)[..., None]
    x = 0.5 * (b - a) * _GL_X + 0.5 * (b + a)
    return (0.5 * (b - a) * _GL_W * f(x)).sum(-1)


def _int_0_to(f, z):
    """∫_0^z f(u) du for f ~ c/u at large u: linear nodes on [0, 4], log-spaced beyond."""
    z = np.asarray(z, dtype=np.float64)
    low = _gl(f, 0.0, np.minimum(z, _SPLIT))
    lz = np.log(np.maximum(z, _SPLIT))
    high = _gl(lambda s: f(np.exp(s)) * np.exp(s), np.log(_SPLIT), lz)
    return low + high


def integral_erfcx(z):
    """∫_0^z erfcx(u) du (z ≥ 0), to ~1e-13 relative."""
    return _int_0_to(erfcx, z)


def integral_dawson(z):
    """∫_0^z D(u) du (z ≥ 0), D Dawson's function."""
    return _int_0_to(dawsn, z)


@dataclass(frozen=True)
class ThresholdLIF:
    """A threshold-regime LIF neuron: X = θ_V − V, zero-mean OU absorbed at 0, reset to θ_V.

    Attributes
    ----------
    ell_mv : float
        Noise scale ℓ = σ√τ (mV): the stationary s.d. of the free OU process is ℓ/√2.
    tau_ms : float
        Membrane time constant τ (ms).
    theta_mv : float
        Threshold above reset θ_V = x₀ (mV).
    """

    ell_mv: float
    tau_ms: float = 20.0
    theta_mv: float = 20.0

    @classmethod
    def from_rate(cls, rate_hz: float, tau_ms: float = 20.0, theta_mv: float = 20.0):
        """The neuron whose spontaneous rate 1/E[T] is ``rate_hz``."""
        rate_hz = float(rate_hz)
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        target = 1e3 / (rate_hz * tau_ms)  # E[T]/τ
        # E[T]/τ = √π ∫_0^{z₀} erfcx grows like log z₀: solve in log z₀.
        g = lambda lz: np.sqrt(np.pi) * float(integral_erfcx(np.exp(lz))) - target  # noqa: E731
        if g(-30.0) > 0:
            raise ValueError(f"rate_hz = {rate_hz} is above what this neuron can fire")
        hi = 5.0
        while g(hi) < 0:
            hi *= 2
            if hi > 2000:
                raise ValueError(f"rate_hz = {rate_hz} is too low to represent")
        lz = brentq(g, -30.0, hi, xtol=1e-13, rtol=1e-13)
        return cls(theta_mv / np.exp(lz), tau_ms, theta_mv)

    @property
    def sigma(self) -> float:
        """σ of dX = −X/τ dt − σ dW (mV/√ms)."""
        return self.ell_mv / np.sqrt(self.tau_ms)

    @property
    def z0(self) -> float:
        return self.theta_mv / self.ell_mv

    # -- first passage --------------------------------------------------------------------
    def survival(self, t_ms, x_mv=None):
        """S(t | x): probability of no spike in [0, t] from X = x (default x₀ = θ_V)."""
        x = self.theta_mv if x_mv is None else np.asarray(x_mv, dtype=np.float64)
        t = np.asarray(t_ms, dtype=np.float64)
        with np.errstate(divide="ignore", over="ignore"):
            den = self.ell_mv * np.sqrt(np.expm1(2.0 * t / self.tau_ms))
            return np.where(t > 0, erf(x / den), np.where(x > 0, 1.0, 0.0))

    def isi_density(self, t_ms):
        """f(t) = −dS/dt (1/ms) of the interspike interval."""
        t = np.asarray(t_ms, dtype=np.float64)
        tau, z0 = self.tau_ms, self.z0
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            e = np.expm1(2.0 * t / tau)
            f = (2.0 * z0 / (tau * np.sqrt(np.pi))) * (e + 1.0) * e**-1.5 * np.exp(-(z0**2) / e)
        return np.where(t > 0, np.nan_to_num(f), 0.0)

    def mean_isi_ms(self) -> float:
        """E[T] = τ √π ∫_0^{z₀} erfcx(u) du (ms)."""
        return float(self.tau_ms * np.sqrt(np.pi) * integral_erfcx(self.z0))

    def rate_hz(self) -> float:
        """Spontaneous rate 1/E[T] (Hz)."""
        return 1e3 / self.mean_isi_ms()

    # -- stationary state ------------------------------------------------------------------
    def stationary_density(self, x_mv):
        """p(x) (1/mV) of X at a random time, x > 0 (0 elsewhere)."""
        x = np.asarray(x_mv, dtype=np.float64)
        ell, z0 = self.ell_mv, self.z0
        c = 2.0 * self.tau_ms / (self.mean_isi_ms() * ell)
        z = x / ell
        inner = dawsn(z)
        with np.errstate(over="ignore", under="ignore"):
            outer = dawsn(z0) * np.exp((z0 - z) * (z0 + z))
        return np.where(x <= 0, 0.0, c * np.where(x <= self.theta_mv, inner, outer))

    def stationary_cdf(self, x_mv):
        """P(X ≤ x) in the stationary state."""
        x = np.maximum(np.asarray(x_mv, dtype=np.float64), 0.0)
        ell, z0, tau = self.ell_mv, self.z0, self.tau_ms
        J2t = 2.0 * tau / self.mean_isi_ms()
        z = x / ell
        below = J2t * integral_dawson(np.minimum(z, z0))
        with np.errstate(over="ignore", under="ignore"):
            tail = np.where(
                z > z0,
                J2t * dawsn(z0) * 0.5 * np.sqrt(np.pi)
                * (erfcx(z0) - erfcx(z) * np.exp((z0 - z) * (z0 + z))),
                0.0,
            )  # fmt: skip
        return np.minimum(below + tail, 1.0)

    # -- response to a transient input ----------------------------------------------------
    def rbar(self, amplitude_mv, bin_ms: float):
        """R̄(A, Δ): probability of ≥ 1 spike in the ``bin_ms`` after an input of amplitude
        A (mV, > 0 excitatory) arriving at a random phase. Broadcasts over A."""
        A = np.asarray(amplitude_mv, dtype=np.float64)
        ell, x0 = self.ell_mv, self.theta_mv
        w = ell * np.sqrt(np.expm1(2.0 * bin_ms / self.tau_ms))
        lo = np.maximum(A, 0.0)
        hi = np.maximum(A + 9.0 * w, lo)  # erfc(9) ≈ 4e-37: nothing beyond

        def integrand(x):
            return self.stationary_density(x) * erfc((x - A[..., None]) / w)

        # p has a kink at x₀: integrate each side of it separately, in 8 panels each.
        mid = np.clip(x0, lo, hi)
        total = np.zeros(np.broadcast(A, lo).shape)
        for a, b in ((lo, mid), (mid, hi)):
            edges = a[..., None] + (b - a)[..., None] * np.linspace(0.0, 1.0, 9)
            for k in range(8):
                total = total + _gl_vec(integrand, edges[..., k], edges[..., k + 1])
        return np.clip(self.stationary_cdf(A) * (A > 0) + total, 0.0, 1.0)

    def spontaneous_probability(self, bin_ms: float) -> float:
        """R̄(0, Δ): probability of ≥ 1 spike in a bin without input."""
        return float(self.rbar(0.0, bin_ms))


def _gl_vec(f, a, b):
    """Gauss–Legendre where ``f`` takes x with a trailing node axis aligned to ``a``'s."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = 0.5 * (b - a)[..., None] * _GL_X + 0.5 * (b + a)[..., None]
    return (0.5 * (b - a)[..., None] * _GL_W * f(x)).sum(-1)


# -- hidden-source mixtures ----------------------------------------------------------------
def mixture_patterns(pi, fire_prob) -> np.ndarray:
    """Pattern probabilities (…, 8) of a finite mixture over the sets F of fired sources.

    ``pi`` (…, K): each source's probability of firing in a bin (independent sources);
    ``fire_prob`` (…, 2^K, 3): each neuron's firing probability given F, F enumerated as
    the bits of its index (bit k: source k fired). Pattern index x₁ + 2x₂ + 4x₃.
    """
    pi = np.asarray(pi, dtype=np.float64)
    r = np.asarray(fire_prob, dtype=np.float64)
    K = pi.shape[-1]
    F = (np.arange(2**K)[:, None] >> np.arange(K)) & 1  # (2^K, K)
    w = np.prod(np.where(F == 1, pi[..., None, :], 1.0 - pi[..., None, :]), axis=-1)
    X = (np.arange(8)[:, None] >> np.arange(3)) & 1  # (8, 3)
    # P(x | F) = Π_i r^{x_i} (1 − r)^{1 − x_i}: (…, 2^K, 8)
    px = np.prod(np.where(X == 1, r[..., None, :], 1.0 - r[..., None, :]), axis=-1)
    return (w[..., None] * px).sum(axis=-2)


def release_probability_bound(bin_ms: float, tau_ms: float = 20.0) -> float:
    """Largest probability that a threshold-regime neuron released from far above threshold
    fires in any one window Δ: max over u of erf(u) − erf(u e^{−Δ/τ}).

    A neuron held at X = x ≫ ℓ (after an inhibitory input, or after its own reset) has
    survival S(t | x) = erf(x / (ℓ√(e^{2t/τ} − 1))) = erf(u) with u = (x/ℓ)e^{−t/τ} up to
    O((ℓ/x)²) wherever S is not ≈ 1 (e^{t/τ} ≈ x/ℓ there), so the probability of its first
    spike in [t, t + Δ] is erf(u) − erf(u e^{−Δ/τ}) whatever x, ℓ and t: the release from
    inhibition is a first passage spread over ≈ τ, and no timing puts more than this into one
    bin (0.120 at Δ = 5 ms, τ = 20 ms). After an inhibitory input X ≥ A, so at low rates
    (ℓ ≤ 0.1 mV below 8 Hz, A ≥ 2 mV) the release is far above threshold. An input that adds a
    spike to a bin with a larger probability is excitation (an immediate crossing).
    """
    k = np.exp(-bin_ms / tau_ms)
    u = np.linspace(1e-3, 6.0, 6001)
    f = erf(u) - erf(u * k)
    i = int(np.argmax(f))
    res = minimize_scalar(lambda v: -(erf(v) - erf(v * k)), bounds=(u[max(i - 1, 0)], u[i + 1]),
                          method="bounded", options={"xatol": 1e-10})  # fmt: skip
    return float(max(-res.fun, f[i]))


def source_probability(rate_hz, bin_ms: float):
    """π = 1 − e^{−νΔ}: probability that a Poisson source of rate ν fires in a bin."""
    return -np.expm1(-np.asarray(rate_hz, dtype=np.float64) * bin_ms * 1e-3)


#: motif → sources as (target mask over the three neurons, sign of the amplitude)
MOTIFS = {
    "independent": (),
    "E-all": (((1, 1, 1), 1),),
    "I-all": (((1, 1, 1), -1),),
    "E-pairs": (((1, 1, 0), 1), ((1, 0, 1), 1), ((0, 1, 1), 1)),
    "I-pairs": (((1, 1, 0), -1), ((1, 0, 1), -1), ((0, 1, 1), -1)),
    "E-pair": (((1, 1, 0), 1),),
    "I-pair": (((1, 1, 0), -1),),
    "E-all+E-pairs": (((1, 1, 1), 1), ((1, 1, 0), 1), ((1, 0, 1), 1), ((0, 1, 1), 1)),
    "E-all+I-all": (((1, 1, 1), 1), ((1, 1, 1), -1)),
    "E-pairs+I-all": (((1, 1, 0), 1), ((1, 0, 1), 1), ((0, 1, 1), 1), ((1, 1, 1), -1)),
}


def _neurons(baseline_hz, tau_ms, theta_mv):
    rates = np.broadcast_to(np.asarray(baseline_hz, dtype=np.float64), (3,))
    return [ThresholdLIF.from_rate(r, tau_ms, theta_mv) for r in rates]


def motif_patterns(motif: str, amplitude_mv, rate_hz, baseline_hz, bin_ms: float = 5.0,
                   tau_ms: float = 20.0, theta_mv: float = 20.0) -> np.ndarray:  # fmt: skip
    """Predicted pattern probabilities (…, 8) of a motif whose sources all have amplitude
    |A| = ``amplitude_mv`` (sign from the motif) and rate ``rate_hz``; the two broadcast.
    ``baseline_hz``: spontaneous rates of the three neurons (scalar or (3,))."""
    if motif not in MOTIFS:
        raise ValueError(f"unknown motif {motif!r}; known: {sorted(MOTIFS)}")
    A, nu = np.broadcast_arrays(np.asarray(amplitude_mv, float), np.asarray(rate_hz, float))
    neurons = _neurons(baseline_hz, tau_ms, theta_mv)
    sources = MOTIFS[motif]
    K = len(sources)
    masks = np.array([m for m, _ in sources], dtype=np.float64).reshape(K, 3)
    signs = np.array([s for _, s in sources], dtype=np.float64)
    F = ((np.arange(2**K)[:, None] >> np.arange(K)) & 1).astype(np.float64)  # (2^K, K)
    weight = F @ (signs[:, None] * masks)  # (2^K, 3): kick per |A| for each neuron
    kicks = A[..., None, None] * weight  # (…, 2^K, 3)
    r = np.stack([n.rbar(kicks[..., i], bin_ms) for i, n in enumerate(neurons)], axis=-1)
    pi = np.broadcast_to(source_probability(nu, bin_ms)[..., None], A.shape + (K,))
    return mixture_patterns(pi, r)


def pattern_thetas(probabilities) -> np.ndarray:
    """θ (…, 7) — θ_1, θ_2, θ_3, θ_12, θ_13, θ_23, θ_123 — of pattern probabilities (…, 8)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(probabilities, dtype=np.float64)) @ CONTRAST.T


def motif_thetas(motif: str, amplitude_mv, rate_hz, baseline_hz, bin_ms: float = 5.0,
                 tau_ms: float = 20.0, theta_mv: float = 20.0) -> np.ndarray:  # fmt: skip
    """Predicted θ's (…, 7) of a motif (see :func:`motif_patterns`)."""
    return pattern_thetas(
        motif_patterns(motif, amplitude_mv, rate_hz, baseline_hz, bin_ms, tau_ms, theta_mv)
    )


MAP_MOTIFS = ("E-all", "I-all", "E-pairs", "I-pairs", "E-pair", "I-pair")


def motif_map(baseline_hz, bin_ms: float = 5.0, amplitudes_mv=None, rates_hz=None,
              motifs=MAP_MOTIFS, tau_ms: float = 20.0, theta_mv: float = 20.0) -> dict:  # fmt: skip
    """The map: each motif's predicted (pairwise θ, θ_123) over a sweep of amplitude and
    source rate.

    Returns {motif: (pair (nA, nν), triple (nA, nν))} where pair is the mean of the three
    θ_ij (as the data's ``theta_pair_mean``) and triple is θ_123; amplitudes default to
    1–15 mV and rates to 1–40 Hz (geometric).
    """
    A = np.linspace(1.0, 15.0, 29) if amplitudes_mv is None else np.asarray(amplitudes_mv)
    nu = np.geomspace(1.0, 40.0, 25) if rates_hz is None else np.asarray(rates_hz)
    AA, NN = np.meshgrid(A, nu, indexing="ij")
    out = {}
    for m in motifs:
        th = motif_thetas(m, AA, NN, baseline_hz, bin_ms, tau_ms, theta_mv)
        out[m] = (th[..., 3:6].mean(-1), th[..., 6])
    return out
