#!/usr/bin/env bash
# Installs what weft needs (Debian 12, as root), then builds and runs the whole test suite:
#   release  — every test, including the install test (an outside project builds against `cmake --install`)
#   asan     — every test under AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan     — the concurrency tests under ThreadSanitizer
#   fuzz     — the HTTP request parser under libFuzzer (clang, ASan+UBSan) for a bounded time (counts as one test)
# Each configuration is built once with Ninja. Prints one closing line: "weft tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

presets=(release asan tsan fuzz)
if [ -n "${WEFT_TEST_PRESETS:-}" ]; then read -r -a presets <<<"$WEFT_TEST_PRESETS"; fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
passed=0
failed=0
status=0
for p in "${presets[@]}"; do
  start=$(date +%s)
  if [ "$p" = fuzz ]; then
    echo "=== weft: fuzz the HTTP request parser for ${WEFT_FUZZ_SECONDS:-60} s"
    if bash scripts/fuzz.sh "${WEFT_FUZZ_SECONDS:-60}"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
    echo "=== weft: fuzz done in $(( $(date +%s) - start )) s"
    continue
  fi
  echo "=== weft: configure, build and test preset '$p'"
  cmake --preset "$p" >"$logdir/$p.configure" 2>&1 || { cat "$logdir/$p.configure"; exit 1; }
  cmake --build --preset "$p"
  set +e
  ctest --preset "$p" 2>&1 | tee "$logdir/$p.ctest"
  rc=${PIPESTATUS[0]}
  set -e
  # ctest closes with "N% tests passed, F tests failed out of T"
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$logdir/$p.ctest" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "weft: preset '$p' ran no tests"
    status=1
    continue
  fi
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  passed=$((passed + t - f))
  failed=$((failed + f))
  [ "$rc" -eq 0 ] || status=1
  echo "=== weft: preset '$p' done in $(( $(date +%s) - start )) s"
done
echo "weft tests: $passed passed, $failed failed"
exit $status
