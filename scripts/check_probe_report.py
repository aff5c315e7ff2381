#!/usr/bin/env python3
"""Check that probe reports (lightning-probe-chains --json) are complete.

    python3 scripts/check_probe_report.py REPORT [REPORT ...]

A probe report is not a lightning-bench report (reports/schema): it holds the tool's name, the git
sha it was built from, the date, the GPU, and its cases, each with raw samples and the per-step
time that kernels/README.md quotes. Exit 1, one line per problem, if anything is missing or
inconsistent.
"""
import statistics
import sys

from report_common import check_reports_main, read_json


def problems(path):
    r, error = read_json(path)
    if error:
        return [error]
    out = []
    for key in ("tool", "git_sha", "date", "environment", "setup", "cases"):
        if key not in r:
            out.append(f"no '{key}'")
    if out:
        return out
    if r["git_sha"] in ("", "unknown"):
        out.append("git_sha is unknown")
    if not r["environment"].get("gpu"):
        out.append("environment.gpu is empty")
    if not r["cases"]:
        out.append("no cases")
    for i, c in enumerate(r["cases"]):
        samples = c.get("samples_ms") or []
        if not samples or any(not (s > 0) for s in samples):
            out.append(f"case {i}: no positive samples")
            continue
        median = statistics.median_high(samples)
        if abs(c.get("median_ms", -1) - median) > 1e-9 * max(1.0, median):
            out.append(f"case {i}: median_ms {c.get('median_ms')} is not the samples' {median}")
        steps = c.get("tokens_per_thread_block", 0) / 64
        if steps <= 0 or abs(c.get("us_per_64_token_step", -1) - median * 1e3 / steps) > 1e-6:
            out.append(f"case {i}: us_per_64_token_step does not follow from median_ms")
        # output_ws's profile: parts of a loop's time, so within [0, 1].
        for side, values in (c.get("profile") or {}).items():
            for key, value in values.items():
                if key.endswith("_fraction") and not 0 <= value <= 1:
                    out.append(f"case {i}: profile {side}.{key} = {value} is not within [0, 1]")
    return out


if __name__ == "__main__":
    sys.exit(check_reports_main("check_probe_report", problems))
