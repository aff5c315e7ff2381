#!/usr/bin/env python3
"""The speed tables of one lightning-bench (or compare_peers.py) report, ready to paste.

    scripts/summarize_report.py REPORT [--against PROVIDER] [--format text|markdown]

For each mode, one row per sequence length (and batch) and one column per provider: the median
tokens/s in millions, repeats pooled as in compare_reports.py (the median of the repeats'
medians). With --against, that provider comes first and every other cell also gives its speed
over the cell's, "42.48 (3.03x)": how many times faster PROVIDER is. A point that did not finish
shows why in a word: OOM (skipped for memory), skipped, timeout or failed. The report's verdict
lines follow the tables.

Exit status: 0, or 2 on bad input (one line on stderr). Needs only the Python standard library.
"""

import argparse
import signal
import sys

from compare_reports import BadInput, config_of, load, pool
from report_common import fmt_count


def cell_status(pooled):
    """A word for a point that did not finish."""
    p = pooled.not_ok[0]
    if "out of memory" in (p.get("reason") or ""):
        return "OOM"
    return str(p.get("status"))


def table(rows, header, fmt):
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return lines
    widths = [max(len(c) for c in col) for col in zip(header, *rows)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]


def main(argv):
    parser = argparse.ArgumentParser(
        description="Median Mtokens/s per sequence length and provider, one table per mode, "
                    "with ratios against one provider and the report's verdict lines.")
    parser.add_argument("report", help="a lightning-bench or compare_peers.py report")
    parser.add_argument("--against", metavar="PROVIDER",
                        help="show every other provider's cell as 'speed (PROVIDER/speed x)'")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    args = parser.parse_args(argv)
    try:
        report = load(args.report)
        points = pool(report)
        cfg = config_of(report)  # every key's first element: one report, one configuration
        providers = sorted({k[1] for k in points}, key=lambda p: (p != args.against, p))
        if args.against is not None and args.against not in providers:
            raise BadInput(f"no provider {args.against} in {args.report} (it has "
                           f"{', '.join(providers) or 'none'})")
        o = report["options"]
        print(f"{args.report}: {o.get('dtype')}, H = {o.get('heads')}, D = {o.get('dim')}, "
              f"E = {o.get('vdim')}, {o.get('layout')}, {o.get('cache')} L2; Mtokens/s, the "
              "median over repeats" + (f" ({args.against} / provider)" if args.against else ""))
        modes = [m for m in ("fwd", "bwd", "fwdbwd") if any(k[2] == m for k in points)]
        modes += sorted({k[2] for k in points} - set(modes))
        for mode in modes:
            cols = [p for p in providers if any(k[1] == p and k[2] == mode for k in points)]
            lengths = sorted({(k[3], k[4]) for k in points if k[2] == mode})
            rows = []
            for n, batch in lengths:
                ref = points.get((cfg, args.against, mode, n, batch))
                ref_speed = ref.speed()[0] if ref is not None and ref.finished else None
                row = [fmt_count(n), str(batch)]
                for provider in cols:
                    pooled = points.get((cfg, provider, mode, n, batch))
                    if pooled is None:
                        row.append("-")
                    elif not pooled.finished:
                        row.append(cell_status(pooled))
                    else:
                        v = pooled.speed()[0]
                        text = f"{v / 1e6:.2f}"
                        if ref_speed is not None and provider != args.against and v > 0:
                            text += f" ({ref_speed / v:.2f}x)"
                        row.append(text)
                rows.append(row)
            print()
            print(f"{mode}:")
            print()
            for line in table(rows, ["N", "B"] + cols, args.format):
                print(line)
        verdicts = (report.get("summary") or {}).get("verdicts") or []
        if verdicts:
            print()
            for v in verdicts:
                print(("- " if args.format == "markdown" else "") + str(v.get("line", v)))
    except BadInput as e:
        print(f"summarize_report: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        print(f"summarize_report: unexpected report content ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    sys.exit(main(sys.argv[1:]))
