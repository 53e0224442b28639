#!/usr/bin/env python3
"""In-process scaling of ecmpfwd: `ecmpfwd bench` against flow count and route count (stdlib only).

`ecmpfwd bench` runs the whole forwarding pipeline (rx copy-in, parse, hash, flow cache, LPM,
bucket pick, rewrite, tx hand-off) over in-memory ports on one pinned core: no NIC, no kernel,
no wire. That isolates what the veth lab cannot show: how the pipeline's own cost per packet
grows with the state it holds. Three measurements, every run pinned with `--core`:

  flows   flow count 1k..10M at 100k routes. More flows means a bigger flow cache and more
          distinct frames, so more of every packet's memory reads miss the CPU caches.
  routes  route count 1..1M at a fixed flow count, with `--stages`. After warm-up a cached flow
          skips the route lookup in the pipeline, so the FIB's size is read off the lpm stage
          timed alone rather than off the pipeline's ns/packet.
  stages  `--stages` at 1k and 1M flows (100k routes): where the time goes when the working set
          fits the CPU caches and when it does not.

Each bench replays every flow once as warm-up, then times `--packets` packets; set-up and
warm-up grow with the flow count (seconds at 10M flows) and are not in the timed figures, but
they are in the wall times this module records, which is what bounds the repetitions.

Imported by benchveth.py (`run_scaling`, `markdown`), or run alone:
    python3 scripts/lib/benchscale.py [--quick] [--reps N] [--core N] [--out FILE.json]
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN_DIR = os.path.join(ROOT, "target", "release")

FLOW_SWEEP = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
ROUTE_SWEEP = (1, 1_000, 10_000, 100_000, 1_000_000)
STAGE_FLOWS = (1_000, 1_000_000)
# ecmpfwd bench's own default route count: the flow and stage rows hold it fixed
BASE_ROUTES = 100_000
# Flows of the route sweep: each flow's destination is drawn inside a random route, so this many
# flows make the lpm stage walk up to this many distinct routes; far fewer would keep the few
# routes looked up hot in L1/L2 whatever the table's size. It is also one of the flow sweep's
# rows, so the two tables share a configuration, and its set-up stays well under a second.
ROUTE_SWEEP_FLOWS = 100_000

# The flow cache (two-choice cuckoo, capacity rounded up to a power of two) holds every flow up
# to load 0.8 (flowcache.rs); capacity >= 1.25 x flows keeps every row at or below that, so a
# "flows" row measures that many cached flows, not evictions. Numerator/denominator of 1.25.
CACHE_HEADROOM = (5, 4)
# ecmpfwd bench's floor for its default capacity; kept so small rows match the default
MIN_CACHE_CAPACITY = 1024

# Timed packets per run. Full: enough that the timed part lasts a fraction of a second even at
# 1k flows; run-to-run spread on a shared VM is larger than what more packets would remove, so
# the budget goes into repetitions instead. Each stage is capped by ecmpfwd itself (stages.rs).
PACKETS_FULL = 5_000_000
PACKETS_QUICK = 2_000_000
# Rows whose set-up dominates (10M flows: generating, copying and warming 10M frames and a 1 GiB
# flow cache takes seconds); their repetitions are capped so the whole run keeps its budget.
HEAVY_FLOWS = 10_000_000
HEAVY_MAX_REPS = 3
# --quick is a smoke run inside a bounded one-command benchmark: one repetition per row.
QUICK_MAX_REPS = 1
# Per bench process: an order of magnitude above the slowest run seen, so only a hang trips it.
RUN_TIMEOUT_S = 180

STAGE_ORDER = ("parse", "hash", "lpm", "flow_cache", "bucket", "action", "pipeline")


def git_commit():
    """The checkout's commit (`git rev-parse --short HEAD`), "+dirty" when tracked files differ
    from it, so every generated result says what code it measured; "unknown" outside git."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def cache_capacity(flows):
    """The flow cache capacity for `flows`: next power of two >= 1.25 x flows, at least the floor.

    ecmpfwd would round any capacity up to a power of two anyway; passing the rounded value makes
    the command line state the capacity that is really allocated.
    """
    num, den = CACHE_HEADROOM
    need = max(MIN_CACHE_CAPACITY, -(-flows * num // den))
    return 1 << (need - 1).bit_length()


def _agg(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _display_bin(binary):
    """The binary as a reader would type it from the repository root (absolute if outside)."""
    rel = os.path.relpath(binary, ROOT)
    return binary if rel.startswith("..") else rel


def _bench_args(flows, routes, cache, packets, core, stages):
    """The bench's arguments; any value may be a "{placeholder}" string for a command template."""
    args = ["bench", "--json", "--flows", str(flows), "--routes", str(routes),
            "--cache-capacity", str(cache), "--packets", str(packets), "--core", str(core)]
    return args + (["--stages"] if stages else [])


def _run_bench(binary, flows, routes, packets, core, stages):
    """One `ecmpfwd bench` run: its parsed JSON report and its wall time in seconds.

    Raises RuntimeError (with the command and stderr) on a missing binary, a timeout, a non-zero
    exit, unparsable output, or a report that does not describe the run asked for.
    """
    cmd = [binary] + _bench_args(flows, routes, cache_capacity(flows), packets, core, stages)
    line = shlex.join(cmd)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=RUN_TIMEOUT_S)
    except FileNotFoundError as e:
        raise RuntimeError(f"{line}: {e}") from e
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise RuntimeError(f"{line} timed out after {RUN_TIMEOUT_S} s: {err.strip()}") from e
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{line} failed ({r.returncode}): {r.stderr.strip()}")
    try:
        rep = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{line}: output is not JSON ({e}): {r.stdout[:500]!r}; "
                           f"stderr: {r.stderr.strip()}") from e
    # A report for other options (or with no timed packets) would be silently mislabelled.
    opts = rep.get("options", {})
    want = {"flows": flows, "routes": routes, "cache_capacity": cache_capacity(flows),
            "core": core}
    bad = {k: opts.get(k) for k, v in want.items() if opts.get(k) != v}
    if bad or not rep.get("packets"):
        raise RuntimeError(f"{line}: report does not match the run (options {bad}, "
                           f"packets {rep.get('packets')}); stderr: {r.stderr.strip()}")
    if stages and not {s.get("stage") for s in rep.get("stages", [])} >= {"lpm", "pipeline"}:
        raise RuntimeError(f"{line}: report has no lpm/pipeline stages; stderr: "
                           f"{r.stderr.strip()}")
    return rep, wall


def _hit_ratio(rep):
    looked_up = rep["cache_hits"] + rep["cache_misses"]
    return rep["cache_hits"] / looked_up if looked_up else None


def _min_ratio(reports):
    ratios = [_hit_ratio(r) for r in reports]
    return None if None in ratios else min(ratios)


def run_scaling(bin_dir, core=1, quick=False, reps=3, log=print):
    """Runs the three sweeps and returns their aggregated results.

    Every row is repeated `reps` times (rows with HEAVY_FLOWS flows or more at most
    HEAVY_MAX_REPS; with `quick`, every row QUICK_MAX_REPS and fewer timed packets), the
    repetitions interleaved across rows so that a slow phase of a shared machine spreads over all
    rows instead of skewing one. Figures are {"median", "min", "max"} over a row's repetitions;
    cache_hit_ratio is the lowest over them (a row is only what it says if it is ~1).

    Returns {"command_template" (placeholders {flows}, {routes}, {cache_capacity}), "commands"
    (the exact command of each sweep), "flows", "routes", "stages", and run metadata: "core",
    "quick", "packets", "reps", "heavy_flows", "heavy_max_reps", "frame_len", "action",
    "wall_seconds" (the whole sweep)}; each row also carries its "reps", "cache_capacity",
    "drops" (most in one repetition) and "wall_s" (per-run wall time, set-up and warm-up
    included, which is what the repetition caps are sized by).
    Raises RuntimeError if any bench fails.
    """
    if reps < 1:
        raise ValueError("reps must be at least 1")
    binary = os.path.join(bin_dir, "ecmpfwd")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is missing or not executable (build the release binaries)")
    packets = PACKETS_QUICK if quick else PACKETS_FULL
    cap = QUICK_MAX_REPS if quick else reps

    def row_reps(flows):
        return min(cap, HEAVY_MAX_REPS) if flows >= HEAVY_FLOWS else cap

    # (kind, flows, routes, --stages)
    jobs = ([("flows", f, BASE_ROUTES, False) for f in FLOW_SWEEP]
            + [("routes", ROUTE_SWEEP_FLOWS, r, True) for r in ROUTE_SWEEP]
            + [("stages", f, BASE_ROUTES, True) for f in STAGE_FLOWS])
    runs = {j: [] for j in jobs}  # job -> [(report, wall)]
    total_runs = sum(row_reps(j[1]) for j in jobs)
    t0 = time.monotonic()
    done = 0
    for rep in range(max(row_reps(j[1]) for j in jobs)):
        for job in jobs:
            kind, flows, routes, stages = job
            if rep >= row_reps(flows):
                continue
            rpt, wall = _run_bench(binary, flows, routes, packets, core, stages)
            runs[job].append((rpt, wall))
            done += 1
            lpm = {s["stage"]: s["ns_per_packet"] for s in rpt.get("stages", [])}.get("lpm")
            log(f"benchscale [{done}/{total_runs}] {kind}: flows {flows} routes {routes} "
                f"rep {rep + 1}: {rpt['ns_per_packet']:.1f} ns/packet"
                + (f", lpm {lpm:.1f} ns" if lpm is not None else "")
                + f" ({wall:.1f} s wall)")
    wall_total = time.monotonic() - t0

    def common(job):
        rs = runs[job]
        reports = [r for r, _ in rs]
        return reports, {"flows": job[1], "routes": job[2], "reps": len(rs),
                         "cache_capacity": cache_capacity(job[1]),
                         "wall_s": _agg([w for _, w in rs])}

    flow_rows, route_rows, stage_rows = [], [], []
    for job in jobs:
        reports, row = common(job)
        stages = [{s["stage"]: s for s in r.get("stages", [])} for r in reports]
        if job[0] == "flows":
            row.update(mpps=_agg([r["mpps"] for r in reports]),
                       ns_per_packet=_agg([r["ns_per_packet"] for r in reports]),
                       cache_hit_ratio=_min_ratio(reports),
                       drops=max(r["drops"] for r in reports))
            flow_rows.append(row)
        elif job[0] == "routes":
            row.update(ns_per_packet=_agg([r["ns_per_packet"] for r in reports]),
                       lpm_ns=_agg([s["lpm"]["ns_per_packet"] for s in stages]),
                       cache_hit_ratio=_min_ratio(reports),
                       drops=max(r["drops"] for r in reports))
            route_rows.append(row)
        else:
            names = [n for n in STAGE_ORDER if all(n in s for s in stages)]
            names += [n for n in stages[0] if n not in names and all(n in s for s in stages)]
            row.update(stages=[{"stage": n,
                                "ns_per_packet": _agg([s[n]["ns_per_packet"] for s in stages]),
                                "packets": min(s[n]["packets"] for s in stages)}
                               for n in names],
                       cache_hit_ratio=_min_ratio(reports),
                       drops=max(r["drops"] for r in reports))
            stage_rows.append(row)

    shown = _display_bin(binary)
    first = runs[jobs[0]][0][0]

    def template(flows, routes, cache, stages):
        # shlex would quote the braces of a placeholder, so the words are joined as they are
        return " ".join([shlex.quote(shown)] + _bench_args(flows, routes, cache, packets, core,
                                                           stages))

    return {
        "commit": git_commit(),
        "command_template": template("{flows}", "{routes}", "{cache_capacity}", False)
        + " [--stages]",
        "commands": {
            "flows": template("{flows}", BASE_ROUTES, "{cache_capacity}", False),
            "routes": template(ROUTE_SWEEP_FLOWS, "{routes}", cache_capacity(ROUTE_SWEEP_FLOWS),
                               True),
            "stages": template("{flows}", BASE_ROUTES, "{cache_capacity}", True),
        },
        # ecmpfwd's defaults for what the command line leaves out, as the reports state them
        "frame_len": first["options"].get("frame_len"),
        "action": first["options"].get("action"),
        "flows": flow_rows,
        "routes": route_rows,
        "stages": stage_rows,
        "core": core,
        "quick": quick,
        "packets": packets,
        "reps": cap,
        "heavy_flows": HEAVY_FLOWS,
        "heavy_max_reps": min(cap, HEAVY_MAX_REPS),
        "wall_seconds": wall_total,
    }


def _cell(a, digits):
    return f"{a['median']:.{digits}f} [{a['min']:.{digits}f}-{a['max']:.{digits}f}]"


def _ratio(x):
    return "n/a" if x is None else f"{x:.6g}"


def markdown(scaling):
    """The sweeps as markdown: one ### section and table per sweep, each under its exact command.

    Cells are "median [min-max]" over the row's repetitions (the reps column).
    """
    s = scaling
    num, den = CACHE_HEADROOM
    reps_note = (f"{s['reps']} repetition(s) per row" +
                 (f", at most {s['heavy_max_reps']} for rows of {s['heavy_flows']} flows or "
                  f"more (their set-up and warm-up dominate the wall time)"
                  if s["heavy_max_reps"] < s["reps"] else "") +
                 (" (--quick)" if s["quick"] else ""))
    L = ["### In-process scaling (`ecmpfwd bench`)", "",
         f"The whole pipeline (rx copy-in to tx hand-off; action {s.get('action')}, "
         f"{s.get('frame_len')}-byte frames without FCS) over "
         f"in-memory ports on core {s['core']}: no NIC, no kernel. Each run replays every flow "
         f"once as warm-up, then times {s['packets']} packets. {reps_note}, interleaved across "
         "rows; cells are median [min-max] over the repetitions. Flow cache capacity: the next "
         f"power of two >= {num}/{den} x flows (at least {MIN_CACHE_CAPACITY}), i.e. load <= "
         f"{den / num:g}, where the cache holds every flow, so each row measures the flows it "
         "names; the cache hit ratio (lowest over the repetitions, timed part) shows it. "
         f"All runs took {s['wall_seconds']:.1f} s wall, at commit {s.get('commit', 'unknown')}.",
         ""]

    drops = [r for k in ("flows", "routes", "stages") for r in s[k] if r.get("drops")]
    if drops:
        L += ["Runs with drops (most in one repetition): " + "; ".join(
            f"flows {r['flows']} routes {r['routes']}: {r['drops']}" for r in drops) + ".", ""]

    L += [f"### Flow count (routes {BASE_ROUTES})", "",
          f"`{s['commands']['flows']}`", "",
          "| flows | cache capacity | reps | Mpps | ns/packet | cache hit ratio | wall/run (s) |",
          "|---:|---:|---:|---|---|---:|---|"]
    L += [f"| {r['flows']} | {r['cache_capacity']} | {r['reps']} | {_cell(r['mpps'], 2)} | "
          f"{_cell(r['ns_per_packet'], 1)} | {_ratio(r['cache_hit_ratio'])} | "
          f"{_cell(r['wall_s'], 1)} |" for r in s["flows"]]
    L += ["", "Wall per run includes generating the frames, building the tables and the "
          "warm-up pass, none of which is in the timed figures.", ""]

    route_flows = s["routes"][0]["flows"] if s["routes"] else ROUTE_SWEEP_FLOWS
    L += [f"### Route count (flows {route_flows})", "",
          f"`{s['commands']['routes']}`", "",
          "| routes | reps | pipeline ns/packet | lpm ns/packet (stage alone) | cache hit ratio |",
          "|---:|---:|---|---|---:|"]
    L += [f"| {r['routes']} | {r['reps']} | {_cell(r['ns_per_packet'], 1)} | "
          f"{_cell(r['lpm_ns'], 1)} | {_ratio(r['cache_hit_ratio'])} |" for r in s["routes"]]
    L += ["", f"Why {route_flows} flows: each flow's destination lies in a random route, so the "
          f"lpm stage looks up {route_flows} destinations spread over up to as many routes; with "
          "a few flows the routes looked up would stay hot in the CPU caches whatever the table "
          "size. It is also a row of the flow-count table (same configuration without --stages), "
          "and its set-up is cheap enough to repeat every route count. After warm-up nearly every "
          "packet hits the flow cache, which skips the route lookup, so the FIB's size shows in "
          "the lpm column (the lookup timed alone on the same destinations), not in the pipeline "
          "column.", ""]

    L += [f"### Stages (routes {BASE_ROUTES})", "",
          f"`{s['commands']['stages']}`", ""]
    rows = s["stages"]
    if rows:
        names = [st["stage"] for st in rows[0]["stages"]]
        by = [{st["stage"]: st for st in r["stages"]} for r in rows]
        L += ["| stage | " + " | ".join(f"{r['flows']} flows (reps {r['reps']}, cache "
                                        f"{r['cache_capacity']}) ns/packet" for r in rows) + " |",
              "|---|" + "---|" * len(rows)]
        L += [f"| {n} | " + " | ".join(_cell(b[n]["ns_per_packet"], 1) if n in b else "n/a"
                                       for b in by) + " |" for n in names]
        pk = sorted({st["packets"] for r in rows for st in r["stages"] if st["stage"] != "pipeline"})
        L += ["", f"Each stage is timed alone over {', '.join(map(str, pk))} packets on the "
              "run's own tables and frames, with its inputs worked out before its clock starts. "
              "The stages do not add up to the pipeline: the pipeline overlaps them within a "
              "burst, a flow-cache hit skips the group hash, lpm and bucket, and rx copy-in, "
              "counters and tx hand-off belong to no stage."]
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_MAX_REPS} repetition(s), {PACKETS_QUICK} packets")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (default 3)")
    ap.add_argument("--core", type=int, default=1, help="core every bench is pinned to")
    ap.add_argument("--out", help="write the results as JSON to this file")
    a = ap.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        res = run_scaling(DEFAULT_BIN_DIR, core=a.core, quick=a.quick, reps=a.reps, log=log)
    except (RuntimeError, ValueError) as e:
        print(f"benchscale: {e}", file=sys.stderr)
        return 1
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
    print(markdown(res), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
