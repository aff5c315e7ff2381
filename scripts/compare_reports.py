#!/usr/bin/env python3
"""Compare the speed of two lightning-bench reports, point by point.

    scripts/compare_reports.py BEFORE.json AFTER.json [--threshold 0.05] [--format text|markdown]
                               [--ignore-config]

Points are matched by (provider, mode, N, batch) within the same configuration (dtype, H, D, E,
layout, cache; --ignore-config matches across them, to compare two dtypes say; two GPUs match as
they are); repeats are pooled as in plot_report.py: the median of the repeats' median tokens/s,
and the widest of their 95% CIs. For each matched point the table gives AFTER/BEFORE and calls
it:

  faster / slower   the two 95% CIs are disjoint (the difference is more than noise)
  same              the CIs overlap
  SLOWER            slower, and by more than the threshold (ratio < 1 - threshold): a regression

A point that finished (ok) in BEFORE but was skipped or failed in AFTER is LOST, also a
regression. Points found in one report only are listed as such and do not count. Verification
failures in AFTER are shown but do not change the exit status (the test suites judge numerics).

Exit status: 0 no regression, 1 a regression (SLOWER or LOST), 2 bad input (one line on stderr).
Needs only the Python standard library.
"""

import argparse
import math
import signal
import statistics
import sys

from report_common import BadReport as BadInput
from report_common import fmt_count, load_report

CONFIG_KEYS = ("dtype", "heads", "dim", "vdim", "layout", "cache")






def load(path):
    report = load_report(path, ("points", "options"))
    if not isinstance(report["points"], list) or not isinstance(report["options"], dict):
        raise BadInput(f"{path}: the report has no points or options")
    return report


def config_of(report):
    o = report["options"]
    return tuple(o.get(k) for k in CONFIG_KEYS)


def describe(report, path):
    dev = (report.get("environment") or {}).get("device")
    where = dev["name"] if dev else "CPU"
    tool = report.get("tool") or {}
    sha = tool.get("git_sha", "?") + ("-dirty" if tool.get("git_dirty") else "")
    return f"{path} ({where}, {tool.get('name', '?')}, git {sha}, {report.get('started_at', '?')})"


class Pooled:
    """One (provider, mode, N, batch) of one report: its repeats pooled."""

    def __init__(self):
        self.ok, self.not_ok = [], []

    def add(self, point):
        (self.ok if point.get("status") == "ok" and point.get("throughput") else
         self.not_ok).append(point)

    @property
    def finished(self):
        return bool(self.ok)

    def speed(self):
        """(median tokens/s, CI low, CI high); a missing CI bound becomes None."""
        tps = [p["throughput"] for p in self.ok]
        med = statistics.median(t["tokens_per_s"] for t in tps)
        cis = [t.get("tokens_per_s_ci95") or [None, None] for t in tps]
        los = [c[0] for c in cis if c[0] is not None]
        his = [c[1] for c in cis if c[1] is not None]
        complete = len(los) == len(tps) and len(his) == len(tps)
        return med, (min(los) if complete else None), (max(his) if complete else None)

    def status_text(self):
        p = self.not_ok[0]
        reason = (p.get("reason") or "").replace("\n", " ")
        if len(reason) > 60:
            reason = reason[:57] + "..."
        return f"{p.get('status')}: {reason}" if reason else str(p.get("status"))

    def verification_failed(self):
        return any((p.get("verification") or {}).get("status") == "failed" for p in self.ok)


def pool(report, ignore_config=False):
    cfg = None if ignore_config else config_of(report)
    out = {}
    for p in report["points"]:
        try:
            key = (cfg, p["provider"], p["mode"], int(p["seqlen"]), int(p["batch"]))
        except (KeyError, TypeError, ValueError):
            raise BadInput("a point lacks provider, mode, seqlen or batch")
        out.setdefault(key, Pooled()).add(p)
    return out


def classify(before, after, threshold):
    """(ratio, verdict) for two finished points."""
    b, b_lo, b_hi = before.speed()
    a, a_lo, a_hi = after.speed()
    if not (b > 0 and a > 0):
        raise BadInput("a finished point has no positive tokens_per_s")
    ratio = a / b
    if None in (b_lo, b_hi, a_lo, a_hi):
        # No CI on one side: the threshold alone decides.
        disjoint = abs(ratio - 1) > threshold
    else:
        disjoint = a_lo > b_hi or a_hi < b_lo
    if not disjoint:
        return ratio, "same"
    if ratio > 1:
        return ratio, "faster"
    return ratio, "SLOWER" if ratio < 1 - threshold else "slower"


def rate(x, lo, hi):
    def m(v):
        return f"{v / 1e6:.4g}" if v is not None else "?"
    return f"{m(x)} [{m(lo)}, {m(hi)}]"


def config_text(cfg):
    if cfg is None:
        return "any (--ignore-config)"
    return ", ".join(f"{k}={v}" for k, v in zip(CONFIG_KEYS, cfg))


def main(argv):
    parser = argparse.ArgumentParser(
        description="Per-point speed ratios AFTER/BEFORE of two lightning-bench reports; exit 1 "
                    "on a regression beyond the threshold.")
    parser.add_argument("before", help="the baseline report")
    parser.add_argument("after", help="the report to judge")
    parser.add_argument("--threshold", type=float, default=0.05,
                        help="a disjoint-CI slowdown counts as a regression when AFTER/BEFORE < "
                             "1 - THRESHOLD (default 0.05)")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    parser.add_argument("--ignore-config", action="store_true",
                        help="match points by provider, mode, N and batch alone (compare two "
                             "dtypes or head shapes)")
    args = parser.parse_args(argv)
    if not (0 <= args.threshold < 1) or math.isnan(args.threshold):
        print(f"compare_reports: --threshold must be in [0, 1), got {args.threshold}",
              file=sys.stderr)
        return 2
    try:
        before_report, after_report = load(args.before), load(args.after)
        before = pool(before_report, args.ignore_config)
        after = pool(after_report, args.ignore_config)
        rows, only = [], []
        counts = {"faster": 0, "slower": 0, "SLOWER": 0, "same": 0, "LOST": 0}
        for key in sorted(set(before) | set(after), key=lambda k: (str(k[0]), k[1], k[2], k[3])):
            cfg, provider, mode, n, batch = key
            b, a = before.get(key), after.get(key)
            if b is None or a is None:
                side = "before" if a is None else "after"
                p = b or a
                state = "ok" if p.finished else p.status_text()
                only.append((cfg, provider, mode, n, f"only in {side} ({state})"))
                continue
            if not b.finished and not a.finished:
                continue  # skipped in both (out of memory, not implemented): nothing to compare
            if not b.finished:
                rows.append((cfg, provider, mode, n, "-", rate(*a.speed()), "-",
                             "new (before: " + b.status_text() + ")"))
                continue
            if not a.finished:
                counts["LOST"] += 1
                rows.append((cfg, provider, mode, n, rate(*b.speed()), a.status_text(), "-",
                             "LOST"))
                continue
            ratio, verdict = classify(b, a, args.threshold)
            counts[verdict] += 1
            if a.verification_failed():
                verdict += ", verification FAILED after"
            rows.append((cfg, provider, mode, n, rate(*b.speed()), rate(*a.speed()),
                         f"{ratio:.3f}", verdict))
    except BadInput as e:
        print(f"compare_reports: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError) as e:
        print(f"compare_reports: unexpected report content ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2

    print(f"before: {describe(before_report, args.before)}")
    print(f"after:  {describe(after_report, args.after)}")
    configs = sorted({str(r[0]) for r in rows} | {str(o[0]) for o in only})
    multi = len(configs) > 1
    if not multi and (rows or only):
        print(f"configuration: {config_text((rows or only)[0][0])}")
    header = (["config"] if multi else []) + ["provider", "mode", "N", "before Mtok/s [95% CI]",
                                              "after Mtok/s [95% CI]", "after/before", "verdict"]
    body = [([config_text(r[0])] if multi else []) + [r[1], r[2], fmt_count(r[3])] + list(r[4:])
            for r in rows]
    if not rows:
        print("compare_reports: no point is in both reports" +
              ("" if args.ignore_config else " (configurations: " + "; ".join(
                  config_text(c) for c in sorted({config_of(before_report),
                                                  config_of(after_report)}, key=str)) +
               "; --ignore-config matches across them)"))
    elif args.format == "markdown":
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
        print()
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for r in body:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if only:
        print()
        for cfg, provider, mode, n, what in only:
            prefix = f"[{config_text(cfg)}] " if multi else ""
            print(f"{prefix}{provider} {mode} N={fmt_count(n)}: {what}")
    regressions = counts["SLOWER"] + counts["LOST"]
    print()
    print(f"compare_reports: {len(rows)} matched points: {counts['faster']} faster, "
          f"{counts['slower'] + counts['SLOWER']} slower ({counts['SLOWER']} beyond "
          f"{args.threshold:.0%}), {counts['same']} same (95% CIs overlap), {counts['LOST']} "
          f"lost; {len(only)} in one report only")
    if regressions:
        print(f"compare_reports: REGRESSION: {counts['SLOWER']} point(s) slower by more than "
              f"{args.threshold:.0%}, {counts['LOST']} point(s) no longer finish")
        return 1
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    sys.exit(main(sys.argv[1:]))
