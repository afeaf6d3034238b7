#!/usr/bin/env python3
"""Plots lag against rate from bench/engine.sh results (RESULTS_JSON files) as an SVG.

    python3 bench/plot_lag.py OUT.svg RESULTS.json [MORE.json ...]

One line per replicator and file kind: the p99 lag (solid) and the p50 lag (dashed) of every
`stream-big-RATE` (10-300 KB files) and `stream-small-RATE` (1-4 KB files) workload, against
RATE, both axes logarithmic. Several files are merged (a default run and a heavy-rates run,
say); where a workload appears in more than one round, the median of its rounds is plotted.
Standard library only: the SVG is written by hand.
"""

import json
import math
import statistics
import sys

COLOURS = {"rtsync": "#1f77b4", "rtsync-peer": "#2ca02c", "loop": "#ff7f0e",
           "lsyncd": "#d62728"}
W, H = 760, 480
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 60


def series(paths):
    """{(replicator, kind): {rate: (p50, p99)}} from the results files."""
    found = {}
    for path in paths:
        with open(path) as f:
            rows = json.load(f)["rows"]
        for row in rows:
            phase = row["phase"]
            for kind in ("big", "small"):
                prefix = f"stream-{kind}-"
                if phase.startswith(prefix) and row["p99"] is not None:
                    rate = int(phase[len(prefix):])
                    found.setdefault((row["replicator"], kind), {}).setdefault(
                        rate, []).append((row["p50"], row["p99"]))
    return {key: {rate: (statistics.median(p[0] for p in v), statistics.median(p[1] for p in v))
                  for rate, v in rates.items()}
            for key, rates in found.items()}


def log_ticks(lo, hi):
    ticks = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def render(data):
    rates = [r for s in data.values() for r in s]
    lags = [v for s in data.values() for pair in s.values() for v in pair if v > 0]
    x_lo, x_hi = 10 ** math.floor(math.log10(min(rates))), 10 ** math.ceil(math.log10(max(rates)))
    y_lo = 10 ** math.floor(math.log10(max(min(lags), 0.001)))
    y_hi = 10 ** math.ceil(math.log10(max(lags)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(v):
        return LEFT + pw * (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))

    def y(v):
        v = max(v, y_lo)
        return TOP + ph * (1 - (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14">rtsync run: lag from close() on the source '
           f'to identical content on the target</text>']
    for t in log_ticks(x_lo, x_hi):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in log_ticks(y_lo, y_hi):
        out.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{LEFT + pw}" y2="{y(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    # The goal of issue 5: p99 under 1 s.
    out.append(f'<line x1="{LEFT}" y1="{y(1):.1f}" x2="{LEFT + pw}" y2="{y(1):.1f}" '
               f'stroke="black" stroke-dasharray="2,3"/>')
    out.append(f'<text x="{LEFT + pw - 4}" y="{y(1) - 4:.1f}" text-anchor="end">goal: p99 &lt; 1 s</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 20}" text-anchor="middle">files per second '
               f'(log)</text>')
    out.append(f'<text transform="translate(18,{TOP + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">lag, seconds (log)</text>')
    legend_y = TOP + 10
    for (rep, kind), points in sorted(data.items()):
        colour = COLOURS.get(rep, "#555")
        marker = "circle" if kind == "big" else "rect"
        xs = sorted(points)
        for which, dash in ((1, ""), (0, ' stroke-dasharray="5,4"')):
            pts = " ".join(f"{x(r):.1f},{y(points[r][which]):.1f}" for r in xs)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
        for r in xs:
            cx, cy = x(r), y(points[r][1])
            if marker == "circle":
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}"/>')
            else:
                out.append(f'<rect x="{cx - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
                           f'fill="{colour}"/>')
        label = f"{rep}, {'10-300 KB' if kind == 'big' else '1-4 KB'}"
        lx = LEFT + pw + 14
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 22}" y2="{legend_y}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 28}" y="{legend_y + 4}">{label}</text>')
        legend_y += 18
    out.append(f'<text x="{LEFT + pw + 14}" y="{legend_y + 10}">solid: p99, dashed: p50</text>')
    out.append(f'<text x="{LEFT + pw + 14}" y="{legend_y + 28}">circles: 10-300 KB files</text>')
    out.append(f'<text x="{LEFT + pw + 14}" y="{legend_y + 46}">squares: 1-4 KB files</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    data = series(sys.argv[2:])
    if not data:
        sys.exit("no stream-big-* or stream-small-* workloads in the results")
    with open(sys.argv[1], "w") as f:
        f.write(render(data))


if __name__ == "__main__":
    main()
