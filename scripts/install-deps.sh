#!/usr/bin/env bash
# Installs the Debian packages moonstep needs, only those that are missing.
# Runs as root (CI, containers) or through sudo when available.
set -euo pipefail

packages=(
  build-essential     # gcc, make
  luajit              # the interpreter moonstep scripts run on
  libluajit-5.1-dev   # lua.h for tools that embed it
  libopenblas-dev     # cblas sgemm/dgemm (headers)
  libopenblas-openmp-dev  # the OpenMP build, linked explicitly (one thread pool with ours)
  lua-busted          # test runner
  lua-dkjson          # JSON (ms.experiment's config.json/result.json, through lua/moonstep/json.lua)
  zlib1g-dev          # gzip (data loading, checkpoints)
  libreadline-dev     # line editing and history in the REPL (bound through the FFI)
  tmux                # drives the REPL in its tests
  gnuplot-nox         # schedule:plot (PNG/SVG without X)
  dataset-fashion-mnist  # /usr/share/datasets/fashion-mnist/*.gz (IDX)
  openmpi-bin         # mpirun: ms.dist's ranks (data parallelism), and its tests
  libopenmpi-dev      # mpicc, mpi.h: the MPI plugin libmoonstep_mpi.so
)
# Optional extras, set MOONSTEP_EXTRAS=1: PyTorch as an independent reference.
if [[ "${MOONSTEP_EXTRAS:-0}" == 1 ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
