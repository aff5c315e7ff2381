#!/usr/bin/env python3
"""Check that micro-benchmark reports (lightning-micro --benchmark_out=... JSON) are complete.

    python3 scripts/check_micro_report.py REPORT [REPORT ...]

Google Benchmark's own JSON, with the context lightning-micro adds: the git sha it was built from
(lightning_git_sha) and the GPU. Every benchmark must have run (no error) with a positive time,
and the median rows that the READMEs quote must be there. Exit 1, one line per problem.
"""
import re
import sys

from report_common import check_reports_main, read_json


def problems(path):
    r, error = read_json(path)
    if error:
        return [error]
    out = []
    context = r.get("context")
    benchmarks = r.get("benchmarks")
    if not isinstance(context, dict) or not isinstance(benchmarks, list):
        return ["no 'context' or no 'benchmarks'"]
    if not re.fullmatch(r"[0-9a-f]{40}", str(context.get("lightning_git_sha", ""))):
        out.append(f"lightning_git_sha is not a full sha: {context.get('lightning_git_sha')!r}")
    if not context.get("gpu"):
        out.append("context.gpu is empty")
    if not context.get("date"):
        out.append("context.date is empty")
    if not benchmarks:
        out.append("no benchmarks")
    medians = 0
    for b in benchmarks:
        name = b.get("name", "?")
        if b.get("error_occurred"):
            out.append(f"{name}: {b.get('error_message', 'error')}")
        elif b.get("aggregate_name") not in ("stddev", "cv") and not (b.get("real_time", 0) > 0):
            out.append(f"{name}: no positive real_time")
        medians += b.get("aggregate_name") == "median"
    if benchmarks and medians == 0:
        out.append("no median rows (run with --benchmark_repetitions)")
    return out


if __name__ == "__main__":
    sys.exit(check_reports_main("check_micro_report", problems))
