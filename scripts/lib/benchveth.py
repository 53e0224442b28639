#!/usr/bin/env python3
"""Side-by-side veth benchmark driver (scripts/bench-veth runs it; stdlib only, needs root).

One lab (scripts/lab, 4 backends). Forwarders compared, interleaved within every repetition:
  kernel-res   Linux forwarding, resilient nexthop group of 4 (256 buckets, idle_timer 0)
  kernel-mp    Linux forwarding, plain multipath route
  (both kernel variants hash L4: fib_multipath_hash_policy=1; on veth the forwarding runs in the
  sender's softirq, i.e. on the generator's core 0; the -rps variants steer it to core 1 with RPS)
  ecmpfwd      configs/lab-afxdp.toml (MAC rewrite), one worker on core 1
  ecmpfwd-vxlan  the same with every VIP next hop encapsulating in VXLAN
Throughput: ecmpfwd-pktgen (AF_XDP, core 0) sends a fixed count; delivered = rx packets counted
on the backends' b0 (summed deltas), Mpps = delivered / the generator's send time, CPU busy per
core from /proc/stat deltas around the generator. Resilience: 1000 tagged flows, AF_PACKET sinks
on every b0, how many flows change backend when a hop fails, returns and is drained.
Everything started is stopped by PID; the lab is torn down and sysctls restored on the way out.
"""

import argparse
import datetime
import json
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")
VIP = "198.19.0.1"
NBACK = 4
# -rps: the kernel's forwarding moved off the generator's core onto core 1 by RPS on fc0
FORWARDERS = ["kernel-res", "kernel-mp", "kernel-res-rps", "kernel-mp-rps", "ecmpfwd",
              "ecmpfwd-vxlan"]
# core of the generator; ecmpfwd's worker is on core 1 (configs/lab-afxdp.toml)
GEN_CORE = 0
FWD_CORE = 1
# distinct source ports ecmpfwd-pktgen can draw (1024..=65535)
MAX_PORT_FLOWS = 64512
# distinct IPv4 sources from 198.18.5.0 to the end of 198.18.0.0/15
MAX_ADDR_FLOWS = (1 << 17) - 5 * 256


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived: unwind through every cleanup."""


def log(msg):
    print(f"[bench-veth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
        self.fc_mac = None

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

    def b0_rx(self):
        """(packets, bytes) received on every backend's b0, summed."""
        pkts = byts = 0
        for i in range(1, NBACK + 1):
            j = json.loads(sh(["ip", "-n", f"{self.prefix}-b{i}", "-s", "-j", "link", "show", "b0"]))
            pkts += j[0]["stats64"]["rx"]["packets"]
            byts += j[0]["stats64"]["rx"]["bytes"]
        return pkts, byts

    @staticmethod
    def cpu_times():
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                m = re.match(r"cpu(\d+)\s+(.*)", line)
                if m:
                    v = [int(x) for x in m.group(2).split()]
                    idle = v[3] + v[4]  # idle + iowait
                    out[int(m.group(1))] = (sum(v[:8]), idle)  # guest is inside user already
        return out

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
    def configs(self):
        base = open(os.path.join(ROOT, "configs", "lab-afxdp.toml")).read()
        base = base.replace("/run/ecmpfwd-lab/", self.work + "/")
        rewrite = os.path.join(self.work, "rewrite.toml")
        open(rewrite, "w").write(base)
        # VXLAN: every IPv4 VIP next hop bI encapsulates towards its own address.
        out, cur = [], None
        for line in base.splitlines():
            out.append(line)
            if line.startswith("["):
                cur = line.strip()
                name = None
            m = re.match(r'name = "b(\d)"$', line)
            if cur == "[[nexthop]]" and m:
                name = m.group(1)
            if cur == "[[nexthop]]" and line.startswith("port =") and name:
                i = int(name)
                out += ["[nexthop.encap]", 'kind = "vxlan"', f'src = "198.18.{i}.254"',
                        f"vni = {100 + i}", f'inner_mac = "02:ef:00:00:{i:02x}:01"']
        vx = os.path.join(self.work, "vxlan.toml")
        open(vx, "w").write("\n".join(out) + "\n")
        # Resilience: no static VIP route; the operator adds it over the control socket.
        dyn = re.sub(r'\[\[route\]\]\nprefix = "198\.19\.0\.1/32"\ngroup = "vip"\n', "", base)
        assert dyn != base, "VIP route block not found in lab-afxdp.toml"
        dynp = os.path.join(self.work, "dynamic.toml")
        open(dynp, "w").write(dyn)
        self.cfg = {"ecmpfwd": rewrite, "ecmpfwd-vxlan": vx, "dynamic": dynp}
        self.ctl_sock = os.path.join(self.work, "ctl.sock")

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

    def setup(self, fwd, dynamic=False):
        log(f"forwarder {fwd}{' (VIP added at run time)' if dynamic else ''}")
        if fwd.startswith("kernel"):
            self.no_xdp()
            self.sysctl(self.fw, "net.ipv4.ip_forward", 1)
            # L4 hashing for both: the resilient group hashes with the same policy, and with
            # L3 only every generated flow (one source, one destination) takes one hop
            self.sysctl(self.fw, "net.ipv4.fib_multipath_hash_policy", 1)
            self.rps(1 << FWD_CORE if fwd.endswith("-rps") else 0)
            if fwd.startswith("kernel-res"):
                for i in range(1, NBACK + 1):
                    sh(["ip", "-n", self.fw, "nexthop", "replace", "id", str(i), "via",
                        f"198.18.{i}.1", "dev", f"fb{i}"])
                sh(["ip", "-n", self.fw, "nexthop", "replace", "id", "100",
                    *self.res_group(range(1, NBACK + 1))])
                sh(["ip", "-n", self.fw, "route", "replace", f"{VIP}/32", "nhid", "100"])
            else:
                sh(self.mp_route(self.kernel_hops()))
        else:
            self.sysctl(self.fw, "net.ipv4.ip_forward", 0)
            cfg = self.cfg["dynamic" if dynamic else fwd]
            logf = open(os.path.join(self.work, f"{fwd}.log"), "w")
            self.fwd_proc = self.start(self.nsx(self.fw, os.path.join(BIN, "ecmpfwd"), "run",
                                                "--config", cfg), stdout=logf, stderr=logf)
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
                self.ctl_route(self.kernel_hops())

    def teardown(self, fwd):
        if fwd.startswith("kernel"):
            subprocess.run(["ip", "-n", self.fw, "route", "del", f"{VIP}/32"],
                           stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "-n", self.fw, "nexthop", "flush"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.rps(0)
            self.restore_sysctls()
        elif self.fwd_proc is not None:
            self.stop(self.fwd_proc)
            self.fwd_proc = None
            self.no_xdp()  # a clean exit detaches; make sure for the next kernel round
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
        """(vary, source address): distinct source ports give at most 64512 flows; beyond that
        distinct source addresses from 198.18.5.0 up, which stays inside 198.18.0.0/15 for up to
        ~129k flows and avoids the lab's own addresses (only the VIP may show up as a source, and
        that is dropped by the backend after b0 counted it)."""
        return ("port", "198.18.0.1") if flows <= MAX_PORT_FLOWS else ("addr", "198.18.5.0")

    def send(self, count, size, flows, seed, rate=0):
        vary, src = self.flow_shape(flows)
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

    def throughput_run(self, fwd, size, flows, seed):
        st0 = self.ecmp_stats()
        rx0 = self.b0_rx()
        c0 = self.cpu_times()
        gen = self.send(self.args.count, size, flows, seed)
        c1 = self.cpu_times()
        time.sleep(0.2)  # in-flight packets land
        rx1 = self.b0_rx()
        st1 = self.ecmp_stats()
        delivered = rx1[0] - rx0[0]
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
            "b0_bytes_per_pkt": round((rx1[1] - rx0[1]) / delivered, 1) if delivered else None,
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
        log(f"  {fwd:14} size {size:4} flows {flows:7}: {row['mpps']} Mpps delivered, "
            f"offered {row['offered_mpps']}, drops {row['drops']}, busy {busy}")
        return row

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
                            r = self.throughput_run(fwd, size, flows, seed=rep)
                            r["rep"] = rep
                            rows.append(r)
                finally:
                    self.teardown(fwd)
        return rows

    # ---- resilience ------------------------------------------------------------------------
    def round(self, name):
        """Sends the 1000 resilience flows once; returns flow id -> set of backends."""
        sinks = []
        for i in range(1, NBACK + 1):
            out = os.path.join(self.work, f"sink-{name}-{i}.json")
            ready = out + ".ready"
            p = self.start(self.nsx(f"{self.prefix}-b{i}", os.path.join(BIN, "ecmpfwd-pktgen"),
                                    "sink", "--driver", "afpacket", "--iface", "b0", "--duration",
                                    "0", "--out", out, "--ready-file", ready),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            sinks.append((i, p, out, ready))
        deadline = time.time() + 10
        while not all(os.path.exists(s[3]) for s in sinks):
            if time.time() > deadline:
                raise RuntimeError("sinks did not become ready")
            time.sleep(0.05)
        n = self.args.res_flows
        self.send(n * self.args.res_pkts, 128, n, seed=7, rate=self.args.res_rate)
        time.sleep(0.3)
        where = {}
        for i, p, out, _ in sinks:
            self.stop(p, signal.SIGINT)
            rep = json.load(open(out))
            for fid, cnt in rep["flows"].items():
                if cnt:
                    where.setdefault(int(fid), set()).add(i)
        return where

    @staticmethod
    def compare(base, now, failed=None):
        moved = [f for f in base if now.get(f) != base[f]]
        return {
            "moved": len(moved),
            "moved_not_on_changed_hop": sum(1 for f in moved if failed is None or base[f] != {failed}),
            "lost": sum(1 for f in base if f not in now),
            "split": sum(1 for f in now.values() if len(f) > 1),
        }

    def resilience(self):
        res = {}
        n = self.args.res_flows
        for fwd in ["kernel-res", "kernel-mp", "ecmpfwd"]:
            self.setup(fwd, dynamic=(fwd == "ecmpfwd"))
            try:
                base = self.round(f"{fwd}-base")
                per = {i: sum(1 for v in base.values() if v == {i}) for i in range(1, NBACK + 1)}
                r = {"flows": n, "seen": len(base), "baseline_per_backend": per}
                # fail backend 3
                if fwd == "kernel-res":
                    sh(["ip", "-n", self.fw, "nexthop", "replace", "id", "100",
                        *self.res_group([1, 2, 4])])
                elif fwd == "kernel-mp":
                    sh(self.mp_route(["198.18.1.1", "198.18.2.1", "198.18.4.1"]))
                else:
                    self.ctl_route(["198.18.1.1", "198.18.2.1", "198.18.4.1"])
                time.sleep(0.2)
                failed = self.round(f"{fwd}-fail")
                r["fail_b3"] = self.compare(base, failed, failed=3)
                r["fail_b3"]["on_failed_hop"] = per[3]
                # add backend 3 back
                if fwd == "kernel-res":
                    sh(["ip", "-n", self.fw, "nexthop", "replace", "id", "100",
                        *self.res_group([1, 2, 3, 4])])
                elif fwd == "kernel-mp":
                    sh(self.mp_route(self.kernel_hops()))
                else:
                    self.ctl_route(self.kernel_hops())
                time.sleep(0.2)
                back = self.round(f"{fwd}-back")
                r["restore_b3_vs_baseline"] = self.compare(base, back)
                r["restore_b3_vs_failed"] = self.compare(failed, back, failed=None)
                # drain backend 2 (ecmpfwd only; the kernel has no drain)
                if fwd == "ecmpfwd":
                    self.ctl("drain", "198.18.2.1")
                    time.sleep(0.2)
                    drained = self.round(f"{fwd}-drain")
                    r["drain_b2_vs_before"] = self.compare(back, drained)
                    r["drain_b2_still_on_b2"] = sum(1 for v in drained.values() if 2 in v)
                else:
                    r["drain_b2_vs_before"] = None
                if fwd == "ecmpfwd":
                    # the table after the rounds (members' buckets), to tell a table that gave
                    # buckets back from flows that stay where the flow cache pinned them
                    route = json.loads(self.ctl("--json", "route", f"{VIP}/32"))["result"][0]
                    r["ecmpfwd_members_after"] = {m["addr"]: {"buckets": m["buckets"], "state": m["state"]}
                                                  for m in route["members"]}
                res[fwd] = r
                log(f"  resilience {fwd}: {json.dumps(r)}")
            finally:
                self.teardown(fwd)
        return res

    # ---- cleanup ---------------------------------------------------------------------------
    def cleanup(self):
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
        subprocess.run(["rm", "-rf", self.work])


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["size"], r["flows"], r["forwarder"]), []).append(r)
    out = []
    for (size, flows, fwd), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], FORWARDERS.index(kv[0][2]))):
        def agg(key, f=lambda r, k: r[k]):
            v = [f(r, key) for r in rs if f(r, key) is not None]
            return {"median": round(statistics.median(v), 3), "min": min(v), "max": max(v)} if v else None
        out.append({
            "size": size, "flows": flows, "forwarder": fwd, "reps": len(rs),
            "mpps": agg("mpps"), "offered_mpps": agg("offered_mpps"), "drops": agg("drops"),
            "cpu0_busy": agg(0, lambda r, k: r["cpu_busy"].get(k, r["cpu_busy"].get(str(k)))),
            "cpu1_busy": agg(1, lambda r, k: r["cpu_busy"].get(k, r["cpu_busy"].get(str(k)))),
            "ns_per_pkt_core1": agg("ns_per_pkt_core1"), "ns_per_pkt_all": agg("ns_per_pkt_all"),
            "b0_bytes_per_pkt": agg("b0_bytes_per_pkt"),
            # share of the offered packets ecmpfwd's fc0 port received (the rest never left
            # the veth: its AF_XDP rx ring or fill ring was full)
            "ecmpfwd_rx_share": agg("x", lambda r, k: round(r["ecmpfwd_counters"]["rx_fc0"] / r["offered"], 3)
                                    if "ecmpfwd_counters" in r and r["offered"] else None),
        })
    return out


def fmt(a, nd=3):
    if a is None:
        return "n/a"
    m = a["median"]
    if nd == 0:
        return f"{m:.0f} [{a['min']:.0f}-{a['max']:.0f}]"
    return f"{m:.{nd}f} [{a['min']:.{nd}f}-{a['max']:.{nd}f}]"


def markdown(meta, summary, res):
    L = [f"# ecmpfwd side-by-side veth bench, {meta['date']}", "",
         f"- command: `{meta['command']}`", f"- kernel: {meta['kernel']}",
         f"- CPU: {meta['cpu']} ({meta['cpus']} CPUs)",
         f"- reps: {meta['reps']}, packets per run: {meta['count']}, wall time: {meta['wall_seconds']} s",
         "- generator: ecmpfwd-pktgen AF_XDP on cl0 pinned to core 0; ecmpfwd worker on core 1",
         "- delivered = rx packets on the 4 backends' b0 (deltas, summed); Mpps = delivered / "
         "generator send time; drops = offered - delivered; busy = 1 - idle/total per CPU from "
         "/proc/stat around the generator; ns/pkt = busy CPU time / delivered (core 1 alone, "
         "and all cores incl. the generator)",
         "- kernel forwarding on veth runs in the sender's softirq, i.e. on core 0 with the "
         "generator; ecmpfwd busy-polls core 1, so its core-1 busy is ~100% whatever the load",
         "- the kernel forwards inside the generator's transmit (veth delivers in the sender's "
         "context, or hands over to core 1 with RPS), so the generator slows down to what the kernel "
         "forwards: offered = delivered there, and the kernel rows' drops are ~0 by construction. "
         "ecmpfwd takes packets from an AF_XDP ring, so the generator runs free and what ecmpfwd "
         "cannot take is dropped before its fc0 port (ecmpfwd rx/offered)",
         "- b0 rx counters include a handful of packets that are not the generator's, so drops "
         "can read slightly negative",
         "- flows above 64512 vary the source address (198.18.5.0 up) instead of the source port; "
         "1M flows do not fit 198.18.0.0/15 with this generator and are not run",
         "- latency percentiles: not measured in this slice",
         "- cells: median [min-max] over the repetitions", "",
         "## Throughput", "",
         "| size B | flows | forwarder | Mpps delivered | offered Mpps | drops | cpu0 busy | cpu1 busy | ns/pkt core1 | ns/pkt all | ecmpfwd rx/offered | B/pkt at b0 |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        L.append(f"| {s['size']} | {s['flows']} | {s['forwarder']} | {fmt(s['mpps'])} | "
                 f"{fmt(s['offered_mpps'])} | {fmt(s['drops'], 0)} | {fmt(s['cpu0_busy'], 2)} | "
                 f"{fmt(s['cpu1_busy'], 2)} | {fmt(s['ns_per_pkt_core1'], 0)} | {fmt(s['ns_per_pkt_all'], 0)} | {fmt(s['ecmpfwd_rx_share'])} | {s['b0_bytes_per_pkt']['median'] if s['b0_bytes_per_pkt'] else 'n/a'} |")
    L += ["", "## Resilience (1000 flows, same seed every round; backend 3 fails, returns; backend 2 drained)", "",
          "moved = flows whose backend set differs from the reference round; collateral = moved "
          "flows that were not on backend 3; lost = flows not seen at any backend", "",
          "| forwarder | seen | on b3 | fail b3: moved | fail: collateral | fail: lost | "
          "b3 back: moved vs baseline | b3 back: moved vs failed | drain b2: moved | drain: flows still on b2 |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for fwd, r in res.items():
        d = r.get("drain_b2_vs_before")
        L.append(f"| {fwd} | {r['seen']} | {r['fail_b3']['on_failed_hop']} | {r['fail_b3']['moved']} | "
                 f"{r['fail_b3']['moved_not_on_changed_hop']} | {r['fail_b3']['lost']} | "
                 f"{r['restore_b3_vs_baseline']['moved']} | {r['restore_b3_vs_failed']['moved']} | "
                 f"{d['moved'] if d else 'n/a'} | {r.get('drain_b2_still_on_b2', 'n/a')} |")
    e = res.get("ecmpfwd", {}).get("ecmpfwd_members_after")
    if e:
        L += ["", "ecmpfwd's table after the rounds (buckets per hop): "
              + ", ".join(f"{a} {m['buckets']} ({m['state']})" for a, m in e.items())
              + ". Established flows stay where ecmpfwd's flow cache pinned them, so a returning "
              "hop gets its buckets back for new flows while the flows that moved away stay moved."]
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="~3 minute smoke run")
    ap.add_argument("--count", type=int, help="packets per throughput run (default 2M, quick 300k)")
    ap.add_argument("--flows", type=lambda s: [int(x) for x in s.split(",")],
                    help="flow counts, comma-separated (default 1000,100000)")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[66, 512])
    ap.add_argument("--no-resilience", action="store_true")
    ap.add_argument("--forwarders", type=lambda s: s.split(","), default=FORWARDERS,
                    help="comma-separated subset of " + ",".join(FORWARDERS))
    ap.add_argument("--prefix", default=f"bv{os.getpid()}")
    ap.add_argument("--outdir", default=os.path.join(ROOT, "benches", "veth"))
    ap.add_argument("--command", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.reps = args.reps or 1
    args.reps = args.reps or 3
    args.count = args.count or (300_000 if args.quick else 2_000_000)
    # 1M flows cannot be made from IPv4 sources inside 198.18.0.0/15 (see Bench.flow_shape)
    args.flows = args.flows or [1000, 100_000]
    if max(args.flows) > MAX_ADDR_FLOWS:
        sys.exit(f"error: at most {MAX_ADDR_FLOWS} flows fit the benchmarking range")
    args.res_flows, args.res_pkts, args.res_rate = 1000, 3, 20000
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
    meta = {
        "command": args.command or shlex.join(sys.argv),
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": platform.release(), "cpu": m.group(1).strip() if m else "unknown",
        "cpus": os.cpu_count(), "reps": args.reps, "count": args.count, "sizes": args.sizes,
        "flows": args.flows, "latency": "not measured in this slice",
        "resilience": {"flows": args.res_flows, "packets_per_flow": args.res_pkts,
                       "rate_pps": args.res_rate, "sink": "ecmpfwd-pktgen sink AF_PACKET on b0"},
    }
    b = Bench(args)
    rows, res = [], {}
    try:
        b.lab_up()
        b.configs()
        rows = b.throughput()
        if not args.no_resilience:
            log("resilience")
            res = b.resilience()
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
    meta["wall_seconds"] = round(time.time() - t0, 1)
    summary = summarize(rows)
    os.makedirs(args.outdir, exist_ok=True)
    stem = os.path.join(args.outdir, f"results-{now.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": rows, "resilience": res}, f, indent=1)
    md = markdown(meta, summary, res)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {stem}.md and {stem}.json ({meta['wall_seconds']} s)")


if __name__ == "__main__":
    main()
