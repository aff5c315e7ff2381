"""Helpers shared by the report scripts (plot_report.py, compare_reports.py, compare_peers.py,
the check_*_report.py checkers): reading a lightning-bench report, formatting counts and sizes,
and the checkers' command line. Standard library only."""

import json
import sys


class BadReport(Exception):
    """A report that cannot be read or is not a lightning-bench report; the message is one line."""


def fmt_count(n):
    """1024 -> '1k', 131072 -> '128k', 1048576 -> '1M', 1000 -> '1000'."""
    n = int(n)
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}k"
    return str(n)


def fmt_bytes(b, spec=".2f"):
    """Bytes in the largest binary unit that fits: fmt_bytes(4 << 30) -> '4.00 GiB'."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:{spec}} {unit}"
    return f"{b:.0f} B"


def load_report(path, required=("options", "points")):
    """The report at `path` as a dict; BadReport unless it is a lightning-bench report holding
    every key in `required`."""
    try:
        with open(path) as f:
            report = json.load(f)
    except OSError as e:
        raise BadReport(f"cannot read {path}: {e.strerror}")
    except ValueError as e:
        raise BadReport(f"{path} is not JSON: {e}")
    if not isinstance(report, dict) or report.get("schema") != "lightning-bench-report":
        raise BadReport(f'{path} is not a lightning-bench report (no "schema": '
                        f'"lightning-bench-report")')
    for key in required:
        if key not in report:
            raise BadReport(f"{path}: the report has no '{key}'")
    return report


def read_json(path):
    """(the JSON at `path`, None), or (None, "cannot read: ...") for a checker's problem list."""
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, f"cannot read: {e}"


def check_reports_main(tool, problems, argv=None):
    """The command line of a report checker: `tool REPORT [REPORT ...]`; `problems(path)` lists
    what is wrong with one report (empty: complete). One line per problem, or "complete" per
    report; the exit status is 1 if any report has a problem, 2 without arguments."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(f"usage: {tool} REPORT [REPORT ...]", file=sys.stderr)
        return 2
    bad = 0
    for path in paths:
        found = problems(path)
        for p in found:
            print(f"{tool}: {path}: {p}")
        bad += bool(found)
        if not found:
            print(f"{tool}: {path}: complete")
    return 1 if bad else 0
