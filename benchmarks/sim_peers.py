"""Peer simulators for the spiking-network benchmark: Brian2 and NEST.

Runs INSIDE the peer environment (.venv-peers, see requirements-peers.txt);
it never imports spikeda.  One call builds one network in one simulator,
simulates it once and prints one JSON object, so that benchmarks/simulate.py
can call it repeatedly in fresh subprocesses.

Networks (dt = 0.1 ms, synaptic delay 0.1 ms, no autapses, V(0) uniform in
[V_reset, V_th] = [-60, -50] mV, synaptic variables start at 0):

  coba4000  Vogels-Abbott COBA (Brette et al. 2007, benchmark 1):
            3200 E + 800 I LIF, p = 0.02 for every pre->post pair,
            C = 200 pF, g_L = 10 nS, E_L = V_reset = -60 mV, V_th = -50 mV,
            t_ref = 5 ms, exponential conductances (tau_e 5 ms, tau_i 10 ms,
            E_e 0 mV, E_i -80 mV, jumps 6 nS / 67 nS), 200 pA bias current.
  coba1000  same model, 800 E + 200 I, fixed in-degree 64 E + 16 I,
            drawn without replacement.
  cuba4000  Brette et al. 2007 benchmark 2 as in Brian2's CUBA example:
            dV/dt = (g_e + g_i - (V - E_L)) / tau_m, tau_m 20 ms,
            E_L = -49 mV, jumps 1.62 mV / -9 mV, no bias current
            (--bias-pa adds I/g_L to the drive, g_L = C/tau_m = 10 nS).

Simulators (one thread each):

  brian2-cython  Brian2 runtime mode, Cython code generation.
  brian2-cpp     Brian2 cpp_standalone, project in a temporary directory;
                 code generation + compilation and the binary are timed
                 apart.
  nest           NEST iaf_cond_exp (COBA) / iaf_psc_exp (CUBA), bias as I_e.
                 CUBA weights in pA: w_pA = w_mV * C / tau_m = w_mV * g_L,
                 i.e. 16.2 pA and -90 pA, the jump of the synaptic current
                 that gives the same dV/dt as Brian2's voltage-unit jump.

What the JSON reports (all times wall-clock seconds unless noted):

  build_s      network construction incl. connect.  brian2-cython/nest:
               in-process (nest includes Prepare(), which sorts the
               connection tables).  brian2-cpp: the Python-side description
               plus the binary's time outside the simulation loop
               (connect, initialisation, writing results).
  compile_s    brian2-cython: run() overhead before the loop (code
               generation, Cython compile or cache load); brian2-cpp:
               code generation + make; nest: null.
  run_s        the simulation loop only (Brian2's own loop timer, in the
               binary for brian2-cpp; nest: Run()).
  cpu_s        CPU seconds of the simulation: process_time around the loop
               (in-process), or the binary's user+sys time (brian2-cpp,
               which includes its construction phase).
  rate_e_hz, rate_i_hz   mean over neurons of spike count / duration.
  cv_isi_e     mean ISI coefficient of variation over E neurons with >= 3
               spikes.
  events_per_s sum over spikes of the spiking neuron's out-degree, per
               simulated second (synaptic events delivered per second).
"""

from __future__ import annotations

import os

# One thread everywhere; must be set before numpy / the simulators load.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

DT_MS = 0.1
DELAY_MS = 0.1
V_RESET_MV = -60.0
V_TH_MV = -50.0
T_REF_MS = 5.0
MAKE_ARGS = ["-j1"]  # compile on one core too: the machine is shared


@dataclass(frozen=True)
class NetSpec:
    name: str
    model: str  # "coba" or "cuba"
    n_e: int
    n_i: int
    p: float | None = None  # pairwise connection probability, or
    k_e: int | None = None  # fixed in-degree from E ...
    k_i: int | None = None  # ... and from I
    bias_pa: float = 0.0  # DC current into every neuron

    @property
    def n(self) -> int:
        return self.n_e + self.n_i


NETS = {
    "coba4000": NetSpec("coba4000", "coba", 3200, 800, p=0.02, bias_pa=200.0),
    "coba1000": NetSpec("coba1000", "coba", 800, 200, k_e=64, k_i=16, bias_pa=200.0),
    "cuba4000": NetSpec("cuba4000", "cuba", 3200, 800, p=0.02),
}

# COBA constants (pF, nS, mV, ms, pA)
COBA = dict(
    C=200.0, g_L=10.0, E_L=-60.0, E_e=0.0, E_i=-80.0, tau_e=5.0, tau_i=10.0, dg_e=6.0, dg_i=67.0
)
# CUBA constants (mV, ms); C only for the NEST current conversion
CUBA = dict(tau_m=20.0, E_L=-49.0, tau_e=5.0, tau_i=10.0, w_e=1.62, w_i=-9.0, C=200.0)


# ----------------------------------------------------------------- analysis


def summarise(spike_idx, spike_t_s, spec: NetSpec, duration_s: float, out_degree) -> dict:
    """Rates, ISI CV and synaptic event rate from a spike list (0-based
    neuron index, time in seconds) and each neuron's out-degree."""
    spike_idx = np.asarray(spike_idx, dtype=np.int64)
    spike_t_s = np.asarray(spike_t_s, dtype=np.float64)
    counts = np.bincount(spike_idx, minlength=spec.n)
    rate_e = counts[: spec.n_e].mean() / duration_s
    rate_i = counts[spec.n_e :].mean() / duration_s

    order = np.lexsort((spike_t_s, spike_idx))  # by neuron, then time
    t = spike_t_s[order]
    cvs = []
    starts = np.concatenate(([0], np.cumsum(counts)))
    for nrn in np.flatnonzero(counts[: spec.n_e] >= 3):
        isi = np.diff(t[starts[nrn] : starts[nrn + 1]])
        cvs.append(isi.std() / isi.mean())
    events = float(np.dot(counts, out_degree))
    return dict(
        n_spikes=int(counts.sum()),
        rate_e_hz=float(rate_e),
        rate_i_hz=float(rate_i),
        cv_isi_e=float(np.mean(cvs)) if cvs else None,
        n_cv_neurons=len(cvs),
        events_per_s=events / duration_s,
    )


# ------------------------------------------------------------------- Brian2


def _brian2_build(b2, spec: NetSpec, seed: int):
    """Describe the network with Brian2 objects; return the Network and its parts."""
    from brian2 import Network, NeuronGroup, SpikeMonitor, Synapses, ms, mV, nS, pA, pF

    b2.seed(seed)
    common = dict(V_th=V_TH_MV * mV, V_reset=V_RESET_MV * mV)
    if spec.model == "coba":
        c = COBA
        ns = dict(
            common,
            C=c["C"] * pF,
            g_L=c["g_L"] * nS,
            E_L=c["E_L"] * mV,
            E_e=c["E_e"] * mV,
            E_i=c["E_i"] * mV,
            tau_e=c["tau_e"] * ms,
            tau_i=c["tau_i"] * ms,
            dg_e=c["dg_e"] * nS,
            dg_i=c["dg_i"] * nS,
            I_bias=spec.bias_pa * pA,
        )
        eqs = """
        dv/dt = (g_L*(E_L - v) + g_e*(E_e - v) + g_i*(E_i - v) + I_bias)/C : volt (unless refractory)
        dg_e/dt = -g_e/tau_e : siemens
        dg_i/dt = -g_i/tau_i : siemens
        """
        on_e, on_i = "g_e += dg_e", "g_i += dg_i"
    else:
        c = CUBA
        ns = dict(
            common,
            tau_m=c["tau_m"] * ms,
            E_L=c["E_L"] * mV,
            tau_e=c["tau_e"] * ms,
            tau_i=c["tau_i"] * ms,
            w_e=c["w_e"] * mV,
            w_i=c["w_i"] * mV,
            I_bias=spec.bias_pa * pA,
            g_L=c["C"] / c["tau_m"] * nS,
        )
        eqs = """
        dv/dt = (g_e + g_i - (v - E_L) + I_bias/g_L)/tau_m : volt (unless refractory)
        dg_e/dt = -g_e/tau_e : volt
        dg_i/dt = -g_i/tau_i : volt
        """
        on_e, on_i = "g_e += w_e", "g_i += w_i"

    P = NeuronGroup(
        spec.n,
        eqs,
        threshold="v > V_th",
        reset="v = V_reset",
        refractory=T_REF_MS * ms,
        namespace=ns,
        method=("exact", "exponential_euler"),
        name="P",
    )
    P.v = "V_reset + rand()*(V_th - V_reset)"
    syn_e = Synapses(P[: spec.n_e], P, on_pre=on_e, delay=DELAY_MS * ms, namespace=ns, name="syn_e")
    syn_i = Synapses(P[spec.n_e :], P, on_pre=on_i, delay=DELAY_MS * ms, namespace=ns, name="syn_i")
    ne = spec.n_e
    if spec.p is not None:
        # i, j are indices inside the source / target groups; the I sources
        # sit at offset n_e in P.
        syn_e.connect(condition="i != j", p=spec.p)
        syn_i.connect(condition=f"i + {ne} != j", p=spec.p)
    else:
        # Brian2's generator syntax cannot make the sample size depend on
        # the target index (n-1 candidates for a same-class target, n
        # otherwise), so the fixed in-degree pairs are drawn with numpy.
        rng = np.random.default_rng(seed)
        pre_e, post_e = fixed_indegree_pairs(rng, 0, ne, spec.n, spec.k_e)
        pre_i, post_i = fixed_indegree_pairs(rng, ne, spec.n, spec.n, spec.k_i)
        syn_e.connect(i=pre_e, j=post_e)
        syn_i.connect(i=pre_i - ne, j=post_i)
    mon = SpikeMonitor(P, name="spikes")
    return Network(P, syn_e, syn_i, mon), P, syn_e, syn_i, mon


def fixed_indegree_pairs(rng, lo, hi, n_post, k):
    """(pre, post) arrays: every post neuron gets k distinct sources from
    [lo, hi), never itself."""
    keys = rng.random((n_post, hi - lo))
    own = np.arange(n_post) - lo
    same = (own >= 0) & (own < hi - lo)
    keys[np.flatnonzero(same), own[same]] = np.inf  # never pick self
    pre = np.argpartition(keys, k, axis=1)[:, :k] + lo
    post = np.repeat(np.arange(n_post), k)
    return pre.ravel(), post


def _brian2_results(spec, P, syn_e, syn_i, mon):
    """Spike list, out-degrees and synapse count (after the run)."""
    pre_e = np.asarray(syn_e.i[:])
    pre_i = np.asarray(syn_i.i[:]) + spec.n_e
    out_degree = np.bincount(np.concatenate([pre_e, pre_i]), minlength=spec.n)
    from brian2 import second

    return (
        np.asarray(mon.i[:]),
        np.asarray(mon.t[:] / second),
        out_degree,
        int(pre_e.size + pre_i.size),
    )


class _MethodLog:
    """Catches Brian2's 'using method ...' info message for the report."""

    def __init__(self):
        import logging

        self.method = None
        outer = self

        class Handler(logging.Handler):
            def emit(self, record):
                msg = record.getMessage()
                if "using method" in msg:
                    outer.method = msg.split("using method '")[1].split("'")[0]

        self.handler = Handler(level=logging.DEBUG)
        logging.getLogger("brian2").addHandler(self.handler)


def run_brian2_cython(spec: NetSpec, duration_s: float, seed: int) -> dict:
    import brian2 as b2

    b2.prefs.codegen.target = "cython"
    b2.prefs.logging.file_log = False
    methods = _MethodLog()

    t0 = time.perf_counter()
    net, P, syn_e, syn_i, mon = _brian2_build(b2, spec, seed)
    build_s = time.perf_counter() - t0
    # connect() in runtime mode creates synapses immediately (compiling its
    # code on a cold Cython cache), so build_s covers it.  run() = before_run (code generation, compile / cache
    # load) + the loop, which Brian2 times itself as _last_run_time.
    b2.defaultclock.dt = DT_MS * b2.ms
    loop_start = {}
    prepare = net.before_run

    def before_run_then_mark(namespace):
        prepare(namespace)
        loop_start["cpu"] = time.process_time()

    net.before_run = before_run_then_mark  # to take CPU time of the loop
    t0 = time.perf_counter()
    net.run(duration_s * b2.second)
    total = time.perf_counter() - t0
    cpu_s = time.process_time() - loop_start["cpu"]
    run_s = float(b2.device._last_run_time)

    spikes_i, spikes_t, out_degree, n_syn = _brian2_results(spec, P, syn_e, syn_i, mon)
    return dict(
        sim="brian2-cython",
        version=b2.__version__,
        build_s=build_s,
        compile_s=total - run_s,
        run_s=run_s,
        cpu_s=cpu_s,
        cpu_s_note="process_time over the loop",
        method=methods.method,
        n_synapses=n_syn,
        **summarise(spikes_i, spikes_t, spec, duration_s, out_degree),
    )


def run_brian2_cpp(spec: NetSpec, duration_s: float, seed: int) -> dict:
    import brian2 as b2

    b2.prefs.logging.file_log = False
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = MAKE_ARGS
    methods = _MethodLog()

    with tempfile.TemporaryDirectory(prefix="sim_peers_b2cpp_") as tmp:
        b2.set_device("cpp_standalone", directory=tmp, build_on_run=False)
        b2.defaultclock.dt = DT_MS * b2.ms
        t0 = time.perf_counter()
        net, P, syn_e, syn_i, mon = _brian2_build(b2, spec, seed)
        describe_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        net.run(duration_s * b2.second)  # records; generates code objects
        b2.device.build(directory=tmp, compile=True, run=False, with_output=False)
        compile_s = time.perf_counter() - t0
        make_s = b2.device.timers["compile"]["make"]

        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b2.device.run(directory=tmp, with_output=False)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        binary_s = float(b2.device.timers["run_binary"])
        run_s = float(b2.device._last_run_time)
        cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)

        spikes_i, spikes_t, out_degree, n_syn = _brian2_results(spec, P, syn_e, syn_i, mon)
    return dict(
        sim="brian2-cpp",
        version=b2.__version__,
        build_s=describe_s + binary_s - run_s,
        build_py_s=describe_s,
        binary_s=binary_s,
        compile_s=compile_s,
        make_s=make_s,
        run_s=run_s,
        cpu_s=cpu_s,
        cpu_s_note="user+sys of the whole binary",
        method=methods.method,
        n_synapses=n_syn,
        **summarise(spikes_i, spikes_t, spec, duration_s, out_degree),
    )


# --------------------------------------------------------------------- NEST


def run_nest(spec: NetSpec, duration_s: float, seed: int) -> dict:
    import nest

    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus(
        {"resolution": DT_MS, "local_num_threads": 1, "rng_seed": seed, "print_time": False}
    )

    t0 = time.perf_counter()
    v0 = nest.random.uniform(min=V_RESET_MV, max=V_TH_MV)
    common = dict(V_m=v0, V_reset=V_RESET_MV, V_th=V_TH_MV, t_ref=T_REF_MS)
    if spec.model == "coba":
        c = COBA
        model = "iaf_cond_exp"
        params = dict(
            common,
            C_m=c["C"],
            g_L=c["g_L"],
            E_L=c["E_L"],
            E_ex=c["E_e"],
            E_in=c["E_i"],
            tau_syn_ex=c["tau_e"],
            tau_syn_in=c["tau_i"],
            I_e=spec.bias_pa,
        )
        w_e, w_i = c["dg_e"], -c["dg_i"]  # nS; sign selects the channel
    else:
        c = CUBA
        model = "iaf_psc_exp"
        g_l = c["C"] / c["tau_m"]  # nS
        params = dict(
            common,
            C_m=c["C"],
            tau_m=c["tau_m"],
            E_L=c["E_L"],
            tau_syn_ex=c["tau_e"],
            tau_syn_in=c["tau_i"],
            I_e=spec.bias_pa,
        )
        w_e, w_i = c["w_e"] * g_l, c["w_i"] * g_l  # pA: 16.2, -90
    pop = nest.Create(model, spec.n, params=params)
    src_e, src_i = pop[: spec.n_e], pop[spec.n_e :]
    if spec.p is not None:
        rule_e = rule_i = {"rule": "pairwise_bernoulli", "p": spec.p, "allow_autapses": False}
    else:
        rule_e = {
            "rule": "fixed_indegree",
            "indegree": spec.k_e,
            "allow_autapses": False,
            "allow_multapses": False,
        }
        rule_i = dict(rule_e, indegree=spec.k_i)
    nest.Connect(src_e, pop, rule_e, {"weight": w_e, "delay": DELAY_MS})
    nest.Connect(src_i, pop, rule_i, {"weight": w_i, "delay": DELAY_MS})
    rec = nest.Create("spike_recorder")
    nest.Connect(pop, rec)
    connect_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    nest.Prepare()
    prepare_s = time.perf_counter() - t0
    c0 = time.process_time()
    t0 = time.perf_counter()
    nest.Run(duration_s * 1000.0)
    run_s = time.perf_counter() - t0
    cpu_s = time.process_time() - c0
    nest.Cleanup()

    first = pop[0].global_id
    ev = rec.get("events")
    spikes_i = np.asarray(ev["senders"]) - first
    spikes_t = np.asarray(ev["times"]) / 1000.0
    sources = (
        np.asarray(nest.GetConnections(source=pop, target=pop).get("source"), dtype=np.int64)
        - first
    )
    out_degree = np.bincount(sources, minlength=spec.n)
    return dict(
        sim="nest",
        version=nest.__version__,
        build_s=connect_s + prepare_s,
        connect_s=connect_s,
        prepare_s=prepare_s,
        compile_s=None,
        run_s=run_s,
        cpu_s=cpu_s,
        cpu_s_note="process_time over Run()",
        method=model,
        n_synapses=int(sources.size),
        **summarise(spikes_i, spikes_t, spec, duration_s, out_degree),
    )


# --------------------------------------------------------------------- main

RUNNERS = {"brian2-cython": run_brian2_cython, "brian2-cpp": run_brian2_cpp, "nest": run_nest}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", required=True, choices=sorted(RUNNERS))
    ap.add_argument("--net", required=True, choices=sorted(NETS))
    ap.add_argument("--duration-s", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--bias-pa",
        type=float,
        default=None,
        help="override the DC bias current (pA; default 200 for "
        "COBA, 0 for CUBA) - for diagnostics",
    )
    ap.add_argument(
        "--json",
        action="store_true",
        help="print only the JSON line (default: also a summary on stderr)",
    )
    args = ap.parse_args(argv)
    spec = NETS[args.net]
    if args.bias_pa is not None:
        spec = dataclasses.replace(spec, bias_pa=args.bias_pa)

    # The simulators print banners and progress; keep stdout for the JSON.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        res = RUNNERS[args.sim](spec, args.duration_s, args.seed)
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    out = dict(
        sim=res.pop("sim"),
        version=res.pop("version"),
        net=spec.name,
        duration_s=args.duration_s,
        seed=args.seed,
        n_neurons=spec.n,
        bias_pa=spec.bias_pa,
    )
    out.update(res)
    line = json.dumps(out)
    print(line, flush=True)
    if not args.json:
        print(
            f"{out['sim']} {out['net']} {args.duration_s:g}s: "
            f"run {out['run_s']:.3f}s, E {out['rate_e_hz']:.2f} Hz, "
            f"I {out['rate_i_hz']:.2f} Hz, CV {out['cv_isi_e']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
