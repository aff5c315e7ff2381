#!/usr/bin/env bash
# Nsight Compute on the lightning kernels of one lightning-bench point (run on the GPU machine).
#
#   scripts/ncu-point.sh OUT.txt BENCH_BINARY [lightning-bench args...]
#
# The point runs once (--profile); every kernel whose name starts with lightning_ is profiled with
# the full section set and the details page is written to OUT.txt. --clock-control none leaves
# the GPU's clocks as they are (the device notes' METHOD.md), so the numbers are at the clocks the
# benchmark sees. Example (the long-sequence forward: local-state pass, scan, output pass):
#
#   scripts/ncu-point.sh $OUT/ncu-128k.txt build/release/bench/lightning-bench \
#     --providers lightning --modes fwd --seqlens 128k
set -euo pipefail
out=${1:?usage: scripts/ncu-point.sh OUT.txt BENCH_BINARY [lightning-bench args...]}
bench=${2:?usage: scripts/ncu-point.sh OUT.txt BENCH_BINARY [lightning-bench args...]}
shift 2
export PATH=/usr/local/cuda/bin:$PATH
ncu --clock-control none --kernel-name 'regex:^lightning_' --launch-count "${NCU_LAUNCHES:-6}" \
  --set full --import-source no --page details \
  "$bench" --profile --no-progress "$@" >"$out" 2>&1
