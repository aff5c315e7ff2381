#!/usr/bin/env python3
"""End to end: a sweep stopped part way keeps every point it finished.

    interrupted_sweep.py LIGHTNING_BENCH VALIDATE_REPORT_PY OUTDIR

Runs a CPU sweep that takes several seconds and stops it once its report holds a finished point:
- Ctrl-C (SIGINT) or SIGTERM (kill, a job scheduler's notice): lightning-bench finishes the
  sample in hand, writes the report with status "interrupted" and exits 130 (143 for SIGTERM);
- SIGKILL (a crash, the machine taken away): the report on disk is the one written after the
  last finished point, status "running".
Either way the report must parse, follow the schema (scripts/validate_report.py) and hold at least
one and fewer than the planned points, every one of them finished ("ok"). Exit 0 when both hold,
1 with one line per failed check.
"""
import json
import os
import signal
import subprocess
import sys
import time

# Five lengths x three modes, each point sampled for at least 0.3 s: 15 points and several
# seconds, so that the stop comes in the middle.
SWEEP = ["--providers", "cpu-lightning", "--seqlens", "256..4k", "--tokens", "4k", "--heads",
         "2", "--dim", "64", "--min-time", "0.3", "--min-samples", "3", "--no-progress",
         "--no-table"]


def read_report(path):
    """The report as written so far, or None (not there yet, or not one point finished)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None  # written atomically, so a reader sees a whole file or none
    return doc if doc.get("points") else None


def run_and_stop(bench, path, sig):
    """Start the sweep, wait for its first finished point, send `sig`; (exit status, report)."""
    if os.path.exists(path):
        os.remove(path)
    proc = subprocess.Popen([bench, *SWEEP, "--json", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while read_report(path) is None:
        if proc.poll() is not None:
            raise RuntimeError(f"lightning-bench ended (status {proc.returncode}) before one point "
                               f"was finished: {proc.stderr.read().strip()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("no finished point in the report after 120 s")
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError(f"lightning-bench did not stop within 120 s of signal {sig}")
    with open(path) as f:
        return proc.returncode, json.load(f)


def check(name, ok, failures):
    if not ok:
        failures.append(name)


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bench, validator, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    failures = []
    cases = [("SIGINT", signal.SIGINT, 130, "interrupted"),
             ("SIGTERM", signal.SIGTERM, 143, "interrupted"),
             ("SIGKILL", signal.SIGKILL, -signal.SIGKILL, "running")]
    for name, sig, want_rc, want_status in cases:
        path = os.path.join(out, f"interrupted-{name.lower()}.json")
        try:
            rc, doc = run_and_stop(bench, path, sig)
        except (RuntimeError, OSError, ValueError) as e:
            failures.append(f"{name}: {e}")
            continue
        points = doc["points"]
        check(f"{name}: exit status {rc}, expected {want_rc}", rc == want_rc, failures)
        check(f"{name}: report status {doc['status']!r}, expected {want_status!r}",
              doc["status"] == want_status, failures)
        check(f"{name}: {len(points)} points kept of {doc['points_planned']} planned, expected "
              "at least one and not all", 0 < len(points) < doc["points_planned"], failures)
        check(f"{name}: a kept point is not finished",
              all(p["status"] == "ok" for p in points), failures)
        counts = doc["summary"]["counts"]
        check(f"{name}: the summary counts {counts['points']} points ({counts['ok']} ok), the "
              f"report holds {len(points)}",
              counts["points"] == counts["ok"] == len(points), failures)
        valid = subprocess.run([sys.executable, validator, path], capture_output=True, text=True)
        check(f"{name}: the report does not follow the schema: {valid.stdout.strip()} "
              f"{valid.stderr.strip()}", valid.returncode == 0, failures)
        print(f"interrupted_sweep: {name}: exit {rc}, status {doc['status']}, "
              f"{len(points)} of {doc['points_planned']} points kept")
    for f in failures:
        print(f"interrupted_sweep: FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
