#!/usr/bin/env python3
"""pyport beside the echo floor, erlang_python and ErlPort, as one SVG.

  python3 bench/plot_side.py COMPARE.txt ERLANG_PYTHON.txt OUT.svg

COMPARE.txt is a saved output of ../shared/bench/compare.sh (echo floor and
pyport); ERLANG_PYTHON.txt one of bench/vs_erlang_python.sh (erlang_python,
and pyport measured beside it, which scales erlang_python to the compare run).
ErlPort 0.11's figures are the ones measured on the test machine for issue 11
(ErlPort is not installed there any more). Each figure is drawn as the time
(or the inverse of the rate) relative to pyport, on a log scale: shorter is
faster.
"""
import math
import sys

# figure: (label, compare.sh label, vs_erlang_python label, higher is better, ErlPort)
FIGURES = [
    ("p50, one caller", "p50 latency, 1 caller (us)", "p50 latency, 1 caller (us)", False, 44.5),
    ("64 callers, one context", "64 callers, 1 instance (calls/s)",
     "64 callers, 1 context (calls/s)", True, 72000.0),
    ("1 MiB binary round trip", "1 MiB binary round trip (ms)",
     "1 MiB binary round trip (ms)", False, 5.6),
    ("100k-integer list round trip", "100k-integer list round trip (ms)",
     "100k-integer list round trip (ms)", False, 387.0),
    ("10k-key map round trip", "10k-key map round trip (ms)",
     "10k-key map round trip (ms)", False, 45.0),
]
SERIES = [("echo floor", "#999999"), ("pyport", "#1f77b4"),
          ("erlang_python 2.3.1", "#ff7f0e"), ("ErlPort 0.11", "#2ca02c")]


def rows(path):
    """label -> list of numbers on its line (a table row of either file)."""
    out = {}
    for line in open(path):
        for label in {f[1] for f in FIGURES} | {f[2] for f in FIGURES}:
            if line.startswith(label):
                out[label] = [float(x) for x in line[len(label):].split()]
    return out


def main(compare, erlang_python, svg):
    cmp_rows, ep_rows = rows(compare), rows(erlang_python)
    bars = []  # (figure, [(series, relative to pyport)])
    for name, cl, el, higher, erlport in FIGURES:
        floor, pyport = cmp_rows[cl][0], cmp_rows[cl][1]
        ep, pyport_there = ep_rows[el][0], ep_rows[el][1]
        # erlang_python scaled by how pyport moved between the two runs
        ep_here = ep * pyport / pyport_there
        rel = (lambda v: pyport / v) if higher else (lambda v: v / pyport)
        bars.append((name, [rel(floor), 1.0, rel(ep_here), rel(erlport)]))
    lo, hi = 0.05, 100.0
    width, left, bar_h, gap = 760, 230, 11, 14
    plot_w = width - left - 30
    x = lambda r: left + plot_w * (math.log10(max(lo, min(hi, r))) - math.log10(lo)) / (
        math.log10(hi) - math.log10(lo))
    height = 60 + len(bars) * (len(SERIES) * bar_h + gap) + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13">Time relative to pyport (log scale; '
           'rates inverted): shorter is faster</text>']
    y = 40
    for name, vals in bars:
        out.append(f'<text x="{left - 8}" y="{y + 2 * bar_h}" text-anchor="end">{name}</text>')
        for (series, colour), v in zip(SERIES, vals):
            out.append(f'<rect x="{left}" y="{y}" width="{x(v) - left:.1f}" height="{bar_h - 2}" '
                       f'fill="{colour}"><title>{series}: {v:.2f}x pyport</title></rect>')
            out.append(f'<text x="{x(v) + 4:.1f}" y="{y + bar_h - 3}" font-size="9">{v:.2f}x</text>')
            y += bar_h
        y += gap
    for tick in (0.1, 0.3, 1, 3, 10, 30, 100):
        out.append(f'<line x1="{x(tick):.1f}" y1="36" x2="{x(tick):.1f}" y2="{y}" stroke="#ccc"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{y + 12}" text-anchor="middle">{tick}x</text>')
    ly = y + 30
    for k, (series, colour) in enumerate(SERIES):
        lx = left + k * 135
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly}">{series}</text>')
    out.append('</svg>')
    open(svg, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
