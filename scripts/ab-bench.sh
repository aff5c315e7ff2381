#!/usr/bin/env bash
# A/B of two source trees on one machine: build lightning-bench in each (the release preset, in
# each tree's own build/), run the same lightning-bench arguments on A and B in turn, ROUNDS times
# (A, B, A, B, ...: clock and temperature drift hit both), then compare every round's pair with
# scripts/compare_reports.py (B against A).
#
#   scripts/ab-bench.sh A_DIR B_DIR OUTDIR [--rounds R] [-- lightning-bench arguments]
#
# A tree is a checkout or an export of one. The GPU machine's copy of the working tree has no .git,
# so export the other tree beforehand, inside the working tree and not ignored by git, e.g.
#     git archive main | tar -x -C ab-base --exclude=reports     (then: ab-bench.sh ab-base . out)
# Default lightning-bench arguments: --providers lightning --modes fwd,fwdbwd
# --seqlens 1k,8k,32k,64k,128k --min-time 0.1 --no-progress --peak-bandwidth 4250 (any given
# replace them all). Extra arguments for cmake's configure go in AB_CMAKE_ARGS; AB_A_SHA and
# AB_B_SHA give the trees' git shas for the reports (an export has no .git of its own, and one
# inside a checkout would otherwise take the checkout's sha).
#
# Writes OUTDIR/a-ROUND.json, OUTDIR/b-ROUND.json, OUTDIR/compare-ROUND.txt and the build logs.
# Exit status: 0 no regression in any round, 1 a regression (compare_reports.py's SLOWER or LOST),
# 2 bad arguments, 3 a build or a bench run failed.
set -uo pipefail
usage="usage: scripts/ab-bench.sh A_DIR B_DIR OUTDIR [--rounds R] [-- lightning-bench arguments]"
[[ $# -ge 3 ]] || { echo "ab-bench: $usage" >&2; exit 2; }
a_dir=$1 b_dir=$2 out=$3
shift 3
rounds=2
while (($#)); do
  case "$1" in
    --rounds)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "ab-bench: --rounds needs a positive integer" >&2; exit 2; }
      rounds=$2
      shift 2
      ;;
    --) shift; break ;;
    *) echo "ab-bench: unknown option $1; $usage" >&2; exit 2 ;;
  esac
done
bench_args=("$@")
if ((${#bench_args[@]} == 0)); then
  # shellcheck disable=SC2054  # the commas belong to lightning-bench's lists
  bench_args=(--providers lightning --modes fwd,fwdbwd --seqlens 1k,8k,32k,64k,128k
              --min-time 0.1 --no-progress --peak-bandwidth 4250)
fi
for d in "$a_dir" "$b_dir"; do
  [[ -f $d/CMakePresets.json ]] || { echo "ab-bench: $d is not a source tree (no CMakePresets.json)" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
a_dir=$(cd "$a_dir" && pwd)
b_dir=$(cd "$b_dir" && pwd)
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

# Both builds at once, each with half of the cores.
jobs=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
build() {  # build NAME DIR SHA
  # shellcheck disable=SC2086  # AB_CMAKE_ARGS is split into arguments on purpose
  (cd "$2" && cmake --preset release -DLIGHTNING_BUILD_TESTS=OFF ${3:+-DLIGHTNING_GIT_SHA=$3} \
    ${AB_CMAKE_ARGS:-} &&
    cmake --build --preset release -j "$jobs" --target lightning-bench) >"$out/build-$1.log" 2>&1
}
build a "$a_dir" "${AB_A_SHA:-}" & pa=$!
build b "$b_dir" "${AB_B_SHA:-}" & pb=$!
failed=0
wait $pa || { echo "ab-bench: building A failed; see $out/build-a.log" >&2; failed=1; }
wait $pb || { echo "ab-bench: building B failed; see $out/build-b.log" >&2; failed=1; }
((failed)) && exit 3

status=0
for ((r = 1; r <= rounds; ++r)); do
  for side in a b; do
    dir=$a_dir
    [[ $side == b ]] && dir=$b_dir
    if ! "$dir/build/release/bench/lightning-bench" "${bench_args[@]}" --no-table \
      --json "$out/$side-$r.json" >"$out/bench-$side-$r.log" 2>&1; then
      echo "ab-bench: round $r, $side: lightning-bench failed; see $out/bench-$side-$r.log" >&2
      exit 3
    fi
  done
  python3 "$here/compare_reports.py" "$out/a-$r.json" "$out/b-$r.json" >"$out/compare-$r.txt" 2>&1
  rc=$?
  echo "== round $r (B / A)"
  cat "$out/compare-$r.txt"
  if ((rc == 1)); then
    status=1
  elif ((rc != 0)); then
    echo "ab-bench: compare_reports.py failed (status $rc)" >&2
    exit 3
  fi
done
exit $status
