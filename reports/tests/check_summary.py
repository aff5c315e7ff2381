#!/usr/bin/env python3
"""Test of scripts/summarize_report.py on reports/tests/summary_fixture.json (two repeats pooled
by their median, a ratio against provider a, an out-of-memory skip, a failed point, a provider
missing at one length, the verdict line): its markdown output must be exactly EXPECTED.

    check_summary.py SCRIPTS_DIR FIXTURE
"""
import subprocess
import sys

EXPECTED = """\
FIXTURE: bf16, H = 2, D = 64, E = 64, bhnd, cold L2; Mtokens/s, the median over repeats (a / provider)

fwd:

| N | B | a | b | c |
|---|---|---|---|---|
| 1k | 4 | 105.00 | 51.00 (2.06x) | failed |
| 2k | 2 | 90.00 | OOM | - |

- FAIL a fwd: max/min 1.17 (> 1.10)
"""


def main(scripts, fixture):
    out = subprocess.run([sys.executable, f"{scripts}/summarize_report.py", fixture, "--against",
                          "a", "--format", "markdown"], capture_output=True, text=True)
    want = EXPECTED.replace("FIXTURE", fixture)
    if out.returncode != 0 or out.stdout != want:
        print(f"check_summary: exit {out.returncode}; stderr: {out.stderr.strip()}")
        print("check_summary: got:\n" + out.stdout + "check_summary: want:\n" + want)
        return 1
    print("check_summary: the fixture's tables are as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
