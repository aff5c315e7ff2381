#!/usr/bin/env python3
"""Plot a lightning-bench report (reports/schema/report.schema.json): four figures, PNG and SVG.

    scripts/plot_report.py REPORT.json [--out PREFIX] [--formats png,svg]

writes PREFIX-throughput, PREFIX-memory, PREFIX-error and PREFIX-bandwidth (.png and .svg; PREFIX
defaults to the report's path without .json), one panel per mode that has finished points:

  throughput  tokens/s against N (log2 axis), one line per provider, each point's 95% CI as a
              band; the shaded strip of a line is its flatness band: from the best per-N median
              down to best / max_min_ratio (the verdict's criterion, 1.10 by default), so a line
              passes the max/min test exactly when it stays inside its strip. The verdict
              (PASS / FAIL / N/A) is in the legend.
  memory      peak device memory against N; points skipped for want of memory are drawn as 'x'
              at the size they asked for (or at the top when the reason names no size), above a
              line at the device's memory.
  error       rel_l2 of every verified tensor against N, with the tolerance (rel_l2_limit) drawn.
  bandwidth   % of the peak bandwidth (options.peak_bandwidth_gbps) against N; GB/s when the
              report names no peak.

Repeats (--repeat): per (provider, mode, N) the line goes through the median of the repeats'
medians and the band spans the lowest to the highest bound of the repeats' 95% CIs. Reads only
the report; needs matplotlib (Debian: python3-matplotlib). Exit status: 0 plots written, 2 bad
input or matplotlib missing (one line on stderr).
"""

import argparse
import math
import os
import re
import statistics
import sys
import textwrap
from collections import defaultdict

from report_common import BadReport, fmt_bytes, fmt_count, load_report

MODES = ("fwd", "bwd", "fwdbwd")
MODE_TITLES = {"fwd": "forward", "bwd": "backward", "fwdbwd": "forward + backward"}

# Fixed colours for the providers people compare, so the same provider looks the same in every
# figure and every report; others take the next free colour of the cycle.
PROVIDER_COLORS = {
    "lightning": "#1f77b4",
    "cpu-lightning": "#1f77b4",
    "softmax-naive": "#d62728",
    "cpu-softmax": "#d62728",
    "recurrent": "#9467bd",
    "cumsum-linear": "#2ca02c",
    "fla-chunk-simple-gla": "#ff7f0e",
    "official-lightning-attn2": "#8c564b",
    "torch-sdpa": "#e377c2",
}
SPARE_COLORS = ["#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39"]
TENSOR_MARKERS = {"o": "o", "final_state": "D", "dq": "^", "dk": "v", "dv": "s",
                  "dinitial_state": "P"}
TENSOR_STYLES = {"o": "-", "final_state": "-", "dq": "--", "dk": "-.", "dv": ":",
                 "dinitial_state": "--"}

OOM_RE = re.compile(r"out of memory", re.IGNORECASE)
NEEDS_RE = re.compile(r"needs (\d+) bytes of buffers \+ (\d+) bytes of scratch")








def fmt_rate(x):
    """Tokens/s with an SI prefix: 5.9e7 -> '59.4M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------
# Reading the report




def provider_order(report):
    """Providers in the order of options.providers, then any others in order of appearance."""
    order = list(report["options"].get("providers", []))
    for p in report["points"]:
        if p["provider"] not in order:
            order.append(p["provider"])
    return order


def color_map(providers):
    colors, spare = {}, iter(SPARE_COLORS * 4)
    for p in providers:
        colors[p] = PROVIDER_COLORS.get(p) or next(spare)
    return colors


class Line:
    """The points of one (provider, mode), aggregated per N over repeats."""

    def __init__(self, provider, mode):
        self.provider, self.mode = provider, mode
        self.by_n = defaultdict(list)      # N -> ok points (one per repeat)
        self.skipped = defaultdict(list)   # N -> skipped or failed points

    def ns(self):
        return sorted(self.by_n)

    def throughput(self):
        """[(N, median of the repeats' medians, lowest CI bound, highest CI bound)]"""
        out = []
        for n in self.ns():
            tps = [p["throughput"] for p in self.by_n[n] if p.get("throughput")]
            if not tps:
                continue
            med = statistics.median(t["tokens_per_s"] for t in tps)
            los = [t["tokens_per_s_ci95"][0] for t in tps if t["tokens_per_s_ci95"][0] is not None]
            his = [t["tokens_per_s_ci95"][1] for t in tps if t["tokens_per_s_ci95"][1] is not None]
            out.append((n, med, min(los) if los else med, max(his) if his else med))
        return out

    def values(self, get):
        """[(N, median over repeats of get(point))] for the points where get() is not None."""
        out = []
        for n in self.ns():
            vals = [v for v in (get(p) for p in self.by_n[n]) if v is not None]
            if vals:
                out.append((n, statistics.median(vals)))
        return out


def collect_lines(report):
    lines = {}
    for p in report["points"]:
        key = (p["provider"], p["mode"])
        line = lines.setdefault(key, Line(*key))
        if p["status"] == "ok":
            line.by_n[p["seqlen"]].append(p)
        else:
            line.skipped[p["seqlen"]].append(p)
    return lines


def verdicts_by_key(report):
    return {(v["provider"], v["mode"]): v for v in report["summary"].get("verdicts", [])}


def short_reason(reason):
    if not reason:
        return "no reason given"
    if OOM_RE.search(reason):
        return "out of memory"
    return reason.split(":", 1)[-1].strip() if reason.startswith(("lightning:", "peer:")) \
        else reason


def title_of(report):
    o = report["options"]
    env = report.get("environment", {})
    dev = env.get("device")
    where = dev["name"] if dev else f"CPU ({env.get('host', {}).get('cpu', 'host')})"
    tool = report.get("tool", {})
    sha = tool.get("git_sha", "unknown")
    if tool.get("git_dirty"):
        sha += "-dirty"
    shape = (f"H={o['heads']}, D={o['dim']}, E={o['vdim']}, {fmt_count(o['tokens'])} tokens per "
             f"step (B = {fmt_count(o['tokens'])}/N)")
    if o.get("batch"):
        shape = f"H={o['heads']}, D={o['dim']}, E={o['vdim']}, B={o['batch']}"
    when = (report.get("started_at") or "")[:10]
    extra = ""
    if report.get("status") != "complete":
        extra = f"  [{report.get('status')}: {len(report['points'])} of " \
                f"{report.get('points_planned')} points]"
    name = tool.get("name", "lightning-bench")
    reps = f", {o['repeat']} repeats" if o.get("repeat", 1) > 1 else ""
    cache = f" · {o['cache']} L2" if dev and o.get("cache") else ""
    dry = "DRY RUN (stand-ins, not measurements) · " if report.get("dry_run") else ""
    return (f"{dry}{where} · {o['dtype']} · {shape}\n"
            f"{name} {tool.get('version', '')} · git {sha} · {when}{reps}{cache}{extra}")


# ---------------------------------------------------------------------------------------------
# Drawing


class Styles:
    """Colour, width and stacking per provider. Lines that coincide (two providers with the same
    memory, tensors with the same error) stay visible: the first providers are drawn wider and
    underneath, the later ones thinner and on top."""

    def __init__(self, providers):
        self.order = list(providers)
        self.colors = color_map(providers)

    def __call__(self, provider, **extra):
        i = self.order.index(provider)
        style = {"color": self.colors[provider], "linewidth": max(1.0, 2.6 - 0.5 * i),
                 "markersize": max(3.0, 6.5 - 1.0 * i), "zorder": 3 + i, "marker": "o"}
        style.update(extra)
        return style


def setup_log2_x(ax, seqlens):
    ax.set_xscale("log", base=2)
    ax.set_xticks(seqlens)
    ax.set_xticklabels([fmt_count(n) for n in seqlens])
    ax.minorticks_off()
    if len(seqlens) > 1:
        lo, hi = min(seqlens), max(seqlens)
        ax.set_xlim(lo / 2 ** 0.35, hi * 2 ** 0.35)
    ax.grid(True, which="major", axis="both", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("sequence length N (tokens)", fontsize=9)


def log_y_ticks(ax, lo, hi, fmt):
    """Log scale with 1-2-5 ticks (finer when the range is narrow), labelled with fmt."""
    import matplotlib.ticker as mticker
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    if not (0 < lo < hi):
        return
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** d for d in range(math.floor(math.log10(lo)) - 1,
                                               math.ceil(math.log10(hi)) + 1)
                 for m in mantissas if lo <= m * 10.0 ** d <= hi]
        if len(ticks) >= 3:
            break
    ax.yaxis.set_major_locator(mticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: fmt(v)))
    ax.yaxis.set_minor_locator(mticker.NullLocator())


def log2_byte_ticks(ax, lo, hi):
    """Log scale with power-of-two byte ticks (1 GiB, 4 GiB, 16 GiB, ...), at most ~8 of them."""
    import matplotlib.ticker as mticker
    ax.set_yscale("log", base=2)
    ax.set_ylim(lo, hi)
    e0, e1 = math.ceil(math.log2(lo)), math.floor(math.log2(hi))
    step = max(1, math.ceil((e1 - e0 + 1) / 8))
    ticks = [2.0 ** e for e in range(e0, e1 + 1) if e % step == 0]
    ax.yaxis.set_major_locator(mticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(
        mticker.FuncFormatter(lambda v, _: fmt_bytes(v, ".3g").replace(".0 ", " ")))
    ax.yaxis.set_minor_locator(mticker.NullLocator())


def make_figure(plt, n_panels, height=3.9):
    width = 4.7 * n_panels + 0.6 if n_panels > 1 else 7.0
    fig, axes = plt.subplots(1, n_panels, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def finish(fig, title, handles, labels, notes, out_base, formats, panel_legends=(), ncol=None):
    """Title on top; the panels' legends, the figure's legend and the notes below the panels,
    never over the data; then save every format. Legends are placed after the layout, from the
    measured extents, so that no version of matplotlib squeezes the axes to make room."""
    fig.suptitle(title, fontsize=10, y=0.995, va="top")
    fig.tight_layout()  # makes room for the suptitle itself
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inv = fig.transFigure.inverted()
    y = min(ax.get_tightbbox(renderer).transformed(inv).y0 for ax in fig.axes) - 0.01
    placed = []
    for ax, h, lb in panel_legends:
        if not h:
            continue
        box = ax.get_position()
        placed.append(fig.legend(h, lb, loc="upper center",
                                 bbox_to_anchor=(box.x0 + box.width / 2, y), fontsize=7.5,
                                 frameon=False, handlelength=2.5))
    if placed:
        fig.canvas.draw()
        y = min(leg.get_window_extent().transformed(inv).y0 for leg in placed) - 0.01
    if handles:
        if ncol is None:
            longest = max(len(lb) for lb in labels)
            ncol = max(1, min(len(labels), int(fig.get_figwidth() * 12 / max(24, longest + 6))))
        leg = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, y), ncol=ncol,
                         fontsize=8, frameon=False, handlelength=3)
        fig.canvas.draw()
        y = leg.get_window_extent().transformed(inv).y0 - 0.01
    if notes:
        # About 16 characters of 7.5 pt text per inch: wrap to the figure's width.
        width = int(fig.get_figwidth() * 16)
        text = "\n".join(textwrap.fill(n, width, subsequent_indent="    ") for n in notes)
        fig.text(0.01, y, text, ha="left", va="top", fontsize=7.5, color="#444444")
    written = []
    for fmt in formats:
        path = f"{out_base}.{fmt}"
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        # bbox_inches="tight" grows the image to hold everything outside the axes
        # (bbox_extra_artists stays unset: passing it replaces the default list, title included).
        fig.savefig(path, dpi=130, bbox_inches="tight", pad_inches=0.15, metadata=meta)
        written.append(path)
    return written


def describe_ns(ns, seqlens):
    """[8k, 16k, ..., 128k] of seqlens 1k..128k -> 'N >= 8k'; all -> 'every N'; else a list."""
    ns = sorted(ns)
    if ns == sorted(seqlens):
        return "every N"
    if ns == sorted(seqlens)[-len(ns):]:
        return f"N >= {fmt_count(ns[0])}"
    return "N = " + ", ".join(fmt_count(n) for n in ns)


def skipped_notes(lines, modes, styles, seqlens):
    """One line per reason: which (provider, mode) and which N were not measured."""
    by_reason = defaultdict(list)
    for provider in styles.order:
        for mode in modes:
            line = lines.get((provider, mode))
            if not line or not line.skipped:
                continue
            per_reason = defaultdict(set)
            for n, pts in line.skipped.items():
                for p in pts:
                    per_reason[short_reason(p.get("reason"))].add(n)
            for reason, ns in per_reason.items():
                by_reason[reason].append(f"{provider} {mode} at {describe_ns(ns, seqlens)}")
    return [f"not measured ({reason}): " + "; ".join(items)
            for reason, items in sorted(by_reason.items())]


def verdict_label(provider, v):
    if not v:
        return f"{provider}: no verdict"
    if v["verdict"] == "N/A":
        return f"{provider}: N/A ({v['reason']})"
    return (f"{provider}: {v['verdict']} (max/min {v['max_min_ratio']:.2f}, "
            f"slope {v['slope']:+.3f}/doubling)")


def plot_throughput(plt, report, lines, modes, styles, seqlens, out_base, formats):
    import matplotlib.lines as mlines
    verdicts = verdicts_by_key(report)
    crit = report.get("criteria", {})
    ratio_limit, slope_bound = crit.get("max_min_ratio", 1.10), crit.get("slope_bound", 0.03)
    fig, axes = make_figure(plt, len(modes), height=4.2)
    any_skip_mark, panel_legends = False, []
    for ax, mode in zip(axes, modes):
        ymin, ymax = math.inf, 0.0
        handles, labels = [], []
        for provider in styles.order:
            line = lines.get((provider, mode))
            if not line:
                continue
            pts = line.throughput()
            st = styles(provider)
            if pts:
                ns, med, lo, hi = (list(c) for c in zip(*pts))
                ax.fill_between(ns, lo, hi, color=st["color"], alpha=0.35, linewidth=0,
                                zorder=st["zorder"])
                ax.plot(ns, med, **st)
                ymin, ymax = min(ymin, min(lo)), max(ymax, max(hi))
                if len(pts) >= 2:
                    top = max(med)
                    ax.fill_between([ns[0], ns[-1]], [top / ratio_limit] * 2, [top] * 2,
                                    color=st["color"], alpha=0.10, linewidth=0, zorder=1)
                    ax.hlines([top, top / ratio_limit], ns[0], ns[-1], colors=st["color"],
                              linestyles=(0, (2, 2)), linewidth=0.8, zorder=1)
                    ymin = min(ymin, top / ratio_limit)
                handles.append(mlines.Line2D([], [], **st))
                labels.append(verdict_label(provider, verdicts.get((provider, mode))))
                if line.skipped:
                    # Not measured: an x on the bottom edge, in the provider's colour.
                    xs = sorted(line.skipped)
                    ax.plot(xs, [0.0] * len(xs), linestyle="none", marker="x",
                            color=st["color"], markersize=7, mew=1.5, clip_on=False,
                            transform=ax.get_xaxis_transform(), zorder=20)
                    any_skip_mark = True
        setup_log2_x(ax, seqlens)
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        if ymax > 0:
            log_y_ticks(ax, ymin / 1.3, ymax * 1.3, fmt_rate)
        panel_legends.append((ax, handles, labels))
    axes[0].set_ylabel("throughput (tokens/s, all heads; log scale)", fontsize=9)
    notes = ["dark band: 95% CI of the median at each N (repeats: median of their medians, "
             "widest of their CIs).  light strip between dotted lines: flatness band, best "
             f"median / {ratio_limit:g} .. best median;",
             f"PASS needs every median inside its strip and the slope of log2(tokens/s) per "
             f"doubling of N within +-{slope_bound:g} (95% CI)."]
    if any_skip_mark:
        notes.append("x on the bottom edge: a point that was not measured (reason below)")
    notes += skipped_notes(lines, modes, styles, seqlens)
    return finish(fig, "Throughput against sequence length, fixed token budget\n"
                  + title_of(report), [], [], notes, out_base + "-throughput", formats,
                  panel_legends=panel_legends)


def oom_size(point):
    """Bytes an out-of-memory point asked for, if its reason says; else None."""
    m = NEEDS_RE.search(point.get("reason") or "")
    return int(m.group(1)) + int(m.group(2)) if m else None


def plot_memory(plt, report, lines, modes, styles, seqlens, out_base, formats):
    import matplotlib.lines as mlines
    dev = report.get("environment", {}).get("device")
    total = dev.get("total_bytes") if dev else None
    fig, axes = make_figure(plt, len(modes))
    shown, with_line, any_oom, unknown_size = [], set(), False, False
    for ax, mode in zip(axes, modes):
        lo, hi, ooms = math.inf, 0, []
        for provider in styles.order:
            line = lines.get((provider, mode))
            if not line:
                continue
            st = styles(provider)
            pts = line.values(lambda p: (p.get("memory") or {}).get("peak_bytes"))
            if pts:
                ns, vals = zip(*pts)
                ax.plot(ns, vals, **st)
                lo, hi = min(lo, min(vals)), max(hi, max(vals))
                with_line.add(provider)
                if provider not in shown:
                    shown.append(provider)
            for n in sorted(line.skipped):
                p = line.skipped[n][0]
                if OOM_RE.search(p.get("reason") or ""):
                    ooms.append((n, oom_size(p), st))
                    if provider not in shown:
                        shown.append(provider)
        sizes = [s for _, s, _ in ooms if s]
        top = max([hi, total or 0] + sizes)
        if lo == math.inf:
            lo = (total or top or 1 << 30) / 16
        ylo, yhi = lo / 2.5, top * 3
        for n, size, st in ooms:
            any_oom = True
            unknown_size |= size is None
            ax.plot([n], [size or yhi / 1.4], linestyle="none", marker="x", color=st["color"],
                    markersize=8, mew=2, zorder=st["zorder"] + 10)
        if total:
            ax.axhline(total, color="black", linewidth=1, linestyle="--", zorder=2)
        log2_byte_ticks(ax, ylo, yhi)
        setup_log2_x(ax, seqlens)
        ax.set_title(MODE_TITLES[mode], fontsize=10)
    axes[0].set_ylabel("peak device memory (log scale)" if dev else
                       "peak memory of the host buffers (log scale)", fontsize=9)
    # A provider that never fitted has no line: its legend entry is its 'x'.
    handles = [mlines.Line2D([], [], **styles(p)) if p in with_line else
               mlines.Line2D([], [], **styles(p, marker="x", linestyle="none", mew=2))
               for p in shown]
    labels = [p if p in with_line else f"{p} (out of memory at every point)" for p in shown]
    if total:
        handles.append(mlines.Line2D([], [], color="black", linestyle="--"))
        labels.append(f"device memory ({fmt_bytes(total, '.3g')})")
    if any_oom:
        handles.append(mlines.Line2D([], [], color="#555555", marker="x", markersize=8, mew=2,
                                     linestyle="none"))
        labels.append("skipped, out of memory: drawn at the size it needed" +
                      (" (top edge: size unknown)" if unknown_size else ""))
    notes = []
    src = {(p.get("memory") or {}).get("source") for p in report["points"]} - {None}
    if src:
        notes.append("measured by: " + ", ".join(sorted(src)) +
                     " (everything one step allocates: inputs, outputs, scratch)")
    return finish(fig, "Peak memory against sequence length\n" + title_of(report),
                  handles, labels, notes, out_base + "-memory", formats)


def plot_error(plt, report, lines, modes, styles, seqlens, out_base, formats):
    import matplotlib.lines as mlines
    fig, axes = make_figure(plt, len(modes))
    shown, tensors_seen, limits_seen, refs = [], set(), set(), set()
    failed_any = False
    for ax, mode in zip(axes, modes):
        lo, hi, limits = math.inf, 0.0, set()
        for provider in styles.order:
            line = lines.get((provider, mode))
            if not line:
                continue
            per = defaultdict(lambda: defaultdict(list))  # tensor -> N -> [(rel_l2, pass)]
            for n in line.ns():
                for p in line.by_n[n]:
                    v = p.get("verification")
                    if not v or v.get("status") == "skipped":
                        continue
                    refs.add(v.get("reference") or "")
                    for t in v.get("tensors", []):
                        if t.get("rel_l2") is not None:
                            per[t["name"]][n].append((t["rel_l2"], t.get("pass", True)))
                        if t.get("rel_l2_limit") is not None:
                            limits.add(t["rel_l2_limit"])
            order = list(TENSOR_MARKERS)
            for name in sorted(per, key=lambda t: order.index(t) if t in order else 99):
                ns = sorted(per[name])
                # The worst repeat: an error that shows once is an error.
                vals = [max(max(r for r, _ in per[name][n]), 1e-12) for n in ns]
                st = styles(provider, marker=TENSOR_MARKERS.get(name, "o"),
                            linestyle=TENSOR_STYLES.get(name, "-"))
                ax.plot(ns, vals, **st)
                bad = [(n, v) for n, v in zip(ns, vals) if not all(ok for _, ok in per[name][n])]
                if bad:
                    failed_any = True
                    ax.plot([b[0] for b in bad], [b[1] for b in bad], linestyle="none",
                            marker="o", markersize=12, markerfacecolor="none",
                            markeredgecolor="red", mew=1.5, zorder=30)
                lo, hi = min(lo, min(vals)), max(hi, max(vals))
                tensors_seen.add(name)
                if provider not in shown:
                    shown.append(provider)
        for lim in sorted(limits):
            ax.axhline(lim, color="red", linestyle="--", linewidth=1.2, zorder=2)
        limits_seen |= limits
        setup_log2_x(ax, seqlens)
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        if lo < math.inf:
            ylo = min([lo] + list(limits)) / 3
            yhi = max([hi] + list(limits)) * 3
            log_y_ticks(ax, ylo, yhi, lambda v: f"{v:.0e}".replace("e-0", "e-"))
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no verified points\n(run with --verify)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9)
    axes[0].set_ylabel("relative L2 error against the reference (log scale)", fontsize=9)
    handles = [mlines.Line2D([], [], color=styles.colors[p], linewidth=3) for p in shown]
    labels = list(shown)
    for name in [t for t in TENSOR_MARKERS if t in tensors_seen]:
        handles.append(mlines.Line2D([], [], color="#555555", marker=TENSOR_MARKERS[name],
                                     linestyle=TENSOR_STYLES[name], markersize=5))
        labels.append(f"tensor {name}")
    if limits_seen:
        handles.append(mlines.Line2D([], [], color="red", linestyle="--"))
        labels.append("tolerance (rel_l2_limit " +
                      ", ".join(f"{lim:g}" for lim in sorted(limits_seen)) + ")")
    if failed_any:
        handles.append(mlines.Line2D([], [], color="red", marker="o", markerfacecolor="none",
                                     markersize=10, linestyle="none"))
        labels.append("verification failed")
    notes = []
    if refs - {""}:
        notes.append("reference: " + ", ".join(sorted(refs - {""})) +
                     "; each point is the worst of its repeats and verified heads")
    if not shown:
        notes.append("this report holds no verification results (lightning-bench --verify)")
    return finish(fig, "Numerical error against sequence length\n" + title_of(report),
                  handles, labels, notes, out_base + "-error", formats)


def plot_bandwidth(plt, report, lines, modes, styles, seqlens, out_base, formats):
    import matplotlib.lines as mlines
    peak = report["options"].get("peak_bandwidth_gbps")
    dev = report.get("environment", {}).get("device")
    have_pct = any((p.get("throughput") or {}).get("pct_peak_bandwidth") is not None
                   for p in report["points"])
    key = "pct_peak_bandwidth" if have_pct else "gb_per_s"
    fig, axes = make_figure(plt, len(modes))
    shown, panels = [], []
    for ax, mode in zip(axes, modes):
        vals_all = []
        for provider in styles.order:
            line = lines.get((provider, mode))
            pts = line.values(lambda p: (p.get("throughput") or {}).get(key)) if line else []
            pts = [(n, v) for n, v in pts if v > 0]
            if not pts:
                continue
            ns, vals = zip(*pts)
            ax.plot(ns, vals, **styles(provider))
            vals_all += vals
            if provider not in shown:
                shown.append(provider)
        setup_log2_x(ax, seqlens)
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        panels.append((ax, vals_all))
    # One scale for all panels: logarithmic when the values span more than 20x (a fast kernel
    # beside slow references), so that the slow ones do not sit on the zero line.
    every = [v for _, vals in panels for v in vals]
    log = bool(every) and max(every) > 20 * min(every)
    for ax, vals in panels:
        hi = max(vals) if vals else 1
        if have_pct:
            ax.axhline(100, color="black", linestyle="--", linewidth=1)
        if log:
            top = max(150, hi * 1.5) if have_pct else hi * 1.5
            log_y_ticks(ax, min(every) / 1.5, top,
                        (lambda v: f"{v:g}%") if have_pct else (lambda v: f"{v:g}"))
        elif have_pct:
            ax.set_ylim(0, max(105, hi * 1.1))
        else:
            ax.set_ylim(0, hi * 1.15)
    scale = "; log scale" if log else ""
    handles = [mlines.Line2D([], [], **styles(p)) for p in shown]
    labels = list(shown)
    notes = []
    if have_pct:
        axes[0].set_ylabel(f"% of peak bandwidth ({peak:g} GB/s{scale})", fontsize=9)
        handles.append(mlines.Line2D([], [], color="black", linestyle="--"))
        labels.append(f"100% = {peak:g} GB/s (--peak-bandwidth)")
        if dev and dev.get("peak_bandwidth_gbps"):
            notes.append(f"{dev['name']}: {dev['peak_bandwidth_gbps']:.0f} GB/s theoretical "
                         f"(memory clock x bus width); 100% here is the {peak:g} GB/s given to "
                         f"the bench")
    else:
        axes[0].set_ylabel(f"model bandwidth (GB/s{scale})", fontsize=9)
        notes.append("no peak bandwidth in this report (a CPU run, or --peak-bandwidth unset): "
                     "GB/s drawn")
    notes.append("bytes moved: the model's " + report.get("model", {}).get("bytes", "?") +
                 "; divided by the median time")
    return finish(fig, "Memory bandwidth against sequence length\n" + title_of(report),
                  handles, labels, notes, out_base + "-bandwidth", formats)


def main(argv):
    parser = argparse.ArgumentParser(
        description="Plot a lightning-bench report: throughput, memory, error and bandwidth "
                    "against N (PNG and SVG).")
    parser.add_argument("report", help="report JSON (lightning-bench --json, compare_peers.py)")
    parser.add_argument("--out", help="output prefix (default: the report path without .json); "
                                      "writes PREFIX-throughput.png etc.")
    parser.add_argument("--formats", default="png,svg", help="comma-separated (default png,svg)")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        print(f"plot_report: unsupported format(s) {bad or args.formats!r}; use png, svg, pdf",
              file=sys.stderr)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot_report: matplotlib is not importable by {sys.executable} "
              f"(Debian: apt-get install python3-matplotlib)", file=sys.stderr)
        return 2
    matplotlib.rcParams["svg.hashsalt"] = "lightning"  # the same SVG for the same report
    try:
        report = load_report(args.report, ("options", "points", "summary"))
        out_base = args.out or re.sub(r"\.json$", "", args.report)
        lines = collect_lines(report)
        modes = [m for m in MODES if any(k[1] == m and lines[k].by_n for k in lines)]
        if not modes:
            raise BadReport(f"{args.report}: no finished (ok) point to plot")
        seqlens = sorted(set(report["options"].get("seqlens", [])) |
                         {p["seqlen"] for p in report["points"]})
        styles = Styles(provider_order(report))
        out_dir = os.path.dirname(out_base)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        written = []
        for plot in (plot_throughput, plot_memory, plot_error, plot_bandwidth):
            written += plot(plt, report, lines, modes, styles, seqlens, out_base, formats)
            plt.close("all")
    except BadReport as e:
        print(f"plot_report: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError) as e:
        print(f"plot_report: {args.report}: unexpected report content ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    except OSError as e:
        print(f"plot_report: cannot write the plots: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
