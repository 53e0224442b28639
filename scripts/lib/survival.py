#!/usr/bin/env python3
"""Connection survival across forwarder changes (issue 16 item 4), in the scale-out lab of
scripts/lab-scale with --feed static (run as root; `scripts/lab-scale survival` calls `run`).

Subcommands:
- serve --name bJ [--port P]: a backend's server (run in its namespace). Answers every line
  `X` on a connection with `bJ X`, so the client knows which backend holds the connection.
- client --vip V --src S --sport-from F -n N [--interval I] [--timeout T]: N TCP connections
  from S:F..F+N-1 (fixed 5-tuples) to V, opened 50 at a time; each sends one short line every I
  seconds (staggered evenly across connections) and waits for its answer. Once every connection
  has had its first answer it prints `ready` on stdout; when stdin closes (or says `stop`) each
  connection makes one more exchange, closes, and the client prints one JSON object: the counts
  by outcome and each failed connection's details. A connection's outcome is the first of:
  `reset` (RST or EOF: a backend that has no such connection answers a segment with RST),
  `timeout` (no answer within T), `moved` (answered by another backend than its first), or `ok`.
- run --prefix P --mode M ...: brings the lab up, starts a server on every backend, and runs
  the scenarios (see SCENARIOS) one after the other, each with N fresh connections: client up,
  flow caches read, the event, the router's next hops awaited, a settle time, caches read
  again, client stopped. Each connection is also classed by whether the router re-hashed it
  onto a forwarder that had not cached it before the event (it appears in a cache it was not
  in). Prints one JSON object (and a table on stderr); tears the lab down on the way out,
  failure or not, and stops every process it started by PID.

A backend failure is `scripts/lab-scale backend --backend J --fail`: J's link goes down (a dead
server: no answer, no RST) and J leaves every running forwarder's group (config rewritten and
reloaded on all forwarders at once); the scenario's teardown restores it. Each result records
when the group change was applied on each forwarder and when the router's next hops changed,
from the event: which came first decides what the flow caches can cover.

Sizing: N connections at one request per I seconds is N/I requests per second through the lab
(about 2 packets each way per request: data and ACK). The three forwarders share one pinned core
(scripts/lab-scale) and the client is one asyncio process, on a 2-core machine. 1000 connections
at 200 ms (5000 requests/s, run's default) ran with no timeout and no answer slower than 1 s,
events included (benches/RESULTS.md); more was not tried.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab-scale")
PORT = 8081


# --- the backend's server -------------------------------------------------------------------

async def serve(name, port):
    prefix = name.encode() + b" "

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(prefix + line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


# --- the client -----------------------------------------------------------------------------

class Conn:
    __slots__ = ("sport", "backend", "outcome", "detail", "at", "answers", "max_ms", "slow")

    def __init__(self, sport):
        self.sport = sport
        self.backend = None
        self.outcome = None
        self.detail = ""
        self.at = None
        self.answers = 0
        self.max_ms = 0.0
        self.slow = 0


async def open_conn(vip, port, src, sport):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setblocking(False)
    sock.bind((src, sport))
    await asyncio.get_running_loop().sock_connect(sock, (vip, port))
    return await asyncio.open_connection(sock=sock)


async def client(args):
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    conns = [Conn(args.sport_from + i) for i in range(args.n)]
    streams = [None] * args.n
    first = asyncio.Event()
    answered = 0
    stop = asyncio.Event()

    def fail(c, outcome, detail):
        c.outcome = outcome
        c.detail = detail
        c.at = round(time.monotonic() - t0, 3)

    async def exchange(c, reader, writer, seq):
        """One request and its answer; False once the connection has an outcome."""
        sent = time.monotonic()
        try:
            writer.write(b"%d\n" % seq)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), args.timeout)
        except asyncio.TimeoutError:
            fail(c, "timeout", f"no answer to request {seq} within {args.timeout} s")
            return False
        except (ConnectionError, OSError) as e:
            fail(c, "reset", f"request {seq}: {e.__class__.__name__}")
            return False
        if not line:
            fail(c, "reset", f"request {seq}: connection closed")
            return False
        ms = (time.monotonic() - sent) * 1000
        c.max_ms = max(c.max_ms, ms)
        if ms > 1000:
            c.slow += 1
        parts = line.split()
        who = parts[0].decode(errors="replace") if parts else "?"
        if len(parts) != 2 or parts[1] != b"%d" % seq:
            fail(c, "moved", f"request {seq}: unexpected answer {line[:40]!r}")
            return False
        if c.backend is None:
            c.backend = who
        elif who != c.backend:
            fail(c, "moved", f"request {seq}: answered by {who}, not {c.backend}")
            return False
        c.answers += 1
        return True

    async def run_conn(i):
        nonlocal answered
        c = conns[i]
        try:
            reader, writer = await asyncio.wait_for(
                open_conn(args.vip, args.port, args.src, c.sport), args.timeout)
        except (asyncio.TimeoutError, ConnectionError, OSError) as e:
            fail(c, "connect_failed", e.__class__.__name__)
            answered += 1
            if answered == args.n:
                first.set()
            return
        streams[i] = writer
        seq = 0
        ok = await exchange(c, reader, writer, seq)
        answered += 1
        if answered == args.n:
            first.set()
        if not ok:
            writer.close()
            return
        # Stagger: connection i talks at offset i/N of the interval, so load is even.
        await asyncio.sleep(args.interval * i / args.n)
        while True:
            seq += 1
            ok = await exchange(c, reader, writer, seq)
            if not ok:
                break
            if stop.is_set():
                # One exchange after the stop was asked for: the connection works after the event.
                break
            try:
                await asyncio.wait_for(stop.wait(), args.interval)
            except asyncio.TimeoutError:
                pass
        writer.close()

    tasks = []
    # Open 50 at a time so the SYNs do not overflow a backlog or a ring.
    for start in range(0, args.n, 50):
        batch = [asyncio.ensure_future(run_conn(i)) for i in range(start, min(args.n, start + 50))]
        tasks += batch
        await asyncio.sleep(0.02)
    await first.wait()
    sys.stdout.write(json.dumps({"ready": True, "connect_s": round(time.monotonic() - t0, 3)})
                     + "\n")
    sys.stdout.flush()

    # Wait for stdin to close or say stop.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"stop":
            break
    stop.set()
    await asyncio.gather(*tasks)
    for c in conns:
        if c.outcome is None:
            c.outcome = "ok"
    counts = {k: 0 for k in ("ok", "reset", "timeout", "moved", "connect_failed")}
    per_backend = {}
    for c in conns:
        counts[c.outcome] += 1
        if c.backend is not None:
            per_backend[c.backend] = per_backend.get(c.backend, 0) + 1
    report = {
        "connections": args.n,
        **counts,
        "slow": sum(1 for c in conns if c.slow),
        "max_latency_ms": round(max((c.max_ms for c in conns), default=0.0), 1),
        "answers": sum(c.answers for c in conns),
        "per_backend": dict(sorted(per_backend.items())),
        "conns": [{"sport": c.sport, "backend": c.backend, "outcome": c.outcome,
                   "max_ms": round(c.max_ms, 1), "detail": c.detail, "at": c.at}
                  for c in conns],
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


# --- the scenario runner --------------------------------------------------------------------

def sh(*cmd, check=True, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r.stdout


def lab_env(prefix):
    out = sh(LAB, "env", "--prefix", prefix)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def ctl(path, req):
    """One request on an ecmpfwd control socket (newline-delimited JSON)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise RuntimeError(f"{req} on {path}: {reply.get('error')}")
    return reply["result"]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, ValueError):
        return False


def next_hops(env):
    out = sh("ip", "-n", env["SCALE_NS_RT"], "-4", "route", "show", env["SCALE_VIP4"] + "/32",
             check=False)
    words = out.split()
    return sorted(words[k + 1] for k, w in enumerate(words) if w == "via" and k + 1 < len(words))


def wait(what, limit, cond):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out ({limit} s) waiting for {what}")
        time.sleep(0.05)


def cached(env, client_ip, sports):
    """Per running forwarder, the client's source ports (of `sports`) its flow cache holds."""
    out = {}
    for i in range(1, int(env["SCALE_FORWARDERS"]) + 1):
        pid = env.get(f"SCALE_F{i}_PID", "")
        if not pid or not alive(int(pid)):
            continue
        try:
            r = ctl(env[f"SCALE_F{i}_CTL"], {"cmd": "flows", "top": 10000})
        except (OSError, RuntimeError):
            continue
        out[i] = {f["flow"]["sport"] for f in r["flows"]
                  if f["flow"]["src"] == client_ip and f["flow"]["sport"] in sports}
    return out


def bucket_owners(env, i):
    """Forwarder i's VIP bucket map: the owner's address per bucket."""
    # One entry per origin of the prefix; the lab's VIP has one (its static route).
    r = ctl(env[f"SCALE_F{i}_CTL"], {"cmd": "route", "prefix": env["SCALE_VIP4"] + "/32"})[0]
    addr = {m["hop"]: m["addr"] for m in r["members"]}
    return [addr.get(b["hop"]) for b in r["buckets"]]


class Client:
    def __init__(self, env, sport_from, n, interval, timeout):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", env["SCALE_NS_CL"], sys.executable, os.path.abspath(__file__),
             "client", "--vip", env["SCALE_VIP4"], "--port", str(PORT),
             "--src", env["SCALE_CL_IP4"], "--sport-from", str(sport_from), "-n", str(n),
             "--interval", str(interval), "--timeout", str(timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("the survival client ended before it was ready")
        self.ready = json.loads(line)

    def finish(self, limit):
        try:
            # An empty input closes stdin: the client's cue to finish.
            out, _ = self.proc.communicate(input="", timeout=limit)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# Each scenario: (name, setup before the client, event, next hops expected after (forwarder
# indices), backend failed with the event, teardown after). Forwarders 1..3, backends 1..4.
SCENARIOS = {
    "withdraw": ("forwarder 1 SIGTERM (withdraw, 2 s grace)", [], ("term", 1), [2, 3], None, []),
    "add": ("forwarder 1 started again", [], ("start", 1), [1, 2, 3], None, []),
    "kill": ("forwarder 2 SIGKILL", [], ("kill", 2), [1, 3], None, []),
    "add-after-kill": ("forwarder 2 started again", [], ("start", 2), [1, 2, 3], None, []),
    "fail-withdraw": ("backend 1 fails + forwarder 3 SIGTERM", [], ("term", 3), [1, 2], 1,
                      [("start", 3), ("restore", 1)]),
    "fail-kill": ("backend 2 fails + forwarder 1 SIGKILL", [], ("kill", 1), [2, 3], 2,
                  [("start", 1), ("restore", 2)]),
    "fail-add": ("backend 3 fails + forwarder 2 started again", [("term", 2)], ("start", 2),
                 [1, 2, 3], 3, [("restore", 3)]),
}
DEFAULT_SCENARIOS = list(SCENARIOS)


def act(prefix, env, action, wait_end=True):
    """Perform one lab action; returns a Popen for a `start` or a backend failure (they take
    time and run alongside whatever else the event does) or None."""
    kind, arg = action
    if kind in ("term", "kill"):
        pid = int(env[f"SCALE_F{arg}_PID"])
        comp = int(env[f"SCALE_F{arg}_COMPANION_PID"])
        os.kill(pid, signal.SIGTERM if kind == "term" else signal.SIGKILL)
        if wait_end:
            wait(f"forwarder {arg} and its companion to end", 20,
                 lambda: not alive(pid) and not alive(comp))
        return None
    if kind == "start":
        return subprocess.Popen([LAB, "start", "--prefix", prefix, "--forwarder", str(arg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kind == "fail":
        return subprocess.Popen([LAB, "backend", "--prefix", prefix, "--backend", str(arg),
                                 "--fail"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    if kind == "restore":
        return subprocess.Popen([LAB, "backend", "--prefix", prefix, "--backend", str(arg),
                                 "--restore"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    raise ValueError(kind)


def finish_action(p, what, limit=60):
    """Waits for an action; returns its stdout."""
    if p is None:
        return ""
    try:
        out, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError(f"{what} did not finish within {limit} s")
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed: {err}")
    return out or ""


def scenario(args, env, name, sport_from):
    title, setup, event, hops_after, failed_backend, teardown = SCENARIOS[name]
    for a in setup:
        finish_action(act(args.prefix, env, a), f"setup {a}")
    env = lab_env(args.prefix)
    if setup:
        want = sorted(env[f"SCALE_F{i}_IP4"] for i in range(1, 4)
                      if alive(int(env.get(f"SCALE_F{i}_PID") or 0)))
        wait("the router to follow the setup", 20, lambda: next_hops(env) == want)
    sports = set(range(sport_from, sport_from + args.connections))
    cl = Client(env, sport_from, args.connections, args.interval, args.timeout)
    try:
        # Two full rounds so every forwarder has cached the flows the router sends it.
        time.sleep(2 * args.interval + 0.2)
        before = cached(env, env["SCALE_CL_IP4"], sports)
        # A forwarder the event leaves alone, whose bucket map shows what the group change moved.
        steady = next(i for i in (1, 2, 3) if i != event[1] and i not in [a[1] for a in setup])
        buckets_before = bucket_owners(env, steady)
        hops_before = next_hops(env)
        t = time.monotonic()
        t_wall = time.time()
        pending = []
        if failed_backend is not None:
            pending.append((act(args.prefix, env, ("fail", failed_backend)),
                            f"backend {failed_backend} failing"))
        pending.append((act(args.prefix, env, event, wait_end=False), f"{event}"))
        want = sorted(env[f"SCALE_F{i}_IP4"] for i in hops_after)
        wait(f"the router's next hops to become {want}", 40, lambda: next_hops(env) == want)
        router_s = time.monotonic() - t
        hops_after = next_hops(env)
        # When the group change was applied on each forwarder, from the event (s).
        group_changed = {}
        for p, what in pending:
            for line in finish_action(p, what).splitlines():
                w = line.split()
                if len(w) == 3 and w[0] == "reloaded":
                    group_changed[w[1]] = round(float(w[2]) - t_wall, 3)
        env = lab_env(args.prefix)
        # Past the SIGTERM grace (2 s) and a few retransmission timeouts.
        time.sleep(args.settle)
        after = cached(env, env["SCALE_CL_IP4"], sports)
        buckets_after = bucket_owners(env, steady)
        report = cl.finish(args.timeout + 20)
    finally:
        cl.kill()
    for a in teardown:
        finish_action(act(args.prefix, env, a), f"teardown {a}")
    if teardown:
        env = lab_env(args.prefix)
        want = sorted(env[f"SCALE_F{i}_IP4"] for i in range(1, 4))
        wait("the router to have every forwarder again", 20, lambda: next_hops(env) == want)

    # Re-hashed: the connection is cached after the event on a forwarder that did not hold it
    # before (that forwarder saw its first packet of the connection mid-stream).
    seen_before = {}
    for i, s in before.items():
        for p in s:
            seen_before.setdefault(p, set()).add(i)
    rehashed = set()
    for i, s in after.items():
        for p in s:
            if i not in seen_before.get(p, set()):
                rehashed.add(p)
    for c in report["conns"]:
        c["cached_before"] = sorted(seen_before.get(c["sport"], ()))
        c["cached_after"] = sorted(i for i, s in after.items() if c["sport"] in s)
    failed_name = f"b{failed_backend}" if failed_backend is not None else None
    rows = {}
    for c in report["conns"]:
        cls = "failed_backend" if c["backend"] == failed_name else "others"
        r = rows.setdefault(cls, {"connections": 0, "ok": 0, "reset": 0, "timeout": 0, "moved": 0,
                                  "connect_failed": 0, "rehashed": 0, "rehashed_broken": 0})
        r["connections"] += 1
        r[c["outcome"]] += 1
        if c["sport"] in rehashed:
            r["rehashed"] += 1
            if c["outcome"] != "ok":
                r["rehashed_broken"] += 1
    others = rows.get("others", {})
    failed_addr = f"198.18.20.{failed_backend}" if failed_backend is not None else None
    moved = sum(1 for a, b in zip(buckets_before, buckets_after) if a != b)
    collateral = sum(1 for a, b in zip(buckets_before, buckets_after)
                     if a != b and a != failed_addr)
    out = {
        "scenario": name,
        "event": title,
        "next_hops_before": hops_before,
        "next_hops_after": hops_after,
        "router_changed_s": round(router_s, 2),
        "group_changed_s": dict(sorted(group_changed.items())),
        "connect_s": cl.ready["connect_s"],
        "connections": report["connections"],
        "ok": report["ok"],
        "reset": report["reset"],
        "timeout": report["timeout"],
        "moved": report["moved"],
        "connect_failed": report["connect_failed"],
        "survived_pct": round(100.0 * report["ok"] / report["connections"], 3),
        "rehashed": len(rehashed),
        "slow": report["slow"],
        "max_latency_ms": report["max_latency_ms"],
        "answers": report["answers"],
        "per_backend": report["per_backend"],
        "failed_backend": failed_name,
        "classes": rows,
        "buckets": len(buckets_before),
        "buckets_moved": moved,
        "buckets_moved_of_others": collateral,
        "others_survived_pct": round(100.0 * others.get("ok", 0)
                                     / max(1, others.get("connections", 0)), 3),
        "failures": [c for c in report["conns"] if c["outcome"] != "ok"][:50],
    }
    return out


def run(args):
    if os.geteuid() != 0:
        sys.exit("error: survival run needs root (network namespaces)")
    names = args.scenarios.split(",") if args.scenarios else DEFAULT_SCENARIOS
    for n in names:
        if n not in SCENARIOS:
            sys.exit(f"error: unknown scenario {n!r} (known: {', '.join(SCENARIOS)})")
    # The static feed: a backend fails by leaving every forwarder's config (`lab-scale backend`).
    up = [LAB, "up", "--prefix", args.prefix, "--mode", args.mode, "--forwarders", "3",
          "--backends", "4", "--feed", "static"]
    if args.bin_dir:
        up += ["--bin-dir", args.bin_dir]
    servers = []
    results = []
    try:
        sh(*up, timeout=120)
        env = lab_env(args.prefix)
        for j in range(1, 5):
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", env[f"SCALE_NS_B{j}"], sys.executable,
                 os.path.abspath(__file__), "serve", "--name", f"b{j}", "--port", str(PORT)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait("the backends to listen", 10, lambda: all(
            sh("ip", "netns", "exec", env[f"SCALE_NS_B{j}"], "ss", "-Hltn",
               f"sport = :{PORT}").strip() for j in range(1, 5)))
        for k, name in enumerate(names):
            r = scenario(args, env, name, 20000 + k * 4000)
            r["mode"] = args.mode
            results.append(r)
            print(f"{args.mode:10} {name:15} {r['connections']:5} ok {r['ok']:5} "
                  f"reset {r['reset']:4} timeout {r['timeout']:4} moved {r['moved']:3} "
                  f"({r['survived_pct']}%) rehashed {r['rehashed']} slow {r['slow']} "
                  f"router {r['router_changed_s']} s, group {r['group_changed_s']}; buckets moved {r['buckets_moved']} "
                  f"(of other backends {r['buckets_moved_of_others']}); {r['classes']}", file=sys.stderr)
            env = lab_env(args.prefix)
    finally:
        for p in servers:
            if p.poll() is None:
                p.terminate()
        for p in servers:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not args.keep:
            subprocess.run([LAB, "down", "--prefix", args.prefix])
    print(json.dumps({"mode": args.mode, "connections": args.connections,
                      "interval_s": args.interval, "timeout_s": args.timeout,
                      "settle_s": args.settle, "scenarios": results}, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--port", type=int, default=PORT)
    c = sub.add_parser("client")
    c.add_argument("--vip", required=True)
    c.add_argument("--port", type=int, default=PORT)
    c.add_argument("--src", required=True)
    c.add_argument("--sport-from", type=int, required=True)
    c.add_argument("-n", type=int, required=True)
    c.add_argument("--interval", type=float, default=0.2)
    c.add_argument("--timeout", type=float, default=5.0)
    r = sub.add_parser("run")
    r.add_argument("--prefix", default="esv")
    r.add_argument("--mode", default="maglev", choices=["maglev", "rendezvous"])
    r.add_argument("--connections", type=int, default=1000)
    r.add_argument("--interval", type=float, default=0.2)
    r.add_argument("--timeout", type=float, default=5.0)
    r.add_argument("--settle", type=float, default=4.0)
    r.add_argument("--scenarios", default="", help="comma-separated; default all")
    r.add_argument("--bin-dir", default="")
    r.add_argument("--keep", action="store_true", help="leave the lab up")
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a.name, a.port))
    elif a.cmd == "client":
        if a.n < 1 or a.sport_from < 1024 or a.sport_from + a.n > 65535:
            sys.exit("error: -n and --sport-from must give ports in 1024..65535")
        asyncio.run(client(a))
    else:
        run(a)


if __name__ == "__main__":
    main()
