#!/usr/bin/env python3
"""The scale-out demo (run by scripts/demo-scale, as root): several ecmpfwd forwarders behind one
ECMP router, the backends' membership learnt over BGP from a route reflector.

Topology (scripts/lab-scale): a client, a router (kernel ECMP, BIRD learning the VIP from every
forwarder's companion), N forwarders (ecmpfwd on AF_XDP and a companion ExaBGP each), a server LAN
with M backends holding the VIP 198.19.0.1, each announcing it with a BGP speaker (BIRD) to a
route reflector (BIRD) that reflects every path to every companion with ADD-PATH.

Every claim printed is checked; the exit status is 1 if one does not hold. The lab is torn down
on the way out (`lab-scale down`, which stops every process it started by PID), failure, SIGTERM
or Ctrl-C alike; the demo's own processes (the backends' TCP servers) are stopped by PID first.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labdemo  # noqa: E402  (scripts/lib, beside this file: the claim and wait helpers)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab-scale")
PORT = 8080
PORTS_FROM = 40000


class Demo(labdemo.Claims):
    POLL = 0.05

    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin_dir)
        super().__init__()
        self.env = {}
        self.servers = []
        self.lab_started = False

    # ---- plumbing -------------------------------------------------------------------------

    def lab(self, *args, timeout=120):
        out = subprocess.run([LAB, *args, "--prefix", self.args.prefix], capture_output=True,
                             text=True, timeout=timeout,
                             env=dict(os.environ, ECMP_EXABGP=self.args.exabgp))
        if out.returncode != 0:
            raise RuntimeError(f"lab-scale {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def read_env(self):
        self.env = dict(l.split("=", 1) for l in self.lab("env").splitlines() if "=" in l)

    def ns(self, name):
        return ["ip", "netns", "exec", f"{self.args.prefix}-{name}"]

    def ctl(self, i, *args):
        sock = self.env[f"SCALE_F{i}_CTL"]
        out = subprocess.run([os.path.join(self.bin, "ecmpctl"), "--socket", sock, "--json",
                              *args], capture_output=True, text=True, timeout=15)
        if out.returncode != 0:
            raise RuntimeError(f"ecmpctl on f{i} {' '.join(args)}: {out.stderr.strip()}")
        return json.loads(out.stdout)["result"]

    def show(self, i, *args):
        sock = self.env[f"SCALE_F{i}_CTL"]
        return subprocess.run([os.path.join(self.bin, "ecmpctl"), "--socket", sock, *args],
                              capture_output=True, text=True, timeout=15).stdout

    # ---- what the lab says ----------------------------------------------------------------

    def next_hops(self):
        out = subprocess.run(["ip", "-n", self.env["SCALE_NS_RT"], "-4", "route", "show",
                              self.env["SCALE_VIP4"] + "/32"], capture_output=True, text=True)
        words = out.stdout.split()
        return {words[k + 1] for k, w in enumerate(words[:-1]) if w == "via"}

    def fwd_addrs(self, which):
        return {self.env[f"SCALE_F{i}_IP4"] for i in which}

    def serving(self, i):
        """The backends owning buckets in forwarder i's VIP group."""
        route = self.ctl(i, "route", self.env["SCALE_VIP4"] + "/32")[0]
        return {m["addr"] for m in route["members"]
                if m["state"] == "active" and m["buckets"] > 0}

    def owners(self, i):
        """Forwarder i's VIP bucket map: each bucket's owner by address."""
        route = self.ctl(i, "route", self.env["SCALE_VIP4"] + "/32")[0]
        addr = {m["hop"]: m["addr"] for m in route["members"]}
        return [addr.get(b["hop"]) for b in route["buckets"]]

    def digest(self, i):
        return self.ctl(i, "groups")["digest"]

    def uplink_rx(self, i):
        ports = self.ctl(i, "stats")["ports"]
        return next(p["rx_packets"] for p in ports if p["name"] == "up")

    def trace(self, i, sport):
        r = self.ctl(i, "trace", self.env["SCALE_CL_IP4"], self.env["SCALE_VIP4"], "--proto",
                     "tcp", "--sport", str(sport), "--dport", str(PORT))
        return r["addr"]

    def backend_name(self, addr):
        return "b" + addr.rsplit(".", 1)[1]

    # ---- traffic --------------------------------------------------------------------------

    def start_servers(self):
        for j in range(1, self.m + 1):
            p = subprocess.Popen(self.ns(f"b{j}") + ["socat", f"TCP-LISTEN:{PORT},reuseaddr,fork",
                                                     f"SYSTEM:echo b{j}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            self.servers.append(p)

        def listening():
            for j in range(1, self.m + 1):
                out = subprocess.run(self.ns(f"b{j}") + ["ss", "-Hltn", f"sport = :{PORT}"],
                                     capture_output=True, text=True)
                if not out.stdout.strip():
                    return False
            return True
        self.wait_for("the backends' TCP servers", listening, timeout=5)

    def connect_round(self, name):
        """One TCP connection from each of `--connections` client source ports to the VIP;
        returns {source port: backend that answered}."""
        answers, failed = {}, 0
        for port in range(PORTS_FROM, PORTS_FROM + self.args.connections):
            out = subprocess.run(self.ns("cl") + [
                "timeout", "5", "socat", "-T2", "-",
                f"TCP:{self.env['SCALE_VIP4']}:{PORT},sourceport={port},reuseaddr"],
                capture_output=True, text=True, stdin=subprocess.DEVNULL)
            said = out.stdout.strip()
            if out.returncode == 0 and said.startswith("b"):
                answers[port] = said
            else:
                failed += 1
        self.claim(failed == 0, f"{name}: {len(answers)} of {self.args.connections} "
                   "connections answered by a backend")
        per = {}
        for b in answers.values():
            per[b] = per.get(b, 0) + 1
        print("      " + "  ".join(f"{b}: {n:>3}" for b, n in sorted(per.items())))
        return answers

    def same_backends(self, first, now, text, but=None):
        moved = [p for p in first if first[p] != but and now.get(p) != first[p]]
        self.claim(not moved, f"{text} ({len(moved)} moved)")

    def check_agree(self, which, text):
        digests = {i: self.digest(i) for i in which}
        self.claim(len(set(digests.values())) == 1,
                   f"{text}: " + ", ".join(f"f{i} {d}" for i, d in digests.items()))
        return next(iter(digests.values()))

    # ---- the story ------------------------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        n, self.m, a = self.args.forwarders, self.args.backends, self.args
        print(f"== lab: client, router, {n} forwarders (ecmpfwd on AF_XDP), route reflector, "
              f"{self.m} backends; VIP group mode {a.mode} (namespaces {a.prefix}-*)")
        self.lab_started = True
        self.lab("up", "--forwarders", str(n), "--backends", str(self.m), "--mode", a.mode,
                 "--bin-dir", self.bin)
        self.read_env()
        vip = self.env["SCALE_VIP4"]
        everyone = range(1, n + 1)
        backends = {self.env[f"SCALE_B{j}_IP4"] for j in range(1, self.m + 1)}
        print(f"   up in {time.monotonic() - t0:.1f} s")

        print(f"\n== the route reflector ({self.env['SCALE_RR_IP4']}) holds one path per backend "
              "and reflects all of them to every companion (ADD-PATH)")
        rr = subprocess.run(["birdc", "-s", self.env["SCALE_RR_CTL"], "show", "route", "for",
                             vip, "all"], capture_output=True, text=True).stdout
        paths = [l.split()[-1] for l in rr.splitlines() if "BGP.next_hop" in l]
        print(f"   birdc show route for {vip}: next hops {' '.join(sorted(paths))}")
        self.claim(set(paths) == backends and len(paths) == self.m,
                   f"the reflector has {len(paths)} paths for {vip}, one per backend")
        for i in everyone:
            self.wait_for(f"f{i} to serve with every backend",
                          lambda i=i: self.serving(i) == backends, timeout=10)
        peers = {i: [(p["peer"], p["paths"]) for p in self.ctl(i, "peers") if p["paths"] > 0]
                 for i in everyone}
        self.claim(all(v == [(self.env["SCALE_RR_IP4"], self.m)] for v in peers.values()),
                   f"every forwarder learnt {self.m} paths, all from the reflector, and its VIP "
                   f"group has the {self.m} backends (no backend is in any forwarder's config)")

        print(f"\n== the router has one next hop per forwarder (learnt from the companions)")
        print("   " + subprocess.run(["ip", "-n", self.env["SCALE_NS_RT"], "route", "show", vip],
                                    capture_output=True, text=True).stdout.strip()
              .replace("\n", "\n   "))
        self.claim(self.next_hops() == self.fwd_addrs(everyone),
                   f"{vip} has {n} next hops: " + " ".join(sorted(self.fwd_addrs(everyone))))

        print(f"\n== every forwarder has the same tables (ecmpctl routes on each)")
        for i in everyone:
            lines = self.show(i, "routes").splitlines()
            print(f"   f{i}: " + lines[1] + "\n       " + lines[-1])
        first_digest = self.check_agree(everyone, "same table digest on every forwarder")
        flows = range(PORTS_FROM, PORTS_FROM + a.connections)
        picks = {i: {p: self.trace(i, p) for p in flows} for i in everyone}
        self.claim(all(picks[i] == picks[1] for i in everyone),
                   f"ecmpctl trace: each of {a.connections} client 5-tuples gets the same backend "
                   "on every forwarder")

        print(f"\n== {a.connections} TCP connections from the client (one per source port), "
              "spread over the forwarders by the router")
        self.start_servers()
        rx = {i: self.uplink_rx(i) for i in everyone}
        first = self.connect_round("round 1")
        got = {i: self.uplink_rx(i) - rx[i] for i in everyone}
        print("      packets in per forwarder: " + "  ".join(f"f{i}: {got[i]}" for i in everyone))
        self.claim(all(v > 0 for v in got.values()), "the router sent every forwarder some")
        self.claim(all(first.get(p) == self.backend_name(picks[1][p]) for p in flows),
                   "every connection reached the backend the forwarders' trace named")

        print("\n== forwarder 1 leaves gracefully (SIGTERM: it withdraws the VIP, then stops)")
        t = time.monotonic()
        os.kill(int(self.env["SCALE_F1_PID"]), signal.SIGTERM)
        self.wait_for("the router to drop f1",
                      lambda: self.next_hops() == self.fwd_addrs(range(2, n + 1)))
        self.claim(True, f"the router dropped f1's next hop {time.monotonic() - t:.2f} s later")
        now = self.connect_round("round 2 (the same 5-tuples)")
        self.same_backends(first, now, "every connection reached the backend it reached before")

        print("\n== forwarder 1 comes back (lab-scale start: ecmpfwd and its companion)")
        t = time.monotonic()
        self.lab("start", "--forwarder", "1")
        self.wait_for("the router to add f1",
                      lambda: self.next_hops() == self.fwd_addrs(everyone))
        self.read_env()
        self.claim(True, f"the router has f1 again {time.monotonic() - t:.2f} s after its start")
        self.check_agree(everyone, "f1 learnt the same paths: same digest everywhere")
        now = self.connect_round("round 3")
        self.same_backends(first, now, "every connection reached the backend it reached before")

        print("\n== forwarder 2 dies (SIGKILL: no withdraw; its companion's helper ends the "
              "BGP session)")
        t = time.monotonic()
        os.kill(int(self.env["SCALE_F2_PID"]), signal.SIGKILL)
        others = [i for i in everyone if i != 2]
        self.wait_for("the router to drop f2",
                      lambda: self.next_hops() == self.fwd_addrs(others))
        self.claim(True, f"the router dropped f2's next hop {time.monotonic() - t:.2f} s later")
        now = self.connect_round("round 4")
        self.same_backends(first, now, "every connection reached the backend it reached before")
        self.lab("start", "--forwarder", "2")
        self.wait_for("the router to add f2",
                      lambda: self.next_hops() == self.fwd_addrs(everyone))
        self.read_env()
        self.claim(True, "f2 started again: the router has its next hop back")

        victim = 3 if self.m >= 3 else self.m
        gone = self.env[f"SCALE_B{victim}_IP4"]
        print(f"\n== backend {victim} leaves: its BGP speaker stops, the reflector withdraws its "
              "path from every companion")
        t = time.monotonic()
        owners = self.owners(1)
        os.kill(int(self.env[f"SCALE_B{victim}_SPEAKER_PID"]), signal.SIGTERM)
        for i in everyone:
            self.wait_for(f"f{i} to drop b{victim}",
                          lambda i=i: self.serving(i) == backends - {gone}, timeout=10)
        self.claim(True, f"every forwarder took b{victim} out of the VIP's group within "
                   f"{time.monotonic() - t:.2f} s")
        without = self.check_agree(everyone, f"same digest everywhere without b{victim}")
        self.claim(without != first_digest, "and it is a new one")
        now = self.connect_round("round 5")
        self.claim(all(b != f"b{victim}" for b in now.values()),
                   f"no connection reached b{victim}")
        after = self.owners(1)
        shifted = sum(1 for o, n in zip(owners, after) if o != gone and o != n)
        own = sum(1 for o in owners if o == gone)
        print(f"      f1's bucket map: b{victim}'s {own} buckets moved, and {shifted} of the "
              "others")
        if a.mode == "rendezvous":
            self.claim(shifted == 0, "rendezvous moved only the leaver's buckets")
        moved = [p for p in first if first[p] != f"b{victim}" and now.get(p) != first[p]]
        if a.mode == "rendezvous":
            self.claim(not moved, f"connections on the other backends stayed ({len(moved)} "
                       "moved)")
        else:
            print(f"      {len(moved)} connection(s) of other backends moved (a forwarder's "
                  "cached flows stay; maglev may move a few buckets besides the leaver's, "
                  "--mode rendezvous none)")

        print(f"\n== backend {victim} returns (lab-scale speaker: its speaker announces again)")
        self.lab("speaker", "--backend", str(victim))
        for i in everyone:
            self.wait_for(f"f{i} to take b{victim} back",
                          lambda i=i: self.serving(i) == backends, timeout=10)
        again = self.check_agree(everyone, f"same digest everywhere with b{victim} back")
        self.claim(again == first_digest, "the first digest again: the table is a function of "
                   "the member set and the seed")
        back = self.connect_round("round 6")
        self.same_backends(first, back, f"every connection not on b{victim} at first reached "
                           "the same backend", but=f"b{victim}")
        # A forwarder that carried one of b{victim}'s flows while it was away keeps that flow
        # where it went (its flow cache) until the entry expires; the others pick b{victim}
        # from the bucket again.
        strays = [p for p in first if first[p] == f"b{victim}"
                  and back.get(p) not in (f"b{victim}", now.get(p))]
        self.claim(not strays and any(b == f"b{victim}" for b in back.values()),
                   f"b{victim}'s connections went back to it or stayed where round 5 put them "
                   f"({sum(1 for b in back.values() if b == f'b{victim}')} on b{victim} again, "
                   f"{len(strays)} elsewhere)")

        took = time.monotonic() - t0
        print(f"\n{len(self.failures)} claim(s) failed; demo took {took:.0f} s")
        return 0 if not self.failures else 1

    def close(self):
        for p in self.servers:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=5)
        if self.lab_started:
            subprocess.run([LAB, "down", "--prefix", self.args.prefix],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            print(f"lab {self.args.prefix} torn down")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exabgp", required=True, help="the ExaBGP executable (in its venv)")
    ap.add_argument("--prefix", default="escdemo", help="lab name prefix (1-16 characters)")
    ap.add_argument("--forwarders", type=int, default=3)
    ap.add_argument("--backends", type=int, default=4)
    ap.add_argument("--mode", default="maglev", choices=["maglev", "rendezvous"])
    ap.add_argument("--connections", type=int, default=40,
                    help="TCP connections per round (one per client source port)")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"),
                    help="where ecmpfwd and ecmpctl are (default: target/release)")
    args = ap.parse_args()
    if not 2 <= args.forwarders <= 9 or not 1 <= args.backends <= 99:
        ap.error("--forwarders must be 2..9 and --backends 1..99")
    labdemo.run_driver(Demo, args, "demo-scale")


if __name__ == "__main__":
    main()
