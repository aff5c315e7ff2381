#!/usr/bin/env bash
# Download the peers of scripts/compare_peers.py as wheels, here where PyPI is reachable, into
# .whl/ (git-ignored), to carry to a GPU machine that has no network.
#
#   bash scripts/fetch-peer-wheels.sh [DIR]          # DIR defaults to .whl
#
# Then, on the GPU machine (its python3 is 3.12 with torch, triton and einops already there):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   python3 scripts/compare_peers.py --json OUT.json
#
# Pinned versions: the ones whose call signatures compare_peers.py was written against
# (fla-core 0.6.0: fla.ops.simple_gla.chunk_simple_gla(q, k, v, g=None, g_gamma=None,
# scale=None, ...) on [B, T, H, K]; lightning-attn 0.0.5: lightning_attn2(q, k, v, s) on
# [B, H, N, D] with s [H, 1, 1]). fla-core holds the kernels; the flash-linear-attention package
# adds only layers and models on top (and needs transformers), so it is not fetched.
# --no-deps: their needs are named below and checked against what the GPU image already has;
# a second copy of torch or triton would stop the install there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}

peers=(fla-core==0.6.0 lightning-attn==0.0.5)
# What the peers need at run time: their Requires-Dist (extras aside), plus what fla-core 0.6.0
# imports without declaring it (packaging, in fla.utils). The GPU image provides all of these
# (device KINDS.md); anything else would have to be fetched too.
on_gpu_image=(torch triton einops packaging)
undeclared_fla_core=packaging

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
  platforms+=(--platform "$p")
done

mkdir -p "$dest"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$dest" "${peers[@]}"

shopt -s nullglob
status=0
for spec in "${peers[@]}"; do
  name=${spec%%==*}
  version=${spec##*==}
  stem=${name//-/_}
  wheels=("$dest/$stem-$version"-*.whl)
  if ((${#wheels[@]} != 1)); then
    echo "fetch-peer-wheels: expected one wheel of $spec in $dest, found ${#wheels[@]}" >&2
    status=1
    continue
  fi
  wheel=${wheels[0]}
  needs=$(unzip -p "$wheel" '*/METADATA' | sed -n 's/^Requires-Dist: *//p' | grep -v 'extra *==' |
          sed 's/[ ;<>=!~(\[].*//' | sort -u | tr '\n' ' ')
  [[ $stem == fla_core ]] && needs+="$undeclared_fla_core"
  needs=${needs% }
  missing=()
  for need in $needs; do
    [[ " ${on_gpu_image[*]} " == *" $need "* ]] || missing+=("$need")
  done
  echo "fetch-peer-wheels: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB);" \
       "needs: ${needs:-nothing} (on the GPU image)"
  if ((${#missing[@]})); then
    echo "fetch-peer-wheels: $name also needs ${missing[*]}, not on the GPU image: fetch it" >&2
    status=1
  fi
  # Another version of the same package left in the folder would stop the install there.
  all=("$dest/$stem"-*.whl)
  if ((${#all[@]} > 1)); then
    echo "fetch-peer-wheels: ${#all[@]} versions of $name in $dest: keep $version only" >&2
    status=1
  fi
done
if ((status == 0)); then
  echo "fetch-peer-wheels: ready in $dest ($(du -sh "$dest" | cut -f1)): carry it to the GPU"
fi
exit $status
