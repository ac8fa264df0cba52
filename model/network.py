"""The network structure: built once from a spec and a seed, shared read-only by all members.

Neurons are numbered population by population. Synapses are stored as CSR by presynaptic
neuron (``syn_ptr``, ``syn_post``, ``syn_weight``, ``syn_delay``): 10 bytes per synapse
(int32 + float32 + uint16). Weights are magnitudes; a synapse is excitatory or inhibitory
by its presynaptic neuron's population type (Dale's law).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from model import connectivity
from model.spec import (
    LIF,
    AllToAll,
    FixedIndegree,
    FixedProbability,
    Gaussian,
    Izhikevich,
    NetworkSpec,
    SpecError,
    Varied,
    load_spec,
    parse_spec,
)

NEURON_MODELS = {"lif_coba": 0, "lif_cuba": 1, "izhikevich": 2}


@dataclass(frozen=True, eq=False)
class Network:
    """Immutable network structure (arrays are read-only).

    Attributes
    ----------
    spec : NetworkSpec
    dt_s : float
        Time step (s).
    model : str
        ``lif_coba``, ``lif_cuba`` or ``izhikevich``.
    pop_names : tuple of str
    pop_ptr : (n_pop+1,) int64
        Neurons of population k are ``pop_ptr[k]:pop_ptr[k+1]``.
    pop_of : (n,) int16
    excitatory : (n,) bool
        Type of each neuron's population.
    neuron : dict of (n,) float64
        Per-neuron parameters (LIF: c_pf, g_l_ns, e_l_mv, v_th_mv, v_reset_mv, t_ref_steps;
        Izhikevich: a, b, c, d, v_peak_mv).
    positions_um : (n, 2) float64
    syn_ptr : (n+1,) int64; syn_post : (n_syn,) int32; syn_weight : (n_syn,) float32;
    syn_delay : (n_syn,) uint16 (steps after the spike's time stamp, ≥ 0)
    bias_pa : (n,) float64
        DC bias of the spec (members may replace it).
    poisson_rate_hz, poisson_weight, poisson_sources : (n_pop,) float64
    ou_mean_pa, ou_sd_pa, ou_tau_ms : (n_pop,) float64
    recorded : (n_rec,) int64
        Neurons whose spikes ``advance`` returns.
    msyn_ptr : (n+1,) int64; msyn_post : (k,) int32; msyn_delay : (k,) uint16;
    msyn_excitatory : (k,) bool
        Member synapses (CSR by presynaptic neuron): synapses whose weights differ from
        member to member (``MemberParams.synapse_weight``, not scaled by ``weight_scale``),
        each with its own sign. Empty unless :func:`model.overlay.with_member_synapses`
        added them (the connectivity constraints of a run).
    src_ptr : (n_src+1,) int64; src_post : int32
        Hidden excitatory sources: Poisson spike trains shared by their targets
        ``src_post[src_ptr[s]:src_ptr[s+1]]`` (common input); rates and weights per member.
    fingerprint : str
        Hash of the structure; a member state remembers it, so that a state cannot be
        advanced with another network.
    """

    spec: NetworkSpec
    dt_s: float
    model: str
    pop_names: tuple
    pop_ptr: np.ndarray
    pop_of: np.ndarray
    excitatory: np.ndarray
    neuron: dict
    positions_um: np.ndarray
    syn_ptr: np.ndarray
    syn_post: np.ndarray
    syn_weight: np.ndarray
    syn_delay: np.ndarray
    bias_pa: np.ndarray
    poisson_rate_hz: np.ndarray
    poisson_weight: np.ndarray
    poisson_sources: np.ndarray
    ou_mean_pa: np.ndarray
    ou_sd_pa: np.ndarray
    ou_tau_ms: np.ndarray
    recorded: np.ndarray
    fingerprint: str = field(default="")
    msyn_ptr: np.ndarray = field(default=None)
    msyn_post: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    msyn_delay: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint16))
    msyn_excitatory: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    src_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    src_post: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def __post_init__(self):
        if self.msyn_ptr is None:  # no member synapses: every neuron's range is empty
            object.__setattr__(self, "msyn_ptr", np.zeros(int(self.pop_ptr[-1]) + 1, np.int64))

    @property
    def n(self) -> int:
        return int(self.pop_ptr[-1])

    @property
    def n_pop(self) -> int:
        return len(self.pop_names)

    @property
    def n_synapses(self) -> int:
        return int(self.syn_post.size)

    @property
    def max_delay_steps(self) -> int:
        return max(int(self.syn_delay.max(initial=0)), int(self.msyn_delay.max(initial=0)))

    @property
    def n_member_synapses(self) -> int:
        return int(self.msyn_post.size)

    @property
    def n_sources(self) -> int:
        return int(self.src_ptr.size - 1)

    @property
    def synapse_bytes(self) -> int:
        """Memory of the synapse structure (CSR arrays), in bytes."""
        return sum(a.nbytes for a in (self.syn_ptr, self.syn_post, self.syn_weight, self.syn_delay))

    def population(self, name: str) -> slice:
        if name not in self.pop_names:
            raise ValueError(f"unknown population {name!r} (have {', '.join(self.pop_names)})")
        k = self.pop_names.index(name)
        return slice(int(self.pop_ptr[k]), int(self.pop_ptr[k + 1]))

    def weight_matrix(self) -> np.ndarray:
        """Dense signed [pre, post] matrix of summed weights (small networks and tests only)."""
        W = np.zeros((self.n, self.n))
        pre = csr_rows(self.syn_ptr)
        sign = np.where(self.excitatory[pre], 1.0, -1.0)
        np.add.at(W, (pre, self.syn_post), sign * self.syn_weight)
        return W


def csr_ptr(rows: np.ndarray, n: int) -> np.ndarray:
    """(n+1,) int64 row pointer of CSR entries with row indices ``rows`` (counted, so in any
    order; the entries themselves must end up sorted by row)."""
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    return ptr


def csr_rows(ptr: np.ndarray) -> np.ndarray:
    """Row index of every CSR entry of row pointer ``ptr`` (e.g. each synapse's pre)."""
    return np.repeat(np.arange(ptr.size - 1), np.diff(ptr))


def draw_values(value, n: int, rng: np.random.Generator, r: np.ndarray) -> np.ndarray:
    """Per-neuron values of a spec ``Value`` (constant or :class:`Varied`)."""
    if not isinstance(value, Varied):
        return np.full(n, float(value))
    base = (
        rng.uniform(value.low, value.high, n) if value.low is not None else np.full(n, value.mean)
    )
    if value.sd:
        base = base + value.sd * rng.standard_normal(n)
    if value.r_coef:
        base = base + value.r_coef * r**value.r_power
    if value.clip_low is not None or value.clip_high is not None:
        base = np.clip(base, value.clip_low, value.clip_high)
    return base


def _delay_steps(values_ms: np.ndarray, dt_ms: float, where: str) -> np.ndarray:
    if np.any(~np.isfinite(values_ms)) or np.any(values_ms < 0):
        i = int(np.flatnonzero(~(np.isfinite(values_ms) & (values_ms >= 0)))[0])
        raise SpecError(f"{where}: delay must be ≥ 0 ms, got {values_ms[i]} (synapse {i})")
    # Delays count from the spike's time stamp (the end of the step in which V crossed);
    # 0 delivers at the start of the next step, the shortest possible.
    steps = np.rint(values_ms / dt_ms)
    if steps.max(initial=1) > np.iinfo(np.uint16).max:
        raise SpecError(f"{where}: delay of {values_ms.max()} ms is more than 65535 steps")
    return steps.astype(np.uint16)


def _neuron_params(spec: NetworkSpec, rng) -> dict:
    n_total = sum(p.n for p in spec.populations)
    r = rng.random(n_total)  # Izhikevich's per-neuron heterogeneity variable
    out: dict[str, list] = {}
    start = 0
    for pop in spec.populations:
        nr = pop.neuron
        rr = r[start : start + pop.n]
        if isinstance(nr, LIF):
            vals = {
                "c_pf": nr.c_pf,
                "g_l_ns": nr.g_l_ns,
                "e_l_mv": nr.e_l_mv,
                "v_th_mv": nr.v_th_mv,
                "v_reset_mv": nr.v_reset_mv,
            }
            arrays = {k: draw_values(v, pop.n, rng, rr) for k, v in vals.items()}
            arrays["t_ref_steps"] = np.full(pop.n, np.rint(nr.t_ref_ms / spec.dt_ms))
        else:
            a, b, c, d = nr.abcd()
            arrays = {
                k: draw_values(v, pop.n, rng, rr) for k, v in zip("abcd", (a, b, c, d), strict=True)
            }
            arrays["v_peak_mv"] = np.full(pop.n, nr.v_peak_mv)
            arrays["v_substeps"] = np.full(pop.n, float(nr.v_substeps))
        # The threshold test relies on the reset lying below the threshold (a refractory
        # LIF neuron sits at V_reset; a reset Izhikevich neuron at c).
        low, high = ("v_reset_mv", "v_th_mv") if isinstance(nr, LIF) else ("c", "v_peak_mv")
        bad = arrays[low] >= arrays[high]
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise SpecError(
                f"populations[{spec.populations.index(pop)}].neuron: {low} ({arrays[low][k]}) must be "
                f"below {high} ({arrays[high][k]}) (neuron {k} of {pop.name})"
            )
        for k, v in arrays.items():
            out.setdefault(k, []).append(v)
        start += pop.n
    return {k: np.concatenate(v) for k, v in out.items()}


def _projection_pairs(spec, proj, idx, positions, rng):
    rule = proj.rule
    pre_idx = idx[proj.pre]
    pres, posts = [], []
    for post_name in proj.posts():
        post_idx = idx[post_name]
        if isinstance(rule, FixedProbability):
            pr, po = connectivity.fixed_probability(
                pre_idx, post_idx, rule.p, rng, rule.allow_autapses
            )
        elif isinstance(rule, FixedIndegree):
            pr, po = connectivity.fixed_indegree(
                pre_idx, post_idx, rule.k, rng, rule.allow_autapses
            )
        elif isinstance(rule, Gaussian):
            pr, po = connectivity.gaussian(
                pre_idx,
                post_idx,
                positions,
                rule.p0,
                rule.sigma_um,
                spec.sheet_um,
                rule.periodic,
                rng,
                rule.allow_autapses,
            )
        else:
            assert isinstance(rule, AllToAll)
            pr, po = connectivity.all_to_all(pre_idx, post_idx, rule.allow_autapses)
        pres.append(pr)
        posts.append(po)
    return np.concatenate(pres), np.concatenate(posts)


def _magnitudes(value, n, rng, where):
    w = draw_values(value, n, rng, np.zeros(n))
    if np.any(w < 0):
        w = np.abs(w)  # a jittered magnitude that crossed 0 keeps its sign by Dale's law
    if isinstance(value, (int, float)) and value <= 0:
        raise SpecError(f"{where}: weights are magnitudes and must be > 0, got {value}")
    return w


def _table_value(table_value, i, j):
    if isinstance(table_value, list):
        row = table_value[i]
        return row[j] if isinstance(row, list) else row
    return table_value


def build_network(spec, seed: int) -> Network:
    """Build the network structure of ``spec`` (a NetworkSpec, a mapping or a YAML path).

    The same spec and seed always give the same network, bit for bit.
    """
    if isinstance(spec, (str, bytes)) or hasattr(spec, "__fspath__"):
        spec = load_spec(spec)
    spec = parse_spec(spec)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    sizes = [p.n for p in spec.populations]
    pop_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(pop_ptr[-1])
    names = tuple(p.name for p in spec.populations)
    idx = {name: np.arange(pop_ptr[k], pop_ptr[k + 1]) for k, name in enumerate(names)}
    pop_of = np.repeat(np.arange(len(names)), sizes).astype(np.int16)
    excitatory = np.repeat([p.type == "E" for p in spec.populations], sizes)
    positions = rng.uniform(0, 1, size=(n, 2)) * np.asarray(spec.sheet_um)
    neuron = _neuron_params(spec, rng)

    pres, posts, weights, delays = [], [], [], []

    def add(pr, po, w, d_ms, where):
        pres.append(pr)
        posts.append(po)
        weights.append(w)
        delays.append(
            _delay_steps(np.broadcast_to(np.asarray(d_ms, float), pr.shape), spec.dt_ms, where)
        )

    for i, proj in enumerate(spec.projections):
        pr, po = _projection_pairs(spec, proj, idx, positions, rng)
        where = f"projections[{i}]"
        add(
            pr,
            po,
            _magnitudes(proj.weight, pr.size, rng, where + ".weight"),
            draw_values(proj.delay_ms, pr.size, rng, np.zeros(pr.size)),
            where + ".delay_ms",
        )
    if spec.table is not None:
        t = spec.table
        for a, pre_name in enumerate(names):
            for b, post_name in enumerate(names):
                p = t.probability[a][b]
                if p == 0:
                    continue
                pr, po = connectivity.fixed_probability(
                    idx[pre_name], idx[post_name], p, rng, t.allow_autapses
                )
                w0 = _table_value(t.weight, a, b)
                w = _magnitudes(w0, pr.size, rng, f"table.weight[{a}][{b}]")
                if t.weight_sd_fraction:
                    w = np.abs(w * (1 + t.weight_sd_fraction * rng.standard_normal(pr.size)))
                d = draw_values(_table_value(t.delay_ms, a, b), pr.size, rng, np.zeros(pr.size))
                add(pr, po, w, d, f"table.delay_ms[{a}][{b}]")
    if spec.explicit is not None:
        ex = spec.explicit
        pr, po = np.asarray(ex.pre, np.int64), np.asarray(ex.post, np.int64)
        w = np.asarray(ex.weight, float)
        for name, arr in (("pre", pr), ("post", po)):
            if arr.size and arr.max() >= n:
                k = int(np.argmax(arr >= n))
                raise SpecError(
                    f"explicit.{name}[{k}]: neuron {arr[k]} does not exist (network has {n})"
                )
        wrong = (w > 0) != excitatory[pr]
        wrong |= w == 0
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            kind = "excitatory" if excitatory[pr[k]] else "inhibitory"
            raise SpecError(
                f"explicit.weight[{k}]: {w[k]} from {kind} neuron {pr[k]} breaks Dale's law "
                f"(excitatory weights > 0, inhibitory < 0)"
            )
        add(pr, po, np.abs(w), np.asarray(ex.delay_ms, float), "explicit.delay_ms")

    pre = np.concatenate(pres) if pres else np.empty(0, np.int64)
    post = np.concatenate(posts) if posts else np.empty(0, np.int64)
    order = np.lexsort((post, pre))
    syn_ptr = csr_ptr(pre, n)

    drive = [p.drive for p in spec.populations]
    bias = np.concatenate(
        [
            draw_values(d.bias_pa, p.n, rng, np.zeros(p.n))
            for d, p in zip(drive, spec.populations, strict=True)
        ]
    )
    recorded = np.concatenate(
        [idx[p.name][: (p.n if p.record is True else int(p.record))] for p in spec.populations]
    ).astype(np.int64)

    model = (
        "izhikevich"
        if isinstance(spec.populations[0].neuron, Izhikevich)
        else f"lif_{spec.synapses.kind}"
    )
    net = Network(
        spec=spec,
        dt_s=spec.dt_ms * 1e-3,
        model=model,
        pop_names=names,
        pop_ptr=pop_ptr,
        pop_of=pop_of,
        excitatory=excitatory,
        neuron=neuron,
        positions_um=positions,
        syn_ptr=syn_ptr,
        syn_post=post[order].astype(np.int32),
        syn_weight=(np.concatenate(weights)[order] if weights else np.empty(0)).astype(np.float32),
        syn_delay=(np.concatenate(delays)[order] if delays else np.empty(0)).astype(np.uint16),
        bias_pa=bias,
        poisson_rate_hz=np.array([d.poisson.rate_hz if d.poisson else 0.0 for d in drive]),
        poisson_weight=np.array([d.poisson.weight if d.poisson else 0.0 for d in drive]),
        poisson_sources=np.array([d.poisson.n_sources if d.poisson else 0 for d in drive], float),
        ou_mean_pa=np.array([d.ou.mean_pa if d.ou else 0.0 for d in drive]),
        ou_sd_pa=np.array([d.ou.sd_pa if d.ou else 0.0 for d in drive]),
        ou_tau_ms=np.array([d.ou.tau_ms if d.ou else 1.0 for d in drive]),
        recorded=recorded,
    )
    object.__setattr__(net, "fingerprint", _fingerprint(net))
    for a in _arrays(net):
        a.flags.writeable = False
    return net


def _arrays(net: Network):
    yield from (
        net.pop_ptr,
        net.pop_of,
        net.excitatory,
        net.positions_um,
        net.syn_ptr,
        net.syn_post,
        net.syn_weight,
        net.syn_delay,
        net.bias_pa,
        net.recorded,
    )
    yield from net.neuron.values()
    # Empty for a network built from a spec, so that they leave its fingerprint unchanged.
    yield from (net.msyn_post, net.msyn_delay, net.msyn_excitatory, net.src_post)
    if net.msyn_post.size or net.src_post.size:
        yield from (net.msyn_ptr, net.src_ptr)


def _fingerprint(net: Network) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(net.model.encode())
    h.update(np.float64(net.dt_s).tobytes())
    for a in _arrays(net):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
