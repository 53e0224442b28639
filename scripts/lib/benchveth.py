#!/usr/bin/env python3
"""Side-by-side veth benchmark driver (scripts/bench-veth runs it; stdlib only, needs root).

One lab (scripts/lab, 4 backends). Forwarders compared, interleaved within every repetition:
  kernel-res   Linux forwarding, resilient nexthop group of 4 (256 buckets, idle_timer 0)
  kernel-mp    Linux forwarding, plain multipath route
  (both kernel variants hash L4: fib_multipath_hash_policy=1; on veth the forwarding runs in the
  sender's softirq, i.e. on the generator's core 0; the -rps variants steer it to core 1 with RPS)
  xdp-fib      in-kernel XDP forwarding (the class of Katran and Cilium's XDP LB): bpf/fib.bpf.c
               on fc0 looks each packet up with bpf_fib_lookup (the resilient group of 4 above)
               and redirects it in the driver; runs in fc0's NAPI, i.e. in the generator's
               softirq on core 0 (veth delivers in the sender's context; XDP runs before RPS)
  testpmd-io   DPDK testpmd, io engine, net_af_xdp fc0 -> fb1, forwarding lcore on core 1
               (scripts/lib/testpmd.py: one backend, no header touched: an upper bound)
  ecmpfwd      configs/lab-afxdp-bench.toml (MAC rewrite), one worker on core 1
  ecmpfwd-vxlan  configs/lab-afxdp-bench-vxlan.toml: the same with every VIP next hop
               encapsulating in VXLAN
  ecmpfwd-dpdk configs/lab-dpdk-bench.toml: ecmpfwd's rewrite on DPDK ports (net_af_xdp on the
               same veths, static MACs), one worker on core 1; needs ecmpfwd built with the
               feature `dpdk` (scripts/bench-veth builds it so when this row is selected)
Throughput: ecmpfwd-pktgen (AF_XDP, core 0) sends a fixed count; delivered = the generator's
tagged packets counted by XDP drop sinks on every backend's b0 (`ecmpfwd-pktgen sink --driver
xdp-drop`, bpf/sink.bpf.c: counted and dropped in the driver, so no backend IP/UDP stack runs on
the forwarder's core, and the kernel's own ND/MLD is not counted), Mpps = delivered / the
generator's send time, CPU busy per core from /proc/stat deltas around the generator. Latency: right after each throughput run, the
same flows at a fixed low rate to AF_PACKET sinks on every b0 (timestamps in the payload,
hdrhistogram buckets merged across sinks). Resilience: tagged flows, sinks on every b0, how many
flows change backend when a hop is added, fails, returns and is drained, for the kernel's two
kinds of ECMP and ecmpfwd in each group mode. Scaling: ecmpfwd at 10M flows on the veths, and
`ecmpfwd bench` in-process (scripts/lib/benchscale.py). Plots: scripts/lib/benchplots.py.
Every ecmpfwd variant is its own file in configs/ (FWD_CONFIGS), passed by path and only read here.
Everything started is stopped by PID; the lab is torn down and sysctls restored on the way out.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcost  # noqa: E402  (scripts/lib, beside this file)
import benchscale  # noqa: E402
import testpmd  # noqa: E402

BIN = os.path.join(ROOT, "target", "release")
VIP = "198.19.0.1"
NBACK = 4
# -rps: the kernel's forwarding moved off the generator's core onto core 1 by RPS on fc0
FORWARDERS = ["kernel-res", "kernel-mp", "kernel-res-rps", "kernel-mp-rps", "xdp-fib",
              "testpmd-io", "testpmd-mac", "ecmpfwd", "ecmpfwd-vxlan", "ecmpfwd-dpdk"]
# the resilience comparison: ecmpfwd in each group mode against the kernel's two ECMP kinds
RES_FORWARDERS = ["kernel-res", "kernel-mp", "ecmpfwd-auto-recovery", "ecmpfwd-manual",
                  "ecmpfwd-maglev"]
# ecmpfwd's configs, one per variant: the throughput rows, the veth scaling runs (ecmpfwd-big) and
# the resilience rounds in each group mode (no static VIP route: the driver adds it over the
# control socket)
FWD_CONFIGS = {
    "ecmpfwd": "lab-afxdp-bench.toml",
    "ecmpfwd-vxlan": "lab-afxdp-bench-vxlan.toml",
    "ecmpfwd-dpdk": "lab-dpdk-bench.toml",
    "ecmpfwd-big": "lab-afxdp-bench-10m.toml",
    "ecmpfwd-auto-recovery": "lab-afxdp-resilience-auto-recovery.toml",
    "ecmpfwd-manual": "lab-afxdp-resilience-manual.toml",
    "ecmpfwd-maglev": "lab-afxdp-resilience-maglev.toml",
}
# core of the generator; ecmpfwd's worker is on core 1 (configs/lab-afxdp-bench*.toml)
GEN_CORE = 0
FWD_CORE = 1
# distinct source ports ecmpfwd-pktgen can draw (1024..=65535)
MAX_PORT_FLOWS = 64512
# beyond that, flows cross every source port with as few source addresses from 198.18.5.0 up as
# it takes (`--vary grid`); 16M flows need 261 of them, well inside 198.18.0.0/15
MAX_FLOWS = 16_000_000
# ecmpfwd's warm-up pass (one packet per flow) is paced below its flow-cache miss rate, so every
# flow gets in
WARMUP_PPS = 500_000


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived: unwind through every cleanup."""


def log(msg):
    print(f"[bench-veth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fwd_config(fwd):
    """(path, parsed TOML) of ecmpfwd variant `fwd`'s config: the path is what ecmpfwd gets, the
    parsed copy only tells the driver the sockets and flow-cache size that file sets."""
    path = os.path.join(ROOT, "configs", FWD_CONFIGS[fwd])
    with open(path, "rb") as f:
        return path, tomllib.load(f)


def flow_capacity(fwd):
    return fwd_config(fwd)[1]["flow_cache"]["capacity"]


def check_fits(fwd, flows, option):
    """Exits unless `flows` fit `fwd`'s flow cache with a quarter to spare, so every run measures
    cached forwarding, not evictions."""
    cap = flow_capacity(fwd)
    if flows * 5 // 4 > cap:
        sys.exit(f"error: {option} {flows}: configs/{FWD_CONFIGS[fwd]} caches {cap} flows, "
                 f"room for at most {cap * 4 // 5} with a quarter to spare")


def sh(cmd, check=True):
    """Runs a command (list), returns its stdout."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Bench:
    def __init__(self, args):
        self.args = args
        self.prefix = args.prefix
        self.fw = f"{self.prefix}-fw"
        self.cl = f"{self.prefix}-cl"
        self.work = tempfile.mkdtemp(prefix="bench-veth.")
        self.procs = []  # Popen objects still possibly running
        self.sysctl_saved = {}  # (ns, key) -> original value
        self.fwd_proc = None
        self.tpmd = None  # testpmd.Testpmd while the testpmd baseline runs
        self.tpmd_extra = []  # extra testpmd arguments (the cost runs record core cycles)
        self.xdp_fib = None  # (Popen, report path) while the XDP baseline runs
        self.warm = set()  # (flows, seed) the running ecmpfwd has seen (reset by setup)
        self.fc_mac = None
        self.ctl_sock = None  # the running ecmpfwd's control socket (its config's)
        self.bpffs = None  # private bpffs for net_af_xdp's libxdp (ecmpfwd-dpdk), while mounted
        self.dpdk_runtime = None  # DPDK's runtime directory of the running ecmpfwd-dpdk

    # ---- helpers -------------------------------------------------------------------------
    def nsx(self, ns, *cmd):
        return ["ip", "netns", "exec", ns, *cmd]

    def sysctl(self, ns, key, value):
        path = "/proc/sys/" + key.replace(".", "/")
        if (ns, key) not in self.sysctl_saved:
            self.sysctl_saved[(ns, key)] = sh(self.nsx(ns, "cat", path)).strip()
        sh(self.nsx(ns, "sh", "-c", f"echo {value} > {path}"))

    def restore_sysctls(self):
        for (ns, key), value in self.sysctl_saved.items():
            path = "/proc/sys/" + key.replace(".", "/")
            subprocess.run(self.nsx(ns, "sh", "-c", f"echo {value} > {path}"),
                           stderr=subprocess.DEVNULL)
        self.sysctl_saved.clear()

    def start(self, cmd, **kw):
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    # (total, idle) jiffies per CPU from /proc/stat
    cpu_times = staticmethod(testpmd.cpu_times)

    def rps(self, mask):
        sh(self.nsx(self.fw, "sh", "-c",
                    f"echo {mask:x} > /sys/class/net/fc0/queues/rx-0/rps_cpus"))

    def ecmp_stats(self):
        if self.fwd_proc is None:
            return None
        return json.loads(self.ctl("--json", "stats"))["result"]

    def no_xdp(self):
        for dev in ["fc0"] + [f"fb{i}" for i in range(1, NBACK + 1)]:
            subprocess.run(["ip", "-n", self.fw, "link", "set", "dev", dev, "xdp", "off"],
                           stderr=subprocess.DEVNULL)

    # ---- lab -----------------------------------------------------------------------------
    def lab_up(self):
        sh([os.path.join(ROOT, "scripts", "lab"), "up", "--prefix", self.prefix,
            "--backends", str(NBACK)])
        env = sh([os.path.join(ROOT, "scripts", "lab"), "env", "--prefix", self.prefix])
        self.fc_mac = re.search(r"^LAB_FC_MAC=(\S+)", env, re.M).group(1)
        # GRO on the forwarder's veths: not needed for kernel forwarding or AF_XDP tx
        # (veth-lab.md: only native XDP_REDIRECT needs it), so the lab stays as built.

    def lab_down(self):
        subprocess.run([os.path.join(ROOT, "scripts", "lab"), "down", "--prefix", self.prefix],
                       stderr=subprocess.DEVNULL)

    # ---- forwarder setups ------------------------------------------------------------------
    def kernel_hops(self):
        return [f"198.18.{i}.1" for i in range(1, NBACK + 1)]

    def res_group(self, ids):
        return ["group", "/".join(str(i) for i in ids), "type", "resilient", "buckets", "256",
                "idle_timer", "0"]

    def mp_route(self, hops):
        cmd = ["ip", "-n", self.fw, "route", "replace", f"{VIP}/32"]
        for h in hops:
            i = int(h.split(".")[2])
            cmd += ["nexthop", "via", h, "dev", f"fb{i}"]
        return cmd

    def setup(self, fwd, dynamic=None):
        """Starts forwarder `fwd` with its VIP route; `dynamic` (ecmpfwd: a list of hops) adds the
        route over the control socket instead of from the config."""
        log(f"forwarder {fwd}{' (VIP added at run time)' if dynamic else ''}")
        self.warm = set()  # a started forwarder has seen no flow yet
        if fwd.startswith("kernel") or fwd == "xdp-fib":
            self.no_xdp()
            self.sysctl(self.fw, "net.ipv4.ip_forward", 1)
            # L4 hashing for both: the resilient group hashes with the same policy, and with
            # L3 only every generated flow (one source, one destination) takes one hop
            self.sysctl(self.fw, "net.ipv4.fib_multipath_hash_policy", 1)
            self.rps(1 << FWD_CORE if fwd.endswith("-rps") else 0)
            if fwd.startswith("kernel-res") or fwd == "xdp-fib":
                for i in range(1, NBACK + 1):
                    sh(["ip", "-n", self.fw, "nexthop", "replace", "id", str(i), "via",
                        f"198.18.{i}.1", "dev", f"fb{i}"])
                sh(["ip", "-n", self.fw, "nexthop", "replace", "id", "100",
                    *self.res_group(range(1, NBACK + 1))])
                sh(["ip", "-n", self.fw, "route", "replace", f"{VIP}/32", "nhid", "100"])
            else:
                sh(self.mp_route(self.kernel_hops()))
            if fwd == "xdp-fib":
                self.start_xdp_fib()
        elif fwd.startswith("testpmd"):
            self.no_xdp()
            self.sysctl(self.fw, "net.ipv4.ip_forward", 0)
            # mac: the destination MAC becomes backend 1's, as a forwarder must write it (io
            # frames keep fc0's MAC; the throughput sinks count both alike, in XDP)
            mode = fwd.split("-", 1)[1]
            peer = None
            if mode == "mac":
                j = json.loads(sh(["ip", "-n", f"{self.prefix}-b1", "-j", "link", "show", "b0"]))
                peer = j[0]["address"]
            self.tpmd = testpmd.Testpmd(self.fw, rx_iface="fc0", tx_iface="fb1",
                                        main_core=GEN_CORE, fwd_core=FWD_CORE, mode=mode,
                                        eth_peer=peer, extra_args=self.tpmd_extra)
            self.tpmd.start()
        else:
            self.sysctl(self.fw, "net.ipv4.ip_forward", 0)
            path, cfg = fwd_config(fwd)
            self.ctl_sock = cfg["control"]["socket"]
            logf = open(os.path.join(self.work, f"{fwd}.log"), "w")
            env = None
            if "dpdk" in cfg:
                env = self.dpdk_env(cfg)
            self.fwd_proc = self.start(self.nsx(self.fw, os.path.join(BIN, "ecmpfwd"), "run",
                                                "--config", path), stdout=logf, stderr=logf,
                                       env=env)
            deadline = time.time() + 15
            while time.time() < deadline:
                if "forwarding on" in open(logf.name).read():
                    break
                if self.fwd_proc.poll() is not None:
                    break
                time.sleep(0.1)
            if "forwarding on" not in open(logf.name).read():
                raise RuntimeError(f"ecmpfwd did not start:\n{open(logf.name).read()}")
            if dynamic:
                self.ctl_route(dynamic)

    def dpdk_env(self, cfg):
        """The environment of ecmpfwd on DPDK ports (as testpmd.py and labdemo.py run it):
        net_af_xdp loads its XDP program through libxdp, which needs a bpffs (a private one,
        mounted once per bench) and, in a namespace, no dispatcher (it cannot load here)."""
        if self.bpffs is None:
            path = os.path.join(self.work, "bpffs")
            os.mkdir(path)
            sh(["mount", "-t", "bpf", "bpf", path])
            self.bpffs = path
        # DPDK keeps its runtime files under this directory; teardown removes it.
        self.dpdk_runtime = os.path.join("/var/run/dpdk", cfg["dpdk"]["file_prefix"])
        return dict(os.environ, LIBXDP_BPFFS=self.bpffs, LIBXDP_SKIP_DISPATCHER="1")

    def start_xdp_fib(self):
        """Attaches the XDP baseline to fc0 (ecmpfwd-pktgen xdp-fib holds it). A redirect into a
        veth needs NAPI on its peer: GRO on every b0 gives it one whichever sink runs there."""
        for i in range(1, NBACK + 1):
            sh(self.nsx(f"{self.prefix}-b{i}", "ethtool", "-K", "b0", "gro", "on"))
        out = os.path.join(self.work, "xdp-fib.json")
        ready = out + ".ready"
        p = self.start(self.nsx(self.fw, os.path.join(BIN, "ecmpfwd-pktgen"), "xdp-fib",
                                "--iface", "fc0", "--out", out, "--ready-file", ready),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.xdp_fib = (p, out)
        deadline = time.time() + 10
        while not os.path.exists(ready):
            if time.time() > deadline or p.poll() is not None:
                raise RuntimeError("the XDP FIB program did not attach: "
                                   + (p.stderr.read().decode() if p.poll() is not None else "timeout"))
            time.sleep(0.02)

    def stop_xdp_fib(self):
        """Detaches the XDP baseline; returns its counters (None if it was not running)."""
        if self.xdp_fib is None:
            return None
        p, out = self.xdp_fib
        self.xdp_fib = None
        self.stop(p, signal.SIGINT)
        for i in range(1, NBACK + 1):
            subprocess.run(self.nsx(f"{self.prefix}-b{i}", "ethtool", "-K", "b0", "gro", "off"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with open(out) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def teardown(self, fwd):
        if fwd == "xdp-fib":
            c = self.stop_xdp_fib()
            log(f"  xdp-fib counters: {c}")
        if fwd.startswith("kernel") or fwd == "xdp-fib":
            subprocess.run(["ip", "-n", self.fw, "route", "del", f"{VIP}/32"],
                           stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "-n", self.fw, "nexthop", "flush"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.rps(0)
            self.restore_sysctls()
        elif fwd.startswith("testpmd"):
            if self.tpmd is not None:
                self.tpmd.stop()
                self.tpmd = None
            self.restore_sysctls()
            self.no_xdp()
        elif self.fwd_proc is not None:
            # DPDK's shutdown (devices closed, pools checked) takes longer than AF_XDP's
            self.stop(self.fwd_proc, timeout=15 if self.dpdk_runtime else 5)
            self.fwd_proc = None
            self.no_xdp()  # a clean exit detaches; make sure for the next kernel round
            if self.dpdk_runtime is not None:
                subprocess.run(["rm", "-rf", self.dpdk_runtime])
                self.dpdk_runtime = None
            time.sleep(0.3)  # AF_XDP re-bind right after close can give a transient EBUSY

    def ctl(self, *args):
        opts = [a for a in args if a == "--json"]
        rest = [a for a in args if a != "--json"]
        return sh([os.path.join(BIN, "ecmpctl"), "--socket", self.ctl_sock, *opts, *rest])

    def ctl_route(self, hops):
        self.ctl("route", "add", f"{VIP}/32", "via", *hops)

    # ---- throughput ------------------------------------------------------------------------
    @staticmethod
    def flow_shape(flows):
        """(vary, source address): up to 64512 flows differ in the source port alone (one client
        address, as one client would); beyond, `grid` crosses every source port with the fewest
        source addresses from 198.18.5.0 up (16 for 1M flows), inside 198.18.0.0/15 and clear of
        the lab's own addresses."""
        return ("port", "198.18.0.1") if flows <= MAX_PORT_FLOWS else ("grid", "198.18.5.0")

    def send(self, count, size, flows, seed, rate=0, src=None):
        vary, shape_src = self.flow_shape(flows)
        src = src or shape_src
        cmd = self.nsx(self.cl, "taskset", "-c", str(GEN_CORE), os.path.join(BIN, "ecmpfwd-pktgen"),
                       "send", "--driver", "afxdp", "--iface", "cl0", "--dst-mac", self.fc_mac,
                       "--vary", vary, "--src-ip", src, "--dst-ip", VIP, "--count", str(count),
                       "--size", str(size), "--flows", str(flows), "--seed", str(seed),
                       "--duration", "60", "--rate", str(rate))
        p = self.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        self.procs.remove(p)
        if p.returncode != 0:
            raise RuntimeError(f"pktgen send failed: {err.strip()}")
        return json.loads(out.strip().splitlines()[-1])

    def testpmd_stats(self):
        return self.tpmd.port_stats() if self.tpmd is not None else None

    def throughput_run(self, fwd, size, flows, seed, count=None):
        # Cheap sinks, the same for every forwarder: the backends' stacks would otherwise run on
        # the forwarder's core (veth delivers in the sender's context) and set the rate.
        sinks = self.start_sinks(f"tp-{fwd}-{size}-{flows}-{seed}", driver="xdp-drop")
        try:
            tp0 = self.testpmd_stats()
            st0 = self.ecmp_stats()
            c0 = self.cpu_times()
            gen = self.send(count or self.args.count, size, flows, seed)
            c1 = self.cpu_times()
            time.sleep(0.2)  # in-flight packets land
            st1 = self.ecmp_stats()
            tp1 = self.testpmd_stats()
        finally:
            reports = self.stop_sinks(sinks)
        delivered = sum(r["packets"] for r in reports.values())
        delivered_bytes = sum(r["bytes"] for r in reports.values())
        hz = os.sysconf("SC_CLK_TCK")
        busy = {}
        busy_s = {}
        for cpu in sorted(c1):
            tot = c1[cpu][0] - c0[cpu][0]
            idle = c1[cpu][1] - c0[cpu][1]
            busy[cpu] = round(1 - idle / tot, 3) if tot > 0 else 0.0
            busy_s[cpu] = (tot - idle) / hz
        row = {
            "forwarder": fwd, "size": size, "flows": flows, "seed": seed,
            "vary": self.flow_shape(flows)[0],
            "offered": gen["packets"], "send_seconds": round(gen["seconds"], 4),
            "offered_mpps": round(gen["mpps"], 3), "delivered": delivered,
            "mpps": round(delivered / gen["seconds"] / 1e6, 3) if gen["seconds"] > 0 else 0.0,
            "drops": gen["packets"] - delivered,
            # frame length as the backends saw it: proves the VXLAN variant encapsulated (+50 B)
            "b0_bytes_per_pkt": round(delivered_bytes / delivered, 1) if delivered else None,
            # what else reached the backends (the kernel's own chatter), left to their stacks
            "b0_other_packets": sum(r["ignored"] for r in reports.values()),
            "cpu_busy": busy,
            "ns_per_pkt_core1": round(busy_s.get(FWD_CORE, 0) * 1e9 / delivered, 1) if delivered else None,
            "ns_per_pkt_all": round(sum(busy_s.values()) * 1e9 / delivered, 1) if delivered else None,
        }
        if st0 is not None:
            def port(st, i, k):
                return st["ports"][i][k]
            drops0 = {k: v for k, v in st0["drops"]}
            row["ecmpfwd_counters"] = {
                "rx_fc0": port(st1, 0, "rx_packets") - port(st0, 0, "rx_packets"),
                "tx_backends": sum(port(st1, i, "tx_packets") - port(st0, i, "tx_packets")
                                   for i in range(1, len(st1["ports"]))),
                "drops": {k: v - drops0.get(k, 0) for k, v in st1["drops"] if v - drops0.get(k, 0)},
            }
        if tp0 is not None:
            row["testpmd_counters"] = {
                "rx_fc0": tp1[0]["rx_packets"] - tp0[0]["rx_packets"],
                "rx_missed_fc0": tp1[0]["rx_missed"] - tp0[0]["rx_missed"],
                "tx_fb1": tp1[1]["tx_packets"] - tp0[1]["tx_packets"],
                "tx_errors_fb1": tp1[1]["tx_errors"] - tp0[1]["tx_errors"],
            }
        log(f"  {fwd:14} size {size:4} flows {flows:7}: {row['mpps']} Mpps delivered, "
            f"offered {row['offered_mpps']}, drops {row['drops']}, busy {busy}")
        return row

    def warm_up(self, fwd, size, flows, seed):
        """ecmpfwd keeps per-flow state (its flow cache): one paced packet per flow first, so a
        run measures steady state rather than a first packet per flow. The kernel's and
        testpmd's forwarding keep none, so they need none."""
        if fwd.startswith("ecmpfwd") and (flows, seed) not in self.warm:
            # the flows of a count and seed are the same at every size: once per start is enough
            self.send(flows, size, flows, seed, rate=WARMUP_PPS)
            self.warm.add((flows, seed))

    def veth_scaling(self):
        """ecmpfwd at the most flows (66 B, rewrite), a flow cache large enough for them."""
        out = []
        for flows in self.args.veth_flows:
            fwd = "ecmpfwd-big"
            self.setup(fwd)
            try:
                for rep in range(1, self.args.big_reps + 1):
                    self.warm_up(fwd, 66, flows, seed=rep)
                    r = self.throughput_run(fwd, 66, flows, seed=rep, count=flows)
                    r["rep"] = rep
                    out.append(r)
            finally:
                self.teardown(fwd)
        return out

    def throughput(self):
        rows = []
        for rep in range(1, self.args.reps + 1):
            fw = self.args.forwarders
            order = fw[(rep - 1) % len(fw):] + fw[:(rep - 1) % len(fw)]
            log(f"repetition {rep}/{self.args.reps}, order {order}")
            for fwd in order:
                self.setup(fwd)
                try:
                    for size in self.args.sizes:
                        for flows in self.args.flows:
                            self.warm_up(fwd, size, flows, seed=rep)
                            r = self.throughput_run(fwd, size, flows, seed=rep)
                            r["rep"] = rep
                            if self.args.lat_count:
                                r["latency"] = self.latency_run(fwd, size, flows, seed=rep)
                                log(f"    latency: {r['latency']}")
                            rows.append(r)
                finally:
                    self.teardown(fwd)
        return rows

    # ---- sinks and latency -----------------------------------------------------------------
    def start_sinks(self, name, driver="afpacket"):
        """An ecmpfwd-pktgen sink on every backend's b0, ready to count; returns them. AF_PACKET
        (every packet inspected: flows, latency) for the latency and resilience runs; `xdp-drop`
        (totals, counted and dropped in XDP) for throughput."""
        sinks = []
        try:
            for i in range(1, NBACK + 1):
                out = os.path.join(self.work, f"sink-{name}-{i}.json")
                ready = out + ".ready"
                p = self.start(self.nsx(f"{self.prefix}-b{i}", os.path.join(BIN, "ecmpfwd-pktgen"),
                                        "sink", "--driver", driver, "--iface", "b0", "--duration",
                                        "0", "--out", out, "--ready-file", ready),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                sinks.append((i, p, out, ready))
            deadline = time.time() + 10
            while not all(os.path.exists(s[3]) for s in sinks):
                if time.time() > deadline or any(s[1].poll() is not None for s in sinks):
                    raise RuntimeError(f"{driver} sinks did not become ready")
                time.sleep(0.02)
        except BaseException:
            for _, p, _, _ in sinks:
                self.stop(p, signal.SIGINT)
            raise
        return sinks

    def start_drop_sink_on_fc0(self):
        """An XDP drop sink on fc0 itself (the generator's capacity, nothing forwarding)."""
        out = os.path.join(self.work, "sink-fc0.json")
        ready = out + ".ready"
        p = self.start(self.nsx(self.fw, os.path.join(BIN, "ecmpfwd-pktgen"), "sink", "--driver",
                                "xdp-drop", "--iface", "fc0", "--duration", "0", "--out", out,
                                "--ready-file", ready),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not os.path.exists(ready):
            if time.time() > deadline or p.poll() is not None:
                self.stop(p, signal.SIGINT)
                raise RuntimeError("the drop sink on fc0 did not become ready")
            time.sleep(0.02)
        return p, out

    def stop_drop_sink_on_fc0(self, p, path):
        self.stop(p, signal.SIGINT)
        with open(path) as f:
            report = json.load(f)
        os.unlink(path)
        return report

    def stop_sinks(self, sinks):
        """Stops the sinks (SIGINT: each writes its report); returns backend -> report."""
        out = {}
        for i, p, path, _ in sinks:
            self.stop(p, signal.SIGINT)
            out[i] = json.load(open(path))
            os.unlink(path)
        return out

    def latency_run(self, fwd, size, flows, seed):
        """One-way latency (generator's transmit stamp in the payload to the sink's receipt) at
        a fixed offered rate far below every forwarder's capacity, so it measures the forwarding
        path, not a queue that a saturating run builds; the flows are the throughput run's, just
        sent, so caches hold them as in steady state. The four sinks' histograms are merged
        bucket by bucket (they share the generator's clock: one host)."""
        sinks = self.start_sinks(f"lat-{fwd}-{size}-{flows}-{seed}")
        try:
            gen = self.send(self.args.lat_count, size, flows, seed, rate=self.args.lat_rate)
            time.sleep(0.2)
        finally:
            reports = self.stop_sinks(sinks)
        buckets = [b for r in reports.values() if r.get("latency_ns")
                   for b in r["latency_ns"]["buckets"]]
        return {"offered": gen["packets"],
                "received": sum(r["packets"] for r in reports.values()),
                "reordered": sum(r["reordered"] for r in reports.values()),
                "latency_us": percentiles_us(buckets)}

    # ---- resilience ------------------------------------------------------------------------
    def round(self, name, seed=7, src=None):
        """Sends the resilience flows of `seed` (from `src`) once; returns flow id -> set of
        backends."""
        sinks = self.start_sinks(name)
        n = self.args.res_flows
        try:
            self.send(n * self.args.res_pkts, 128, n, seed=seed, rate=self.args.res_rate, src=src)
            time.sleep(0.3)
        finally:
            reports = self.stop_sinks(sinks)
        where = {}
        for i, rep in reports.items():
            for fid, cnt in rep["flows"].items():
                if cnt:
                    where.setdefault(int(fid), set()).add(i)
        return where

    @staticmethod
    def compare(base, now, failed=None):
        moved = [f for f in base if now.get(f) != base[f]]
        return {
            "moved": len(moved),
            "collateral": sum(1 for f in moved if failed is None or base[f] != {failed}),
            "lost": sum(1 for f in base if f not in now),
            "split": sum(1 for f in now.values() if len(f) > 1),
        }

    def set_hops(self, fwd, backends):
        """Makes the VIP's next hops exactly `backends` (indices), the forwarder's own way."""
        if fwd == "kernel-res":
            sh(["ip", "-n", self.fw, "nexthop", "replace", "id", "100", *self.res_group(backends)])
        elif fwd == "kernel-mp":
            sh(self.mp_route([f"198.18.{i}.1" for i in backends]))
        else:
            self.ctl_route([f"198.18.{i}.1" for i in backends])
        time.sleep(0.2)

    def fresh_on(self, name, backend, seed):
        """Sends flows never seen before (another source address, so no 5-tuple can repeat an
        established flow's); returns (flows seen, how many landed on `backend`)."""
        fresh = self.round(name, seed=seed, src=f"198.18.6.{seed}")
        return len(fresh), sum(1 for v in fresh.values() if backend in v)

    def resilience(self):
        """Per forwarder: 3 hops (b1-b3), add b4, fail b3, b3 returns, drain b2 (ecmpfwd only:
        the kernel has no drain). Every round sends the same flows (seed 7) and finds each flow's
        backend(s) at the sinks; after add and drain, flows never sent before (seeds 8, 9) show
        where new flows go."""
        res = {}
        for fwd in RES_FORWARDERS:
            ecmp = fwd.startswith("ecmpfwd")
            self.setup(fwd, dynamic=[f"198.18.{i}.1" for i in (1, 2, 3)] if ecmp else None)
            try:
                if not ecmp:
                    self.set_hops(fwd, [1, 2, 3])
                base = self.round(f"{fwd}-base")
                r = {"flows": self.args.res_flows, "seen": len(base),
                     "baseline_per_backend": {i: sum(1 for v in base.values() if v == {i})
                                              for i in range(1, NBACK + 1)}}
                ev = {}
                self.set_hops(fwd, [1, 2, 3, 4])
                added = self.round(f"{fwd}-add")
                ev["add"] = self.compare(base, added)
                seen, on4 = self.fresh_on(f"{fwd}-add-fresh", 4, seed=8)
                ev["add"].update(fresh_flows=seen, fresh_on_new_hop=on4)
                self.set_hops(fwd, [1, 2, 4])
                failed = self.round(f"{fwd}-fail")
                ev["fail"] = self.compare(added, failed, failed=3)
                ev["fail"]["on_failed_hop"] = sum(1 for v in added.values() if v == {3})
                self.set_hops(fwd, [1, 2, 3, 4])
                back = self.round(f"{fwd}-restore")
                ev["restore"] = self.compare(failed, back)
                ev["restore"]["vs_before_fail"] = self.compare(added, back)["moved"]
                if ecmp:
                    self.ctl("drain", "198.18.2.1")
                    time.sleep(0.2)
                    drained = self.round(f"{fwd}-drain")
                    ev["drain"] = self.compare(back, drained)
                    ev["drain"]["still_on_drained"] = sum(1 for v in drained.values() if 2 in v)
                    seen, on2 = self.fresh_on(f"{fwd}-drain-fresh", 2, seed=9)
                    ev["drain"].update(fresh_flows=seen, fresh_on_drained=on2)
                    # the table after the rounds (members' buckets), to tell a table that gave
                    # buckets back from flows that stay where the flow cache pinned them
                    route = json.loads(self.ctl("--json", "route", f"{VIP}/32"))["result"][0]
                    r["ecmpfwd_members_after"] = {
                        m["addr"]: {"buckets": m["buckets"], "state": m["state"]}
                        for m in route["members"]}
                else:
                    ev["drain"] = None
                r["events"] = ev
                res[fwd] = r
                log(f"  resilience {fwd}: {json.dumps(ev)}")
            finally:
                self.teardown(fwd)
        return res

    # ---- cleanup ---------------------------------------------------------------------------
    def cleanup(self):
        if self.tpmd is not None:
            try:
                self.tpmd.stop()
            except Exception as e:  # keep cleaning up whatever else is left
                log(f"cleanup: {e}")
            self.tpmd = None
        for p in list(self.procs):
            try:
                self.stop(p, timeout=3)
            except Exception as e:  # keep cleaning up whatever else is left
                log(f"cleanup: {e}")
        try:
            self.restore_sysctls()
        except Exception as e:
            log(f"cleanup: {e}")
        self.lab_down()
        if self.dpdk_runtime is not None:
            subprocess.run(["rm", "-rf", self.dpdk_runtime])
        if self.bpffs is not None:
            subprocess.run(["umount", self.bpffs], stderr=subprocess.DEVNULL)
            self.bpffs = None
        subprocess.run(["rm", "-rf", self.work])


def percentiles_us(buckets):
    """p50/p90/p99/p999/max in µs from merged hdrhistogram buckets [(highest equivalent value
    in ns, count)], or None without samples. A quantile is the first bucket whose cumulative
    count reaches ceil(q * total), as hdrhistogram's value_at_quantile picks it."""
    merged = {}
    for v, c in buckets:
        merged[v] = merged.get(v, 0) + c
    items = sorted(merged.items())
    total = sum(c for _, c in items)
    if not total:
        return None
    out = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        target, cum = max(1, math.ceil(q * total)), 0
        for v, c in items:
            cum += c
            if cum >= target:
                out[name] = round(v / 1000, 2)
                break
    out["max"] = round(items[-1][0] / 1000, 2)
    return out


def aggregate(values):
    """{"median", "min", "max"} of the repetitions' values, None without any."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def run_latency(run, quantile):
    """A throughput run's latency quantile in µs, None when it has none."""
    lat = (run.get("latency") or {}).get("latency_us")
    return lat.get(quantile) if lat else None


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["size"], r["flows"], r["forwarder"]), []).append(r)
    out = []
    for (size, flows, fwd), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], FORWARDERS.index(kv[0][2]))):
        def agg(key, f=lambda r, k: r[k]):
            return aggregate([f(r, key) for r in rs if f(r, key) is not None])
        out.append({
            "size": size, "flows": flows, "forwarder": fwd, "reps": len(rs),
            "mpps": agg("mpps"), "offered_mpps": agg("offered_mpps"), "drops": agg("drops"),
            "cpu0_busy": agg(0, lambda r, k: r["cpu_busy"].get(k, r["cpu_busy"].get(str(k)))),
            "cpu1_busy": agg(1, lambda r, k: r["cpu_busy"].get(k, r["cpu_busy"].get(str(k)))),
            "ns_per_pkt_core1": agg("ns_per_pkt_core1"), "ns_per_pkt_all": agg("ns_per_pkt_all"),
            "b0_bytes_per_pkt": agg("b0_bytes_per_pkt"),
            "latency_us": ({q: agg(q, run_latency) for q in ("p50", "p90", "p99", "p999", "max")}
                           if any(run_latency(r, "p50") is not None for r in rs) else None),
            "latency_received": agg("x", lambda r, k: round(r["latency"]["received"] / r["latency"]["offered"], 3)
                                    if r.get("latency") and r["latency"]["offered"] else None),
            # share of the offered packets ecmpfwd's fc0 port received (the rest never left
            # the veth: its AF_XDP rx ring or fill ring was full)
            "ecmpfwd_rx_share": agg("x", lambda r, k: round(r["ecmpfwd_counters"]["rx_fc0"] / r["offered"], 3)
                                    if "ecmpfwd_counters" in r and r["offered"] else None),
            "testpmd_rx_share": agg("x", lambda r, k: round(r["testpmd_counters"]["rx_fc0"] / r["offered"], 3)
                                    if "testpmd_counters" in r and r["offered"] else None),
        })
    return out


def fmt(a, nd=3):
    if a is None:
        return "n/a"
    m = a["median"]
    if nd == 0:
        return f"{m:.0f} [{a['min']:.0f}-{a['max']:.0f}]"
    return f"{m:.{nd}f} [{a['min']:.{nd}f}-{a['max']:.{nd}f}]"


def cell_name(size, flows):
    return f"{size} B, {flows_label(flows)} flows"


def flows_label(n):
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


def goals(summary, res):
    """The issue's goals, each with the measured figures and met / not met."""
    by = {(s["size"], s["flows"], s["forwarder"]): s for s in summary}
    cells = sorted({(s["size"], s["flows"]) for s in summary})
    rows = []
    for size, flows in cells:
        e = by.get((size, flows, "ecmpfwd"))
        if not e or not e["mpps"]:
            continue
        em = e["mpps"]["median"]
        for mode in ("io", "mac"):
            t = by.get((size, flows, f"testpmd-{mode}"))
            if t and t["mpps"]:
                ratio = em / t["mpps"]["median"] if t["mpps"]["median"] else float("inf")
                rows.append((f"ecmpfwd >= 1.0x testpmd {mode} ({cell_name(size, flows)})"
                             + ("" if mode == "io" else ": context, not a goal"),
                             f"{em:.3f} vs {t['mpps']['median']:.3f} Mpps = {ratio:.2f}x",
                             ("met" if ratio >= 1.0 else "not met") if mode == "io" else
                             ("at least as fast" if ratio >= 1.0 else "slower")))
        kern = [(s["forwarder"], s["mpps"]["median"]) for k, s in by.items()
                if k[:2] == (size, flows) and k[2].startswith("kernel") and s["mpps"]]
        if kern:
            best = max(kern, key=lambda x: x[1])
            ratio = em / best[1] if best[1] else float("inf")
            rows.append((f"ecmpfwd >= 3x kernel, its best variant ({cell_name(size, flows)})",
                         f"{em:.3f} vs {best[1]:.3f} Mpps ({best[0]}) = {ratio:.2f}x",
                         "met" if ratio >= 3.0 else "not met"))
    for fwd, r in res.items():
        if not fwd.startswith("ecmpfwd"):
            continue
        ev = r["events"]
        f = ev["fail"]
        rows.append((f"{fwd}: exactly the failed hop's flows move",
                     f"{f['moved']} moved of {f['on_failed_hop']} on the failed hop, "
                     f"{f['collateral']} others, {f['lost']} lost",
                     "met" if f["collateral"] == 0 and f["lost"] == 0
                     and f["moved"] == f["on_failed_hop"] else "not met"))
        for name in ("add", "drain"):
            if ev.get(name) is not None:
                rows.append((f"{fwd}: 0 established flows move on {name}",
                             f"{ev[name]['moved']} moved, {ev[name]['lost']} lost",
                             "met" if ev[name]["moved"] == 0 and ev[name]["lost"] == 0
                             else "not met"))
    return rows


def markdown(meta, summary, res, scaling=None, plots=(), plot_dir=""):
    L = [f"- command: `{meta['command']}`",
         f"- date: {meta['date']}; commit {meta.get('commit', 'unknown')}; "
         f"wall time {meta['wall_seconds']} s",
         f"- machine: {meta['cpu']} ({meta['cpus']} CPUs), kernel {meta['kernel']}"
         + (f", DPDK {meta['dpdk']}" if meta.get("dpdk") else ""),
         f"- reps: {meta['reps']}, interleaved (each repetition rotates the forwarders' order); "
         f"packets per throughput run: {meta['count']} after a warm-up pass over every flow",
         "- cells: median [min-max] over the repetitions", ""]
    g = goals(summary, res)
    if g:
        L += ["### Goals", "", "| goal | measured | |", "|---|---|---|"]
        L += [f"| {a} | {b} | {c} |" for a, b, c in g]
        L.append("")
    if plots:
        L += ["### Plots", ""] + [f"![{os.path.splitext(os.path.basename(p))[0]}]({plot_dir}{p})"
                                  for p in plots] + [""]
    L += ["### Throughput", "",
          "- generator: ecmpfwd-pktgen, AF_XDP on cl0, pinned to core 0; forwarder under test on "
          "core 1 (ecmpfwd's worker; testpmd's forwarding lcore; the kernel's forwarding runs in "
          "the sender's softirq on core 0, or on core 1 with RPS in the -rps rows)",
          "- delivered = the generator's packets counted (and dropped) by XDP sinks on the 4 backends' b0 (summed); Mpps = delivered / "
          "generator send time; drops = offered - delivered; busy = 1 - idle/total per CPU from "
          "/proc/stat around the generator; ns/pkt = busy CPU time / delivered (core 1 alone, "
          "and all cores incl. the generator)",
          "- kernel forwarding on veth runs inside the generator's transmit, so the generator slows "
          "down to what the kernel forwards: offered = delivered and the kernel rows' drops are ~0 by "
          "construction. ecmpfwd and testpmd take packets from an AF_XDP ring, so the generator runs "
          "free and what they cannot take is dropped before their fc0 port (rx/offered column)",
          "- testpmd-io: DPDK testpmd, io forwarding engine (no header touched), net_af_xdp on fc0 -> "
          "fb1: one backend, no routing, no ECMP: an upper bound for a forwarder on the same I/O path "
          "(scripts/lib/testpmd.py); its main lcore shares core 0 with the generator, blocked on stdin. "
          "The backends' XDP sinks count and drop every tagged frame whatever its destination MAC, "
          "so io (fc0's MAC kept) and mac (rewritten to backend 1's) pay the same at the backend; "
          "testpmd-mac is the like-for-like row (it touches the header as a forwarder must)",
          "- ecmpfwd-dpdk: ecmpfwd (the ecmpfwd row's rewrite, one worker on core 1) on DPDK ports: "
          "net_af_xdp on the same veths instead of ecmpfwd's own AF_XDP sockets "
          "(configs/lab-dpdk-bench.toml, built with the feature dpdk); the EAL's main lcore shares "
          "core 0 with the generator",
          "- flows above 64512 cross every source port with the fewest source addresses "
          "(`ecmpfwd-pktgen --vary grid`); ecmpfwd's flow cache holds "
          f"{meta.get('flow_capacity', 'n/a')} flows",
          "- the sinks count only the generator's tagged packets (the kernel's own ND/MLD on b0 is "
          "passed to the backend's stack and left out), so drops = offered - delivered exactly", "",
          "| size B | flows | forwarder | Mpps delivered | offered Mpps | drops | cpu0 busy | cpu1 busy | ns/pkt core1 | ns/pkt all | rx/offered | B/pkt at b0 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cap = meta.get("generator_capacity") or {}
    bound = [s for s in summary if s["offered_mpps"] and (cap.get(s["size"]) or {}).get(s["flows"])
             and s["offered_mpps"]["median"] >= 0.95 * cap[s["size"]][s["flows"]]["offered_mpps"]
             and s["drops"] is not None and s["drops"]["median"] <= 0.01 * max(1, meta["count"])]
    for s in summary:
        share = s.get("ecmpfwd_rx_share") or s.get("testpmd_rx_share")
        L.append(f"| {s['size']} | {s['flows']} | {s['forwarder']} | {fmt(s['mpps'])} | "
                 f"{fmt(s['offered_mpps'])} | {fmt(s['drops'], 0)} | {fmt(s['cpu0_busy'], 2)} | "
                 f"{fmt(s['cpu1_busy'], 2)} | {fmt(s['ns_per_pkt_core1'], 0)} | {fmt(s['ns_per_pkt_all'], 0)} | "
                 f"{fmt(share)} | {s['b0_bytes_per_pkt']['median'] if s['b0_bytes_per_pkt'] else 'n/a'} |"
                 + (" generator-bound" if s in bound else ""))
    if cap:
        L += [""] + [f"- generator capacity: " + ", ".join(
            f"{size} B / {flows_label(f)} flows {c['offered_mpps']:.3f} Mpps"
            for size, by in sorted(cap.items()) for f, c in sorted(by.items()))
            + "; rows marked generator-bound were offered 95% or more of it and forwarded it all "
            "(within 1%): the generator, not the forwarder, set their rate"]
    cost = meta.get("cost")
    if cost:
        L += [""] + benchcost.markdown(cost["summary"], cost["tsc_hz"], fmt, flows_label,
                                       cost["seconds"])
    if any(s.get("latency_us") for s in summary):
        L += ["", "### Latency", "",
              f"One-way, generator transmit stamp (in the payload) to the sink's receipt, at "
              f"{meta['latency_rate_pps']} packets/s offered ({meta['latency_count']} packets per cell "
              "and repetition, right after the throughput run, same flows); AF_PACKET sinks on the 4 "
              "backends' b0, histograms (hdrhistogram, 3 digits) merged. The sinks back off up to "
              "100 µs when idle and the generator paces in bursts, so small values carry that much "
              "measurement noise, the same for every forwarder. µs, median [min-max] over the repetitions.", "",
              "| size B | flows | forwarder | p50 | p90 | p99 | p99.9 | max | received/offered |",
              "|---|---|---|---|---|---|---|---|---|"]
        for s in summary:
            lat = s.get("latency_us")
            if not lat:
                continue
            L.append(f"| {s['size']} | {s['flows']} | {s['forwarder']} | " + " | ".join(
                fmt(lat[q], 1) for q in ("p50", "p90", "p99", "p999", "max"))
                + f" | {fmt(s.get('latency_received'))} |")
    if res:
        L += ["", "### Resilience", "",
              f"{meta['resilience']['flows']} flows, {meta['resilience']['packets_per_flow']} packets "
              "each per round, the same flows every round; AF_PACKET sinks on every backend tell "
              "where each flow went. Sequence: backends 1-3; add 4; fail 3; 3 returns; drain 2 "
              "(ecmpfwd only: the kernel has no drain). moved = flows whose backend differs from the "
              "round before; collateral = moved flows that were not on the failed hop; fresh = flows "
              "never sent before, sent after the change: where new flows go. kernel-res is a "
              "resilient nexthop group (256 buckets) with idle_timer 0, i.e. it rebalances at once; "
              "with a longer idle timer it would keep busy buckets, but the flows here idle between "
              "rounds, and a new hop would wait for idle buckets.", "",
              "| forwarder | seen | fail: on failed hop | fail: moved | fail: collateral | fail: lost | "
              "add: moved | add: fresh on new hop | restore: moved | drain: moved | drain: fresh on drained |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for fwd, r in res.items():
            ev = r["events"]
            d = ev.get("drain")
            a = ev["add"]
            L.append(f"| {fwd} | {r['seen']} | {ev['fail']['on_failed_hop']} | {ev['fail']['moved']} | "
                     f"{ev['fail']['collateral']} | {ev['fail']['lost']} | {a['moved']} | "
                     f"{a['fresh_on_new_hop']}/{a['fresh_flows']} | {ev['restore']['moved']} | "
                     f"{d['moved'] if d else 'n/a'} | "
                     f"{str(d['fresh_on_drained']) + '/' + str(d['fresh_flows']) if d else 'n/a'} |")
        notes = [f"{fwd}: " + ", ".join(f"{a} {m['buckets']} ({m['state']})" for a, m in
                                        r["ecmpfwd_members_after"].items())
                 for fwd, r in res.items() if r.get("ecmpfwd_members_after")]
        if notes:
            L += ["", "ecmpfwd's tables after the rounds (buckets per hop): " + "; ".join(notes)
                  + ". Established flows stay where ecmpfwd's flow cache pinned them, so a hop that "
                  "is added or returns gets buckets for new flows (auto-recovery: its own back; "
                  "manual: only after `ecmpctl clear`; maglev: its share), and the flows that moved "
                  "away on failure stay moved."]
    if scaling:
        L += ["", "### Scaling", ""]
        vf = scaling.get("veth_flows")
        if vf:
            L += ["ecmpfwd on the veth lab (66 B, rewrite) against flow count: the 1k..1M rows are "
                  "the throughput table's; 10M is an extra run (" + scaling.get("veth_10m_note", "") + ").", "",
                  "| flows | Mpps delivered | reps |", "|---|---|---|"]
            L += [f"| {v['flows']} | {fmt(v['mpps'])} | {v['reps']} |" for v in vf]
            L.append("")
        if scaling.get("markdown"):
            # benchscale's sections sit under this one
            L.append(scaling["markdown"].replace("### ", "#### "))
    return "\n".join(L) + "\n"


RESULTS_MD = os.path.join(ROOT, "benches", "RESULTS.md")
SECTION_BEGIN = "<!-- scripts/bench-veth: begin (generated; edits here are overwritten) -->"
SECTION_END = "<!-- scripts/bench-veth: end -->"


def update_results_md(body, path=RESULTS_MD):
    """Replaces the generated section of benches/RESULTS.md (appends it the first time)."""
    text = open(path).read()
    section = f"{SECTION_BEGIN}\n## Side by side on the veth lab (`scripts/bench-veth`)\n\n{body}{SECTION_END}\n"
    if SECTION_BEGIN in text and SECTION_END in text:
        a = text.index(SECTION_BEGIN)
        b = text.index(SECTION_END) + len(SECTION_END)
        text = text[:a] + section.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(path, "w").write(text)


def veth_flow_rows(summary, big_runs):
    """ecmpfwd's 66 B Mpps against flows: the throughput table's cells, then the big runs."""
    out = [{"flows": s["flows"], "forwarder": "ecmpfwd", "size": 66, "mpps": s["mpps"],
            "reps": s["reps"]}
           for s in summary if s["forwarder"] == "ecmpfwd" and s["size"] == 66 and s["mpps"]]
    by = {}
    for r in big_runs:
        by.setdefault(r["flows"], []).append(r["mpps"])
    for flows, v in sorted(by.items()):
        out.append({"flows": flows, "forwarder": "ecmpfwd", "size": 66, "reps": len(v),
                    "mpps": aggregate(v)})
    return sorted(out, key=lambda r: r["flows"])


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 rep, fewer packets, no 10M-flow veth run; writes no RESULTS.md")
    ap.add_argument("--count", type=int, help="packets per throughput run (default 1M, quick 200k)")
    ap.add_argument("--flows", type=lambda s: [int(x) for x in s.split(",")],
                    help="flow counts, comma-separated (default 1000,100000,1000000)")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[66, 512])
    ap.add_argument("--lat-count", type=int,
                    help="packets per latency run (default 30000, quick 10000; 0: no latency)")
    ap.add_argument("--lat-rate", type=int, default=100_000, help="latency runs' offered packets/s")
    ap.add_argument("--veth-flows", type=lambda s: [int(x) for x in s.split(",") if x],
                    help="extra ecmpfwd-only veth runs at these flow counts (default 10000000; "
                         "quick none)")
    ap.add_argument("--no-resilience", action="store_true")
    ap.add_argument("--no-scaling", action="store_true", help="no in-process scaling sweep")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--forwarders", type=lambda s: s.split(","), default=FORWARDERS,
                    help="comma-separated subset of " + ",".join(FORWARDERS))
    ap.add_argument("--prefix", default=f"bv{os.getpid()}")
    ap.add_argument("--outdir", default=os.path.join(ROOT, "benches", "veth"))
    ap.add_argument("--plotdir", default=os.path.join(ROOT, "benches", "plots"))
    ap.add_argument("--results-md", default=None,
                    help="file whose generated section to update (default benches/RESULTS.md; "
                         "none with --quick)")
    ap.add_argument("--bin-dir", default=BIN, help="where the ecmpfwd binaries are (default target/release)")
    ap.add_argument("--res-flows", type=int, default=1000, help="flows of the resilience rounds")
    ap.add_argument("--no-cost", action="store_true", help="no cycles-per-packet runs")
    ap.add_argument("--cost-rates", type=lambda s: [int(x) for x in s.split(",")],
                    default=[100_000, 300_000, 0],
                    help="offered packets/s of the cycles-per-packet runs (0: the generator's max)")
    ap.add_argument("--cost-seconds", type=int, help="seconds per fixed-rate cost run (default 3, quick 1)")
    ap.add_argument("--cost-flows", type=lambda s: [int(x) for x in s.split(",")],
                    help="flow counts of the cost runs (default 1000,1000000; quick: --flows)")
    ap.add_argument("--cost-forwarders", type=lambda s: s.split(","),
                    default=benchcost.DEFAULT_FORWARDERS,
                    help="forwarders of the cost runs (default " + ",".join(benchcost.DEFAULT_FORWARDERS) + ")")
    ap.add_argument("--no-capacity", action="store_true", help="do not measure the generator alone")
    ap.add_argument("--command", help=argparse.SUPPRESS)
    args = ap.parse_args()
    BIN = os.path.abspath(args.bin_dir)
    args.reps = args.reps or (1 if args.quick else 3)
    args.count = args.count or (200_000 if args.quick else 1_000_000)
    args.flows = args.flows or [1000, 100_000, 1_000_000]
    if args.lat_count is None:
        args.lat_count = 10_000 if args.quick else 30_000
    if args.veth_flows is None:
        args.veth_flows = [] if args.quick else [10_000_000]
    args.big_reps = 1
    args.cost_seconds = args.cost_seconds or (1 if args.quick else 3)
    args.cost_flows = args.cost_flows or (args.flows if args.quick else [1000, 1_000_000])
    unknown_cost = [f for f in args.cost_forwarders if f not in benchcost.METHODS]
    if unknown_cost:
        sys.exit(f"error: no cost method for {unknown_cost}; known: {list(benchcost.METHODS)}")
    if args.results_md is None and not args.quick:
        args.results_md = RESULTS_MD
    unknown = [f for f in args.forwarders if f not in FORWARDERS]
    if unknown:
        sys.exit(f"error: unknown forwarder(s) {unknown}; known: {FORWARDERS}")
    if max(args.flows + args.veth_flows) > MAX_FLOWS:
        sys.exit(f"error: at most {MAX_FLOWS} flows")
    for fwd in ("ecmpfwd", "ecmpfwd-vxlan", "ecmpfwd-dpdk"):
        if fwd in args.forwarders + args.cost_forwarders:
            check_fits(fwd, max(args.flows), "--flows")
    if args.veth_flows:
        check_fits("ecmpfwd-big", max(args.veth_flows), "--veth-flows")
    args.res_pkts, args.res_rate = 3, 20000
    if os.geteuid() != 0:
        sys.exit("error: needs root")

    def on_signal(signum, _frame):
        raise Interrupted(f"signal {signum}")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.time()
    now = datetime.datetime.now(datetime.timezone.utc)
    lscpu = sh(["lscpu"], check=False)
    m = re.search(r"^Model name:\s*(.*)$", lscpu, re.M)
    dpdk = sh(["dpkg-query", "-W", "-f=${Version}", "dpdk-dev"], check=False).strip()
    meta = {
        "command": args.command or shlex.join(sys.argv),
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": benchscale.git_commit(),
        "kernel": platform.release(), "cpu": m.group(1).strip() if m else "unknown",
        "cpus": os.cpu_count(), "dpdk": dpdk or None, "reps": args.reps, "count": args.count,
        "sizes": args.sizes, "flows": args.flows, "forwarders": args.forwarders,
        "latency_rate_pps": args.lat_rate, "latency_count": args.lat_count,
        "resilience": {"flows": args.res_flows, "packets_per_flow": args.res_pkts,
                       "rate_pps": args.res_rate, "sink": "ecmpfwd-pktgen sink AF_PACKET on b0",
                       "forwarders": RES_FORWARDERS},
    }
    b = Bench(args)
    rows, res, big, scaling = [], {}, [], None
    try:
        b.lab_up()
        meta["flow_capacity"] = flow_capacity("ecmpfwd")
        if not args.no_capacity:
            log("generator capacity: into an XDP drop sink on fc0")
            meta["generator_capacity"] = benchcost.generator_capacity(
                b, args.sizes, args.flows, args.count, GEN_CORE)
            log(f"  {meta['generator_capacity']}")
        rows = b.throughput()
        if not args.no_cost:
            log("cycles per forwarded packet")
            cost_rows = benchcost.run(b, args, log, GEN_CORE, FWD_CORE)
            hz = benchcost.finish(cost_rows)
            meta["cost"] = {"rows": cost_rows, "tsc_hz": hz, "seconds": args.cost_seconds,
                            "rates": args.cost_rates, "flows": args.cost_flows,
                            "summary": benchcost.summarize(cost_rows, aggregate)}
        if not args.no_resilience:
            log("resilience")
            res = b.resilience()
        if args.veth_flows:
            log(f"veth scaling: ecmpfwd at {args.veth_flows} flows")
            big = b.veth_scaling()
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    summary = summarize(rows)
    if not args.no_scaling:
        log("scaling: ecmpfwd bench in-process (memory ports)")
        scaling = benchscale.run_scaling(BIN, core=FWD_CORE, quick=args.quick, log=log)
        scaling["markdown"] = benchscale.markdown(scaling)
    veth_rows = veth_flow_rows(summary, big)
    if veth_rows:
        scaling = scaling or {}
        scaling["veth_flows"] = veth_rows
        scaling["veth_10m_note"] = (f"{args.big_reps} repetition(s), a warm-up pass then one packet "
                                    "per flow, flow cache sized for them")
    meta["wall_seconds"] = round(time.time() - t0, 1)
    results = {"meta": meta, "summary": summary, "runs": rows, "resilience": res,
               "scaling": scaling, "veth_big_runs": big}
    plots = []
    if not args.no_plots:
        import benchplots
        os.makedirs(args.plotdir, exist_ok=True)
        plots = benchplots.make_plots(results, args.plotdir, os.path.join(BIN, "ecmp-plot"))
    os.makedirs(args.outdir, exist_ok=True)
    stem = os.path.join(args.outdir, f"results-{now.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}")
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=1)
    rel = os.path.relpath(args.plotdir, args.outdir) + "/"
    with open(stem + ".md", "w") as f:
        f.write(f"# ecmpfwd side-by-side veth bench, {meta['date']}\n\n"
                + markdown(meta, summary, res, scaling, plots, rel))
    if args.results_md:
        rel = os.path.relpath(args.plotdir, os.path.dirname(os.path.abspath(args.results_md))) + "/"
        update_results_md(markdown(meta, summary, res, scaling, plots, rel), args.results_md)
        log(f"updated {args.results_md}")
    print(open(stem + ".md").read())
    log(f"wrote {stem}.md and {stem}.json ({meta['wall_seconds']} s)")


if __name__ == "__main__":
    main()
