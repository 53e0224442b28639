"""Cycles per forwarded packet on the forwarding core, and the generator's capacity (used by
scripts/lib/benchveth.py; stdlib only).

Rates alone cannot rank forwarders on veth: the generator, not the forwarder, is often the
limit. What each forwarder pays per packet on its own core can, so each is offered the same
traffic at fixed rates below saturation (and at the generator's maximum) and charged:
  ecmpfwd(-*)  its worker's busy cycles (TSC, polls that moved frames, tx and kicks included;
               `ecmpctl stats`) / the packets it forwarded
  testpmd-*    testpmd's own `--record-core-cycles` (busy cycles / packets, TSC), read from its
               exit report (so testpmd is started afresh for every rate)
  kernel-*-rps the forwarding core's softirq time (/proc/stat; RPS steers the forwarding there)
               x the TSC rate / packets delivered
  xdp-fib      the softirq time of core 0, where fc0's NAPI runs the program (XDP runs before
               RPS, in the sender's context on veth) x the TSC rate / packets delivered
Every forwarder's cost includes the backends' XDP drop sinks (their NAPI runs on the core that
transmits into the veth), alike for all. Cycles are TSC cycles: the rate is the one ecmpfwd's
stats or testpmd report in the same run (both read the TSC), else /proc/cpuinfo's MHz.
/proc/stat counts in USER_HZ ticks (10 ms), so the runs at fixed rates last `seconds` each
and the tick is stated beside the figures.
"""

import os
import re
import statistics

# what each forwarder's cost is read from (the markdown's method column)
METHODS = {
    "ecmpfwd": "worker busy TSC cycles (ecmpctl stats)",
    "ecmpfwd-vxlan": "worker busy TSC cycles (ecmpctl stats)",
    "ecmpfwd-dpdk": "worker busy TSC cycles (ecmpctl stats)",
    "testpmd-io": "testpmd --record-core-cycles",
    "testpmd-mac": "testpmd --record-core-cycles",
    "kernel-res-rps": "softirq time of core 1 (RPS) x TSC rate",
    "kernel-mp-rps": "softirq time of core 1 (RPS) x TSC rate",
    "xdp-fib": "softirq time of core 0 (fc0's NAPI) x TSC rate",
}
DEFAULT_FORWARDERS = ["kernel-res-rps", "xdp-fib", "testpmd-mac", "ecmpfwd"]

# DPDK 22.11's report: "total cycles" are the busy cycles of bursts that received packets
TESTPMD_CYCLES = re.compile(r"CPU cycles/packet=([\d.]+) \(total cycles=(\d+) / total (\w+) "
                            r"packets=(\d+)\) at (\d+) MHz")


def cpu_stat():
    """{cpu: {"total", "idle", "softirq"}} in USER_HZ ticks from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            out[int(m.group(1))] = {"total": sum(v[:8]), "idle": v[3] + v[4], "softirq": v[6]}
    return out


def cpuinfo_hz():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", f.read(), re.M)
        return float(m.group(1)) * 1e6 if m else None
    except OSError:
        return None


def parse_testpmd_cycles(text):
    """(cycles per packet, busy cycles, packets, TSC Hz) from testpmd's exit report, or None."""
    m = None
    for m in TESTPMD_CYCLES.finditer(text):
        pass
    if m is None:
        return None
    return float(m.group(1)), int(m.group(2)), int(m.group(4)), int(m.group(5)) * 1e6


def core_of(fwd, gen_core, fwd_core):
    return gen_core if fwd == "xdp-fib" else fwd_core


def cost_run(b, fwd, size, flows, seed, rate, seconds, count_at_max, gen_core, fwd_core):
    """One run at `rate` pps (0: the generator's maximum) with XDP drop sinks on the backends;
    returns its row."""
    count = rate * seconds if rate else count_at_max
    sinks = b.start_sinks(f"cost-{fwd}-{flows}-{rate}-{seed}", driver="xdp-drop")
    try:
        st0 = b.ecmp_stats()
        c0 = cpu_stat()
        gen = b.send(count, size, flows, seed, rate=rate)
        c1 = cpu_stat()
        st1 = b.ecmp_stats()
    finally:
        reports = b.stop_sinks(sinks)
    delivered = sum(r["packets"] for r in reports.values())
    hz_user = os.sysconf("SC_CLK_TCK")
    core = core_of(fwd, gen_core, fwd_core)
    d = {k: c1[core][k] - c0[core][k] for k in ("total", "idle", "softirq")}
    row = {
        "forwarder": fwd, "size": size, "flows": flows, "seed": seed, "rate_pps": rate,
        "offered": gen["packets"], "offered_mpps": round(gen["mpps"], 4), "delivered": delivered,
        "drops": gen["packets"] - delivered, "core": core,
        "core_busy_s": (d["total"] - d["idle"]) / hz_user,
        "core_softirq_s": d["softirq"] / hz_user,
        "seconds": round(gen["seconds"], 4), "method": METHODS.get(fwd, "?"),
    }
    if st0 is not None and st1 is not None:
        w0, w1 = st0["workers"][0], st1["workers"][0]
        row["busy_cycles"] = w1.get("busy_cycles", 0) - w0.get("busy_cycles", 0)
        row["forwarded"] = w1["forwarded"] - w0["forwarded"]
        row["tsc_hz"] = st1.get("tsc_hz")
        row["cycles_per_pkt"] = (round(row["busy_cycles"] / row["forwarded"], 1)
                                 if row["forwarded"] else None)
    return row


def run(b, args, log, gen_core, fwd_core):
    """Every forwarder of `args.cost_forwarders` at every rate of `args.cost_rates`, for each
    flow count of `args.cost_flows`, interleaved within each of `args.reps` repetitions."""
    rows = []
    fwds = args.cost_forwarders
    for rep in range(1, args.reps + 1):
        order = fwds[(rep - 1) % len(fwds):] + fwds[:(rep - 1) % len(fwds)]
        log(f"cost repetition {rep}/{args.reps}, order {order}")
        for fwd in order:
            tpmd = fwd.startswith("testpmd")
            b.tpmd_extra = ["--record-core-cycles"] if tpmd else []
            b.setup(fwd)
            try:
                for flows in args.cost_flows:
                    b.warm_up(fwd, 66, flows, seed=rep)
                    for rate in args.cost_rates:
                        if tpmd:
                            # its cycle count is cumulative and printed on exit: one run each
                            b.teardown(fwd)
                            b.setup(fwd)
                        r = cost_run(b, fwd, 66, flows, rep, rate, args.cost_seconds,
                                     args.count, gen_core, fwd_core)
                        if tpmd:
                            b.tpmd.stop()
                            parsed = parse_testpmd_cycles(b.tpmd.exit_text)
                            if parsed:
                                r["cycles_per_pkt"], r["busy_cycles"], r["forwarded"], r["tsc_hz"] = parsed
                        r["rep"] = rep
                        log(f"  cost {fwd:14} flows {flows:7} rate {rate or 'max':>7}: "
                            f"{r.get('cycles_per_pkt', 'n/a')} cycles/pkt (own), core {r['core']} "
                            f"busy {r['core_busy_s']:.2f} s softirq {r['core_softirq_s']:.2f} s, "
                            f"delivered {r['delivered']}/{r['offered']}")
                        rows.append(r)
            finally:
                b.teardown(fwd)
                b.tpmd_extra = []
    return rows


def tsc_hz_of(rows):
    """The TSC rate seen in the run (ecmpfwd's or testpmd's), else /proc/cpuinfo's MHz."""
    seen = [r["tsc_hz"] for r in rows if r.get("tsc_hz")]
    return statistics.median(seen) if seen else cpuinfo_hz()


def finish(rows):
    """Fills in the kernel and XDP rows' cycles from their core's softirq time."""
    hz = tsc_hz_of(rows)
    for r in rows:
        if r["forwarder"].startswith("kernel") or r["forwarder"] == "xdp-fib":
            r["tsc_hz"] = hz
            r["cycles_per_pkt"] = (round(r["core_softirq_s"] * hz / r["delivered"], 1)
                                   if hz and r["delivered"] else None)
            r["busy_cycles_per_pkt"] = (round(r["core_busy_s"] * hz / r["delivered"], 1)
                                        if hz and r["delivered"] else None)
    return hz


def summarize(rows, aggregate):
    groups = {}
    for r in rows:
        groups.setdefault((r["flows"], r["rate_pps"], r["forwarder"]), []).append(r)
    out = []
    for (flows, rate, fwd), rs in sorted(groups.items(),
                                         key=lambda kv: (kv[0][0], kv[0][1] or 1 << 62)):
        def agg(key):
            return aggregate([r[key] for r in rs if r.get(key) is not None])
        out.append({"flows": flows, "rate_pps": rate, "forwarder": fwd, "reps": len(rs),
                    "method": METHODS.get(fwd, "?"), "cycles_per_pkt": agg("cycles_per_pkt"),
                    "offered_mpps": agg("offered_mpps"), "drops": agg("drops"),
                    "delivered": agg("delivered"), "core": rs[0]["core"]})
    return out


def generator_capacity(b, sizes, flows_list, count, gen_core):
    """What the generator offers with nothing in the way: sent to an XDP drop sink on fc0
    itself. {size: {flows: offered Mpps}}."""
    out = {}
    b.no_xdp()
    for size in sizes:
        for flows in flows_list:
            p, path = b.start_drop_sink_on_fc0()
            try:
                gen = b.send(count, size, flows, seed=1)
            finally:
                report = b.stop_drop_sink_on_fc0(p, path)
            out.setdefault(size, {})[flows] = {"offered_mpps": round(gen["mpps"], 4),
                                               "received": report["packets"],
                                               "sent": gen["packets"]}
    return out


def markdown(summary, hz, fmt, flows_label, seconds):
    L = ["### Cycles per forwarded packet", "",
         "- each forwarder offered the same 66 B flows at fixed rates (and at the generator's "
         f"maximum, `max`), {seconds} s per fixed-rate run, XDP drop sinks on the backends; "
         "the cost is charged on the core that does the forwarding (method column)",
         f"- TSC rate {hz / 1e6:.0f} MHz; /proc/stat ticks are 10 ms, so the softirq-based rows "
         "resolve to about one tick per run" if hz else "- TSC rate unknown",
         "- cells: median [min-max] over the repetitions", "",
         "| flows | offered pps | forwarder | cycles/pkt | offered Mpps | drops | method |",
         "|---|---|---|---|---|---|---|"]
    for s in summary:
        L.append(f"| {flows_label(s['flows'])} | {s['rate_pps'] or 'max'} | {s['forwarder']} | "
                 f"{fmt(s['cycles_per_pkt'], 0)} | {fmt(s['offered_mpps'])} | "
                 f"{fmt(s['drops'], 0)} | {s['method']} |")
    L.append("")
    return L
