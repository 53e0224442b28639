#!/usr/bin/env python3
"""ecmpfwd over DPDK net_null devices beside DPDK's own testpmd, in one run (scripts/bench-dpdk).

Stdlib only; needs root, Debian's dpdk-dev (dpdk-testpmd) and an ecmpfwd built with the cargo
feature `dpdk`.

What runs, interleaved, REPS times (one round = every run below once, in this order):
- testpmd io: `dpdk-testpmd` in io forward mode over net_null0 (size=FRAME_LEN: rx hands out
  FRAME_LEN-byte mbufs) -> net_null1 (no-rx=1: its rx queue is polled and always empty; tx frees
  the mbufs), one forwarding lcore on CORE (the main lcore on MAIN_CORE sleeps in read() on
  stdin), burst 32, an 8191-mbuf pool with a 256-mbuf lcore cache, --no-huge. It touches no
  packet byte: DPDK's own I/O floor on this core. Its rate is read from DPDK telemetry
  (/ethdev/stats of the tx port) over a SECONDS window after a one-second warm-up.
- ecmpfwd dpdk: `ecmpfwd bench --io dpdk` over the same two devices with the same burst (the
  pipeline's BURST, 32), pool, cache and --no-huge, pinned to CORE: each received mbuf gets the
  next flow's frame written in (the copy-in the memory bench charges for a NIC's DMA), then the
  whole pipeline, then the tx burst. Timed by the bench itself over PACKETS packets after one
  warm-up pass over every flow; at each of FLOWS.
- ecmpfwd memory: `ecmpfwd bench` (in-memory ports) with the same options, for reference.
Every process runs under `taskset` (CORE, and MAIN_CORE for testpmd's main lcore).

Prints a Markdown table: median (min-max) of Mpps and ns/packet per run kind, and ecmpfwd's
ns/packet over testpmd io's (difference and ratio of the medians). Fails if an ecmpfwd dpdk run
dropped a packet, forwarded fewer than it timed, or left an mbuf out of its pool, or if testpmd's
counters show missed packets or allocation failures.

Cleanup: testpmd is stopped by PID (SIGINT, then SIGKILL, bounded) and each run's DPDK runtime
directory (its file prefix) is removed.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TESTPMD = "dpdk-testpmd"
DPDK_RUN_DIR = "/var/run/dpdk"
BURST = 32
POOL_MBUFS = 8191
POOL_CACHE = 256
EAL_MEMORY_MB = 256


class BenchError(Exception):
    """A run failed, or its counters say it did not do what it was timed for."""


def telemetry(runtime_dir, command, timeout=2.0):
    """One DPDK telemetry command's reply (a dict) from the process whose runtime dir it is."""
    path = os.path.join(runtime_dir, "dpdk_telemetry.v2")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.recv(16384)  # the greeting
        s.send(command.encode())
        return json.loads(s.recv(65536).decode())


def testpmd_run(core, main_core, frame_len, seconds, log_dir):
    """testpmd io over net_null0 -> net_null1 (see the module doc): {"mpps", "ns_per_packet",
    "packets", "seconds", ...counters}."""
    prefix = f"tpmdnull{os.getpid()}"
    runtime_dir = os.path.join(DPDK_RUN_DIR, prefix)
    cmd = ["taskset", "-c", f"{main_core},{core}", "stdbuf", "-oL", "-eL", TESTPMD,
           "-l", f"{main_core},{core}", "--main-lcore", str(main_core),
           "--no-huge", "-m", str(EAL_MEMORY_MB), "--no-pci", "--file-prefix", prefix,
           "--log-level", "lib.eal:error",
           "--vdev", f"net_null0,size={frame_len}", "--vdev", "net_null1,no-rx=1",
           "--", "--forward-mode=io", "--auto-start", "--nb-cores=1", "--rxq=1", "--txq=1",
           f"--burst={BURST}", f"--total-num-mbufs={POOL_MBUFS}", f"--mbcache={POOL_CACHE}"]
    log_path = os.path.join(log_dir, "testpmd.log")
    proc = None
    try:
        with open(log_path, "w") as logf:
            # stdin stays an open pipe: non-interactive testpmd exits on its first byte or EOF.
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=logf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while "Press enter to exit" not in open(log_path).read():
            if proc.poll() is not None:
                raise BenchError(f"testpmd exited ({proc.returncode}):\n"
                                 + open(log_path).read()[-3000:])
            if time.monotonic() > deadline:
                raise BenchError("testpmd not forwarding after 30 s")
            time.sleep(0.1)
        time.sleep(1.0)  # warm-up

        def read():
            t = time.monotonic()
            rx = telemetry(runtime_dir, "/ethdev/stats,0")["/ethdev/stats"]
            tx = telemetry(runtime_dir, "/ethdev/stats,1")["/ethdev/stats"]
            return (t + time.monotonic()) / 2, rx, tx

        t0, rx0, tx0 = read()
        time.sleep(seconds)
        t1, rx1, tx1 = read()
        dt = t1 - t0
        sent = tx1["opackets"] - tx0["opackets"]
        bad = {k: rx1[k] - rx0[k] for k in ("imissed", "ierrors", "rx_nombuf")}
        bad["oerrors"] = tx1["oerrors"] - tx0["oerrors"]
        if any(bad.values()) or sent == 0:
            raise BenchError(f"testpmd counters: {sent} sent, {bad}")
        return {"packets": sent, "seconds": dt, "mpps": sent / dt / 1e6,
                "ns_per_packet": dt * 1e9 / sent,
                "received": rx1["ipackets"] - rx0["ipackets"], **bad}
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc is not None and proc.stdin:
            proc.stdin.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)


def ecmpfwd_run(binary, io, core, flows, packets):
    """`ecmpfwd bench` (io "memory" or "dpdk") pinned to `core`: its JSON report."""
    cmd = ["taskset", "-c", str(core), binary, "bench", "--io", io, "--core", str(core),
           "--flows", str(flows), "--packets", str(packets), "--json"]
    if io == "dpdk":
        cmd.append(f"--eal=--no-huge -m {EAL_MEMORY_MB} --no-pci --no-telemetry --no-shconf "
                   "--log-level lib.eal:error")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(os.path.join(DPDK_RUN_DIR, f"ecmpfwd-bench-{p.pid}"), ignore_errors=True)
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[-2000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    if r["drops"] or r["tx_packets"] != r["packets"]:
        raise BenchError(f"ecmpfwd {io} {flows} flows: {r['packets']} timed, "
                         f"{r['tx_packets']} sent, {r['drops']} drops")
    d = r.get("dpdk")
    if io == "dpdk" and (d is None or d["pool_in_use_at_end"] or d["rx_short"]):
        raise BenchError(f"ecmpfwd dpdk {flows} flows: {d}")
    return r


def cell(vals, fmt):
    vals = sorted(vals)
    return f"{statistics.median(vals):{fmt}} ({vals[0]:{fmt}}-{vals[-1]:{fmt}})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ecmpfwd", required=True, help="ecmpfwd built with --features dpdk")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--packets", type=int, default=20_000_000)
    ap.add_argument("--flows", default="1000 1000000")
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--main-core", type=int, default=0, help="testpmd's main lcore")
    ap.add_argument("--seconds", type=float, default=3.0, help="testpmd's timed window")
    ap.add_argument("--frame-len", type=int, default=60)
    a = ap.parse_args()
    if a.frame_len != 60:
        ap.error("ecmpfwd bench's default frame (60 bytes) is the one compared")
    flows = [int(f) for f in a.flows.split()]
    runs = {}  # (kind, flows) -> [result]
    load = [os.getloadavg()]
    log_dir = tempfile.mkdtemp(prefix="bench-dpdk.")
    try:
        for rep in range(a.reps):
            print(f"round {rep + 1}/{a.reps}", file=sys.stderr)
            runs.setdefault(("testpmd io", None), []).append(
                testpmd_run(a.core, a.main_core, a.frame_len, a.seconds, log_dir))
            for io in ("dpdk", "memory"):
                for f in flows:
                    runs.setdefault((f"ecmpfwd {io}", f), []).append(
                        ecmpfwd_run(a.ecmpfwd, io, a.core, f, a.packets))
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    load.append(os.getloadavg())
    floor = statistics.median(r["ns_per_packet"] for r in runs[("testpmd io", None)])
    print(f"{a.reps} interleaved rounds; core {a.core} (testpmd main lcore {a.main_core}); "
          f"{a.frame_len}-byte frames, burst {BURST}, --no-huge for both; ecmpfwd "
          f"{a.packets} timed packets per run, testpmd {a.seconds:g} s windows; "
          f"load average {load[0][0]:.2f} before, {load[1][0]:.2f} after\n")
    print("| run | flows | Mpps median (min-max) | ns/packet median (min-max) | "
          "over testpmd io (ns/packet, ratio) |")
    print("|---|---:|---|---|---|")
    for (kind, f), rs in runs.items():
        ns = statistics.median(r["ns_per_packet"] for r in rs)
        over = "-" if f is None else f"+{ns - floor:.1f} ({ns / floor:.2f}x)"
        print(f"| {kind} | {'-' if f is None else f'{f:,}'} | {cell([r['mpps'] for r in rs], '.2f')} "
              f"| {cell([r['ns_per_packet'] for r in rs], '.1f')} | {over} |")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"bench-dpdk: {e}", file=sys.stderr)
        sys.exit(1)
