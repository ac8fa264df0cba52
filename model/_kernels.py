"""numba kernels of the spiking network: one time loop per member, members in parallel.

Random numbers come from a counter-based generator: a uniform is a hash of (member key,
absolute step, neuron, stream). The stream of a member therefore does not depend on how a
run is split into calls, nor on which other members share the batch — the two properties
that make ``advance`` exactly restartable and batch-independent.
"""

import numpy as np
from numba import njit, prange

from model._fastmath import exp_neg

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


# error_model="numpy": a float division by zero gives inf instead of raising, which drops
# the check that stopped LLVM from vectorising the membrane loops (4× slower).
@njit(cache=True, nogil=True, error_model="numpy")
def member_run(
    model, n_steps, step0, key, dt_ms,
    pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
    dec_e, dec_i, half_e, half_i, e_e, e_i,
    lam, pw, ou_mean, ou_dec, ou_noise,
    bias, scale,
    msyn_ptr, msyn_post, msyn_delay, msyn_exc, msyn_w,
    src_ptr, src_post, src_p, src_w,
    v, u, ge, gi, iou, ref, buf_e, buf_i,
    rec_pos, spike_step, spike_neuron, pop_counts, bin_steps,
):  # fmt: skip
    """Advance one member by ``n_steps`` steps, in place.

    Returns the number of recorded spikes, or −1 when ``spike_step`` is too short (the
    caller then retries from the same state with more room).

    Order within a step: synaptic arrivals (ring-buffer slot ``step mod D``), Poisson drive,
    hidden sources and OU drive, membrane update, threshold and reset, then the spikes are sent along their
    synapses (the spec's, then the member synapses). Each phase is its own loop over neurons, without branches on the model, so
    that the compiler can vectorise the arithmetic. Synaptic variables ``ge``/``gi`` hold
    magnitudes (nS for COBA, pA for CUBA, input units for Izhikevich); the sign or the
    reversal potential is applied here, by Dale's law.
    """
    n = v.shape[0]
    D = buf_e.shape[0]
    spiked = np.empty(n, np.int32)
    count = 0
    cap = spike_step.shape[0]
    any_poisson = (lam > 0.0).any()
    any_ou = (ou_noise > 0.0).any() or (ou_mean != 0.0).any()
    n_src = src_p.shape[0]
    # Per-neuron constants of the membrane update, hoisted out of the time loop.
    i_dc = bias.copy()
    if model == LIF_COBA:
        a_glel = P[G_L] * P[E_L]
        a_gl = P[G_L].copy()
        a_k = dt_ms / P[C_PF]
    v_th = P[IZ_PEAK] if model == IZHIKEVICH else P[V_TH]
    for t in range(n_steps):
        step = step0 + t
        slot = step % D
        be = buf_e[slot]
        bi = buf_i[slot]
        for j in range(n):
            ge[j] += be[j]
            gi[j] += bi[j]
            be[j] = 0.0
            bi[j] = 0.0
        if any_poisson:
            for j in range(n):
                p = pop_of[j]
                if lam[p] > 0.0:
                    ge[j] += poisson(lam[p], key, step, j) * pw[p]
        # Hidden sources: one Bernoulli(rate·dt) draw per source and step, delivered to all
        # its targets at once (neuron index n + s keeps their stream apart from the neurons').
        for s_ in range(n_src):
            if src_p[s_] > 0.0 and uniform(key, step, n + s_, 0) < src_p[s_]:
                for k in range(src_ptr[s_], src_ptr[s_ + 1]):
                    ge[src_post[k]] += src_w[s_]
        if any_ou:
            for j in range(n):
                p = pop_of[j]
                if ou_noise[p] > 0.0:
                    iou[j] = (
                        ou_mean[p]
                        + (iou[j] - ou_mean[p]) * ou_dec[p]
                        + ou_noise[p] * normal(key, step, j, 1)
                    )
                else:
                    iou[j] = ou_mean[p]
        if model == LIF_COBA:
            for j in range(n):
                # Exponential Euler with the conductances taken at mid-step, which makes
                # the scheme second order in dt for exponentially decaying conductances.
                gem = ge[j] * half_e
                gim = gi[j] * half_i
                gt = a_gl[j] + gem + gim
                vinf = (a_glel[j] + gem * e_e + gim * e_i + i_dc[j] + iou[j]) / gt
                vn = vinf + (v[j] - vinf) * exp_neg(a_k[j] * gt)
                r = ref[j]
                v[j] = vn if r == 0 else v[j]
                ref[j] = r - 1 if r > 0 else 0
                ge[j] *= dec_e
                gi[j] *= dec_i
        elif model == LIF_CUBA:
            el, p22, p21e, p21i, pc = P[E_L], P[P22], P[P21E], P[P21I], P[PC]
            for j in range(n):
                # Exact propagator of the linear system (Rotter & Diesmann 1999).
                vn = (
                    el[j]
                    + (v[j] - el[j]) * p22[j]
                    + ge[j] * p21e[j]
                    - gi[j] * p21i[j]
                    + (i_dc[j] + iou[j]) * pc[j]
                )
                r = ref[j]
                v[j] = vn if r == 0 else v[j]
                ref[j] = r - 1 if r > 0 else 0
                ge[j] *= dec_e
                gi[j] *= dec_i
        else:
            for j in range(n):
                drive = ge[j] - gi[j] + i_dc[j] + iou[j]
                ns = int(P[IZ_SUB, j])
                h = dt_ms / ns
                vj = v[j]
                for _ in range(ns):
                    vj += h * (0.04 * vj * vj + 5.0 * vj + 140.0 - u[j] + drive)
                v[j] = vj
                u[j] += dt_ms * P[IZ_A, j] * (P[IZ_B, j] * vj - u[j])
                ge[j] = 0.0  # instantaneous synapses: input for this step only
                gi[j] = 0.0
        # Threshold. A refractory LIF neuron sits at V_reset < V_th (checked by the spec),
        # so it cannot be caught here.
        n_spiked = 0
        for j in range(n):
            if v[j] >= v_th[j]:
                spiked[n_spiked] = j
                n_spiked += 1
        if n_spiked == 0:
            continue
        base = (step + 1) % D
        for s in range(n_spiked):
            i = spiked[s]
            if model == IZHIKEVICH:
                v[i] = P[IZ_C, i]
                u[i] += P[IZ_D, i]
            else:
                v[i] = P[V_RESET, i]
                ref[i] = np.int32(P[T_REF, i])
            a = pop_of[i]
            pop_counts[t // bin_steps, a] += 1
            # V crossed threshold during [step, step+1)·dt: the spike is stamped at the end
            # of the step, and a delay of d steps delivers it at the start of step+1+d
            # (NEST's convention: with d = 1 the target feels it one step after the spike).
            if rec_pos[i] >= 0:
                if count >= cap:
                    return -1
                spike_step[count] = step + 1
                spike_neuron[count] = i
                count += 1
            buf = buf_e if excit[i] else buf_i
            sc = scale[a]
            for k in range(syn_ptr[i], syn_ptr[i + 1]):
                j = syn_post[k]
                target = base + syn_delay[k]
                if target >= D:
                    target -= D
                buf[target, j] += syn_w[k] * sc[pop_of[j]]
            for k in range(msyn_ptr[i], msyn_ptr[i + 1]):
                target = base + msyn_delay[k]
                if target >= D:
                    target -= D
                if msyn_exc[k]:
                    buf_e[target, msyn_post[k]] += msyn_w[k]
                else:
                    buf_i[target, msyn_post[k]] += msyn_w[k]
    return count


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def batch_run(
    model, n_steps, step0, keys, dt_ms,
    pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
    dec_e, dec_i, half_e, half_i, e_e, e_i,
    lam, pw, ou_mean, ou_dec, ou_noise,
    bias, scale,
    msyn_ptr, msyn_post, msyn_delay, msyn_exc, msyn_w,
    src_ptr, src_post, src_p, src_w,
    v, u, ge, gi, iou, ref, buf_e, buf_i,
    rec_pos, spike_step, spike_neuron, pop_counts, bin_steps, counts,
):  # fmt: skip
    """:func:`member_run` for every member (first axis of the state arrays), in parallel.

    The structure (CSR, parameters) is shared; per-member arrays: ``keys`` (M,), ``lam``
    (M, n_pop), ``bias`` (M, n), ``scale`` (M, n_pop, n_pop), ``msyn_w`` (M, k), ``src_p``
    (M, n_src: source rate × dt) and ``src_w`` (M, n_src), the state, the spike buffers
    (M, cap) and ``pop_counts`` (M, n_bins, n_pop). ``counts`` (M,) receives the results.
    """
    for m in prange(keys.shape[0]):
        counts[m] = member_run(
            model, n_steps, step0, keys[m], dt_ms,
            pop_of, excit, syn_ptr, syn_post, syn_w, syn_delay, P,
            dec_e, dec_i, half_e, half_i, e_e, e_i,
            lam[m], pw, ou_mean, ou_dec, ou_noise,
            bias[m], scale[m],
            msyn_ptr, msyn_post, msyn_delay, msyn_exc, msyn_w[m],
            src_ptr, src_post, src_p[m], src_w[m],
            v[m], u[m], ge[m], gi[m], iou[m], ref[m], buf_e[m], buf_i[m],
            rec_pos, spike_step[m], spike_neuron[m], pop_counts[m], bin_steps,
        )  # fmt: skip
