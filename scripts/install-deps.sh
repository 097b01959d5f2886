#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and launch. Idempotent: does nothing
# when all are present. Needs root (or sudo).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libdnnl-dev ocl-icd-opencl-dev opencl-headers   # oneDNN's CMake package requires OpenCL's
  libopenmpi-dev openmpi-bin
  libsentencepiece-dev sentencepiece
  nlohmann-json3-dev libcli11-dev libspdlog-dev libgtest-dev
  libprotobuf-dev protobuf-compiler
  slurm-wlm munge iproute2 util-linux  # scripts/local-slurm.sh (namespace nodes) and the Slurm tests
  python3 python3-matplotlib         # scripts/plot_metrics.py, tests/check_tfevents.py
  gettext-base                       # envsubst, for the hostile-input table
  clang libclang-rt-14-dev libomp-dev  # the libFuzzer build (-DLLAMA2_FUZZ=ON)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
