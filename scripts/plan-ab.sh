#!/usr/bin/env bash
# The segment cost model's A/B (kernels/src/plan.cpp): run the same lightning-bench arguments once
# with the model's plan and once per forced segment count (LIGHTNING_SEGMENTS), then print
# Mtokens/s per (N, mode) with one column per plan, the best of each row marked.
#
#   scripts/plan-ab.sh OUTDIR COUNTS [-- lightning-bench arguments]
#
# COUNTS: a comma-separated list of segment counts, e.g. 1,2,4 ("model" is always run first). A
# count above what a length allows (one segment per 1024 tokens) is clamped by the plan. Default
# bench arguments: --providers lightning --modes fwd --seqlens 16k..128k --min-time 0.1
# --no-progress --peak-bandwidth 4250. Writes OUTDIR/seg-<count>.json and OUTDIR/summary.txt.
# Exit status: 0, 2 bad arguments, 3 a bench run failed.
set -uo pipefail
usage="usage: scripts/plan-ab.sh OUTDIR COUNTS [-- lightning-bench arguments]"
[[ $# -ge 2 ]] || { echo "plan-ab: $usage" >&2; exit 2; }
out=$1 counts=$2
shift 2
[[ $counts =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || {
  echo "plan-ab: COUNTS must be positive integers separated by commas, got '$counts'" >&2; exit 2; }
if (($#)); then
  [[ $1 == -- ]] || { echo "plan-ab: $usage" >&2; exit 2; }
  shift
fi
bench_args=("$@")
if ((${#bench_args[@]} == 0)); then
  # shellcheck disable=SC2054  # the commas belong to lightning-bench's lists
  bench_args=(--providers lightning --modes fwd --seqlens 16k..128k --min-time 0.1 --no-progress
              --peak-bandwidth 4250)
fi
bench=${LIGHTNING_BENCH:-build/release/bench/lightning-bench}
[[ -x $bench ]] || { echo "plan-ab: no $bench (build the release preset first)" >&2; exit 2; }
mkdir -p "$out" || exit 2

plans=(model)
IFS=, read -r -a forced <<<"$counts"
plans+=("${forced[@]}")
for plan in "${plans[@]}"; do
  if [[ $plan == model ]]; then
    env -u LIGHTNING_SEGMENTS "$bench" "${bench_args[@]}" --no-table --json "$out/seg-model.json" \
      >"$out/bench-model.log" 2>&1
  else
    LIGHTNING_SEGMENTS=$plan "$bench" "${bench_args[@]}" --no-table --json "$out/seg-$plan.json" \
      >"$out/bench-$plan.log" 2>&1
  fi || { echo "plan-ab: lightning-bench failed for plan $plan; see $out/bench-$plan.log" >&2; exit 3; }
done

python3 - "$out" "${plans[@]}" <<'EOF' | tee "$out/summary.txt"
import json, sys
out, plans = sys.argv[1], sys.argv[2:]
rows = {}
for plan in plans:
    with open(f"{out}/seg-{plan}.json") as f:
        report = json.load(f)
    for p in report["points"]:
        if p["status"] != "ok":
            continue
        key = (p["seqlen"], p["mode"])
        rows.setdefault(key, {}).setdefault(plan, []).append(p["throughput"]["tokens_per_s"] / 1e6)
opts = report["options"]
print(f"Mtokens/s, {opts['dtype']} H = {opts['heads']} D = {opts['dim']} E = {opts['vdim']}, "
      f"{opts['tokens']} tokens; columns: segments per chain (model = the cost model's plan)")
print(f"{'N':>7} {'mode':>6} " + " ".join(f"{p:>9}" for p in plans))
for (n, mode), by_plan in sorted(rows.items()):
    med = {p: sorted(v)[len(v) // 2] for p, v in by_plan.items()}
    best = max(med.values())
    cells = []
    for p in plans:
        cells.append(f"{med[p]:8.1f}{'*' if med[p] == best else ' '}" if p in med else f"{'-':>9}")
    print(f"{n:>7} {mode:>6} " + " ".join(cells))
EOF
