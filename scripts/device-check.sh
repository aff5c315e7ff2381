#!/usr/bin/env bash
# One call on the GPU machine: build with the release preset, run the GPU tests, then the
# benchmarks that exist, writing logs and reports into OUTDIR.
#
#   scripts/device-check.sh OUTDIR [--tests REGEX | --no-tests] [--no-bench] [--sanitize]
#                          [--bench-args "..."] [--peers]
#
# --peers: also run scripts/compare_peers.py (our kernel beside flash-linear-attention, the
# official kernel and SDPA) into OUTDIR/peers.json; the peers' wheels must be in .whl/
# (scripts/fetch-peer-wheels.sh; name .whl in the device tool's carry).
#
# Step logs are packed into OUTDIR/logs.tar.gz (the device tool brings back at most 8 files); the
# GPU's state, the ctest JUnit file and the bench report stay beside it. A one-line summary per
# step is printed at the end.
set -uo pipefail
out=${1:?usage: scripts/device-check.sh OUTDIR [options]}
shift
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
tests=""
run_tests=1
bench=1
sanitize=0
peers=0
bench_args=()
while (($#)); do
  case "$1" in
    --tests) tests=$2; shift 2 ;;
    --no-tests) run_tests=0; shift ;;
    --no-bench) bench=0; shift ;;
    --sanitize) sanitize=1; shift ;;
    --peers) peers=1; shift ;;
    --bench-args) read -r -a bench_args <<<"$2"; shift 2 ;;
    *) echo "device-check: unknown option $1" >&2; exit 2 ;;
  esac
done
export PATH=/usr/local/cuda/bin:$PATH
summary=()
step() {  # step NAME CMD...: run, log, remember the status
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$out/logs/$name.log" 2>&1
  local rc=$?
  summary+=("$(printf '%-12s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - t0)))")
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv >"$out/gpu.txt" 2>&1
finish() {
  tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$out/logs"
  printf '%s\n' "${summary[@]}"
}
# LIGHTNING_GIT_SHA: the sha of the tree, for reports, where the copy has no .git.
step configure cmake --preset release -DLIGHTNING_BUILD_BENCH=$((bench ? 1 : 0)) \
  ${LIGHTNING_GIT_SHA:+-DLIGHTNING_GIT_SHA=$LIGHTNING_GIT_SHA} || {
  tail -30 "$out/logs/configure.log"; finish; exit 1; }
step build cmake --build --preset release -j "$(nproc)" || {
  grep -E "error|FAILED" -A5 "$out/logs/build.log" | head -60; finish; exit 1; }

if ((run_tests)); then
  ctest_args=(--preset gpu -j 4 --output-junit "$out/ctest-gpu.xml")
  [[ -n $tests ]] && ctest_args+=(-R "$tests")
  step ctest-gpu ctest "${ctest_args[@]}"
  grep -E "Failed|SKIPPED|tests passed|Total Test" "$out/logs/ctest-gpu.log" | tail -40
fi

if ((sanitize)); then
  bin=build/release/validate/validate_gpu
  short=HandlesOneTokenAndSequencesShorterThanABlock
  filter="LightningForward.$short:LightningBackward.$short:*.HandlesRaggedSegmentsOnASmallShape"
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 "$bin" --gtest_filter="$filter"
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 "$bin" --gtest_filter="$filter"
  tail -n 3 "$out/logs/memcheck.log" "$out/logs/racecheck.log"
fi

if ((peers)); then
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  step peers env PYTHONUNBUFFERED=1 python3 scripts/compare_peers.py --json "$out/peers.json" \
    --lib build/release/kernels/liblightning.so --peak-bandwidth 4250 \
    ${LIGHTNING_GIT_SHA:+--git-sha $LIGHTNING_GIT_SHA}
  tail -n 20 "$out/logs/peers.log"
fi

if ((bench)) && [[ -x build/release/bench/lightning-bench ]]; then
  step bench build/release/bench/lightning-bench --json "$out/bench.json" "${bench_args[@]}"
  tail -40 "$out/logs/bench.log"
fi
finish
