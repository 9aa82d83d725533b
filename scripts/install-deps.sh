#!/usr/bin/env bash
# Installs the Debian 12 packages weft needs to build, test and benchmark.
# Idempotent: packages already present are left alone; safe to run again.
# Must run as root (or with sudo available) on Debian 12.
set -euo pipefail

packages=(
  # toolchain and build
  g++ clang cmake ninja-build ccache pkg-config git python3
  # sanitizer runtimes (gcc 12; clang 14's, with libFuzzer, for the fuzz stage)
  libtsan2 libasan8 libubsan1 libclang-rt-14-dev
  # tests and micro-benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # io/: io_uring and the HTTP request parser
  liburing-dev libhttp-parser-dev
  # process/: msgpack for what crosses a process boundary (header-only; used without Boost)
  libmsgpack-cxx-dev
  # tasks/: the embedded broker (SQLite) and Celery's JSON messages
  libsqlite3-dev nlohmann-json3-dev
  # command-line tool
  libcli11-dev libfmt-dev
  # comparisons in bench/ only
  libtbb-dev libasio-dev libconcurrentqueue-dev libopenblas-dev libuv1-dev wrk
  # the task queue against Celery 5 on a redis-server it starts itself (bench/queue)
  python3-celery python3-redis redis-server
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
