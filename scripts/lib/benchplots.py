#!/usr/bin/env python3
"""Charts for a bench results JSON (scripts/lib/benchveth.py's output), drawn by ecmp-plot.

Stdlib only. `make_plots(results, outdir, plot_bin)` writes `outdir/plots.json` (an array of
ecmp-plot specs, see benches/src/bin/plot.rs) and runs ecmp-plot on it; the SVGs land next to it.

    python3 scripts/lib/benchplots.py RESULTS.json OUTDIR [--plot-bin PATH]

Charts (medians only; a chart whose section is absent or all null is not made):
  throughput.svg      bars, Mpps delivered per (frame size, flows) cell and forwarder
  latency.svg         bars, p99 latency (us) per cell and forwarder
  latency_p50.svg     bars, p50 latency (us) per cell and forwarder
  resilience.svg      bars, flows moved per next-hop event and forwarder
  scaling_flows.svg   lines (log x, log y), Mpps vs flows: memory ports and veth (tens of Mpps
                      against about one: a linear y would flatten the veth line)
  scaling_routes.svg  lines (log x), ns/packet vs routes: whole pipeline and the LPM stage
  stages.svg          bars, ns/packet per pipeline stage, one series per (flows, routes) point

Missing values: ecmp-plot's bar charts need one finite number per category in every series (a
JSON null is a parse error, and there is no "no bar" value), and drawing 0 for "not measured"
would put a made-up number on the chart. So a bar chart whose grid has holes is split: the
categories are grouped by which series have a value there, and every group becomes its own chart
(`NAME.svg`, `NAME_part2.svg`, ...; titles say "part k/n") holding only the series measured in
all of its categories. A complete grid stays one chart. E.g. resilience's "drain" event, which
the kernel forwarders do not have, ends up in resilience_part2.svg with the ecmpfwd variants only.
A bar that is measured as 0 draws as no bar; the resilience title says so, as zeros are the
point there (no collateral movement).
"""

import argparse
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PLOT_BIN = os.path.join(ROOT, "target", "release", "ecmp-plot")
SPEC_FILE = "plots.json"
# ecmp-plot drew nine charts in 0.01 s here (synthetic data); a minute means it hung
PLOT_TIMEOUT_S = 60
STAGE_ORDER = ["parse", "hash", "lpm", "flow_cache", "bucket", "action", "pipeline"]
RESILIENCE_EVENTS = [
    # (category label, event key, field)
    ("fail: collateral moved", "fail", "collateral"),
    ("add: moved", "add", "moved"),
    ("drain: moved", "drain", "moved"),
]


def _num(x):
    """A finite float, or None: NaN/inf cannot be written as JSON ecmp-plot (serde) accepts."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _median(agg):
    """The median of an AGG ({"median", "min", "max"}), None when the AGG or its median is null."""
    return _num(agg.get("median")) if isinstance(agg, dict) else None


def _count(n):
    """1000 -> "1k", 1000000 -> "1M"; anything not a round multiple stays exact."""
    if isinstance(n, int) and n > 0:
        if n % 1_000_000 == 0:
            return f"{n // 1_000_000}M"
        if n % 1000 == 0:
            return f"{n // 1000}k"
    return str(n)


def _rate(pps):
    pps = _num(pps)
    if pps is None:
        return None
    if pps >= 1e6:
        return f"{pps / 1e6:g} Mpps"
    if pps >= 1e3:
        return f"{pps / 1e3:g} kpps"
    return f"{pps:g} pps"


def _ordered(preferred, seen):
    """`preferred` (e.g. meta's display order) restricted to `seen`, then the rest of `seen`."""
    pref = [x for x in (preferred or []) if x in seen]
    return pref + [x for x in seen if x not in pref]


def _bar_specs(out, title, x_label, y_label, categories, series, value, label=str):
    """Bar specs for a categories x series grid; `value(cat, ser)` is a number or None and
    `label(cat)` the category's name on the axis.

    A grid with holes is split (see the module doc) so that no bar is made up; categories and
    series without any value are dropped. Returns [] when nothing was measured at all.
    """
    groups = {}  # tuple of series with a value -> categories, in first-seen order
    for c in categories:
        present = tuple(s for s in series if value(c, s) is not None)
        if present:
            groups.setdefault(present, []).append(c)
    specs = []
    stem, ext = os.path.splitext(out)
    for k, (present, cats) in enumerate(groups.items(), 1):
        t = title if len(groups) == 1 else f"{title} (part {k}/{len(groups)})"
        specs.append({
            "out": out if k == 1 else f"{stem}_part{k}{ext}",
            "title": t, "x_label": x_label, "y_label": y_label, "kind": "bar",
            "categories": [label(c) for c in cats],
            "series": [{"name": s, "values": [value(c, s) for c in cats]} for s in present],
        })
    return specs


def _line_spec(out, title, x_label, y_label, series, log_y=False):
    """A log-x line spec; series = [(name, [(x, y), ...])]; None points and empty series dropped.

    With `log_y`, the y axis is logarithmic too, which needs every y positive: a point at or
    below 0 (nothing delivered) cannot be placed on it, so such a point, if any, makes the axis
    linear rather than being dropped from the chart."""
    kept = []
    for name, pts in series:
        pts = sorted((x, y) for x, y in pts if x is not None and y is not None and x > 0)
        if pts:
            kept.append({"name": name, "points": [[x, y] for x, y in pts]})
    if not kept:
        return []
    spec = {"out": out, "title": title, "x_label": x_label, "y_label": y_label, "kind": "line",
            "log_x": True, "series": kept}
    if log_y and all(y > 0 for s in kept for _, y in s["points"]):
        spec["log_y"] = True
        spec["y_label"] = f"{y_label} (log scale)"
    return [spec]


def _summary_specs(results):
    meta = results.get("meta") or {}
    rows = [r for r in results.get("summary") or []
            if isinstance(r, dict) and "size" in r and "flows" in r and "forwarder" in r]
    if not rows:
        return []
    by = {(r["size"], r["flows"], r["forwarder"]): r for r in rows}
    sizes = _ordered(meta.get("sizes"), list(dict.fromkeys(r["size"] for r in rows)))
    flows = _ordered(meta.get("flows"), list(dict.fromkeys(r["flows"] for r in rows)))
    fwds = _ordered(meta.get("forwarders"), list(dict.fromkeys(r["forwarder"] for r in rows)))
    # a category is (key, label); the key finds the rows, the label goes on the axis
    cats = [((s, f), f"{s} B, {_count(f)} flows") for s in sizes for f in flows]
    reps = meta.get("reps")
    of_reps = f"median of {reps} reps" if isinstance(reps, int) else "medians"
    x_label = "frame size, flows"

    def mpps(c, fwd):
        r = by.get((*c[0], fwd))
        return _median(r.get("mpps")) if r else None

    def lat(pct):
        def get(c, fwd):
            r = by.get((*c[0], fwd))
            l = r.get("latency_us") if r else None
            return _median(l.get(pct)) if isinstance(l, dict) else None
        return get

    rate = _rate(meta.get("latency_rate_pps"))
    at = f" at {rate} offered" if rate else ""
    specs = _bar_specs("throughput.svg", f"Throughput delivered over veth ({of_reps})", x_label,
                       "Mpps delivered", cats, fwds, mpps, lambda c: c[1])
    specs += _bar_specs("latency.svg", f"p99 latency{at} ({of_reps})", x_label,
                        "p99 latency (µs)", cats, fwds, lat("p99"), lambda c: c[1])
    specs += _bar_specs("latency_p50.svg", f"p50 latency{at} ({of_reps})", x_label,
                        "p50 latency (µs)", cats, fwds, lat("p50"), lambda c: c[1])
    return specs


def _resilience_specs(results):
    res = results.get("resilience") or {}
    if not isinstance(res, dict):
        return []
    meta_res = (results.get("meta") or {}).get("resilience")
    meta_res = meta_res if isinstance(meta_res, dict) else {}
    fwds = _ordered(meta_res.get("forwarders"),
                    [f for f, r in res.items()
                     if isinstance(r, dict) and isinstance(r.get("events"), dict)])

    def moved(c, fwd):
        _, event, field = c
        e = res[fwd]["events"].get(event)
        return _num(e.get(field)) if isinstance(e, dict) else None

    n = meta_res.get("flows")
    of = f" (of {n})" if isinstance(n, int) else ""
    return _bar_specs("resilience.svg", "Flows moved by next-hop changes (no bar = 0 moved)",
                      "event (collateral = moved flows that were not on the failed hop)",
                      f"flows moved{of}", RESILIENCE_EVENTS, fwds, moved, lambda c: c[0])


def _scaling_specs(results):
    sc = results.get("scaling")
    if not isinstance(sc, dict):
        return []
    specs = []

    def entries(key):
        return [e for e in sc.get(key) or [] if isinstance(e, dict)]

    # Mpps vs flows; a series per routes value (or per veth forwarder and size) so that points
    # measured under different settings are never joined into one line
    flows = entries("flows")
    routes = list(dict.fromkeys(e.get("routes") for e in flows))
    series = []
    for r in routes:
        name = "memory ports (ecmpfwd bench)"
        if len(routes) > 1:
            name += f", {_count(r)} routes"
        series.append((name, [(_num(e.get("flows")), _median(e.get("mpps")))
                              for e in flows if e.get("routes") == r]))
    veth = entries("veth_flows")
    for fwd, size in dict.fromkeys((e.get("forwarder"), e.get("size")) for e in veth):
        pts = [(_num(e.get("flows")), _median(e.get("mpps"))) for e in veth
               if (e.get("forwarder"), e.get("size")) == (fwd, size)]
        series.append((f"veth {size} B ({fwd})", pts))
    title = "Throughput vs flows (medians)"
    if len(routes) == 1 and routes[0] is not None:
        title += f"; memory ports with {_count(routes[0])} routes"
    # log y: memory ports (tens of Mpps) and veth (about one) share the chart, and on a linear
    # axis the veth line would be flat along the bottom
    specs += _line_spec("scaling_flows.svg", title, "flows (log scale)", "Mpps", series,
                        log_y=True)

    rts = entries("routes")
    fl = list(dict.fromkeys(e.get("flows") for e in rts))
    series = []
    for f in fl:
        suffix = f" ({_count(f)} flows)" if len(fl) > 1 else ""
        pts = [e for e in rts if e.get("flows") == f]
        series.append((f"pipeline{suffix}",
                       [(_num(e.get("routes")), _median(e.get("ns_per_packet"))) for e in pts]))
        series.append((f"lpm stage{suffix}",
                       [(_num(e.get("routes")), _median(e.get("lpm_ns"))) for e in pts]))
    title = "Per-packet cost vs routes (medians)"
    if len(fl) == 1 and fl[0] is not None:
        title += f", {_count(fl[0])} flows"
    specs += _line_spec("scaling_routes.svg", title, "routes (log scale)", "ns per packet", series)

    st = [e for e in entries("stages") if isinstance(e.get("stages"), list)]
    routes = set(e.get("routes") for e in st)
    names, vals = [], {}
    for e in st:
        name = f"{_count(e.get('flows'))} flows"
        if len(routes) > 1:
            name += f", {_count(e.get('routes'))} routes"
        names.append(name)
        vals[name] = {s.get("stage"): _median(s.get("ns_per_packet"))
                      for s in e["stages"] if isinstance(s, dict)}
    seen = list(dict.fromkeys(k for v in vals.values() for k in v if k is not None))
    stages = _ordered(STAGE_ORDER, seen)
    title = "Per-stage cost (medians)"
    if len(routes) == 1 and None not in routes:
        title += f", {_count(next(iter(routes)))} routes"
    specs += _bar_specs("stages.svg", title, "pipeline stage", "ns per packet", stages, names,
                        lambda c, s: vals[s].get(c))
    return specs


def plot_specs(results: dict) -> list:
    """The ecmp-plot specs for `results`, every one with data behind every bar and point."""
    return _summary_specs(results) + _resilience_specs(results) + _scaling_specs(results)


def make_plots(results: dict, outdir: str, plot_bin: str,
               timeout: float = PLOT_TIMEOUT_S) -> list[str]:
    """Writes outdir/plots.json, draws it with `plot_bin`, returns the SVG names (in outdir)."""
    specs = plot_specs(results)
    if not specs:
        return []
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, SPEC_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(specs, f, indent=1, ensure_ascii=False, allow_nan=False)
    try:
        r = subprocess.run([plot_bin, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(
            f"{plot_bin} {path}: no answer within {timeout} s: {e.stderr or ''}") from e
    except OSError as e:
        raise RuntimeError(f"{plot_bin}: cannot run: {e}") from e
    if r.returncode != 0:
        raise RuntimeError(f"{plot_bin} {path} failed ({r.returncode}): {r.stderr.strip()}")
    names = [s["out"] for s in specs]
    # ecmp-plot stops at its first failing spec; exit 0 should mean all were drawn, but a chart
    # the caller links to must not be assumed
    missing = [n for n in names if not os.path.isfile(os.path.join(outdir, n))
               or not os.path.getsize(os.path.join(outdir, n))]
    if missing:
        raise RuntimeError(
            f"{plot_bin} {path} exited 0 but wrote no {', '.join(missing)}: {r.stderr.strip()}")
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results JSON (benches/veth/results-*.json)")
    ap.add_argument("outdir", help="directory for plots.json and the SVGs")
    ap.add_argument("--plot-bin", default=DEFAULT_PLOT_BIN,
                    help=f"ecmp-plot (default {DEFAULT_PLOT_BIN})")
    args = ap.parse_args()
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    try:
        names = make_plots(results, args.outdir, args.plot_bin)
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    if not names:
        print("no chart: the results hold no plottable data", file=sys.stderr)
    for n in names:
        print(os.path.join(args.outdir, n))


if __name__ == "__main__":
    main()
