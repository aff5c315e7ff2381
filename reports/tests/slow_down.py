#!/usr/bin/env python3
"""Write a copy of a lightning-bench report whose finished points are FACTOR times slower
(times x FACTOR, rates / FACTOR): the regression that compare_reports.py must catch.

    reports/tests/slow_down.py IN.json OUT.json [FACTOR]      (FACTOR defaults to 1.25)
"""

import json
import sys


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    factor = float(argv[2]) if len(argv) == 3 else 1.25
    with open(argv[0]) as f:
        report = json.load(f)
    for p in report["points"]:
        t, tp = p.get("timing"), p.get("throughput")
        if t:
            for k in ("median_ms", "mean_ms", "min_ms", "max_ms", "stdev_ms", "warmup_ms"):
                if t.get(k) is not None:
                    t[k] *= factor
            t["ci95_ms"] = [v * factor if v is not None else None for v in t["ci95_ms"]]
            for k in ("samples_ms", "event_samples_ms", "cupti_samples_ms"):
                t[k] = [v * factor if v is not None else None for v in t[k]]
        if tp:
            for k in ("tokens_per_s", "gb_per_s", "pct_peak_bandwidth", "tflop_per_s"):
                if tp.get(k) is not None:
                    tp[k] /= factor
            # Slower times swap nothing: a CI [lo, hi] of rates stays ordered.
            tp["tokens_per_s_ci95"] = [v / factor if v is not None else None
                                       for v in tp["tokens_per_s_ci95"]]
    for v in report["summary"]["verdicts"]:
        v["median_tokens_per_s"] = [x / factor if x is not None else None
                                    for x in v["median_tokens_per_s"]]
    with open(argv[1], "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
