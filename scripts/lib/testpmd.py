#!/usr/bin/env python3
"""DPDK testpmd io forwarding over net_af_xdp as a baseline forwarder for the veth lab.

Stdlib only, needs root and Debian's dpdk-dev (scripts/lib/dpdk.sh: ensure_dpdk).

Setup and why it is the fair one
--------------------------------
testpmd's io engine has no routing and no fan-out: it pairs ports (0<->1, 2<->3, ...) and moves
every received burst unchanged to the paired port. Giving it fc0 and four backend ports would not
spread the client's traffic over the backends; it would only add idle port pairs for the one
forwarding core to poll. So the baseline is one rx port and one tx port: fc0 (port 0) -> fb1
(port 1), both single-queue AF_XDP sockets (start_queue=0, queue_count=1, which is all the lab's
veths have), polled by one forwarding lcore. That is the least a userspace forwarder on AF_XDP can
do per packet (rx burst, tx burst, no header touched, not even the MAC), so it is an upper bound
for ecmpfwd on the same I/O path and core, not a like-for-like ECMP forwarder. `mode="mac"` is
offered as the closer comparison: testpmd's mac engine rewrites both MACs (source = own port,
destination = --eth-peer), as ecmpfwd's MAC rewrite does, but still to one backend only. The
reverse stream (fb1 -> fc0) exists in both modes; it carries nothing in the lab because io-mode
frames keep fc0's destination MAC, so the backend's kernel drops them as not its own.

Cores: EAL gets `-l MAIN,FWD --main-lcore MAIN` and testpmd `--nb-cores=1`, so the single
forwarding lcore is FWD (core 1 in the lab, as for ecmpfwd's worker) and the main lcore is MAIN
(core 0, the generator's). Without --stats-period the main lcore blocks in read() on stdin (kept
open as a pipe), so it takes no time from core 0 while forwarding; with --stats-period it sleeps a
second between prints. DPDK's control threads (interrupts, telemetry) follow the main lcore.

Statistics: live per-port NIC counters come from DPDK telemetry (a unix socket in testpmd's
runtime directory, /ethdev/stats), so a harness can take deltas around each run the way it reads
ecmpfwd's counters. stop() also parses the "Forward statistics" blocks testpmd prints on SIGINT
(its forwarding engine's counters since forwarding started). stdout is line-buffered with stdbuf:
testpmd re-raises SIGINT after printing, which would lose a full stdio buffer.

Environment on veth: net_af_xdp loads libxdp's default program in native (driver) mode on both
veths. Receiving on fc0 needs nothing on its peer, and AF_XDP tx on fb1 goes through the veth's
xmit, so unlike a native XDP_REDIRECT it needs no XDP program or GRO on the backend's end. libxdp
needs a bpffs (LIBXDP_BPFFS): a caller's LIBXDP_BPFFS that names a mounted bpffs is used as it is;
otherwise a private bpffs is mounted in a temp dir and unmounted on stop (a shared one under /sys
would not do anyway: `ip netns exec` mounts a fresh sysfs over /sys). libxdp's multi-program
dispatcher cannot load here (EPERM), so LIBXDP_SKIP_DISPATCHER=1 makes it load the single program
directly, which it would fall back to anyway.

Where the kernel's share of the work runs (as for ecmpfwd, which uses the same AF_XDP path): the
generator's transmit on cl0 runs fc0's XDP program and the copy into testpmd's rx ring in the
sender's softirq, i.e. on core 0; testpmd's transmit on fb1 is a copy-mode AF_XDP send whose skb is
received by the backend's b0 in core 1's softirq. The busy figures of both cores include that.

Cleanup: testpmd is stopped by PID (SIGINT, then SIGKILL, each bounded). Any libxdp program still
on the two interfaces that was not there before start (a killed testpmd leaves one) is detached,
DPDK's runtime directory for the file prefix is removed and the private bpffs unmounted.

Self-test on an existing lab (scripts/lab up --prefix P --backends 4):
    python3 scripts/lib/testpmd.py --selftest P [--count N] [--sizes 66,512] [--mode io|mac]
runs testpmd, sends with target/release/ecmpfwd-pktgen (AF_XDP on cl0, core 0) and checks that
the backend's b0 received what testpmd transmitted and that nothing is left behind; prints JSON.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTPMD = "dpdk-testpmd"
# Names of the programs libxdp attaches for AF_XDP sockets (the default program, or its
# dispatcher on machines where the dispatcher loads): the only ones cleanup may detach.
LIBXDP_PROGS = ("xsk_def_prog", "xdp_dispatcher")
# DPDK's runtime directory for root; the file prefix names a directory inside it.
DPDK_RUN_DIR = "/var/run/dpdk"


class TestpmdError(Exception):
    """testpmd could not be started, did not become ready, or its state could not be read."""


def _run(cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise TestpmdError(f"{shlex.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _is_bpffs(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path and line.split()[2] == "bpf" for line in f)


def xdp_progs(netns, iface):
    """XDP programs attached to an interface: list of (mode flag for `ip link set`, id, name)."""
    j = json.loads(_run(["ip", "-n", netns, "-j", "-d", "link", "show", "dev", iface]))
    xdp = j[0].get("xdp") if j else None
    if not xdp:
        return []
    # "attached" lists every program with its mode (1 drv, 2 skb, 3 hw); the top-level "prog"
    # repeats the single one, so it counts only when there is no list.
    flag = {1: "xdpdrv", 2: "xdpgeneric", 3: "xdpoffload"}
    entries = xdp.get("attached") or [xdp]
    return [(flag.get(a.get("mode"), "xdp"), a["prog"]["id"], a["prog"].get("name"))
            for a in entries if "prog" in a]


def parse_port_stats(text):
    """Per-port counters from testpmd's output, the last block of each kind winning.

    Returns {"forward": {port: {...}}, "nic": {port: {...}}}: "forward" from the "Forward
    statistics for port N" blocks (rx_packets, rx_dropped, rx_total, tx_packets, tx_dropped,
    tx_total), "nic" from the "NIC statistics for port N" blocks of --stats-period (rx_packets,
    rx_missed, rx_bytes, rx_errors, rx_nombuf, tx_packets, tx_errors, tx_bytes)."""
    out = {"forward": {}, "nic": {}}
    block = re.compile(r"-+ Forward statistics for port (\d+)\s+-+\n(.*?)\n\s*-{20,}"
                       r"|#+ NIC statistics for port (\d+)\s+#+\n(.*?)\n\s*Throughput", re.S)
    for m in block.finditer(text):
        kind, port, body = (("forward", m.group(1), m.group(2)) if m.group(1) is not None
                            else ("nic", m.group(3), m.group(4)))
        vals = {k.lower().replace("-", "_"): int(v)
                for k, v in re.findall(r"([RT]X-[a-z]+):\s*(\d+)", body)}
        out[kind][int(port)] = vals
    return out


class Testpmd:
    """One dpdk-testpmd forwarding rx_iface -> tx_iface inside a namespace (see the module doc).

    Use as a context manager, or call start() and stop() (stop() is safe to call twice and after
    a failed start)."""

    def __init__(self, netns, rx_iface="fc0", tx_iface="fb1", main_core=0, fwd_core=1,
                 mode="io", eth_peer=None, mbufs=32768, memory_mb=1024, stats_period=0,
                 extra_args=()):
        if mode not in ("io", "mac"):
            raise ValueError("mode must be 'io' or 'mac'")
        if mode == "mac" and not eth_peer:
            raise ValueError("mode 'mac' needs eth_peer (the backend's MAC)")
        if main_core == fwd_core:
            raise ValueError("the main lcore must not be the forwarding lcore")
        self.netns = netns
        self.rx_iface = rx_iface
        self.tx_iface = tx_iface
        self.main_core = main_core
        self.fwd_core = fwd_core
        self.mode = mode
        self.eth_peer = eth_peer
        self.mbufs = mbufs
        self.memory_mb = memory_mb
        self.stats_period = stats_period
        self.extra_args = list(extra_args)
        self.file_prefix = f"tpmd{os.getpid()}_{id(self) & 0xffff:x}"
        self.runtime_dir = os.path.join(DPDK_RUN_DIR, self.file_prefix)
        self.work = None
        self.log_path = None
        self.proc = None
        self.bpffs = None
        self.own_bpffs = False  # this object mounted self.bpffs (it may be unmounted by now)
        self.bpffs_mounted = False  # ...and it is still mounted
        self.launched = False
        self.exit_text = ""
        self.result = None

    # ---- lifecycle -------------------------------------------------------------------------
    def command(self):
        """The full command line (inside `ip netns exec`)."""
        vdev = "start_queue=0,queue_count=1"
        app = [f"--forward-mode={self.mode}", "--auto-start", "--nb-cores=1",
               f"--total-num-mbufs={self.mbufs}"]
        if self.mode == "mac":
            app.append(f"--eth-peer=1,{self.eth_peer}")
        if self.stats_period:
            app.append(f"--stats-period={self.stats_period}")
        return ["ip", "netns", "exec", self.netns, "stdbuf", "-oL", "-eL", TESTPMD,
                "-l", f"{self.main_core},{self.fwd_core}", "--main-lcore", str(self.main_core),
                "--no-huge", "-m", str(self.memory_mb), "--no-pci",
                "--file-prefix", self.file_prefix,
                "--vdev", f"net_af_xdp0,iface={self.rx_iface},{vdev}",
                "--vdev", f"net_af_xdp1,iface={self.tx_iface},{vdev}",
                "--", *app, *self.extra_args]

    def _check_ifaces(self):
        for dev in (self.rx_iface, self.tx_iface):
            qdir = f"/sys/class/net/{dev}/queues"
            rxq = _run(["ip", "netns", "exec", self.netns, "ls", qdir]).split()
            n = sum(1 for q in rxq if q.startswith("rx-"))
            if n != 1:
                # One AF_XDP socket on queue 0: traffic on any other rx queue would bypass it.
                raise TestpmdError(f"{dev} has {n} rx queues; the baseline binds queue 0 only")
            # Refusing here is what lets cleanup treat every libxdp program on these
            # interfaces as testpmd's own.
            progs = xdp_progs(self.netns, dev)
            if progs:
                raise TestpmdError(f"{dev} in {self.netns} already has XDP program(s) {progs}: "
                                   "another forwarder is attached, or a stale one is left")

    def _mount_bpffs(self):
        given = os.environ.get("LIBXDP_BPFFS")
        if given and _is_bpffs(given) and not os.path.realpath(given).startswith("/sys/"):
            self.bpffs = given
            return
        self.bpffs = os.path.join(self.work, "bpffs")
        os.mkdir(self.bpffs)
        _run(["mount", "-t", "bpf", "bpf", self.bpffs])
        self.own_bpffs = self.bpffs_mounted = True

    def _log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def start(self, timeout=30):
        """Starts testpmd and waits (bounded) until it reports forwarding and both interfaces
        carry its XDP program. Cleans up and raises TestpmdError on failure."""
        if self.proc is not None:
            raise TestpmdError("already started")
        self.result = None
        self.exit_text = ""
        try:
            self.work = tempfile.mkdtemp(prefix="testpmd.")
            self.log_path = os.path.join(self.work, "testpmd.log")
            self._check_ifaces()
            self._mount_bpffs()
            env = dict(os.environ, LIBXDP_BPFFS=self.bpffs, LIBXDP_SKIP_DISPATCHER="1")
            self.launched = True
            with open(self.log_path, "w") as logf:
                # stdin stays an open pipe: non-interactive testpmd exits on its first byte or EOF.
                # Own session: a terminal's Ctrl-C reaches the harness, which stops testpmd itself.
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=logf,
                                             stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
            ready = "Port statistics" if self.stats_period else "Press enter to exit"
            deadline = time.monotonic() + timeout
            while True:
                text = self._log()
                if ready in text and all(
                        any(p[2] in LIBXDP_PROGS for p in xdp_progs(self.netns, d))
                        for d in (self.rx_iface, self.tx_iface)):
                    return
                if self.proc.poll() is not None:
                    raise TestpmdError(f"testpmd exited ({self.proc.returncode}) while starting:\n"
                                       + text[-3000:])
                if time.monotonic() > deadline:
                    raise TestpmdError(f"testpmd not forwarding after {timeout} s:\n" + text[-3000:])
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout=10):
        """Stops testpmd (SIGINT, SIGKILL after `timeout` s), cleans up, returns its statistics:
        {"forward": {port: counters}, "nic": {...}, "exit_code": int|None, "killed": bool}
        (see parse_port_stats). A second call returns the first call's result."""
        if self.proc is None and self.result is not None:
            return self.result
        killed = False
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    killed = True
                    self.proc.wait(5)
            code = self.proc.returncode
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc = None
            self.exit_text = self._log()
        self._cleanup()
        stats = parse_port_stats(self.exit_text)
        stats.update(exit_code=code, killed=killed)
        self.result = stats
        return stats

    def _cleanup(self):
        errors = []
        if self.launched:
            for dev in (self.rx_iface, self.tx_iface):
                try:
                    for flag, _id, name in xdp_progs(self.netns, dev):
                        if name in LIBXDP_PROGS:
                            _run(["ip", "-n", self.netns, "link", "set", "dev", dev, flag, "off"])
                except (TestpmdError, ValueError, IndexError) as e:
                    errors.append(str(e))  # the namespace may be gone already: nothing to detach
            self.launched = False
        subprocess.run(["rm", "-rf", self.runtime_dir])
        if self.bpffs_mounted:
            r = subprocess.run(["umount", self.bpffs], stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                errors.append(f"umount {self.bpffs}: {r.stderr.strip()}")
            else:
                self.bpffs_mounted = False
        if self.work and not self.bpffs_mounted:
            # Keep the log readable for the caller until the work dir goes.
            self.exit_text = self.exit_text or self._log()
            subprocess.run(["rm", "-rf", self.work])
            self.work = None
        if errors:
            print(f"testpmd cleanup: {'; '.join(errors)}", file=sys.stderr)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- live state ------------------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def port_stats(self, timeout=2.0):
        """Live NIC counters per port from DPDK telemetry: {port: {"rx_packets", "rx_missed",
        "rx_errors", "rx_nombuf", "rx_bytes", "tx_packets", "tx_errors", "tx_bytes"}}."""
        path = os.path.join(self.runtime_dir, "dpdk_telemetry.v2")
        keys = {"ipackets": "rx_packets", "imissed": "rx_missed", "ierrors": "rx_errors",
                "rx_nombuf": "rx_nombuf", "ibytes": "rx_bytes", "opackets": "tx_packets",
                "oerrors": "tx_errors", "obytes": "tx_bytes"}
        out = {}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(timeout)
                s.connect(path)
                s.recv(16384)  # greeting: version, pid, max output length
                for port in (0, 1):
                    s.send(f"/ethdev/stats,{port}".encode())
                    reply = json.loads(s.recv(65536))["/ethdev/stats"]
                    out[port] = {new: reply.get(old, 0) for old, new in keys.items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TestpmdError(f"telemetry {path}: {e}") from e
        return out

    def thread_cpu(self):
        """CPU time per testpmd thread: {tid: {"name", "cpu_seconds", "last_core"}}."""
        hz = os.sysconf("SC_CLK_TCK")
        out = {}
        if self.proc is None:
            return out
        base = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(base):
            try:
                with open(f"{base}/{tid}/stat") as f:
                    raw = f.read()
            except OSError:
                continue  # the thread ended meanwhile
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            # fields[0] is field 3 (state): utime, stime are 14, 15 and processor 39
            out[int(tid)] = {"name": name,
                             "cpu_seconds": (int(fields[11]) + int(fields[12])) / hz,
                             "last_core": int(fields[36])}
        return out


# ---- self-test -------------------------------------------------------------------------------
class _Interrupted(Exception):
    """SIGINT/SIGTERM during the self-test: unwind through the cleanup."""


def cpu_times():
    """(total, idle + iowait) jiffies per CPU from /proc/stat (guest time is inside user)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = (sum(v[:8]), v[3] + v[4])
    return out


def _b0_rx(prefix, backend):
    ns = f"{prefix}-b{backend}"
    return int(_run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/b0/statistics/rx_packets"]))


def _send(prefix, fc_mac, size, count, flows, core):
    cmd = ["ip", "netns", "exec", f"{prefix}-cl", "taskset", "-c", str(core),
           os.path.join(ROOT, "target", "release", "ecmpfwd-pktgen"), "send", "--driver", "afxdp",
           "--iface", "cl0", "--dst-mac", fc_mac, "--vary", "port", "--src-ip", "198.18.0.1",
           "--dst-ip", "198.19.0.1", "--count", str(count), "--size", str(size),
           "--flows", str(flows), "--seed", "1", "--duration", "60"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90)
    if r.returncode != 0:
        raise TestpmdError(f"pktgen send failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def selftest(args):
    prefix = args.selftest
    fw = f"{prefix}-fw"
    env = _run([os.path.join(ROOT, "scripts", "lab"), "env", "--prefix", prefix])
    if not re.search(r"^LAB_UP=1$", env, re.M):
        raise TestpmdError(f"no lab with prefix {prefix}: scripts/lab up --prefix {prefix}")
    fc_mac = re.search(r"^LAB_FC_MAC=(\S+)", env, re.M).group(1)
    b1_mac = re.search(r"^LAB_B1_MAC=(\S+)", env, re.M).group(1)
    backends = range(1, int(re.search(r"^LAB_BACKENDS=(\d+)", env, re.M).group(1)) + 1)
    if not os.access(os.path.join(ROOT, "target", "release", "ecmpfwd-pktgen"), os.X_OK):
        raise TestpmdError("target/release/ecmpfwd-pktgen missing: cargo build --release -p ecmp-pktgen")
    tp = Testpmd(fw, "fc0", "fb1", main_core=0, fwd_core=1, mode=args.mode,
                 eth_peer=b1_mac if args.mode == "mac" else None)
    failures = []
    runs = []
    t_start = time.monotonic()
    try:
        tp.start()
        pid = tp.pid
        print(f"testpmd pid {pid} forwarding: {shlex.join(tp.command())}", file=sys.stderr)
        for size in args.sizes:
            rx0 = {i: _b0_rx(prefix, i) for i in backends}
            st0 = tp.port_stats()
            th0 = tp.thread_cpu()
            c0 = cpu_times()
            gen = _send(prefix, fc_mac, size, args.count, args.flows, 0)
            c1 = cpu_times()
            time.sleep(0.3)  # packets still in rings land
            th1 = tp.thread_cpu()
            st1 = tp.port_stats()
            rx1 = {i: _b0_rx(prefix, i) for i in backends}
            delivered = {i: rx1[i] - rx0[i] for i in rx0}
            port = {p: {k: st1[p][k] - st0[p][k] for k in st1[p]} for p in st1}
            busy = {}
            for cpu in sorted(c1):
                tot = c1[cpu][0] - c0[cpu][0]
                idle = c1[cpu][1] - c0[cpu][1]
                busy[cpu] = round(1 - idle / tot, 3) if tot > 0 else 0.0
            threads = {}
            for tid, t in th1.items():
                before = th0[tid]["cpu_seconds"] if tid in th0 else 0.0
                threads[t["name"]] = {"cpu_seconds": round(t["cpu_seconds"] - before, 2),
                                      "last_core": t["last_core"]}
            row = {"size": size, "mode": args.mode, "offered": gen["packets"],
                   "send_seconds": round(gen["seconds"], 4), "offered_mpps": round(gen["mpps"], 3),
                   "delivered_b1": delivered[1],
                   "delivered_others": sum(v for i, v in delivered.items() if i != 1),
                   "mpps": round(delivered[1] / gen["seconds"] / 1e6, 3) if gen["seconds"] else 0.0,
                   "cpu_busy": busy, "testpmd_ports": port, "testpmd_threads": threads}
            runs.append(row)
            print(f"size {size}: offered {row['offered_mpps']} Mpps, delivered {row['mpps']} Mpps "
                  f"({delivered[1]}/{gen['packets']}), busy {busy}, testpmd port0 rx "
                  f"{port[0]['rx_packets']} missed {port[0]['rx_missed']}, port1 tx "
                  f"{port[1]['tx_packets']} err {port[1]['tx_errors']}", file=sys.stderr)
            if delivered[1] <= 0:
                failures.append(f"size {size}: nothing reached b1")
            # b0 counts what testpmd put on fb1 (plus the odd kernel packet of the lab)
            if abs(delivered[1] - port[1]["tx_packets"]) > 64 + delivered[1] // 100:
                failures.append(f"size {size}: b1 got {delivered[1]}, testpmd sent "
                                f"{port[1]['tx_packets']}")
            if port[0]["rx_packets"] > gen["packets"] + 64:
                failures.append(f"size {size}: testpmd received more than was sent")
            main_cpu = th1[pid]["cpu_seconds"] - th0[pid]["cpu_seconds"]
            if main_cpu > 0.1 + 0.05 * gen["seconds"]:
                failures.append(f"size {size}: testpmd's main lcore used {main_cpu:.2f} s "
                                "during the send")
            fwd = [v for v in threads.values() if v["last_core"] == 1 and v["cpu_seconds"] > 0]
            if not fwd:
                failures.append(f"size {size}: no testpmd thread ran on core 1")
    finally:
        exit_stats = tp.stop()
    # nothing left behind
    if exit_stats["killed"]:
        failures.append("testpmd ignored SIGINT and was killed")
    if not exit_stats["forward"]:
        failures.append("no forward statistics parsed from testpmd's exit output")
    for dev in ("fc0", "fb1"):
        left = xdp_progs(fw, dev)
        if left:
            failures.append(f"XDP program left on {dev}: {left}")
    if tp.own_bpffs and _is_bpffs(tp.bpffs):
        failures.append(f"bpffs still mounted at {tp.bpffs}")
    if os.path.exists(tp.runtime_dir):
        failures.append(f"runtime dir {tp.runtime_dir} left")
    if pid and os.path.exists(f"/proc/{pid}"):
        failures.append(f"testpmd pid {pid} still running")
    result = {"prefix": prefix, "command": tp.command(), "runs": runs,
              "exit_stats": exit_stats, "seconds": round(time.monotonic() - t_start, 1),
              "failures": failures}
    print(json.dumps(result, indent=1))
    if failures:
        print("SELFTEST FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("selftest ok", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selftest", metavar="PREFIX", required=True,
                    help="run testpmd on the existing lab PREFIX and check it forwards")
    ap.add_argument("--count", type=int, default=300_000, help="packets per size")
    # 66 B is the generator's smallest frame (headers and its flow tag): the "64 B" row
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[66, 512])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--mode", choices=["io", "mac"], default="io")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("error: needs root")

    def on_signal(signum, _frame):
        raise _Interrupted(f"signal {signum}")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        rc = selftest(args)
    except (TestpmdError, _Interrupted, subprocess.TimeoutExpired) as e:
        print(f"SELFTEST FAILED: {e}", file=sys.stderr)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
