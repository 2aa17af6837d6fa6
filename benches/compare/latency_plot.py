#!/usr/bin/env python3
"""Latency-distribution plot (HDR-style percentile plot) as one SVG, with no dependencies.

    benches/compare/latency_plot.py OUT.svg [--node NAME=FILE.csv ...] [--wal-bench LOG ...]

--node     a distribution written by `cargo bench --bench node` with KETCH_LATENCY_OUT set
           (`percentile,latency_us` rows); NAME labels the series.
--wal-bench  output of benches/compare/wal_bench.sh (lines `round R WORKLOAD CONFIG: ...
           p50_us=.. p99_us=.. p999_us=.. max_us=..`); every W1-W3 workload gets a panel with
           one series per configuration: the median over rounds of each percentile, and of the
           per-run maxima.

The x axis is 1 / (1 - percentile), logarithmic, as in HdrHistogram's plots (50 % at 2, 99 % at
100, 99.9 % at 1000); the maximum is drawn at the right edge. The y axis is latency, logarithmic.
"""
import argparse
import math
import re
import statistics
import sys
from collections import defaultdict

# Names of wal_bench.sh configurations in the legend.
CONFIG_NAMES = {
    "ketch-ckpt": "Ketch, compacting",
    "ketch": "Ketch, keeping everything",
    "ketch-store": "Ketch LogStore",
    "okaywal": "okaywal",
    "raft-engine": "raft-engine",
}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
PANEL_W, PANEL_H, MARGIN_L, MARGIN_B, MARGIN_T = 460, 300, 64, 44, 30


def read_node(spec):
    name, path = spec.split("=", 1)
    points = []
    with open(path) as f:
        next(f)
        for line in f:
            q, us = line.strip().split(",")
            points.append((float(q), float(us)))
    return name, points


def read_wal_bench(paths):
    runs = defaultdict(lambda: defaultdict(list))
    line_re = re.compile(r"round \d+ (w\d) (\S+): (.*)")
    for path in paths:
        with open(path) as f:
            for line in f:
                m = line_re.match(line.strip())
                if not m:
                    continue
                workload, config, rest = m.groups()
                fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
                try:
                    runs[workload][config].append(
                        [float(fields[k]) for k in ("p50_us", "p99_us", "p999_us", "max_us")])
                except KeyError:
                    continue
    panels = {}
    for workload in sorted(runs):
        if workload not in ("w1", "w2", "w3"):
            continue
        series = []
        for config, rows in runs[workload].items():
            med = [statistics.median(col) for col in zip(*rows)]
            name = CONFIG_NAMES.get(config, config)
            count = f"{len(rows)} run" + ("s" if len(rows) != 1 else "")
            series.append((f"{name} ({count})",
                           [(50.0, med[0]), (99.0, med[1]), (99.9, med[2]), (100.0, med[3])]))
        panels[workload] = series
    return panels


def x_of(q, x_max):
    # 1/(1-q) on a log axis; the maximum (q = 100) at the right edge.
    if q >= 100.0:
        return x_max
    return math.log10(1.0 / (1.0 - q / 100.0))


def panel_svg(title, series, ox, oy):
    if not series:
        return ""
    finite = [q for _, pts in series for q, _ in pts if q < 100.0]
    x_max = max(x_of(q, 0) for q in finite) + 0.5
    values = [us for _, pts in series for _, us in pts if us > 0]
    y_lo = math.floor(math.log10(min(values)))
    y_hi = math.ceil(math.log10(max(values)))
    if y_hi == y_lo:
        y_hi += 1
    w = PANEL_W - MARGIN_L - 10
    h = PANEL_H - MARGIN_B - MARGIN_T
    px = lambda x: ox + MARGIN_L + w * x / x_max
    py = lambda us: oy + MARGIN_T + h * (1 - (math.log10(us) - y_lo) / (y_hi - y_lo))
    out = [f'<text x="{ox + MARGIN_L}" y="{oy + 18}" font-size="14" font-weight="bold">'
           f'{title}</text>',
           f'<rect x="{ox + MARGIN_L}" y="{oy + MARGIN_T}" width="{w}" height="{h}" '
           f'fill="none" stroke="#888"/>']
    for decade in range(y_lo, y_hi + 1):
        y = py(10 ** decade)
        label = f"{10 ** decade / 1000:g} ms" if decade >= 3 else f"{10 ** decade:g} us"
        out.append(f'<line x1="{ox + MARGIN_L}" x2="{ox + MARGIN_L + w}" y1="{y:.1f}" '
                   f'y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ox + MARGIN_L - 6}" y="{y + 4:.1f}" font-size="11" '
                   f'text-anchor="end">{label}</text>')
    for q, label in [(50, "50%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"), (99.99, "99.99%")]:
        x = x_of(q, x_max)
        if x > x_max - 0.5:
            continue
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{oy + MARGIN_T}" '
                   f'y2="{oy + MARGIN_T + h}" stroke="#eee"/>')
        out.append(f'<text x="{px(x):.1f}" y="{oy + MARGIN_T + h + 16}" font-size="11" '
                   f'text-anchor="middle">{label}</text>')
    out.append(f'<text x="{px(x_max):.1f}" y="{oy + MARGIN_T + h + 16}" font-size="11" '
               f'text-anchor="end">max</text>')
    for i, (name, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{px(x_of(q, x_max)):.1f},{py(us):.1f}" for q, us in pts if us > 0)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for q, us in pts:
            if us > 0:
                out.append(f'<circle cx="{px(x_of(q, x_max)):.1f}" cy="{py(us):.1f}" r="2.5" '
                           f'fill="{color}"/>')
        out.append(f'<text x="{ox + MARGIN_L + 8}" y="{oy + MARGIN_T + 16 + 14 * i}" '
                   f'font-size="11" fill="{color}">{name}</text>')
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--node", action="append", default=[])
    parser.add_argument("--wal-bench", action="append", default=[])
    args = parser.parse_args()
    panels = []
    if args.node:
        panels.append(("node: sequential proposals, commit latency", [read_node(s) for s in args.node]))
    for workload, series in read_wal_bench(args.wal_bench).items():
        panels.append((f"wal-bench {workload.upper()}: batch latency", series))
    if not panels:
        sys.exit("nothing to plot: give --node and/or --wal-bench")
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * PANEL_W}" '
             f'height="{rows * PANEL_H}" font-family="sans-serif">',
             f'<rect width="100%" height="100%" fill="white"/>']
    for i, (title, series) in enumerate(panels):
        parts.append(panel_svg(title, series, (i % cols) * PANEL_W, (i // cols) * PANEL_H))
    parts.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"{args.out}: {len(panels)} panels", file=sys.stderr)


if __name__ == "__main__":
    main()
