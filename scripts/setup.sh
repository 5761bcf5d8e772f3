#!/usr/bin/env bash
# Installs everything kmidi needs on Debian 12 (apt packages, onnxruntime-node
# from npm), configures and builds, then runs the main job: the MIDI generator
# trained on the repo's POP909 sample (configs/midi_generator.yaml). Idempotent:
# a second run installs nothing, rebuilds only what changed and resumes the run.
#
#   scripts/setup.sh              install, configure, build, train the sample job
#   scripts/setup.sh --no-train   install, configure, build
#   scripts/setup.sh --deps-only  install only
#   KMIDI_BUILD_DIR=...           build folder (default: build)
#   KMIDI_CMAKE_ARGS=...          extra CMake arguments, e.g. -DCMAKE_PREFIX_PATH=<libtorch>
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KMIDI_BUILD_DIR:-$ROOT/build}
DEPS_ONLY=0
TRAIN=1
for arg in "$@"; do
  case "$arg" in
    --deps-only) DEPS_ONLY=1 ;;
    --no-train) TRAIN=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  # toolchain
  cmake ninja-build clang pkg-config libclang-rt-14-dev
  # libraries kmidi links
  libtorch-dev libgloo-dev libopenblas0-pthread libyaml-cpp-dev libhdf5-dev libspdlog-dev
  libfmt-dev libonnx-dev libprotobuf-dev protobuf-compiler libgtest-dev libgmock-dev
  nlohmann-json3-dev rapidjson-dev libcli11-dev libsndfile1-dev libsoxr-dev libssl-dev
  libvorbis-dev libcurl4-openssl-dev libarchive-dev libdeflate-dev
  # reference peers for tests and benchmarks (never on the product's path)
  python3-torch python3-mido python3-numpy python3-h5py
  # audio rendering, launchers for distributed tests, plots
  fluidsynth fluid-soundfont-gm openmpi-bin slurm-wlm munge gnuplot-nox jq hdf5-tools
  # onnxruntime-node runs under Debian's node when the image has none
  nodejs npm
)

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi

missing=()
for p in "${PACKAGES[@]}"; do
  # A node from another apt source counts: only install npm/nodejs when absent.
  if { [ "$p" = nodejs ] || [ "$p" = npm ]; } && command -v "${p/nodejs/node}" >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# onnxruntime-node checks exported graphs; its install script would download
# CUDA binaries, which the skip flag avoids (the CPU library ships in the package).
if [ ! -f "$ROOT/node_modules/onnxruntime-node/package.json" ]; then
  echo "setup: installing onnxruntime-node"
  (cd "$ROOT" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
fi

[ "$DEPS_ONLY" = 1 ] && exit 0

# clang's precompiled headers load in ~2 s where GCC's take ~10 s per
# translation unit: the whole build is several times faster with clang.
COMPILER_ARGS=()
if command -v clang++ >/dev/null 2>&1 && [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  COMPILER_ARGS=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang)
fi
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${COMPILER_ARGS[@]}" ${KMIDI_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" --parallel "$(nproc)"

[ "$TRAIN" = 1 ] || exit 0
echo "setup: training the MIDI generator on the POP909 sample (runs/midi_generator)"
"$BUILD_DIR/kmidi" train --config "$ROOT/configs/midi_generator.yaml"
