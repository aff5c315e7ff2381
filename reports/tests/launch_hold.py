#!/usr/bin/env python3
"""compare_peers.py's launch hold, on simulated host times: a sample is kept only when the host
enqueued it well within the hold; a slower host makes the hold grow and the sample run again; the
growth stops at the ceiling, where samples are kept and counted as not hidden. No GPU, no torch.

    reports/tests/launch_hold.py        (exit 0: every check held; 1: the first that failed)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
from compare_peers import LaunchHold  # noqa: E402


def check(cond, what):
    if not cond:
        print(f"launch_hold: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    h = LaunchHold(min_ms=0.5, max_ms=8.0)
    h.start_point(None)
    check(h.hold_ms == 0.5, "a point without a host time starts at the minimum")
    h.start_point(3.0)
    check(h.hold_ms == 6.0, "a point starts at twice the host time of one call")
    h.start_point(100.0)
    check(h.hold_ms == 8.0, "the first guess stops at the ceiling")

    h = LaunchHold(min_ms=0.5, max_ms=8.0)
    h.start_point(None)
    check(h.after_sample(0.3), "a host within 80% of the hold keeps the sample")
    check(h.redone == 0 and h.hold_ms == 0.5, "a kept sample changes nothing")
    check(not h.after_sample(0.45), "a host past 80% of the hold sends the sample round again")
    check(h.redone == 1 and h.hold_ms == 1.0, "the hold doubles")
    check(h.after_sample(0.45), "the same host time fits the doubled hold")
    check(not h.after_sample(3.0), "a much slower host is redone")
    check(h.hold_ms == 3.0 / 0.8, "the hold grows to fit it when doubling is not enough")

    h = LaunchHold(min_ms=0.5, max_ms=8.0)
    h.start_point(None)
    tries = 0
    while not h.after_sample(50.0):  # a call that waits on the GPU itself: never hidden
        tries += 1
        check(tries <= 10, "the hold reaches its ceiling in a few doublings")
    check(h.hold_ms == 8.0 and h.not_hidden == 1, "at the ceiling the sample is kept, counted")
    check(h.longest_ms == 8.0, "the longest hold is recorded")
    j = h.json(1.9e6)
    check(j["samples_redone"] == tries and j["samples_not_hidden"] == 1 and
          j["longest_hold_ms"] == 8.0, "the report's counts match")
    print(f"launch_hold: ok ({tries} redone before the ceiling)")


if __name__ == "__main__":
    main()
