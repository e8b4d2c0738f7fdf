#!/usr/bin/env bash
# Installs the Debian 12 packages simarray needs to build, test and run, if any is missing.
# Needs root (apt-get) only when something is missing. Extra package names given as
# arguments are checked too (scripts/fuzz.sh asks for clang-14 this way). With --build-only
# as the first argument, only what building simarrayd and simarrayctl needs (the container
# image's build stage, docker/Dockerfile); with --only, only the packages named after it
# (scripts/container-test.sh asks for podman this way).
set -euo pipefail

build_packages=(
  cmake ninja-build g++ make pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libboost-dev libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  libisal-dev libxxhash-dev libssl-dev liburing-dev catch2
)
test_packages=(
  clang-format python3 python3-grpcio python3-protobuf procps iproute2 openssl curl
  libnbd-bin qemu-utils fio nbdkit chromium
  clang-14 libclang-rt-14-dev
)
if [ "${1:-}" = "--build-only" ]; then
  shift
  packages=("${build_packages[@]}" "$@")
elif [ "${1:-}" = "--only" ]; then
  shift
  packages=("$@")
else
  packages=("${build_packages[@]}" "${test_packages[@]}" "$@")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "simarray: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "simarray: these packages are missing and this is not root: ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
