#!/usr/bin/env python3
"""The lab demo (run by scripts/demo, as root): ecmpfwd forwarding real packets between network
namespaces, with its routes learnt from real BGP speakers.

Topology (scripts/lab): a client, the forwarder (ecmpfwd on AF_XDP ports), four backends that
each hold the anycast VIP 198.19.0.1 and announce it over BGP (ExaBGP) with themselves as next
hop. A companion ExaBGP in the forwarder's namespace feeds the paths into ecmpfwd's feed socket.

With --io dpdk, ecmpfwd (built with the cargo feature `dpdk`) runs configs/lab-bgp-dpdk.toml:
DPDK's net_af_xdp driver takes the forwarder's veths. Its XDP program hands every packet of the
veth to DPDK, none to the kernel, so the BGP sessions run over a management veth pair per backend
(198.19.<i>.1 on the server, 198.19.<i>.254 in the forwarder's namespace); the announced next hop
is still the server's data address 198.18.<i>.1, whose MAC the config gives. libxdp gets a
private bpffs (`ip netns exec` hides /sys/fs/bpf) and loads its program without the dispatcher,
as for testpmd (scripts/lib/testpmd.py).

Every claim printed is checked; the exit status is 1 if one does not hold. Every process started
here is killed by PID and the lab is torn down on the way out, failure or not.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")  # --bin-dir overrides
VIP = "198.19.0.1"
PREFIX = VIP + "/32"
BACKENDS = 4
BGP_PORT = 1790
CONFIG = os.path.join(ROOT, "configs", "lab-bgp.toml")
DPDK_CONFIG = os.path.join(ROOT, "configs", "lab-bgp-dpdk.toml")
# The EAL's runtime directory for DPDK_CONFIG's file prefix (created even with --no-shconf).
DPDK_RUNTIME = "/var/run/dpdk/ecmpfwd-demo"
CTL = "/run/ecmpfwd-demo/ctl.sock"
FEED = "/run/ecmpfwd-demo/feed.sock"


class Claims:
    """What every lab driver (this demo, faults.py, soak.py, scaledemo.py) states: each claim
    printed as `[ok]` or `[FAIL]` and the failed ones kept in `failures` (the driver ends with
    "N claim(s) failed", which the tests read); waits bounded in time, polling every `POLL` s."""

    POLL = 0.1

    def __init__(self):
        self.failures = []

    def wait_for(self, what, pred, timeout=20.0):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                last = pred()
                if last:
                    return last
            except (RuntimeError, KeyError, IndexError, json.JSONDecodeError) as e:
                last = e
            time.sleep(self.POLL)
        raise RuntimeError(f"timed out waiting for {what} (last: {last})")

    def claim(self, ok, text):
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
        if not ok:
            self.failures.append(text)

    def log(self, key):
        """The log of process `key` ("ecmpfwd", "companion"), for `run_driver`'s failure report;
        a driver that keeps none returns ""."""
        return ""


class Demo(Claims):
    def __init__(self, args):
        self.args = args
        self.lab = args.prefix
        self.dir = tempfile.mkdtemp(prefix="ecmpfwd-demo-")
        self.procs = {}
        super().__init__()
        self.env = {}
        # DPDK ports (see the module doc); faults.py and soak.py have no --io.
        self.dpdk = getattr(args, "io", "afxdp") == "dpdk"
        self.bpffs = None

    def session_addrs(self, i):
        """(server, companion) addresses of server i's BGP session: the data link's, or with
        DPDK ports the management link's."""
        net = f"198.19.{i}" if self.dpdk else f"198.18.{i}"
        return f"{net}.1", f"{net}.254"

    # ---- plumbing -------------------------------------------------------------------------

    def ns(self, name):
        return ["ip", "netns", "exec", f"{self.lab}-{name}"]

    def spawn(self, key, cmd, env=None):
        out = open(os.path.join(self.dir, f"{key}.log"), "wb")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        self.procs[key] = p
        return p

    def stop(self, key, sig=signal.SIGTERM, wait=5.0):
        p = self.procs.pop(key, None)
        if p is None:
            return None
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=wait)
        return p.returncode

    def log(self, key):
        try:
            with open(os.path.join(self.dir, f"{key}.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args):
        out = subprocess.run([os.path.join(BIN, "ecmpctl"), "--socket", CTL, "--json", *args],
                             capture_output=True, text=True, timeout=15)
        if out.returncode != 0:
            raise RuntimeError(f"ecmpctl {' '.join(args)}: {out.stderr.strip()} {out.stdout.strip()}")
        return json.loads(out.stdout)["result"]

    def show(self, *args):
        out = subprocess.run([os.path.join(BIN, "ecmpctl"), "--socket", CTL, *args],
                             capture_output=True, text=True, timeout=15)
        return out.stdout

    # ---- set-up ---------------------------------------------------------------------------

    def lab_up(self):
        subprocess.run([os.path.join(ROOT, "scripts", "lab"), "up", "--prefix", self.lab,
                        "--backends", str(BACKENDS)], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([os.path.join(ROOT, "scripts", "lab"), "env", "--prefix", self.lab],
                             check=True, capture_output=True, text=True).stdout
        self.env = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        if self.dpdk:
            # Inside the lab's namespaces, so `scripts/lab down` removes them with the rest.
            for i in range(1, BACKENDS + 1):
                server, companion = self.session_addrs(i)
                fw, b = f"{self.lab}-fw", f"{self.lab}-b{i}"
                for cmd in (["ip", "-n", fw, "link", "add", f"mg{i}", "type", "veth", "peer",
                             "name", "mg0", "netns", b],
                            ["ip", "-n", fw, "addr", "add", f"{companion}/24", "dev", f"mg{i}"],
                            ["ip", "-n", b, "addr", "add", f"{server}/24", "dev", "mg0"],
                            ["ip", "-n", fw, "link", "set", f"mg{i}", "up"],
                            ["ip", "-n", b, "link", "set", "mg0", "up"]):
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def start_forwarder(self):
        env = None
        if self.dpdk:
            if self.bpffs is None:
                self.bpffs = os.path.join(self.dir, "bpffs")
                os.mkdir(self.bpffs)
                subprocess.run(["mount", "-t", "bpf", "bpf", self.bpffs], check=True)
            env = dict(os.environ, LIBXDP_BPFFS=self.bpffs, LIBXDP_SKIP_DISPATCHER="1")
        self.spawn("ecmpfwd", self.ns("fw") + [os.path.join(BIN, "ecmpfwd"), "run", "--config",
                                              DPDK_CONFIG if self.dpdk else CONFIG], env=env)
        self.wait_for("ecmpfwd to forward", lambda: "forwarding on" in self.log("ecmpfwd")
                      or self.procs["ecmpfwd"].poll() is not None)
        if self.procs["ecmpfwd"].poll() is not None:
            raise RuntimeError("ecmpfwd did not start:\n" + self.log("ecmpfwd"))

    def exabgp_env(self):
        env = dict(os.environ)
        env.update(exabgp_daemon_user="root", exabgp_api_cli="false",
                   exabgp_log_destination="stdout", exabgp_daemon_daemonize="false")
        return env

    def start_companion(self):
        helper = os.path.join(self.dir, "feed-helper.sh")
        with open(helper, "w") as f:
            f.write(f"#!/bin/sh\nexec socat STDIO UNIX-CONNECT:{FEED},retry=100,interval=0.1\n")
        os.chmod(helper, 0o755)
        conf = [f"process feed {{ run {helper}; encoder json; }}",
                "template { neighbor servers {",
                "  router-id 198.18.0.254; local-as 65000; passive true; hold-time 3;",
                f"  listen {BGP_PORT};",
                "  capability { add-path receive; route-refresh; }",
                "  family { ipv4 unicast; }",
                "  api { processes [ feed ]; neighbor-changes; receive { parsed; update; } }",
                "} }"]
        for i in range(1, BACKENDS + 1):
            server, companion = self.session_addrs(i)
            conf.append(f"neighbor {server} {{ inherit servers; local-address {companion}; "
                        f"peer-as {65000 + i}; }}")
        path = os.path.join(self.dir, "companion.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.spawn("companion", self.ns("fw") + [self.args.exabgp, path], env=self.exabgp_env())

    def start_server(self, i):
        fifo = os.path.join(self.dir, f"commands-{i}")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        helper = os.path.join(self.dir, f"announcer-{i}.sh")
        python = os.path.join(os.path.dirname(self.args.exabgp), "python3")
        with open(helper, "w") as f:
            f.write(f"#!/bin/sh\nexec {python} {ROOT}/control/core/tests/exabgp/announcer.py "
                    f"{fifo} {self.dir}/seen-{i}\n")
        os.chmod(helper, 0o755)
        server, companion = self.session_addrs(i)
        conf = (f"process announce {{ run {helper}; encoder text; }}\n"
                f"neighbor {companion} {{\n"
                f"  router-id 198.18.{i}.1; local-address {server}; local-as {65000 + i};\n"
                f"  peer-as 65000; connect {BGP_PORT}; hold-time 3;\n"
                "  capability { add-path send; route-refresh; }\n"
                "  family { ipv4 unicast; }\n"
                "  api { processes [ announce ]; neighbor-changes; }\n}\n")
        path = os.path.join(self.dir, f"server-{i}.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.spawn(f"server{i}", self.ns(f"b{i}") + [self.args.exabgp, path],
                   env=self.exabgp_env())

    def server_says(self, i, line):
        with open(os.path.join(self.dir, f"commands-{i}"), "w") as f:
            f.write(line + "\n")

    def announce(self, i, extra=""):
        self.server_says(i, f"announce route {PREFIX} next-hop 198.18.{i}.1 path-information {i}"
                         + extra)

    def route(self):
        return self.ctl("route", PREFIX)[0]

    def members(self):
        """addr -> (state, buckets)"""
        return {m["addr"]: (m["state"], m["buckets"]) for m in self.route()["members"]}

    def bucket_map(self):
        """bucket index -> owner's address (None: no owner)"""
        r = self.route()
        addr = {m["hop"]: m["addr"] for m in r["members"]}
        return [addr.get(b["hop"]) for b in r["buckets"]]

    def peers_up(self):
        return sum(1 for p in self.ctl("peers") if p["state"] == "up")

    # ---- traffic --------------------------------------------------------------------------

    def round(self, name, flows, seed, src=None):
        """Sends `flows` TCP flows (packets per flow from --packets) from the client to the VIP;
        returns {flow id: backend}. Flows of one seed and source are the same 5-tuples every
        time; a new source address gives flows no earlier round used."""
        sinks = []
        for i in range(1, BACKENDS + 1):
            ready = os.path.join(self.dir, f"{name}-ready-{i}")
            out = os.path.join(self.dir, f"{name}-sink-{i}.json")
            self.spawn(f"sink{i}", self.ns(f"b{i}") + [
                os.path.join(BIN, "ecmpfwd-pktgen"), "sink", "--iface", "b0", "--driver",
                "afpacket", "--duration", "0", "--ready-file", ready, "--out", out])
            sinks.append((i, ready, out))
        for i, ready, _ in sinks:
            self.wait_for(f"sink {i}", lambda r=ready: os.path.exists(r), timeout=10)
        count = flows * self.args.packets
        send = subprocess.run(self.ns("cl") + [
            os.path.join(BIN, "ecmpfwd-pktgen"), "send", "--iface", "cl0", "--driver", "afpacket",
            "--dst-mac", self.env["LAB_FC_MAC"], "--src-ip", src or self.env["LAB_CL_IP4"],
            "--dst-ip", VIP, "--proto", "tcp", "--flows", str(flows), "--seed", str(seed),
            "--count", str(count), "--rate", str(self.args.rate)],
            capture_output=True, text=True, timeout=120)
        if send.returncode != 0:
            raise RuntimeError(f"pktgen send failed: {send.stderr}")
        time.sleep(0.5)
        where, per_backend = {}, {}
        split = 0
        for i, _, out in sinks:
            self.stop(f"sink{i}")
            with open(out) as f:
                report = json.load(f)
            per_backend[i] = report["packets"]
            for flow in report["flows"]:
                if flow in where:
                    split += 1
                where[flow] = i
        self.claim(split == 0, f"{name}: every flow reached exactly one backend")
        got = sum(per_backend.values())
        self.claim(got == count, f"{name}: {got} of {count} packets arrived")
        spread = "  ".join(f"backend {i}: {n:>6}" for i, n in per_backend.items())
        print(f"  {spread}")
        return where

    # ---- the story ------------------------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        print(f"== lab: client, forwarder, {BACKENDS} backends holding VIP {VIP} "
              f"(namespaces {self.lab}-*)")
        self.lab_up()
        self.start_forwarder()
        if self.dpdk:
            print("== ecmpfwd runs on DPDK ports: net_af_xdp devices on fc0, fb1..fb4; BGP runs "
                  "over a management veth per server")
        else:
            print("== ecmpfwd runs on AF_XDP ports fc0, fb1..fb4 (XDP attached through bpf_links)")
        self.start_companion()
        for i in range(1, BACKENDS + 1):
            self.start_server(i)
        self.wait_for("BGP sessions", lambda: self.peers_up() == BACKENDS, timeout=30)
        print(f"== {BACKENDS} servers have BGP sessions with the companion; each announces {PREFIX}")
        for i in range(1, BACKENDS + 1):
            self.announce(i)
        self.wait_for("four paths", lambda: len(self.members()) == BACKENDS)
        # Servers joined one after another, before any traffic: the table is then a function of
        # the member set alone, so it is balanced with no `clear`.
        m = self.members()
        self.claim(all(s == "active" and b == 64 for s, b in m.values()),
                   "the VIP's group has 4 active next hops with 64 of 256 buckets each, "
                   "without clear")
        print(self.show("route", PREFIX).split("  bucket map")[0].rstrip())

        flows = self.args.flows
        print(f"\n== round 1: {flows} TCP flows from the client to {VIP}")
        before = self.round("round1", flows, seed=1)
        self.claim(all(any(b == i for b in before.values()) for i in range(1, BACKENDS + 1)),
                   "every backend serves some flows")

        print("\n== server 3 dies (its BGP speaker is killed; the session drops)")
        victim = 3
        victim_addr, drained_addr = f"198.18.{victim}.1", "198.18.2.1"
        map_before = self.bucket_map()
        self.stop(f"server{victim}", signal.SIGKILL)
        self.wait_for("hop 3 failed", lambda: self.members()["198.18.3.1"][0] == "failed")
        what = self.ctl("route", PREFIX)[0]
        replaced = sum(1 for b in what["buckets"] if b["replaced"])
        self.claim(replaced == 64, f"only its 64 buckets moved ({replaced} marked replaced)")
        after = self.round("round 2 (same flows)", flows, seed=1)
        moved = {f for f in before if after.get(f) != before[f]}
        from_victim = {f for f in before if before[f] == victim}
        self.claim(moved == from_victim,
                   f"{len(moved)} flows moved, exactly the {len(from_victim)} that were on server 3")
        self.claim(all(after[f] != victim for f in after), "no flow goes to server 3")

        print("\n== server 2 drains (announces its path with GRACEFUL_SHUTDOWN, 65535:0)")
        self.announce(2, " community [65535:0]")
        self.wait_for("hop 2 draining", lambda: self.members()["198.18.2.1"][0] == "draining")
        kept = self.round("round 3 (established flows)", flows, seed=1)
        on2 = {f for f in after if after[f] == 2}
        self.claim(all(kept.get(f) == 2 for f in on2),
                   f"the {len(on2)} established flows on server 2 stay there")
        fresh = self.round("round 4 (new flows)", flows, seed=2, src="198.18.0.2")
        self.claim(all(b != 2 for b in fresh.values()), "no new flow goes to server 2")

        print("\n== server 3 comes back (its BGP speaker restarts and announces again)")
        self.start_server(victim)
        self.wait_for("server 3 session", lambda: self.peers_up() == BACKENDS, timeout=30)
        self.announce(victim)
        self.wait_for("hop 3 active", lambda: self.members()["198.18.3.1"][0] == "active")
        map_back = self.bucket_map()
        had = [b for b, a in enumerate(map_before) if a == victim_addr]
        has = [b for b, a in enumerate(map_back) if a == victim_addr]
        extra = len(has) - len(had)
        self.claim(set(had) <= set(has) and len(had) > 0,
                   f"server 3 got its {len(had)} buckets back, bucket by bucket, and {extra} "
                   f"that no flow had used (auto-recovery)")
        # Server 2 drains, so its buckets went to the others; every other bucket is as it was
        # or went to server 3 (unused buckets go to hops below their share; round 6 checks
        # that no established flow moved).
        moved = [b for b, a in enumerate(map_before)
                 if a != drained_addr and map_back[b] != a and map_back[b] != victim_addr]
        self.claim(len(map_back) == len(map_before) and not moved,
                   f"every bucket server 2 did not own has its owner of before the failure, "
                   f"or server 3 ({len(moved)} elsewhere)")
        back = self.round("round 5 (new flows)", flows, seed=3, src="198.18.0.3")
        self.claim(any(b == victim for b in back.values()), "new flows reach server 3 again")
        self.claim(all(b != 2 for b in back.values()), "still no new flow goes to server 2")
        again = self.round("round 6 (round 1's flows)", flows, seed=1)
        self.claim(all(again[f] == after[f] for f in again if after.get(f) is not None),
                   "flows established elsewhere while server 3 was down stay where they are")

        stats = self.ctl("stats")
        drops = dict((k, v) for k, v in stats["drops"])
        print(f"\n== ecmpfwd counters: {stats['workers'][0]['forwarded']} forwarded, drops {drops}")
        if self.dpdk:
            # The DPDK runtime checks its pools after the devices close and fails the run if an
            # mbuf is missing (net_af_xdp's fill rings excepted, bounded: see dpdk/mod.rs).
            rc = self.stop("ecmpfwd", wait=15.0)
            log = self.log("ecmpfwd")
            back = [re.sub(r"\x1b\[[0-9;]*m", "", l).split("ecmpfwd::dpdk: ", 1)[-1]
                    for l in log.splitlines() if "every mbuf is back in its pool" in l]
            self.claim(rc == 0 and len(back) == 1,
                       f"ecmpfwd stops cleanly (exit {rc}) with every mbuf back in its pool")
            if back:
                print(f"  ({back[0]})")
        took = time.monotonic() - t0
        print(f"\n{len(self.failures)} claim(s) failed; demo took {took:.0f} s")
        return 0 if not self.failures else 1

    def close(self):
        for key in list(self.procs):
            self.stop(key)
        subprocess.run([os.path.join(ROOT, "scripts", "lab"), "down", "--prefix", self.lab],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.bpffs is not None:
            subprocess.run(["umount", self.bpffs], stderr=subprocess.DEVNULL)
            self.bpffs = None
        if self.dpdk:
            shutil.rmtree(DPDK_RUNTIME, ignore_errors=True)
        if self.failures or self.args.keep_logs:
            print(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exabgp", required=True, help="the ExaBGP executable (in its venv)")
    ap.add_argument("--prefix", default="efwdemo", help="lab name prefix")
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=5, help="packets per flow per round")
    ap.add_argument("--rate", type=int, default=50000, help="packets per second")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--io", choices=("afxdp", "dpdk"), default="afxdp",
                    help="ecmpfwd's ports: its own AF_XDP ports (configs/lab-bgp.toml), or DPDK's "
                    "net_af_xdp devices (configs/lab-bgp-dpdk.toml; ecmpfwd built with the "
                    "feature dpdk)")
    ap.add_argument("--bin-dir", help="where ecmpfwd, ecmpfwd-pktgen and ecmpctl are "
                    "(default: target/release)")
    args = ap.parse_args()
    run_driver(Demo, args, "demo")


def run_driver(make, args, name):
    """Builds the driver `make(args)` and runs it: SIGTERM and SIGINT end it as errors, a failure
    prints the tails of ecmpfwd's and the companion's logs, and `close()` (every process killed,
    the lab torn down) runs whatever happened. Exits with the driver's status."""
    if args.bin_dir:
        global BIN
        BIN = os.path.abspath(args.bin_dir)
    # The servers' helper scripts find ExaBGP's python beside it, and run from another directory.
    args.exabgp = os.path.abspath(args.exabgp)
    driver = make(args)

    def interrupted(signum, _frame):
        raise RuntimeError(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    status = 1
    try:
        status = driver.run()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"\n{name} failed: {e}", file=sys.stderr)
        for key in ("ecmpfwd", "companion"):
            tail = driver.log(key)[-3000:]
            if tail:
                print(f"--- {key} log (tail) ---\n{tail}", file=sys.stderr)
    finally:
        driver.close()
    sys.exit(status)

if __name__ == "__main__":
    main()
