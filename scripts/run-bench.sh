#!/usr/bin/env bash
# The main job: install what is missing, build the release preset, run lightning-bench's default
# sweep (the standard sweep on a GPU; a small CPU sweep that finishes in about a minute without
# one), and write the report (and its plots, when scripts/plot_report.py exists) under OUTDIR.
#
#   bash scripts/run-bench.sh [OUTDIR] [-- extra lightning-bench arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/local}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift

if [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null 2>&1; then
  bash scripts/install-deps.sh
fi
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake --preset release >/dev/null
cmake --build --preset release --target lightning-bench
mkdir -p "$out"
report="$out/lightning-bench-$(date -u +%Y%m%dT%H%M%SZ).json"
build/release/bench/lightning-bench --json "$report" "$@"
echo "report: $report"
# Plots need matplotlib: Debian's python3-matplotlib belongs to /usr/bin/python3, which need not be
# the first python3 on PATH.
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c "import matplotlib" 2>/dev/null; then
    "$py" scripts/plot_report.py "$report" --out "${report%.json}"
    exit 0
  fi
done
echo "run-bench: no Python with matplotlib (apt-get install python3-matplotlib): no plots" >&2
