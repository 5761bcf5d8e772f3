#!/usr/bin/env bash
# Builds kmidi against LibTorch 2.x and runs its tests, on a machine that has
# only Debian 12's LibTorch 1.13: Debian 13 ships LibTorch 2.6, for CPU
# (libtorch-dev) and with CUDA 12.4, NCCL and ProcessGroupNCCL (contrib's
# libtorch-cuda-dev). The script makes a Debian 13 chroot with mmdebstrap,
# bind-mounts this checkout's parent folder at the same path (so ../shared/data
# is where the tests look), configures, builds and runs ctest in it.
#
#   sudo scripts/check_libtorch2.sh                  # LibTorch 2.6 CPU, all tests
#   sudo scripts/check_libtorch2.sh --cuda           # LibTorch 2.6 CUDA: build, then the tests on CPU
#   sudo scripts/check_libtorch2.sh --tests 'DataParallel|Failures'   # a ctest -R subset
#
# Options: --chroot DIR [/opt/kmidi-trixie or /opt/kmidi-trixie-cuda]: made
# once, reused after; --build-dir DIR [build-libtorch2 or build-libtorch2-cuda
# in the checkout]; --no-tests: configure and build only.
#
# Needs root, network access to deb.debian.org, ~6 GB (CPU) or ~15 GB (CUDA)
# of disk. The CUDA build links libtorch_cuda, which needs cuDNN 9's
# libcudnn.so.9: Debian's nvidia-cudnn package downloads it from NVIDIA at
# install time, so a stand-in package takes its place and the library is
# copied from the host's CUDA toolkit ($CUDA_HOME, /usr/local/cuda). nvcc 12.4
# takes GCC <= 13 as its host compiler and not clang 19, so the CUDA build
# uses GCC (g++-13 for nvcc's configure-time checks; kmidi has no .cu files).
# Without a GPU the CUDA build's tests run on CPU, as CI's do.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CUDA=0
CHROOT=""
BUILD_DIR=""
TESTS=""
RUN_TESTS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) CUDA=1 ;;
    --chroot) CHROOT=$2; shift ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --tests) TESTS=$2; shift ;;
    --no-tests) RUN_TESTS=0 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check_libtorch2.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "check_libtorch2.sh: needs root (mmdebstrap, chroot, bind mounts)" >&2; exit 2; }
SUFFIX=""
if [ "$CUDA" = 1 ]; then SUFFIX=-cuda; fi
CHROOT=${CHROOT:-/opt/kmidi-trixie$SUFFIX}
BUILD_DIR=${BUILD_DIR:-$ROOT/build-libtorch2$SUFFIX}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
SHARED_PARENT=$(dirname "$ROOT")

COMMON=(
  build-essential cmake ninja-build clang pkg-config libclang-rt-19-dev
  libopenblas0-pthread libyaml-cpp-dev libhdf5-dev libspdlog-dev libfmt-dev libonnx-dev libprotobuf-dev
  protobuf-compiler libgtest-dev libgmock-dev nlohmann-json3-dev rapidjson-dev libcli11-dev libsndfile1-dev
  libsoxr-dev libssl-dev libvorbis-dev python3-mido python3-numpy python3-h5py python3-yaml
  fluidsynth fluid-soundfont-gm openmpi-bin slurm-wlm munge jq hdf5-tools gnuplot-nox nodejs npm git procps
  ca-certificates
)
if [ "$CUDA" = 1 ]; then
  FIRST=(nvidia-cuda-toolkit libnccl-dev libcuda1 equivs)
  SECOND=(libtorch-cuda-dev libgloo-cuda-dev python3-torch-cuda)
else
  FIRST=(libtorch-dev libgloo-dev python3-torch)
  SECOND=()
fi

in_chroot() {
  chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-}" bash -euo pipefail -c "$1"
}

MOUNTS=()
unmount_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" || true; done
}
trap unmount_all EXIT
bind() {
  mkdir -p "$CHROOT$2"
  if ! mountpoint -q "$CHROOT$2"; then mount --bind "$1" "$CHROOT$2"; MOUNTS+=("$CHROOT$2"); fi
}

if [ ! -x "$CHROOT/usr/bin/cmake" ]; then
  command -v mmdebstrap >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap; }
  echo "check_libtorch2: making a Debian 13 chroot in $CHROOT"
  include=$(IFS=,; echo "${COMMON[*]},${FIRST[*]}")
  mmdebstrap --variant=apt --skip=check/empty --include="$include" trixie "$CHROOT" \
    "deb http://deb.debian.org/debian trixie main contrib non-free non-free-firmware"
  # Services installed later (munge, slurm) must not start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"
  chmod +x "$CHROOT/usr/sbin/policy-rc.d"
fi
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
for d in /proc /sys /dev /dev/pts /dev/shm; do bind "$d" "$d"; done
bind "$SHARED_PARENT" "$SHARED_PARENT"
# The build folder may live outside the checkout's parent.
case "$BUILD_DIR" in "$SHARED_PARENT"/*) ;; *) mkdir -p "$BUILD_DIR"; bind "$BUILD_DIR" "$BUILD_DIR" ;; esac

if [ "$CUDA" = 1 ] && ! in_chroot 'dpkg -s libtorch-cuda-dev >/dev/null 2>&1'; then
  cudnn=""
  for dir in "${CUDA_HOME:-/usr/local/cuda}" /usr/local/cuda; do
    cudnn=$(find -L "$dir" -name 'libcudnn.so.9' -print -quit 2>/dev/null || true)
    [ -n "$cudnn" ] && break
  done
  [ -n "$cudnn" ] || { echo "check_libtorch2.sh: --cuda needs cuDNN 9 (libcudnn.so.9) under \$CUDA_HOME or /usr/local/cuda" >&2; exit 3; }
  cp -L "$cudnn" "$CHROOT/usr/local/lib/libcudnn.so.9"
  ln -sf libcudnn.so.9 "$CHROOT/usr/local/lib/libcudnn.so"
  in_chroot 'ldconfig
    mkdir -p /tmp/cudnn-standin && cd /tmp/cudnn-standin
    printf "%s\n" "Section: contrib/science" "Priority: optional" "Standards-Version: 4.6.2" "Package: nvidia-cudnn" \
      "Version: 9.0.0.312~cuda12~kmidi" "Description: stand-in for the cuDNN downloader; libcudnn.so.9 is copied from the host" > ctl
    equivs-build ctl >/dev/null && dpkg -i nvidia-cudnn_*.deb >/dev/null'
fi
if [ ${#SECOND[@]} -gt 0 ]; then
  in_chroot "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${SECOND[*]} >/dev/null"
fi
in_chroot "dpkg -s slurm-wlm >/dev/null 2>&1 || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }"

if [ "$CUDA" = 1 ]; then
  CMAKE_ARGS="-DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc -DCMAKE_CUDA_HOST_COMPILER=g++-13"
else
  CMAKE_ARGS="-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang"
fi
[ -f "$BUILD_DIR/CMakeCache.txt" ] && CMAKE_ARGS=""
echo "check_libtorch2: configuring and building in $BUILD_DIR"
in_chroot "cmake -S '$ROOT' -B '$BUILD_DIR' -G Ninja -DCMAKE_BUILD_TYPE=Release $CMAKE_ARGS > /tmp/kmidi-configure.log 2>&1 \
    || { cat /tmp/kmidi-configure.log; exit 1; }
  grep '^-- kmidi:' /tmp/kmidi-configure.log || true
  cmake --build '$BUILD_DIR' --parallel \$(nproc)"
[ "$RUN_TESTS" = 1 ] || exit 0
filter=""
[ -n "$TESTS" ] && filter="-R '$TESTS'"
in_chroot "cd '$BUILD_DIR' && ctest -j\$(nproc) --timeout 900 --output-on-failure $filter"
