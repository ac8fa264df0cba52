"""numba kernels of the spiking network: one time loop per member, members in parallel.

Random numbers come from a counter-based generator: a uniform is a hash of (member key,
absolute step, neuron, stream). The stream of a member therefore does not depend on how a
run is split into calls, nor on which other members share the batch — the two properties
that make ``advance`` exactly restartable and batch-independent.
"""

import numpy as np
from numba import njit, prange

LIF_COBA, LIF_CUBA, IZHIKEVICH = 0, 1, 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_FOUR = np.uint64(4)
_TWO53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True, inline="always")
def mix64(z):
    """SplitMix64 finaliser (Steele et al. 2014): a bijective avalanche of 64 bits."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True, inline="always")
def uniform(key, step, neuron, stream):
    """U(0, 1), never 0 or 1, as a pure function of its four integer arguments."""
    z = mix64(key ^ (np.uint64(step) * _GOLDEN))
    z = mix64(z ^ (np.uint64(neuron) * _FOUR + np.uint64(stream)))
    return (np.float64(z >> _S11) + 0.5) * _TWO53


@njit(cache=True, nogil=True, inline="always")
def normal(key, step, neuron, stream):
    """N(0, 1) by Box–Muller from two counter-based uniforms (streams ``stream``, ``stream+1``)."""
    u1 = uniform(key, step, neuron, stream)
    u2 = uniform(key, step, neuron, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True, nogil=True, inline="always")
def poisson(lam, key, step, neuron):
    """Poisson(lam) count: inversion for lam ≤ 100, a rounded normal above."""
    if lam <= 0.0:
        return 0
    if lam > 100.0:
        k = np.rint(lam + np.sqrt(lam) * normal(key, step, neuron, 0))
        return max(int(k), 0)
    u = uniform(key, step, neuron, 3)
    p = np.exp(-lam)
    F = p
    k = 0
    while u > F and k < 1000:
        k += 1
        p *= lam / k
        F += p
    return k


# Rows of the per-neuron parameter table P (rows, n).
# LIF: capacitance, leak, rest, threshold, reset, refractory steps, and the exact CUBA
# propagators (Rotter & Diesmann 1999) for one step: P22 = exp(−dt/τ_m), P21e and P21i
# (mV per pA of synaptic current at the start of the step), PC (mV per pA of constant current).
C_PF, G_L, E_L, V_TH, V_RESET, T_REF, P22, P21E, P21I, PC = range(10)
# Izhikevich: a, b, c, d, spike cut-off, Euler sub-steps of v per step.
IZ_A, IZ_B, IZ_C, IZ_D, IZ_PEAK, IZ_SUB = range(6)


@njit(cache=True, nogil=True)
def member_run(
    model, n_steps, step0, key, dt_ms,
    pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
    dec_e, dec_i, half_e, half_i, e_e, e_i,
    lam, pw, ou_mean, ou_dec, ou_noise,
    bias, scale,
    v, u, ge, gi, iou, ref, buf_e, buf_i,
    rec_pos, spike_step, spike_neuron, pop_counts, bin_steps,
):  # fmt: skip
    """Advance one member by ``n_steps`` steps, in place.

    Returns the number of recorded spikes, or −1 when ``spike_step`` is too short (the
    caller then retries from the same state with more room).

    Order within a step: synaptic arrivals (ring-buffer slot ``step mod D``), Poisson and
    OU drive, membrane update, threshold and reset, then the spikes are sent along their
    synapses into the slots ``(step + delay) mod D``. Synaptic variables ``ge``/``gi`` hold
    magnitudes (nS for COBA, pA for CUBA, input units for Izhikevich); the sign or the
    reversal potential is applied here, by Dale's law.
    """
    n = v.shape[0]
    D = buf_e.shape[0]
    spiked = np.empty(n, np.int32)
    count = 0
    cap = spike_step.shape[0]
    for t in range(n_steps):
        step = step0 + t
        slot = step % D
        n_spiked = 0
        for j in range(n):
            ge[j] += buf_e[slot, j]
            gi[j] += buf_i[slot, j]
            buf_e[slot, j] = 0.0
            buf_i[slot, j] = 0.0
            p = pop_of[j]
            if lam[p] > 0.0:
                ge[j] += poisson(lam[p], key, step, j) * pw[p]
            if ou_noise[p] > 0.0:
                iou[j] = (
                    ou_mean[p]
                    + (iou[j] - ou_mean[p]) * ou_dec[p]
                    + ou_noise[p] * normal(key, step, j, 1)
                )
            i_ext = bias[j] + iou[j]
            fired = False
            if model == LIF_COBA or model == LIF_CUBA:
                if ref[j] > 0:
                    ref[j] -= 1
                elif model == LIF_COBA:
                    # Exponential Euler with the conductances taken at mid-step, which makes
                    # the scheme second order in dt for exponentially decaying conductances.
                    gem = ge[j] * half_e
                    gim = gi[j] * half_i
                    gt = P[G_L, j] + gem + gim
                    vinf = (P[G_L, j] * P[E_L, j] + gem * e_e + gim * e_i + i_ext) / gt
                    v[j] = vinf + (v[j] - vinf) * np.exp(-dt_ms * gt / P[C_PF, j])
                    fired = v[j] >= P[V_TH, j]
                else:
                    el = P[E_L, j]
                    v[j] = (
                        el
                        + (v[j] - el) * P[P22, j]
                        + ge[j] * P[P21E, j]
                        - gi[j] * P[P21I, j]
                        + i_ext * P[PC, j]
                    )
                    fired = v[j] >= P[V_TH, j]
                ge[j] *= dec_e
                gi[j] *= dec_i
                if fired:
                    v[j] = P[V_RESET, j]
                    ref[j] = np.int32(P[T_REF, j])
            else:
                drive = ge[j] - gi[j] + i_ext
                ns = int(P[IZ_SUB, j])
                h = dt_ms / ns
                for _ in range(ns):
                    v[j] += h * (0.04 * v[j] * v[j] + 5.0 * v[j] + 140.0 - u[j] + drive)
                u[j] += dt_ms * P[IZ_A, j] * (P[IZ_B, j] * v[j] - u[j])
                ge[j] = 0.0  # instantaneous synapses: input for this step only
                gi[j] = 0.0
                if v[j] >= P[IZ_PEAK, j]:
                    fired = True
                    v[j] = P[IZ_C, j]
                    u[j] += P[IZ_D, j]
            if fired:
                spiked[n_spiked] = j
                n_spiked += 1
        for s in range(n_spiked):
            i = spiked[s]
            a = pop_of[i]
            pop_counts[t // bin_steps, a] += 1
            if rec_pos[i] >= 0:
                if count >= cap:
                    return -1
                spike_step[count] = step
                spike_neuron[count] = i
                count += 1
            buf = buf_e if excit[i] else buf_i
            for k in range(syn_ptr[i], syn_ptr[i + 1]):
                j = syn_post[k]
                buf[(step + syn_delay[k]) % D, j] += syn_w[k] * scale[a, pop_of[j]]
    return count


@njit(cache=True, nogil=True, parallel=True)
def batch_run(
    model, n_steps, step0, keys, dt_ms,
    pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
    dec_e, dec_i, half_e, half_i, e_e, e_i,
    lam, pw, ou_mean, ou_dec, ou_noise,
    bias, scale,
    v, u, ge, gi, iou, ref, buf_e, buf_i,
    rec_pos, spike_step, spike_neuron, pop_counts, bin_steps, counts,
):  # fmt: skip
    """:func:`member_run` for every member (first axis of the state arrays), in parallel.

    The structure (CSR, parameters) is shared; per-member arrays: ``keys`` (M,), ``lam``
    (M, n_pop), ``bias`` (M, n), ``scale`` (M, n_pop, n_pop), the state, the spike buffers
    (M, cap) and ``pop_counts`` (M, n_bins, n_pop). ``counts`` (M,) receives the results.
    """
    for m in prange(keys.shape[0]):
        counts[m] = member_run(
            model, n_steps, step0, keys[m], dt_ms,
            pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
            dec_e, dec_i, half_e, half_i, e_e, e_i,
            lam[m], pw, ou_mean, ou_dec, ou_noise,
            bias[m], scale[m],
            v[m], u[m], ge[m], gi[m], iou[m], ref[m], buf_e[m], buf_i[m],
            rec_pos, spike_step[m], spike_neuron[m], pop_counts[m], bin_steps,
        )  # fmt: skip
