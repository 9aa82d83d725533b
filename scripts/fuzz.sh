#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — builds weft's libFuzzer targets with clang and runs the HTTP request fuzzer for
# SECONDS (default 60) on a copy of fuzz/corpus/http_request. Exits nonzero when the fuzzer finds a crash, a
# sanitizer error or a broken invariant; the input that did it is kept as <build>/crash-* (printed).
#
# Build directory: $WEFT_FUZZ_BUILD_DIR, default build/fuzz (a clang build of its own: -DWEFT_FUZZ=ON).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${WEFT_FUZZ_BUILD_DIR:-$root/build/fuzz}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_FUZZ=ON \
  -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_TOOLS=OFF -DWEFT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target http_request_fuzz -j2

# The fuzzer adds what it finds to the corpus directory it is given: work on a copy, keep the seeds clean.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/fuzz/corpus/http_request" "$work/corpus"

echo "fuzzing the HTTP request parser for ${seconds} s"
# The fuzzer's progress lines go to a log; its final statistics are printed, and the whole log on failure.
status=0
"$build/fuzz/http_request_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/" "$work/corpus" >"$work/log" 2>&1 || status=$?
grep -E '^(Done [0-9]+ runs|stat::)' "$work/log" || true
if [[ $status -ne 0 ]]; then
  cat "$work/log" >&2
  echo "fuzz.sh: the fuzzer failed (status $status); inputs: $(ls "$build"/crash-* "$build"/leak-* \
    "$build"/timeout-* "$build"/oom-* 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${seconds} s"
