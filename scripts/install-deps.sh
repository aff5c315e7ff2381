#!/usr/bin/env bash
# Install every build, test and script dependency of lightning from the package registries
# (Debian packages; PyPI only for what Debian lacks). Idempotent: safe to run again.
#
#   sudo scripts/install-deps.sh          # or as root, as CI does
#
# The CUDA toolkit (nvcc, cudart, CUPTI, NVTX v3, cuBLAS) is not installed here: it comes with the
# machine (NVIDIA's packages). Without nvcc the CPU parts still build and test.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config clang-format
  libeigen3-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-matplotlib python3-jsonschema
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  echo "install-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "install-deps: CUDA toolkit found ($( (command -v nvcc || echo /usr/local/cuda/bin/nvcc) ))"
else
  echo "install-deps: no CUDA toolkit (nvcc): the CPU parts will build; the kernels will not"
fi
