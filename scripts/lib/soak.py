#!/usr/bin/env python3
"""The soak (run by scripts/soak, as root): ecmpfwd on AF_XDP in the lab of scripts/demo for
minutes, under traffic and churn at once.

- Traffic: ecmpfwd-pktgen at 80% of the rate ecmpfwd sustains here (measured first, same mix,
  senders flat out): many TCP flows to the BGP-learnt IPv4 VIP (rewrite), UDP to a VIP whose group
  encapsulates in VXLAN, and UDP to the IPv6 VIP; XDP drop sinks count what reaches the backends.
- BGP churn: every few seconds a backend's BGP speaker is killed (its session drops, its path
  goes) and restarted (it announces again); in between, another backend is drained and undrained.
- Route churn: a second feed client, standing in for a companion with one more peer, announces,
  withdraws and changes paths of 10k other prefixes at 1,000 updates/s, and keeps a model of
  what it said.
- Once a second: ecmpfwd's RSS, where its UMEM frames are, and its counters.

It fails (exit status 1) on: ecmpfwd exiting or panicking; a UMEM frame unaccounted for in any
sample, or the frames lent to the kernel not back to their idle level at the end; a packet
unaccounted for (received != forwarded + dropped by reason); RSS growing over 5% after the
warm-up (the first minute, or half of a shorter run); a route that differs from what the feed
last said. One summary line at the end; the whole record in a JSON report.
Every process started here is killed by PID and the lab torn down on the way out.
"""
import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labdemo  # noqa: E402  (the lab plumbing: namespaces, ExaBGP servers, the companion)

ROOT = labdemo.ROOT
RUN = "/run/ecmpfwd-soak"
labdemo.CONFIG = os.path.join(ROOT, "configs", "lab-soak.toml")
labdemo.CTL = f"{RUN}/ctl.sock"
labdemo.FEED = f"{RUN}/feed.sock"
VIP4, VIP_VXLAN, VIP6 = "198.19.0.1", "198.19.0.2", "2001:2:0:ffff::1"
# Share of the offered packets per stream (the BGP VIP takes most, like a service's main VIP).
STREAMS = [
    # name, driver, src, dst, proto, flows, share
    ("vip4", "afxdp", None, VIP4, "tcp", 20000, 0.6),
    ("vxlan", "afpacket", None, VIP_VXLAN, "udp", 2000, 0.2),
    ("vip6", "afpacket", "2001:2::1", VIP6, "udp", 2000, 0.2),
]
CHURN_PEER = "10.255.0.1"
CHURN_BASE = ipaddress.ip_address("100.64.0.0")
RSS_LIMIT = 0.05
# Frames an AF_XDP port puts on its fill ring at a time (forwarder/io/src/xdp/socket.rs).
FILL_BATCH = 32


class Churn:
    """A feed client with one peer of its own: ExaBGP JSON lines for `prefixes` /24s with up to
    four paths each (next hops: the backends), and the model of what it announced."""

    def __init__(self, path, prefixes, rate, seed):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.prefixes = [f"{CHURN_BASE + 256 * k}/24" for k in range(prefixes)]
        self.rate = rate
        self.rng = random.Random(seed)
        self.paths = {p: {} for p in self.prefixes}  # prefix -> {path id: next hop}
        self.updates = 0
        self.counter = 0
        self.stop = threading.Event()
        self.error = None
        # ecmpfwd writes a route-refresh request to every feed client; this one has nothing to
        # refresh, so what it is sent is read and dropped.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def _line(self, kind, body):
        self.counter += 1
        msg = {"exabgp": "5.0.0", "time": time.time(), "host": "soak", "pid": os.getpid(),
               "ppid": 1, "counter": self.counter, "type": kind,
               "neighbor": dict({"address": {"local": "10.255.0.254", "peer": CHURN_PEER},
                                 "asn": {"local": 65000, "peer": 65100},
                                 "router-id": "10.255.0.254"}, **body)}
        return json.dumps(msg, separators=(",", ":")) + "\n"

    def up(self):
        self.sock.sendall(self._line("state", {"state": "up"}).encode())

    def _announce(self, prefix, pid, nh):
        self.paths[prefix][pid] = nh
        return self._line("update", {"direction": "receive", "message": {"update": {
            "attribute": {"origin": "igp",
                          "as-path": {"0": {"element": "as-sequence", "value": [65100]}}},
            "announce": {"ipv4 unicast": {nh: [{"nlri": prefix,
                                                "path-information": f"0.0.0.{pid}"}]}}}}})

    def _withdraw(self, prefix, pid):
        del self.paths[prefix][pid]
        return self._line("update", {"direction": "receive", "message": {"update": {
            "withdraw": {"ipv4 unicast": [{"nlri": prefix, "path-information": f"0.0.0.{pid}"}]}}}})

    def _one(self):
        """One update: announce a new path, change a path's next hop, or withdraw a path."""
        prefix = self.rng.choice(self.prefixes)
        paths = self.paths[prefix]
        nh = f"198.18.{self.rng.randint(1, 4)}.1"
        op = self.rng.random()
        if paths and (op < 0.35 or len(paths) == 4):
            return self._withdraw(prefix, self.rng.choice(list(paths)))
        if paths and op < 0.65:
            return self._announce(prefix, self.rng.choice(list(paths)), nh)
        pid = self.rng.choice([p for p in range(1, 5) if p not in paths])
        return self._announce(prefix, pid, nh)

    def load(self):
        """Every prefix gets one path, as fast as the socket takes them."""
        out = []
        for k, prefix in enumerate(self.prefixes):
            out.append(self._announce(prefix, 1, f"198.18.{k % 4 + 1}.1"))
        self.sock.sendall("".join(out).encode())
        self.updates += len(out)

    def run(self):
        """`rate` updates a second, in ten-millisecond slices, until stopped."""
        try:
            t0 = time.monotonic()
            sent = 0
            while not self.stop.is_set():
                due = int((time.monotonic() - t0) * self.rate)
                if due > sent:
                    self.sock.sendall("".join(self._one() for _ in range(due - sent)).encode())
                    self.updates += due - sent
                    sent = due
                time.sleep(0.01)
        except OSError as e:
            self.error = f"feed client: {e}"

    def expected(self):
        """prefix -> distinct next hops of its current paths (absent: no path)."""
        return {p: len(set(paths.values())) for p, paths in self.paths.items() if paths}


class Soak(labdemo.Demo):
    def __init__(self, args):
        super().__init__(args)
        self.samples = []
        self.events = {"flaps": 0, "drains": 0}
        self.stop_churn = threading.Event()
        self.thread_errors = []

    def close(self):
        # The churn threads stop first, so none acts on a lab being torn down.
        self.stop_churn.set()
        super().close()

    def pid(self):
        return self.procs["ecmpfwd"].pid

    def rss_kib(self):
        with open(f"/proc/{self.pid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stats(self):
        return self.ctl("stats")

    def sample(self, t):
        s = self.stats()
        w = s["workers"]
        self.samples.append({
            "t": round(t, 1), "rss_kib": self.rss_kib(),
            "umem": [x.get("umem") for x in w],
            "rx": sum(x["packets"] for x in w), "forwarded": sum(x["forwarded"] for x in w),
            "dropped": sum(x["dropped"] for x in w),
        })

    def fc0_counters(self):
        """The client-side interface's own counters (`ethtool -S fc0`): what the kernel saw
        before ecmpfwd did (veth's XDP redirects and drops)."""
        out = subprocess.run(self.ns("fw") + ["ethtool", "-S", "fc0"], capture_output=True,
                             text=True, timeout=10).stdout
        counters = {}
        for line in out.splitlines():
            key, _, value = line.strip().partition(":")
            if value.strip().isdigit() and ("xdp" in key or "drop" in key or "packets" in key):
                counters[key.strip()] = int(value)
        return counters

    # ---- traffic ----------------------------------------------------------------------------

    def start_sinks(self, tag):
        for i in range(1, labdemo.BACKENDS + 1):
            ready = os.path.join(self.dir, f"{tag}-ready-{i}")
            self.spawn(f"sink{i}", self.ns(f"b{i}") + [
                os.path.join(labdemo.BIN, "ecmpfwd-pktgen"), "sink", "--iface", "b0",
                "--driver", "xdp-drop", "--duration", "0", "--ready-file", ready,
                "--out", os.path.join(self.dir, f"{tag}-sink-{i}.json")])
        for i in range(1, labdemo.BACKENDS + 1):
            ready = os.path.join(self.dir, f"{tag}-ready-{i}")
            self.wait_for(f"sink {i}", lambda r=ready: os.path.exists(r), timeout=15)

    def stop_sinks(self, tag):
        got = 0
        for i in range(1, labdemo.BACKENDS + 1):
            self.stop(f"sink{i}")
            with open(os.path.join(self.dir, f"{tag}-sink-{i}.json")) as f:
                got += json.load(f)["packets"]
        return got

    def start_senders(self, tag, seconds, total_rate):
        for name, driver, src, dst, proto, flows, share in STREAMS:
            rate = 0 if total_rate == 0 else max(1, int(total_rate * share))
            # Core 0: the worker has core 1 to itself (the kernel's share of each sent packet,
            # the veth peers' receive and XDP, runs in the sender's context, so on core 0 too).
            self.spawn(f"send-{name}", ["taskset", "-c", "0"] + self.ns("cl") + [
                os.path.join(labdemo.BIN, "ecmpfwd-pktgen"), "send", "--iface", "cl0",
                "--driver", driver, "--dst-mac", self.env["LAB_FC_MAC"],
                "--src-ip", src or self.env["LAB_CL_IP4"], "--dst-ip", dst, "--proto", proto,
                "--flows", str(flows), "--vary", "both", "--size", "100",
                "--duration", str(seconds), "--rate", str(rate),
                "--out", os.path.join(self.dir, f"{tag}-{name}.json")])

    def wait_senders(self, tag, timeout):
        sent = {}
        for name, *_ in STREAMS:
            p = self.procs[f"send-{name}"]
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"sender {name} did not finish")
            self.procs.pop(f"send-{name}")
            if p.returncode != 0:
                raise RuntimeError(f"sender {name} failed:\n{self.log('send-' + name)[-2000:]}")
            with open(os.path.join(self.dir, f"{tag}-{name}.json")) as f:
                sent[name] = json.load(f)["packets"]
        return sent

    def measure(self, seconds):
        """Packets per second ecmpfwd forwards, and the senders offer, with every sender flat
        out: counters read twice while all of them run (a second after the start, a second
        before the end), so start-up and wind-down are left out."""
        self.start_sinks("measure")
        self.start_senders("measure", seconds, 0)
        time.sleep(1.0)
        a, ta = self.stats(), time.monotonic()
        time.sleep(max(1.0, seconds - 2.0))
        b, tb = self.stats(), time.monotonic()
        self.wait_senders("measure", seconds + 30)
        self.stop_sinks("measure")
        fwd = lambda s: sum(w["forwarded"] for w in s["workers"])  # noqa: E731
        rx = lambda s: sum(p["rx_packets"] for p in s["ports"] if p["name"] == "fc0")  # noqa: E731
        return (fwd(b) - fwd(a)) / (tb - ta), (rx(b) - rx(a)) / (tb - ta)

    # ---- churn ------------------------------------------------------------------------------

    def flapper(self, period):
        """Kills one backend's BGP speaker and starts it again, round robin, every `period` s.
        Backend 1 is never drained, so the VIP always keeps an active member."""
        k = 1
        try:
            while not self.stop_churn.wait(period):
                self.stop(f"server{k}", signal.SIGKILL)
                self.wait_for(f"hop {k} failed",
                              lambda k=k: self.members()[f"198.18.{k}.1"][0] == "failed")
                time.sleep(1.0)
                self.start_server(k)
                self.wait_for(f"server {k} session",
                              lambda: self.peers_up() == labdemo.BACKENDS, timeout=30)
                self.announce(k)
                self.wait_for(f"hop {k} back",
                              lambda k=k: self.members()[f"198.18.{k}.1"][0] != "failed")
                self.events["flaps"] += 1
                k = k % labdemo.BACKENDS + 1
        except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as e:
            self.thread_errors.append(f"flapper: {e}")

    def drainer(self, period):
        """Drains a backend (2..4 in turn) for half a period, then undrains it."""
        j = 2
        try:
            while not self.stop_churn.wait(period / 2):
                self.ctl("drain", f"198.18.{j}.1")
                if self.stop_churn.wait(period / 2):
                    self.ctl("undrain", f"198.18.{j}.1")
                    break
                self.ctl("undrain", f"198.18.{j}.1")
                self.events["drains"] += 1
                j = j % 3 + 2
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.thread_errors.append(f"drainer: {e}")

    def peers_up(self):
        # The churn client's peer is up too; count the servers only.
        return sum(1 for p in self.ctl("peers")
                   if p["state"] == "up" and p["peer"] != CHURN_PEER)

    # ---- the run ----------------------------------------------------------------------------

    def run(self):
        a = self.args
        seconds = int(a.minutes * 60)
        warm = min(60, seconds // 2)
        t_start = time.monotonic()
        print(f"== soak: {a.minutes:g} min; lab {self.lab}, config {labdemo.CONFIG}")
        self.lab_up()
        self.start_forwarder()
        # The churn client connects first: a feed client's arrival asks every known peer for a
        # refresh, which this client (with no peer of its own yet) is not asked to answer.
        churn = Churn(labdemo.FEED, a.prefixes, a.updates, a.seed)
        churn.up()
        self.start_companion()
        for i in range(1, labdemo.BACKENDS + 1):
            self.start_server(i)
        self.wait_for("BGP sessions", lambda: self.peers_up() == labdemo.BACKENDS, timeout=60)
        for i in range(1, labdemo.BACKENDS + 1):
            self.announce(i)
        self.wait_for("the VIP's four paths", lambda: len(self.members()) == labdemo.BACKENDS)
        churn.load()
        self.wait_for("the churned prefixes",
                      lambda: len(self.ctl("routes")) >= a.prefixes + 5, timeout=60)
        print(f"== {labdemo.BACKENDS} BGP servers up; {a.prefixes} churn prefixes loaded")

        fwd_rate, rx_rate = self.measure(a.measure_seconds)
        target = int(0.8 * fwd_rate)
        print(f"== ecmpfwd sustains {fwd_rate:,.0f} pps here (received {rx_rate:,.0f} pps with "
              f"the senders flat out); the soak offers 80%: {target:,} pps")

        time.sleep(1.0)
        idle = self.stats()["workers"]
        idle_umem = [w.get("umem") for w in idle]
        before = self.stats()
        fc0_before = self.fc0_counters()
        rss0 = self.rss_kib()
        self.start_sinks("soak")
        self.start_senders("soak", seconds, target)
        churn_thread = threading.Thread(target=churn.run, daemon=True)
        flap = threading.Thread(target=self.flapper, args=(a.flap_every,), daemon=True)
        drain = threading.Thread(target=self.drainer, args=(a.drain_every,), daemon=True)
        for t in (churn_thread, flap, drain):
            t.start()
        t0 = time.monotonic()
        next_sample = t0
        while time.monotonic() - t0 < seconds:
            if self.procs["ecmpfwd"].poll() is not None:
                raise RuntimeError("ecmpfwd exited:\n" + self.log("ecmpfwd")[-3000:])
            if time.monotonic() >= next_sample:
                self.sample(time.monotonic() - t0)
                next_sample += 1.0
            time.sleep(0.05)
        churn.stop.set()
        self.stop_churn.set()
        for t in (churn_thread, flap, drain):
            t.join(timeout=60)
        sent = self.wait_senders("soak", 60)
        time.sleep(1.0)
        reached = self.stop_sinks("soak")
        self.sample(time.monotonic() - t0)
        # Routes settle: the last batch is published within the batch window.
        time.sleep(1.0)
        end = self.stats()
        fc0_after = self.fc0_counters()
        conv = self.ctl("convergence")
        routes = {r["prefix"]: r for r in self.ctl("routes")}
        expected = churn.expected()

        # ---- checks ---------------------------------------------------------------------
        alive = self.procs["ecmpfwd"].poll() is None
        panics = "panicked" in self.log("ecmpfwd")
        self.claim(alive and not panics, "ecmpfwd ran throughout, no panic")
        self.claim(not self.thread_errors and churn.error is None,
                   "churn ran throughout" + (f": {self.thread_errors} {churn.error or ''}"
                                             if self.thread_errors or churn.error else ""))
        leaks = [s["t"] for s in self.samples
                 if any(u and u["outstanding"] != u["kernel_held"] + u["in_worker"]
                        for u in s["umem"])]
        self.claim(not leaks, f"every UMEM frame accounted for in all {len(self.samples)} "
                   f"samples (free, with the kernel or in the worker)"
                   + (f"; not at t={leaks[:5]}" if leaks else ""))
        # A port tops its fill ring up a batch at a time (FILL_BATCH in
        # forwarder/io/src/xdp/socket.rs), so an idle port's rings may lack up to a batch less
        # one: the level at the end must be the idle level before the traffic, within that.
        end_umem = [w.get("umem") for w in end["workers"]]
        slack = (FILL_BATCH - 1) * len(end["ports"])
        self.claim(all(e and i and abs(e["outstanding"] - i["outstanding"]) <= slack
                       and e["in_worker"] == 0 for e, i in zip(end_umem, idle_umem)),
                   f"frames outstanding back to the rings' idle level at the end "
                   f"({[u and u['outstanding'] for u in end_umem]} vs "
                   f"{[u and u['outstanding'] for u in idle_umem]} before the traffic; fill rings "
                   f"are topped up a batch at a time, so within {slack})")
        w = end["workers"]
        rx = sum(x["packets"] for x in w)
        fwd = sum(x["forwarded"] for x in w)
        dropped = sum(x["dropped"] for x in w)
        drops = dict(end["drops"])
        self.claim(rx == fwd + dropped and dropped == sum(drops.values()),
                   f"every packet accounted for: {rx:,} received = {fwd:,} forwarded + "
                   f"{dropped:,} dropped by reason {drops}")
        after_warm = [s["rss_kib"] for s in self.samples if s["t"] >= warm]
        rss_warm = after_warm[0] if after_warm else rss0
        growth = (max(after_warm) - rss_warm) / rss_warm if after_warm else 0.0
        self.claim(growth <= RSS_LIMIT,
                   f"RSS after the {warm} s warm-up grew {growth * 100:.2f}% "
                   f"({rss_warm} -> max {max(after_warm) if after_warm else rss_warm} KiB; "
                   f"limit {RSS_LIMIT * 100:.0f}%)")
        wrong = []
        for prefix in churn.prefixes:
            r = routes.get(prefix)
            want = expected.get(prefix)
            got = None if r is None else r["active"] + r["draining"]
            if want != got:
                wrong.append((prefix, want, got))
        self.claim(not wrong, f"all {len(churn.prefixes)} churned prefixes are what the feed "
                   f"last said ({len(expected)} with paths)"
                   + (f"; differ: {wrong[:5]}" if wrong else ""))
        vip = self.members()
        self.claim(all(s == "active" for s, _ in vip.values()) and len(vip) == 4,
                   "the VIP ends with its four servers active")

        rss_all = [s["rss_kib"] for s in self.samples] or [rss0]
        delta = lambda k: sum(x[k] for x in end["workers"]) - sum(x[k] for x in before["workers"])  # noqa: E731
        report = {
            "minutes": a.minutes, "config": os.path.relpath(labdemo.CONFIG, ROOT),
            "sustained_pps": round(fwd_rate), "offered_pps_target": target,
            "sent": sent, "received": delta("packets"), "forwarded": delta("forwarded"),
            "dropped": delta("dropped"), "drops_by_reason": drops, "reached_backends": reached,
            "fc0_kernel_counters": {k: v - fc0_before.get(k, 0) for k, v in fc0_after.items()},
            "route_updates": churn.updates, "churn_prefixes": a.prefixes,
            "flaps": self.events["flaps"], "drains": self.events["drains"],
            "rss_kib": {"start": rss0, "min": min(rss_all), "max": max(rss_all),
                        "at_warm_up": rss_warm, "growth_after_warm_up": round(growth, 4)},
            "convergence_us": {k: conv[k] for k in ("samples", "p50_us", "p99_us", "max_us")},
            "failures": self.failures, "samples": self.samples,
            "took_s": round(time.monotonic() - t_start, 1),
        }
        with open(a.report, "w") as f:
            json.dump(report, f, indent=1)
        lost = report["fc0_kernel_counters"].get("rx_queue_0_drops", 0)
        report["kernel_dropped_before_ecmpfwd"] = lost
        print(f"soak {'PASS' if not self.failures else 'FAIL'}: {a.minutes:g} min, "
              f"{sum(sent.values()):,} packets sent at {target:,} pps, "
              f"{lost:,} ({100 * lost / max(1, sum(sent.values())):.2f}%) dropped by the kernel "
              f"before ecmpfwd (AF_XDP rx ring full), "
              f"{report['forwarded']:,} forwarded, {report['dropped']:,} dropped, "
              f"{churn.updates:,} route updates, {self.events['flaps']} flaps, "
              f"{self.events['drains']} drains, RSS {min(rss_all)}-{max(rss_all)} KiB, "
              f"convergence p99 {conv['p99_us']:.0f} us; report {a.report}")
        return 0 if not self.failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exabgp", required=True, help="the ExaBGP executable (in its venv)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--prefix", default="efwsoak", help="lab name prefix")
    ap.add_argument("--prefixes", type=int, default=10000, help="churned prefixes")
    ap.add_argument("--updates", type=int, default=1000, help="route updates per second")
    ap.add_argument("--flap-every", type=float, default=6.0, help="seconds between BGP flaps")
    ap.add_argument("--drain-every", type=float, default=4.0, help="seconds per drain+undrain")
    ap.add_argument("--measure-seconds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", default="soak-report.json")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--bin-dir", help="where ecmpfwd, ecmpfwd-pktgen and ecmpctl are "
                    "(default: target/release)")
    args = ap.parse_args()
    labdemo.run_driver(Soak, args, "soak")

if __name__ == "__main__":
    main()
